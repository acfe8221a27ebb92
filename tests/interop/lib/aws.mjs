// aws.mjs - AWS's side of the interop suite: @aws-sdk clients pointed at the peers, AWS's own
// BranchKeyStoreNode (@aws-crypto/branch-keystore-node) per KMS configuration, and raw access to
// the key store items (GetItem / UpdateItem / KMS Decrypt) for what the library does not expose.

import { KMSClient, DecryptCommand } from '@aws-sdk/client-kms';
import {
  DynamoDBClient, GetItemCommand, UpdateItemCommand, QueryCommand,
} from '@aws-sdk/client-dynamodb';
import { BranchKeyStoreNode } from '@aws-crypto/branch-keystore-node';
import { KMS_CREDS, DDB_CREDS } from './peers.mjs';

export const EC_PREFIX = 'aws-crypto-ec:';

const kmsClients = new Map();
export function kmsClient(endpoint, region) {
  const k = `${endpoint} ${region}`;
  if (!kmsClients.has(k)) {
    kmsClients.set(k, new KMSClient({
      endpoint, region, credentials: { ...KMS_CREDS }, maxAttempts: 1,
      customUserAgent: 'aws-kms-hierarchy',
    }));
  }
  return kmsClients.get(k);
}

export function ddbClient(endpoint) {
  return new DynamoDBClient({ endpoint, region: 'us-west-2', credentials: { ...DDB_CREDS }, maxAttempts: 2 });
}

/*
 * AWS's key store for one KMS configuration in BranchKeyStoreNode's shape:
 *   {identifier: arn} | {mrkIdentifier: arn} | 'discovery' | {region}
 * The KMS client is signed for `region` (the ARN's region, or the MR discovery region).
 */
export function awsKeyStore({ logicalKeyStoreName, tableName, ddb, kmsEndpoint, region, kmsConfiguration }) {
  return new BranchKeyStoreNode({
    logicalKeyStoreName,
    storage: { ddbTableName: tableName, ddbClient: ddb },
    keyManagement: { kmsClient: kmsClient(kmsEndpoint, region) },
    kmsConfiguration,
  });
}

// Materials of AWS's getActiveBranchKey / getBranchKeyVersion in comparable form.
export function awsMaterials(m) {
  return {
    id: m.branchKeyIdentifier,
    version: Buffer.from(m.branchKeyVersion).toString('utf8'),
    key: Buffer.from(m.branchKey()).toString('base64'),
    ec: { ...m.encryptionContext },
  };
}

// Shapes of AWS's custom EC seen: 'stripped' (as the MPL) and/or 'prefixed' (aws-crypto-ec:k).
// The reference says JS keeps the prefix; @aws-crypto/branch-keystore-node 5.0.x strips it.
export const ecShapes = new Set();

// AWS's custom EC equals `expected` (given without the prefix) in either shape: stripped like
// the MPL, or with the prefix as the reference says JS returns it. Records the shape seen.
export function awsEcMatches(ec, expected) {
  const same = (a, b) => JSON.stringify(Object.entries(a).sort()) === JSON.stringify(Object.entries(b).sort());
  if (same(ec, expected)) {
    if (Object.keys(expected).length) ecShapes.add('stripped');
    return true;
  }
  const prefixed = Object.fromEntries(Object.entries(expected).map(([k, v]) => [EC_PREFIX + k, v]));
  if (same(ec, prefixed)) {
    ecShapes.add('prefixed');
    return true;
  }
  return false;
}

export async function getItem(ddb, table, id, type) {
  const r = await ddb.send(new GetItemCommand({
    TableName: table, Key: { 'branch-key-id': { S: id }, type: { S: type } }, ConsistentRead: true,
  }));
  return r.Item || null;
}

export async function itemsOf(ddb, table, id) {
  const r = await ddb.send(new QueryCommand({
    TableName: table, ConsistentRead: true,
    KeyConditionExpression: '#id = :id',
    ExpressionAttributeNames: { '#id': 'branch-key-id' },
    ExpressionAttributeValues: { ':id': { S: id } },
  }));
  return r.Items || [];
}

export async function setAttr(ddb, table, id, type, name, value) {
  await ddb.send(new UpdateItemCommand({
    TableName: table,
    Key: { 'branch-key-id': { S: id }, type: { S: type } },
    UpdateExpression: 'SET #a = :v',
    ConditionExpression: 'attribute_exists(#id)',
    ExpressionAttributeNames: { '#a': name, '#id': 'branch-key-id' },
    ExpressionAttributeValues: { ':v': { S: value } },
  }));
}

// The HV-1 KMS encryption context of an item (reference section 3): every attribute but enc,
// S as is, N as its raw string, plus tablename = the logical key store name.
export function mplEncryptionContext(item, logicalName) {
  const ec = {};
  for (const [k, v] of Object.entries(item)) {
    if (k === 'enc') continue;
    if (v.S !== undefined) ec[k] = v.S;
    else if (v.N !== undefined) ec[k] = v.N;
    else throw new Error(`attribute ${k} is neither S nor N: ${JSON.stringify(Object.keys(v))}`);
  }
  ec.tablename = logicalName;
  return ec;
}

export function isMrkArn(arn) {
  const p = arn.split(':');
  return p.length === 6 && p[5].startsWith('key/mrk-');
}

export function arnInRegion(arn, region) {
  const p = arn.split(':');
  p[3] = region;
  return p.join(':');
}

// The Decrypt KeyId the MPL uses for a stored kms-arn under a KMS configuration (reference §7).
export function decryptKeyId(kind, storedArn) {
  switch (kind.type) {
    case 'kms_key_arn':
    case 'kms_mr_key_arn':
      return kind.arn;
    case 'discovery':
      return storedArn;
    case 'mr_discovery':
      return isMrkArn(storedArn) ? arnInRegion(storedArn, kind.region) : storedArn;
    default:
      throw new Error(`unknown kind ${kind.type}`);
  }
}

// Decrypts an item's enc with @aws-sdk/client-kms the way the MPL does; base64 plaintext.
export async function rawDecrypt({ kmsEndpoint, kind, item, logicalName }) {
  const stored = item['kms-arn'].S;
  const keyId = decryptKeyId(kind, stored);
  const region = keyId.split(':')[3];
  const r = await kmsClient(kmsEndpoint, region).send(new DecryptCommand({
    KeyId: keyId,
    CiphertextBlob: item.enc.B,
    EncryptionContext: mplEncryptionContext(item, logicalName),
  }));
  return Buffer.from(r.Plaintext).toString('base64');
}

// {name: type} of an item, e.g. {"branch-key-id": "S", enc: "B", "hierarchy-version": "N"}.
export function attrTypes(item) {
  const out = {};
  for (const [k, v] of Object.entries(item)) out[k] = Object.keys(v).join('+');
  return out;
}

// The MPL's attribute set for an item of `type` with custom EC keys ecKeys (reference §2).
export function expectedAttrTypes(type, ecKeys) {
  const out = {
    'branch-key-id': 'S', type: 'S', enc: 'B', 'kms-arn': 'S', 'create-time': 'S', 'hierarchy-version': 'N',
  };
  if (type === 'branch:ACTIVE') out.version = 'S';
  for (const k of ecKeys) out[EC_PREFIX + k] = 'S';
  return out;
}

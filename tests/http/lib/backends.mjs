// backends.mjs - the two backend pairs the HTTP suite runs against (run.mjs --backend):
//   sqlite:   local KMS relationships (key files) + SQLite key stores;
//   dynamodb: AWS KMS relationships pointing at the KMS test peer (tests/peers/kms-server.mjs,
//             SigV4 checked) + DynamoDB key stores in DynamoDB Local (tests/peers/dynamodb-local.mjs).
// The relationship and key store NAMES are the same on both (local, local2; default, other), so
// the declarative cases run unchanged; what differs (table ARN, key store name, storage kind, KMS
// key ARN shape) reaches them as variables (caseVars).
//
// A backend: {name, start(), stop(), makeSetup(tag, extra), caseVars(setup), store(setup, ks)}.
// store() gives the stored items of one key store behind the server's back, as DynamoDB
// AttributeValue JSON with binary values as base64 strings:
//   countVersionItems(id), getItem(id, type), setAttribute(id, type, name, value), deleteItem(id, type)
// All of them are async.

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { adminClient, spawnPeer } from '../../peers/spawn.mjs';
import { makeSuiteSetup, newTokens, tempDir, configText } from './server.mjs';
import { countVersionItems, getItem, putItemJson, sqlite, sqlQuote } from './sqlite.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '..', '..', '..');

export const BACKENDS = ['sqlite', 'dynamodb'];

export function escapeRegex(s) {
  return String(s).replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

const UUID_RE_TEXT = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}';

// ---- sqlite + local KMS -----------------------------------------------------------------------

export class SqliteBackend {
  constructor() {
    this.name = 'sqlite';
  }

  async start() {}

  async stop() {}

  makeSetup(tag, extra) {
    return { ...makeSuiteSetup(tag, extra), backend: this };
  }

  caseVars(setup) {
    const db = (ks) => path.join(setup.dir, ks === 'other' ? 'other.db' : 'ks.db');
    return {
      dir: setup.dir,
      storageKind: 'sqlite',
      keyStoreNameDefault: db('default'),
      keyStoreNameOther: db('other'),
      tableArnDefaultRe: `^${escapeRegex(`sqlite:${db('default')}`)}$`,
      tableArnOtherRe: `^${escapeRegex(`sqlite:${db('other')}`)}$`,
      kmsArnRe: `^arn:aws:kms:local:000000000000:key/${UUID_RE_TEXT}$`,
    };
  }

  store(setup, ks = 'default') {
    const db = path.join(setup.dir, ks === 'other' ? 'other.db' : 'ks.db');
    return {
      describe: `SQLite ${db}`,
      countVersionItems: async (id) => countVersionItems(db, id),
      getItem: async (id, type) => getItem(db, id, type),
      setAttribute: async (id, type, name, value) => {
        const item = getItem(db, id, type);
        if (!item) throw new Error(`no item ${id} ${type} in ${db}`);
        item[name] = value;
        putItemJson(db, id, type, item);
      },
      deleteItem: async (id, type) => {
        sqlite(db, `DELETE FROM items WHERE branch_key_id = ${sqlQuote(id)} AND type = ${sqlQuote(type)};`);
      },
    };
  }
}

// ---- the KMS test peer ------------------------------------------------------------------------

export const PEER_REGION = 'us-west-2';
export const PEER_CREDENTIALS = { accessKeyId: 'AKIDKEYSTOREDHTTP', secretAccessKey: 'keystored-http-suite-secret' };

/*
 * Starts tests/peers/kms-server.mjs on a free loopback port. Resolves {endpoint, port, pid,
 * admin(method, path, body?) -> parsed JSON, output(), stop()}.
 */
export async function startKmsPeer({ timeoutMs = 30000 } = {}) {
  const script = path.join(repoRoot, 'tests', 'peers', 'kms-server.mjs');
  const p = await spawnPeer(script, ['--port', '0',
    '--access-key-id', PEER_CREDENTIALS.accessKeyId, '--secret-access-key', PEER_CREDENTIALS.secretAccessKey,
    '--region', PEER_REGION], { name: 'kms peer', timeoutMs, listening: /kms-server listening on 127\.0\.0\.1:(\d+)/ });
  const port = Number(p.match[1]);
  const endpoint = `http://127.0.0.1:${port}`;
  return {
    endpoint, port, pid: p.pid, admin: adminClient(endpoint, 'kms peer'), output: p.output,
    stop: () => p.stop('SIGKILL'),
  };
}

// ---- AWS KMS (peer) + DynamoDB Local ----------------------------------------------------------

let tableCounter = 0;

export class DynamoDBBackend {
  constructor() {
    this.name = 'dynamodb';
    this.kms = null; // the peer
    this.ddb = null; // DynamoDB Local
    this.client = null; // @aws-sdk/client-dynamodb, pointed at DynamoDB Local
    this.sdk = null;
    this.keyArns = {}; // relationship name -> key ARN
  }

  async start() {
    const { startDynamoDBLocal } = await import('../../peers/dynamodb-local.mjs');
    const [kms, ddb] = await Promise.all([
      startKmsPeer(),
      startDynamoDBLocal({ timeoutMs: 120000, log: { write: (s) => process.stdout.write(`     ${s}`) } }),
    ]);
    this.kms = kms;
    this.ddb = ddb;
    // One strict key per relationship the cases name.
    for (const rel of ['local', 'local2']) this.keyArns[rel] = (await kms.admin('POST', '/__admin/keys', { region: PEER_REGION })).arn;
    // The SDK warns (stderr) that later releases need Node 22: noise in the suite's output.
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
    this.sdk = await import('@aws-sdk/client-dynamodb');
    this.client = new this.sdk.DynamoDBClient({
      region: PEER_REGION, endpoint: ddb.endpoint, credentials: PEER_CREDENTIALS, maxAttempts: 3,
    });
  }

  async stop() {
    if (this.client) this.client.destroy();
    const r = await Promise.allSettled([this.kms && this.kms.stop(), this.ddb && this.ddb.stop()]);
    this.kms = this.ddb = this.client = null;
    return r;
  }

  credentialsYaml(indent) {
    const p = ' '.repeat(indent);
    return `${p}credentials:\n${p}  source: static\n${p}  access_key_id: ${PEER_CREDENTIALS.accessKeyId}\n` +
      `${p}  secret_access_key: ${PEER_CREDENTIALS.secretAccessKey}\n`;
  }

  relationshipsYaml() {
    return Object.entries(this.keyArns).map(([name, arn]) =>
      `  - name: ${name}\n    type: aws\n    region: ${PEER_REGION}\n    endpoint: ${this.kms.endpoint}\n` +
      this.credentialsYaml(4) + `    kms_configuration:\n      kms_key_arn: "${arn}"\n`).join('');
  }

  storeYaml(table) {
    return `    storage:\n      type: dynamodb\n      table: ${table}\n      region: ${PEER_REGION}\n` +
      `      endpoint: ${this.ddb.endpoint}\n` + this.credentialsYaml(6);
  }

  // Fresh tables per setup (DynamoDB Local is shared by every server of the run).
  makeSetup(tag, extra) {
    const dir = tempDir(`ddb-${tag}`);
    const tokens = newTokens();
    tableCounter++;
    const base = `ks-${tag}-${process.pid}-${tableCounter}`;
    const tables = { default: `${base}-default`, other: `${base}-other` };
    const stores =
      `  - name: default\n    logical_key_store_name: default\n    kms_relationship: local\n${this.storeYaml(tables.default)}` +
      `  - name: other\n    logical_key_store_name: other-logical\n    kms_relationship: local\n${this.storeYaml(tables.other)}`;
    const configPath = path.join(dir, 'keystored.yaml');
    fs.writeFileSync(configPath, configText(tokens, extra, this.relationshipsYaml(), stores), { mode: 0o600 });
    return { dir, configPath, tokens, tables, backend: this };
  }

  caseVars(setup) {
    const arn = (t) => `^arn:aws:dynamodb:[a-z0-9-]+:[0-9]{12}:table/${escapeRegex(t)}$`;
    return {
      dir: setup.dir,
      storageKind: 'dynamodb',
      keyStoreNameDefault: setup.tables.default,
      keyStoreNameOther: setup.tables.other,
      tableArnDefaultRe: arn(setup.tables.default),
      tableArnOtherRe: arn(setup.tables.other),
      kmsArnRe: `^arn:aws:kms:${PEER_REGION}:111122223333:key/${UUID_RE_TEXT}$`,
    };
  }

  // Binary values: SDK Uint8Array <-> base64 text (as SQLite stores them).
  static toJson(av) {
    if (av.B !== undefined) return { B: Buffer.from(av.B).toString('base64') };
    if (av.M !== undefined) return { M: Object.fromEntries(Object.entries(av.M).map(([k, v]) => [k, DynamoDBBackend.toJson(v)])) };
    const k = Object.keys(av).find((x) => av[x] !== undefined);
    return { [k]: av[k] };
  }

  static fromJson(av) {
    if (av.B !== undefined) return { B: Buffer.from(av.B, 'base64') };
    if (av.M !== undefined) return { M: Object.fromEntries(Object.entries(av.M).map(([k, v]) => [k, DynamoDBBackend.fromJson(v)])) };
    return av;
  }

  store(setup, ks = 'default') {
    const table = setup.tables[ks];
    const { QueryCommand, GetItemCommand, UpdateItemCommand, DeleteItemCommand } = this.sdk;
    const client = this.client;
    const key = (id, type) => ({ 'branch-key-id': { S: id }, type: { S: type } });
    return {
      describe: `DynamoDB table ${table}`,
      countVersionItems: async (id) => {
        let n = 0;
        let start;
        do {
          const r = await client.send(new QueryCommand({
            TableName: table, ConsistentRead: true, Select: 'COUNT', ExclusiveStartKey: start,
            KeyConditionExpression: '#id = :id AND begins_with(#t, :p)',
            ExpressionAttributeNames: { '#id': 'branch-key-id', '#t': 'type' },
            ExpressionAttributeValues: { ':id': { S: id }, ':p': { S: 'branch:version:' } },
          }));
          n += r.Count;
          start = r.LastEvaluatedKey;
        } while (start);
        return n;
      },
      getItem: async (id, type) => {
        const r = await client.send(new GetItemCommand({ TableName: table, Key: key(id, type), ConsistentRead: true }));
        return r.Item ? Object.fromEntries(Object.entries(r.Item).map(([k, v]) => [k, DynamoDBBackend.toJson(v)])) : null;
      },
      setAttribute: async (id, type, name, value) => {
        await client.send(new UpdateItemCommand({
          TableName: table, Key: key(id, type),
          UpdateExpression: 'SET #a = :v',
          ConditionExpression: 'attribute_exists(#id)',
          ExpressionAttributeNames: { '#a': name, '#id': 'branch-key-id' },
          ExpressionAttributeValues: { ':v': DynamoDBBackend.fromJson(value) },
        }));
      },
      deleteItem: async (id, type) => {
        await client.send(new DeleteItemCommand({ TableName: table, Key: key(id, type) }));
      },
    };
  }
}

export function makeBackend(name) {
  if (name === 'sqlite') return new SqliteBackend();
  if (name === 'dynamodb') return new DynamoDBBackend();
  throw new Error(`unknown backend ${name} (sqlite | dynamodb | all)`);
}

// The TCP sockets listening on port (from /proc/net/tcp and tcp6): [{family, address}] with the
// address as text ("127.0.0.1", "0.0.0.0", "::", ...).
export function listeningAddresses(port) {
  const found = [];
  for (const [file, family] of [['/proc/net/tcp', 4], ['/proc/net/tcp6', 6]]) {
    let text;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 4 || f[3] !== '0A') continue; // TCP_LISTEN
      const [addrHex, portHex] = f[1].split(':');
      if (parseInt(portHex, 16) !== port) continue;
      found.push({ family, address: hexAddress(addrHex, family) });
    }
  }
  return found;
}

function hexAddress(hex, family) {
  if (family === 4) return Buffer.from(hex, 'hex').reverse().join('.');
  // IPv6: four 32-bit words, each in host (little-endian) order.
  const b = Buffer.alloc(16);
  for (let i = 0; i < 4; i++) Buffer.from(hex.slice(i * 8, i * 8 + 8), 'hex').reverse().copy(b, i * 4);
  const words = [];
  for (let i = 0; i < 16; i += 2) words.push(b.readUInt16BE(i).toString(16));
  const text = words.join(':');
  if (/^0:0:0:0:0:ffff:/.test(text)) return `::ffff:${b.subarray(12).join('.')}`;
  if (text === '0:0:0:0:0:0:0:0') return '::';
  if (text === '0:0:0:0:0:0:0:1') return '::1';
  return text;
}

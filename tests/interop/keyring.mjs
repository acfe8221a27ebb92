#!/usr/bin/env node
// keyring.mjs - keyring as a service (issue 13) against AWS's own code, over one DynamoDB Local
// table and the KMS test peer:
//
//   node tests/interop/keyring.mjs        (KEYSTORED=path overrides ./build/keystored; make interop)
//
// 1. EDK interop with @aws-crypto/kms-keyring-node's KmsHierarchicalKeyRingNode (utf8Sorting:
//    true) over AWS's BranchKeyStoreNode for the same table, logical name and KMS key:
//    direction (keystored wraps / AWS unwraps, AWS wraps / keystored unwraps) x suite (32-, 24-,
//    16-byte data keys) x context (empty, non-ASCII, one whose byte order differs from locale
//    order). Plus the JS default (utf8Sorting false, locale order): its EDKs for such a context
//    do not open in keystored, and keystored's do not open in it (docs/reference/
//    hierarchical-keyring.md section 4).
// 2. End to end with the AWS Encryption SDK (@aws-crypto/client-node 5.x): messages encrypted
//    through examples/keystored-keyring.mjs decrypt with AWS's KmsHierarchicalKeyRingNode, and
//    the reverse, with the default suite 0x0578 (its context carries aws-crypto-public-key) and
//    with 0x0478; a message with two EDKs (a raw AES keyring's first) also decrypts.
// 3. A context value holding U+0000, both directions (keystored allows it in values, refuses it
//    in keys).
// The matrix is printed; exits 1 on any failure.

import path from 'node:path';
import fs from 'node:fs';
import { randomBytes } from 'node:crypto';
import {
  AlgorithmSuiteIdentifier, BranchKeyStoreNode, CommitmentPolicy, EncryptedDataKey,
  KmsHierarchicalKeyRingNode, MultiKeyringNode, NodeAlgorithmSuite, NodeDecryptionMaterial,
  NodeEncryptionMaterial, RawAesKeyringNode, RawAesWrappingSuiteIdentifier, buildClient,
} from '@aws-crypto/client-node';
import { REPO, KMS_CREDS, DDB_CREDS, startKmsPeer, kmsAdmin } from './lib/peers.mjs';
import { kmsClient, ddbClient } from './lib/aws.mjs';
import { Matrix } from './lib/matrix.mjs';
import { startDynamoDBLocal } from '../peers/dynamodb-local.mjs';
import { Harness, assert, assertEq } from '../http/lib/harness.mjs';
import { KeystoredKeyringNode } from '../../examples/keystored-keyring.mjs';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
if (!process.env.KEYSTORED) process.env.KEYSTORED = path.join(REPO, 'build', 'keystored');
const { startServer, sha256Hex, newToken, tempDir, tempDirs, sanitizerFindings, allProcessOutputs } =
  await import('../http/lib/server.mjs');
const { makeApi } = await import('../http/lib/http.mjs');

const T0 = Date.now();
const DEADLINE_MS = Number(process.env.KS_INTEROP_DEADLINE_S || 240) * 1000;
const h = new Harness();
const LOGICAL = 'keyring-interop';
const TABLE = 'KeyringInterop';
const KS = 'kr';
const REGION = 'us-west-2';

const SUITES = [
  { key: '32', id: AlgorithmSuiteIdentifier.ALG_AES256_GCM_IV12_TAG16_HKDF_SHA512_COMMIT_KEY, text: '0x0478', n: 32 },
  { key: '24', id: AlgorithmSuiteIdentifier.ALG_AES192_GCM_IV12_TAG16_HKDF_SHA256, text: '0x0146', n: 24 },
  { key: '16', id: AlgorithmSuiteIdentifier.ALG_AES128_GCM_IV12_TAG16_HKDF_SHA256, text: '0x0114', n: 16 },
];
const CONTEXTS = [
  { key: 'empty', label: 'empty', ec: {} },
  { key: 'utf8', label: 'non-ASCII', ec: { 'é': 'ü', '日本': '語', 'tenant': 'ｱｸﾒ', '😀': 'x' } },
  { key: 'locale', label: 'locale order differs', ec: { a: '1', B: '2', a_b: '3', 'a-b': '4', Purpose: 'e2e' } },
];
const rows = [];
for (const dir of ['ks', 'aws'])
  for (const s of SUITES)
    rows.push({ key: `${dir}/${s.key}`, label: `${dir === 'ks' ? 'keystored wraps, AWS unwraps' : 'AWS wraps, keystored unwraps'}, ${s.n}-byte suite ${s.text}` });
const matrix = new Matrix('keyring', rows, CONTEXTS.map((c) => ({ key: c.key, label: `context: ${c.label}` })));
const e2eRows = [
  { key: 'ks-aws', label: 'encrypt via keystored keyring, decrypt with AWS KmsHierarchicalKeyRingNode' },
  { key: 'aws-ks', label: 'encrypt with AWS KmsHierarchicalKeyRingNode, decrypt via keystored keyring' },
  { key: 'two', label: 'two EDKs (raw AES + keystored), decrypt with each side' },
];
const e2e = new Matrix('esdk', e2eRows, [
  { key: '0578', label: '0x0578 (default, signed)' }, { key: '0478', label: '0x0478' },
]);

let kms;
let ddb;
let srv;
const cleanup = async () => {
  await Promise.allSettled([srv?.stop(), kms?.stop(), ddb?.stop()]);
};
const deadline = setTimeout(async () => {
  console.log(`FAIL keyring interop: still running after ${DEADLINE_MS / 1000} s; stopping`);
  await cleanup();
  process.exit(1);
}, DEADLINE_MS);
deadline.unref();

async function setup() {
  [kms, ddb] = await Promise.all([startKmsPeer(), startDynamoDBLocal({ log: { write() {} } })]);
  const arn = (await kmsAdmin(kms.endpoint, 'POST', 'keys', { region: REGION })).arn;
  const dir = tempDir('keyring-interop');
  const admin = newToken('admin');
  const keyring = newToken('keyring');
  const creds = (c) => `{source: static, access_key_id: "${c.accessKeyId}", secret_access_key: "${c.secretAccessKey}"}`;
  const config = `# generated by tests/interop/keyring.mjs
listen: 127.0.0.1:0
kms_relationships:
  - name: strict
    type: aws
    region: ${REGION}
    endpoint: ${kms.endpoint}
    credentials: ${creds(KMS_CREDS)}
    kms_configuration: {kms_key_arn: "${arn}"}
key_stores:
  - name: ${KS}
    logical_key_store_name: ${LOGICAL}
    kms_relationship: strict
    storage: {type: dynamodb, table: ${TABLE}, region: ${REGION}, endpoint: ${ddb.endpoint}, credentials: ${creds(DDB_CREDS)}}
tenants:
  - name: admin
    token_sha256: "${sha256Hex(admin)}"
    role: admin
    key_stores: [${KS}]
    kms_relationships: [strict]
  - name: keyring
    token_sha256: "${sha256Hex(keyring)}"
    role: keyring
    key_stores: [${KS}]
    kms_relationships: [strict]
`;
  const configPath = path.join(dir, 'keystored.yaml');
  fs.writeFileSync(configPath, config, { mode: 0o600 });
  srv = await startServer(['--config', configPath], 'keyring-interop');
  const api = makeApi(srv.base);
  const call = (method, p, body, token = keyring) => api(method, `/v1/keystores/${KS}${p}`, { token, body });
  const put = await call('PUT', '', undefined, admin);
  assertEq(put.status, 200, `CreateKeyStore (${put.text})`);
  const created = await call('POST', '/branch-keys', { encryptionContext: { department: 'interop' } }, admin);
  assertEq(created.status, 201, `CreateKey (${created.text})`);
  const keyStore = new BranchKeyStoreNode({
    logicalKeyStoreName: LOGICAL,
    storage: { ddbTableName: TABLE, ddbClient: ddbClient(ddb.endpoint) },
    keyManagement: { kmsClient: kmsClient(kms.endpoint, REGION) },
    kmsConfiguration: { identifier: arn },
  });
  const id = created.json.branchKeyIdentifier;
  const awsKeyring = (utf8Sorting = true) => new KmsHierarchicalKeyRingNode({
    branchKeyId: id, keyStore, cacheLimitTtl: 60, utf8Sorting,
  });
  const ksKeyring = new KeystoredKeyringNode({ endpoint: srv.base, keyStore: KS, token: keyring, branchKeyIdentifier: id });
  return { call, id, awsKeyring, ksKeyring };
}

// The SDK's materials may hold the data key as a Node.js KeyObject.
const b64 = (k) => Buffer.from(k instanceof Uint8Array ? k : k.export()).toString('base64');

// keystored wraps over HTTP; AWS's keyring opens the EDK.
// unwrapEc (default ec) is the context AWS's keyring is given to open the EDK.
async function ksToAws(env, suite, ec, utf8Sorting = true, unwrapEc = ec) {
  const w = await env.call('POST', '/keyring/wrap', { branchKeyIdentifier: env.id, encryptionContext: ec, algorithmSuiteId: suite.text });
  assertEq(w.status, 200, `wrap (${w.text.slice(0, 200)})`);
  assertEq(Buffer.from(w.json.encryptedDataKey.ciphertext, 'base64').length, 60 + suite.n, 'EDK length');
  const edk = new EncryptedDataKey({
    providerId: w.json.encryptedDataKey.providerId,
    providerInfo: Buffer.from(w.json.encryptedDataKey.providerInfo, 'base64').toString('utf8'),
    encryptedDataKey: new Uint8Array(Buffer.from(w.json.encryptedDataKey.ciphertext, 'base64')),
  });
  const m = new NodeDecryptionMaterial(new NodeAlgorithmSuite(suite.id), unwrapEc);
  await env.awsKeyring(utf8Sorting).onDecrypt(m, [edk]);
  assert(m.hasUnencryptedDataKey, 'AWS keyring set no data key');
  assertEq(b64(m.getUnencryptedDataKey()), w.json.dataKey, 'data key');
}

// AWS's keyring wraps; keystored unwraps over HTTP (with unwrapEc, default ec). Returns
// keystored's response.
async function awsToKs(env, suite, ec, utf8Sorting = true, unwrapEc = ec) {
  const m = new NodeEncryptionMaterial(new NodeAlgorithmSuite(suite.id), ec);
  await env.awsKeyring(utf8Sorting).onEncrypt(m);
  const [edk] = m.encryptedDataKeys;
  assertEq(edk.providerId, 'aws-kms-hierarchy', 'provider id');
  const dataKey = b64(m.getUnencryptedDataKey());
  const u = await env.call('POST', '/keyring/unwrap', {
    encryptedDataKeys: [{ providerId: edk.providerId, providerInfo: b64(Buffer.from(edk.providerInfo, 'utf8')), ciphertext: b64(edk.encryptedDataKey) }],
    encryptionContext: unwrapEc, algorithmSuiteId: suite.text,
  });
  return { u, dataKey };
}

async function edkInterop(env) {
  h.section('EDK interop: direction x suite x context (KmsHierarchicalKeyRingNode, utf8Sorting: true)');
  for (const s of SUITES) {
    for (const c of CONTEXTS) {
      matrix.record(`ks/${s.key}`, c.key, await h.test(`keystored wraps, AWS unwraps: ${s.text}, context ${c.label}`,
        () => ksToAws(env, s, c.ec)));
      matrix.record(`aws/${s.key}`, c.key, await h.test(`AWS wraps, keystored unwraps: ${s.text}, context ${c.label}`, async () => {
        const { u, dataKey } = await awsToKs(env, s, c.ec);
        assertEq(u.status, 200, `unwrap (${u.text.slice(0, 300)})`);
        assertEq(u.json.dataKey, dataKey, 'data key');
        assertEq(u.json.branchKeyIdentifier, env.id, 'id');
      }));
    }
  }
  h.section('the JS default (utf8Sorting false, locale order) is not compatible for such contexts');
  const locale = CONTEXTS[2].ec;
  await h.test('AWS keyring with locale sorting wraps; keystored refuses: 400 UnableToDecryptException (authentication failed)', async () => {
    const { u } = await awsToKs(env, SUITES[0], locale, false);
    assertEq(u.status, 400, 'status');
    assertEq(u.json.error.type, 'UnableToDecryptException', 'type');
    assert(u.json.error.message.includes('authentication failed'), u.json.error.message);
  });
  await h.test('keystored wraps; AWS keyring with locale sorting cannot open it', async () => {
    let opened = false;
    try {
      await ksToAws(env, SUITES[0], locale, false);
      opened = true;
    } catch {
      /* expected */
    }
    assert(!opened, 'a locale-sorting AWS keyring opened a byte-order EDK');
  });
  await h.test('locale sorting agrees where locale and byte order agree (empty and lower-case-only contexts)', async () => {
    await ksToAws(env, SUITES[0], { alpha: '1', beta: '2' }, false);
    const { u, dataKey } = await awsToKs(env, SUITES[0], {}, false);
    assertEq(u.status, 200, 'unwrap');
    assertEq(u.json.dataKey, dataKey, 'data key');
  });
}

// A context VALUE holding U+0000: the ESDK allows any character in values and keystored takes
// them with their lengths on the keyring routes (keys holding U+0000 stay refused, json-c keeps
// member names as C strings: docs/reference/hierarchical-keyring.md section 4).
async function nulValueInterop(env) {
  h.section('EDK interop: a context value holding U+0000 (utf8Sorting: true)');
  const ec = { k: 'a\u0000b', tenant: 'acme', z: '\u0000' };
  const cut = { k: 'a', tenant: 'acme', z: '' }; // what a C-string context would keep
  await h.test('keystored wraps with U+0000 in values; AWS keyring opens it', () => ksToAws(env, SUITES[0], ec));
  await h.test('keystored wraps with U+0000 in values; AWS keyring given the values cut at the NUL cannot open it', async () => {
    let opened = false;
    try {
      await ksToAws(env, SUITES[0], ec, true, cut);
      opened = true;
    } catch {
      /* expected */
    }
    assert(!opened, 'the EDK opened under another context');
  });
  await h.test('AWS keyring wraps with U+0000 in values; keystored opens it, and not with the values cut at the NUL', async () => {
    const { u, dataKey } = await awsToKs(env, SUITES[0], ec);
    assertEq(u.status, 200, `unwrap (${u.text.slice(0, 300)})`);
    assertEq(u.json.dataKey, dataKey, 'data key');
    const { u: bad } = await awsToKs(env, SUITES[0], ec, true, cut);
    assertEq(bad.status, 400, 'status with the cut context');
    assertEq(bad.json.error.type, 'UnableToDecryptException', 'type');
  });
  await h.test('a context KEY holding U+0000 -> 400 from keystored (a keystored limit)', async () => {
    const w = await env.call('POST', '/keyring/wrap', { branchKeyIdentifier: env.id, encryptionContext: { 'a\u0000': '1' } });
    assertEq(w.status, 400, `wrap (${w.text.slice(0, 200)})`);
    assert(w.json.error.message.includes('NUL'), w.json.error.message);
  });
}

async function endToEnd(env) {
  h.section('end to end: AWS Encryption SDK (@aws-crypto/client-node) with examples/keystored-keyring.mjs');
  const { encrypt, decrypt } = buildClient(CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT);
  const ec = { tenant: 'acme', 'é': 'ü', B: '2', a: '1' };
  const suites = {
    '0578': undefined, // the SDK default under REQUIRE_ENCRYPT_REQUIRE_DECRYPT
    '0478': AlgorithmSuiteIdentifier.ALG_AES256_GCM_IV12_TAG16_HKDF_SHA512_COMMIT_KEY,
  };
  const rawAes = new RawAesKeyringNode({
    keyName: 'raw-key', keyNamespace: 'interop', unencryptedMasterKey: new Uint8Array(randomBytes(32)),
    wrappingSuite: RawAesWrappingSuiteIdentifier.AES256_GCM_IV12_TAG16_NO_PADDING,
  });
  for (const [col, suiteId] of Object.entries(suites)) {
    const opts = suiteId ? { encryptionContext: ec, suiteId } : { encryptionContext: ec };
    const plaintext = randomBytes(1000);
    e2e.record('ks-aws', col, await h.test(`0x${col}: encrypt via keystored, decrypt with AWS's keyring`, async () => {
      const { result, messageHeader } = await encrypt(env.ksKeyring, plaintext, opts);
      assertEq(messageHeader.suiteId, suiteId || 0x0578, 'suite');
      if (!suiteId) assert('aws-crypto-public-key' in messageHeader.encryptionContext, 'signed suite context');
      const d = await decrypt(env.awsKeyring(), result);
      assert(Buffer.from(d.plaintext).equals(plaintext), 'plaintext');
      // And keystored opens its own message.
      const d2 = await decrypt(env.ksKeyring, result);
      assert(Buffer.from(d2.plaintext).equals(plaintext), 'plaintext (keystored)');
    }));
    e2e.record('aws-ks', col, await h.test(`0x${col}: encrypt with AWS's keyring, decrypt via keystored`, async () => {
      const { result } = await encrypt(env.awsKeyring(), plaintext, opts);
      const d = await decrypt(env.ksKeyring, result);
      assert(Buffer.from(d.plaintext).equals(plaintext), 'plaintext');
      assertEq(d.messageHeader.encryptionContext.tenant, 'acme', 'context');
    }));
    e2e.record('two', col, await h.test(`0x${col}: a message with a raw AES EDK first, then keystored's: both sides decrypt it`, async () => {
      const multi = new MultiKeyringNode({ generator: rawAes, children: [env.ksKeyring] });
      const { result, messageHeader } = await encrypt(multi, plaintext, opts);
      assertEq(messageHeader.encryptedDataKeys.length, 2, 'EDKs');
      assertEq(messageHeader.encryptedDataKeys[1].providerId, 'aws-kms-hierarchy', 'second EDK');
      for (const k of [env.awsKeyring(), env.ksKeyring, rawAes]) {
        const d = await decrypt(k, result);
        assert(Buffer.from(d.plaintext).equals(plaintext), 'plaintext');
      }
    }));
  }
  await h.test('a keystored keyring whose token is refused fails the decrypt with keystored\'s 401', async () => {
    const { result } = await encrypt(env.awsKeyring(), 'x', { encryptionContext: { a: '1' } });
    let err;
    try {
      const bad = new KeystoredKeyringNode({ endpoint: srv.base, keyStore: KS, token: 'not-a-token', branchKeyIdentifier: env.id });
      await decrypt(bad, result);
    } catch (e) {
      err = e;
    }
    assert(err && /401|Unauthorized/.test(String(err.message)), `expected a 401 from keystored, got ${err && err.message}`);
  });
}

let aborted = false;
try {
  h.section('peers, keystored, a branch key made by keystored');
  let env;
  await h.test('start the KMS peer, DynamoDB Local and keystored; CreateKeyStore and CreateKey over HTTP', async () => {
    env = await setup();
  });
  if (env) {
    await edkInterop(env);
    await nulValueInterop(env);
    await endToEnd(env);
  } else {
    aborted = true;
  }
} catch (e) {
  aborted = true;
  h.fail('keyring interop', `aborted: ${e && e.stack ? e.stack : e}`);
}
const stopped = srv ? await srv.stop().catch((e) => ({ error: e.message })) : null;
await cleanup();
if (stopped) await h.test('keystored stops cleanly on SIGTERM (exit 0)', async () => assertEq(stopped.code, 0, 'exit'));
await h.test('no keystored process printed a sanitizer report', async () => {
  for (const { label, out } of allProcessOutputs) {
    const f = sanitizerFindings(out.text);
    if (f.length) throw new Error(`${label}: ${f.join(', ')}`);
  }
});
console.log(`\n## EDK interop\n\n${matrix.render()}\n\n## AWS Encryption SDK end to end\n\n${e2e.render()}\n`);
console.log(`runtime ${((Date.now() - T0) / 1000).toFixed(1)} s`);
if (h.failed === 0 && !aborted) for (const d of tempDirs) fs.rmSync(d, { recursive: true, force: true });
clearTimeout(deadline);
console.log(`${h.passed} passed, ${h.failed} failed`);
process.exit(h.failed ? 1 : 0);

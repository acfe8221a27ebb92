// hv2.mjs - hierarchy version 2 over HTTP on one backend (issue 11 items 1-3, 7, 8;
// docs/reference/hv2.md). HV-1 and HV-2 keys side by side: created, versioned and read; then the
// tamper matrix of item 8 on stopped-server edits (as tamper.mjs), each row with its status and
// the number of KMS Decrypt calls keystored made for it (/metrics), so "none" rows are proven.
//   custom context value      -> 502 KeyManagementException (InvalidCiphertextException), 1 call
//   create-time               -> 502 BranchKeyCiphertextException (digest), 1 call
//   other logical name        -> 502 BranchKeyCiphertextException (digest), 1 call
//   added un-modeled attribute -> 502 BranchKeyCiphertextException, 0 calls
//   kms-arn (another key)     -> 400 KeyStoreException, 0 calls
//   enc of a 32-byte plaintext -> 502 BranchKeyCiphertextException (not 80 bytes), 1 call

import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

import { assert, assertEq } from './lib/harness.mjs';
import { makeApi, parseMetrics } from './lib/http.mjs';
import { startServer } from './lib/server.mjs';
import { PEER_CREDENTIALS, PEER_REGION } from './lib/backends.mjs';

const KS = '/v1/keystores/default';
const EC = { department: 'x' };

// The canonical encryption context serialization (docs/architecture.md section 5).
function serializeEc(ec) {
  const keys = Object.keys(ec).map((k) => Buffer.from(k)).sort(Buffer.compare);
  if (keys.length === 0) return Buffer.alloc(0);
  const parts = [Buffer.from([keys.length >> 8, keys.length & 255])];
  for (const k of keys) {
    const v = Buffer.from(ec[k.toString()]);
    parts.push(Buffer.from([k.length >> 8, k.length & 255]), k, Buffer.from([v.length >> 8, v.length & 255]), v);
  }
  return Buffer.concat(parts);
}

// A KMS ciphertext of 32 bytes under the relationship's key and ec: the local KMS's blob format
// (kms/local_kms.c) from its key file, or Encrypt on the KMS peer.
async function encrypt32(backend, setup, ec) {
  const plain = crypto.randomBytes(32);
  if (backend.name === 'sqlite') {
    const line = fs.readFileSync(path.join(setup.dir, 'kms.keys'), 'utf8').split('\n')[1];
    const [uuid, b64] = line.split(' ');
    const header = Buffer.concat([Buffer.from([1]), Buffer.from(uuid.replace(/-/g, ''), 'hex')]);
    const iv = crypto.randomBytes(12);
    const c = crypto.createCipheriv('aes-256-gcm', Buffer.from(b64, 'base64'), iv);
    c.setAAD(Buffer.concat([header, serializeEc(ec)]));
    const body = Buffer.concat([c.update(plain), c.final()]);
    return Buffer.concat([header, iv, body, c.getAuthTag()]);
  }
  const { KMSClient, EncryptCommand } = await import('@aws-sdk/client-kms');
  const kms = new KMSClient({ region: PEER_REGION, endpoint: backend.kms.endpoint, credentials: PEER_CREDENTIALS });
  const r = await kms.send(new EncryptCommand({ KeyId: backend.keyArns.local, Plaintext: plain, EncryptionContext: ec }));
  kms.destroy();
  return Buffer.from(r.CiphertextBlob);
}


function checkRefusal(r, status, type, pattern, secrets) {
  assertEq(r.status, status, `status (body ${r.text.slice(0, 300)})`);
  assertEq(r.json && r.json.error && r.json.error.type, type, 'error.type');
  assert(pattern.test(r.json.error.message), `error.message ${r.json.error.message} should match ${pattern}`);
  for (const s of secrets) assert(!r.text.includes(s), 'the refusal contains key material');
  assert(!/branchKey"|beaconKey"/.test(r.text), 'the refusal has key fields');
}

export async function runHv2(h, backend) {
  const setup = backend.makeSetup('hv2');
  const store = backend.store(setup);
  const T = { token: setup.tokens.admin };
  const keys = {}; // id -> {hv, active, version, beacon}
  const rows = ['hv2-ec', 'hv2-time', 'hv2-name', 'hv2-extra', 'hv2-arn', 'hv2-enc'];
  let srv, api;
  const decrypts = async () => {
    const r = await api('GET', '/metrics', T);
    return parseMetrics(r.text).get('keystored_kms_requests_total{relationship="local",operation="Decrypt"}');
  };
  const kmsCalls = async (op) => parseMetrics((await api('GET', '/metrics', T)).text)
    .get(`keystored_kms_requests_total{relationship="local",operation="${op}"}`);

  const ready = await h.test('hv2: HV-1 and HV-2 keys side by side: create, version, read everything', async () => {
    srv = await startServer(['--config', setup.configPath], `hv2-1 (${backend.name})`);
    api = makeApi(srv.base);
    assertEq((await api('PUT', KS, T)).status, 200, 'create the key store');
    const gdk0 = await kmsCalls('GenerateDataKey');
    const enc0 = await kmsCalls('Encrypt');
    for (const [id, hv] of [['mixed-1', '1'], ['mixed-2', '2'], ...rows.map((r) => [r, '2'])]) {
      const c = await api('POST', `${KS}/branch-keys`, { ...T, body: { branchKeyIdentifier: id, encryptionContext: EC, hierarchyVersion: hv } });
      assertEq(c.status, 201, `create ${id} (${c.text.slice(0, 200)})`);
      const v = await api('POST', `${KS}/branch-keys/${id}/versions`, T);
      assertEq(v.status, 201, `version ${id} (${v.text.slice(0, 200)})`);
      const a = await api('GET', `${KS}/branch-keys/${id}/active`, T);
      assertEq(a.status, 200, `active ${id}`);
      assertEq(a.json.hierarchyVersion, hv, `hierarchyVersion of ${id}`);
      assertEq(a.json.encryptionContext, EC, 'encryptionContext');
      const nv = await api('GET', `${KS}/branch-keys/${id}/versions/${a.json.branchKeyVersion}`, T);
      assertEq(nv.status, 200, `new version ${id}`);
      assertEq(nv.json.branchKey, a.json.branchKey, `GetBranchKeyVersion(new) = GetActive for ${id}`);
      const b = await api('GET', `${KS}/branch-keys/${id}/beacon`, T);
      assertEq(b.status, 200, `beacon ${id}`);
      keys[id] = { hv, active: a.json.branchKey, version: a.json.branchKeyVersion, beacon: b.json.beaconKey };
      const it = await store.getItem(id, 'branch:ACTIVE');
      assertEq(it['hierarchy-version'], { N: hv }, `stored hierarchy-version of ${id}`);
    }
    // HV-2: CreateKey GenerateDataKey x2 + Encrypt x3, VersionKey GenerateDataKey + Encrypt x2.
    assertEq(await kmsCalls('GenerateDataKey') - gdk0, 3 * (rows.length + 1), 'GenerateDataKey calls');
    assertEq(await kmsCalls('Encrypt') - enc0, 5 * (rows.length + 1), 'Encrypt calls');
    assertEq((await srv.stop()).code, 0, 'exit code');
  });
  if (!ready) {
    if (srv) await srv.stop().catch(() => {});
    return;
  }
  const secrets = Object.values(keys).flatMap((k) => [k.active, k.beacon]);

  await h.test(`hv2: edit the stopped server's HV-2 items (${store.describe})`, async () => {
    await store.setAttribute('hv2-ec', 'branch:ACTIVE', 'aws-crypto-ec:department', { S: 'y' });
    await store.setAttribute('hv2-time', 'branch:ACTIVE', 'create-time', { S: '2020-01-01T00:00:00.000000Z' });
    await store.setAttribute('hv2-extra', 'branch:ACTIVE', 'extra', { S: 'x' });
    const other = backend.keyArns ? backend.keyArns.local2 : null;
    const arn = (await store.getItem('hv2-arn', 'branch:ACTIVE'))['kms-arn'].S;
    await store.setAttribute('hv2-arn', 'branch:ACTIVE', 'kms-arn',
      { S: other || arn.replace(/key\/.*/, 'key/22222222-2222-4222-8222-222222222222') });
    const enc = await encrypt32(backend, setup, EC);
    await store.setAttribute('hv2-enc', 'branch:ACTIVE', 'enc', { B: enc.toString('base64') });
  });

  const matrix = [
    ['hv2-ec', 'a custom context value', 502, 'KeyManagementException', /InvalidCiphertextException/, 1],
    ['hv2-time', 'create-time', 502, 'BranchKeyCiphertextException', /digest/, 1],
    ['hv2-extra', 'an added un-modeled attribute', 502, 'BranchKeyCiphertextException', /un-modeled/, 0],
    ['hv2-arn', 'kms-arn under a kms_key_arn relationship', 400, 'KeyStoreException', /KMS Key ARN/, 0],
    ['hv2-enc', 'enc of a 32-byte plaintext', 502, 'BranchKeyCiphertextException', /80 bytes/, 1],
  ];
  const restarted = await h.test('hv2: restart on the edited items', async () => {
    srv = await startServer(['--config', setup.configPath], `hv2-2 (${backend.name})`);
    api = makeApi(srv.base);
  });
  if (!restarted) return;
  for (const [id, what, status, type, pattern, calls] of matrix) {
    await h.test(`hv2 tamper: ${what} -> ${status} ${type}, ${calls} KMS Decrypt call(s)`, async () => {
      const d0 = await decrypts();
      const r = await api('GET', `${KS}/branch-keys/${id}/active`, T);
      checkRefusal(r, status, type, pattern, secrets);
      assertEq(await decrypts() - d0, calls, 'KMS Decrypt calls');
    });
  }
  await h.test('hv2: untouched keys of both hierarchy versions still read, same bytes', async () => {
    for (const id of ['mixed-1', 'mixed-2', 'hv2-name']) {
      const a = await api('GET', `${KS}/branch-keys/${id}/active`, T);
      assertEq(a.status, 200, `active ${id}`);
      assertEq(a.json.branchKey, keys[id].active, `branchKey ${id}`);
      const b = await api('GET', `${KS}/branch-keys/${id}/beacon`, T);
      assertEq(b.json.beaconKey, keys[id].beacon, `beacon ${id}`);
    }
    assertEq((await srv.stop()).code, 0, 'exit code');
  });

  await h.test('hv2 tamper: a read under another logical key store name -> 502 BranchKeyCiphertextException (digest); HV-1 -> 502 KMS', async () => {
    const text = fs.readFileSync(setup.configPath, 'utf8');
    const renamed = text.replace('logical_key_store_name: default\n', 'logical_key_store_name: renamed\n');
    assert(renamed !== text, 'config rewritten');
    fs.writeFileSync(setup.configPath, renamed, { mode: 0o600 });
    srv = await startServer(['--config', setup.configPath], `hv2-3 (${backend.name})`);
    api = makeApi(srv.base);
    const d0 = await decrypts();
    const r = await api('GET', `${KS}/branch-keys/hv2-name/active`, T);
    checkRefusal(r, 502, 'BranchKeyCiphertextException', /logical key store name/, secrets);
    assertEq(await decrypts() - d0, 1, 'KMS Decrypt calls');
    const r1 = await api('GET', `${KS}/branch-keys/mixed-1/active`, T);
    checkRefusal(r1, 502, 'KeyManagementException', /InvalidCiphertextException/, secrets);
    assertEq((await srv.stop()).code, 0, 'exit code');
  });
}

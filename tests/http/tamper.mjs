// tamper.mjs - stored items changed behind the server's back (DESIGN.md section 5: every
// attribute but enc is bound into the KMS encryption context). The server is stopped while the
// SQLite file is edited, so no cache can hide the change, and started again on the same files.
//   - a changed aws-crypto-ec: value  -> 502 KeyManagementException (InvalidCiphertextException)
//   - a changed enc byte              -> 502 KeyManagementException
//   - an invalid kms-arn              -> 502 BranchKeyCiphertextException
//   - a deleted ACTIVE item           -> 404
// Nothing of the key leaks in a refusal, and the untouched version item still reads.

import path from 'node:path';
import { assert, assertEq } from './lib/harness.mjs';
import { makeApi } from './lib/http.mjs';
import { makeSuiteSetup, startServer } from './lib/server.mjs';
import { countVersionItems, getItem, putItemJson, sqlite, sqlQuote } from './lib/sqlite.mjs';

const KS = '/v1/keystores/default';

function checkRefusal(r, status, type, messageStart, secrets) {
  assertEq(r.status, status, `status (body ${r.text.slice(0, 300)})`);
  assertEq(r.json && r.json.error && r.json.error.type, type, 'error.type');
  if (messageStart)
    assert(String(r.json.error.message).startsWith(messageStart),
      `error.message should start with ${messageStart}: ${r.json.error.message}`);
  assertEq(Object.keys(r.json), ['error'], 'top-level members');
  for (const s of secrets) assert(!r.text.includes(s), 'the refusal contains key material');
  assert(!/branchKey"|beaconKey"/.test(r.text), 'the refusal has key fields');
}

export async function runTamper(h) {
  const setup = makeSuiteSetup('tamper');
  const db = path.join(setup.dir, 'ks.db');
  const T = { token: setup.tokens.admin };
  const before = {}; // id -> {active, version, beacon}
  const ids = ['tamper-ec', 'tamper-enc', 'tamper-arn', 'tamper-del'];
  let srv, api;

  const ready = await h.test('tamper: start, create 4 keys with encryptionContext {department: x}', async () => {
    srv = await startServer(['--config', setup.configPath], 'tamper-1');
    api = makeApi(srv.base);
    for (const id of ids) {
      const c = await api('POST', `${KS}/branch-keys`, { ...T, body: { branchKeyIdentifier: id, encryptionContext: { department: 'x' } } });
      assertEq(c.status, 201, `create ${id}`);
      const a = await api('GET', `${KS}/branch-keys/${id}/active`, T);
      assertEq(a.status, 200, `active ${id}`);
      assertEq(a.json.encryptionContext, { department: 'x' }, 'encryptionContext');
      const b = await api('GET', `${KS}/branch-keys/${id}/beacon`, T);
      assertEq(b.status, 200, `beacon ${id}`);
      before[id] = { active: a.json.branchKey, version: a.json.branchKeyVersion, beacon: b.json.beaconKey };
    }
    const info = await srv.stop();
    assertEq(info.code, 0, 'exit code of the first server');
  });
  if (!ready) {
    if (srv) await srv.stop().catch(() => {});
    return;
  }
  const secrets = Object.values(before).flatMap((b) => [b.active, b.beacon]);

  await h.test('tamper: edit the stopped server\'s SQLite file', async () => {
    const where = (id) => `branch_key_id = ${sqlQuote(id)} AND type = 'branch:ACTIVE'`;
    sqlite(db, `UPDATE items SET item = json_set(item, '$."aws-crypto-ec:department".S', 'y') WHERE ${where('tamper-ec')};`);
    const ec = getItem(db, 'tamper-ec', 'branch:ACTIVE');
    assertEq(ec['aws-crypto-ec:department'], { S: 'y' }, 'edited EC value');

    const encItem = getItem(db, 'tamper-enc', 'branch:ACTIVE');
    const enc = Buffer.from(encItem.enc.B, 'base64');
    enc[enc.length - 20] ^= 0x01; // a ciphertext byte
    encItem.enc.B = enc.toString('base64');
    putItemJson(db, 'tamper-enc', 'branch:ACTIVE', encItem);

    const arnItem = getItem(db, 'tamper-arn', 'branch:ACTIVE');
    arnItem['kms-arn'].S = 'not-an-arn';
    putItemJson(db, 'tamper-arn', 'branch:ACTIVE', arnItem);

    sqlite(db, `DELETE FROM items WHERE ${where('tamper-del')};`);
    assertEq(getItem(db, 'tamper-del', 'branch:ACTIVE'), null, 'deleted item');
  });

  const restarted = await h.test('tamper: restart on the edited files', async () => {
    srv = await startServer(['--config', setup.configPath], 'tamper-2');
    api = makeApi(srv.base);
  });
  if (!restarted) return;

  await h.test('tamper: changed EC value -> GET active 502 KeyManagementException (InvalidCiphertextException), nothing leaks', async () => {
    const r = await api('GET', `${KS}/branch-keys/tamper-ec/active`, T);
    checkRefusal(r, 502, 'KeyManagementException', 'InvalidCiphertextException', secrets);
  });
  await h.test('tamper: changed EC value -> the untouched version item still reads, same key bytes', async () => {
    const r = await api('GET', `${KS}/branch-keys/tamper-ec/versions/${before['tamper-ec'].version}`, T);
    assertEq(r.status, 200, 'status');
    assertEq(r.json.branchKey, before['tamper-ec'].active, 'branchKey');
    assertEq(r.json.encryptionContext, { department: 'x' }, 'encryptionContext');
    const b = await api('GET', `${KS}/branch-keys/tamper-ec/beacon`, T);
    assertEq(b.json.beaconKey, before['tamper-ec'].beacon, 'beacon key');
  });
  await h.test('tamper: VersionKey on a tampered ACTIVE is refused (authenticated first) and writes nothing', async () => {
    const n0 = countVersionItems(db, 'tamper-ec');
    const r = await api('POST', `${KS}/branch-keys/tamper-ec/versions`, T);
    checkRefusal(r, 502, 'KeyManagementException', 'InvalidCiphertextException', secrets);
    assertEq(countVersionItems(db, 'tamper-ec'), n0, 'version items');
  });
  await h.test('tamper: changed enc byte -> GET active 502 KeyManagementException, version item reads', async () => {
    const r = await api('GET', `${KS}/branch-keys/tamper-enc/active`, T);
    checkRefusal(r, 502, 'KeyManagementException', 'InvalidCiphertextException', secrets);
    const v = await api('GET', `${KS}/branch-keys/tamper-enc/versions/${before['tamper-enc'].version}`, T);
    assertEq(v.status, 200, 'version status');
    assertEq(v.json.branchKey, before['tamper-enc'].active, 'branchKey');
  });
  await h.test('tamper: invalid kms-arn -> GET active 502 BranchKeyCiphertextException', async () => {
    const r = await api('GET', `${KS}/branch-keys/tamper-arn/active`, T);
    checkRefusal(r, 502, 'BranchKeyCiphertextException', null, secrets);
    assert(/kms-arn/.test(r.json.error.message), `message names kms-arn: ${r.json.error.message}`);
  });
  await h.test('tamper: deleted ACTIVE -> GET active and VersionKey 404 KeyStoreException', async () => {
    for (const [m, p] of [['GET', 'active'], ['POST', 'versions']]) {
      const r = await api(m, `${KS}/branch-keys/tamper-del/${p}`, T);
      checkRefusal(r, 404, 'KeyStoreException', 'No item found for corresponding branch key identifier.', secrets);
    }
  });
  await h.test('tamper: the server stops with exit 0', async () => {
    const info = await srv.stop();
    assertEq(info.code, 0, 'exit code');
  });
}

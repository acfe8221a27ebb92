// tamper.mjs - stored items changed behind the server's back (docs/architecture.md section 5: every
// attribute but enc is bound into the KMS encryption context). The server is stopped while the
// stored items are edited through the backend (SQLite file; DynamoDB UpdateItem / DeleteItem), so
// no cache can hide the change, and started again on the same storage.
//   - a changed aws-crypto-ec: value  -> 502 KeyManagementException (InvalidCiphertextException)
//   - a changed enc byte              -> 502 KeyManagementException
//   - an invalid kms-arn              -> 502 BranchKeyCiphertextException
//   - a deleted ACTIVE item           -> 404
// Nothing of the key leaks in a refusal, and the untouched version item still reads.

import { assert, assertEq } from './lib/harness.mjs';
import { makeApi } from './lib/http.mjs';
import { startServer } from './lib/server.mjs';

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

export async function runTamper(h, backend) {
  const setup = backend.makeSetup('tamper');
  const store = backend.store(setup);
  const T = { token: setup.tokens.admin };
  const before = {}; // id -> {active, version, beacon}
  const ids = ['tamper-ec', 'tamper-enc', 'tamper-arn', 'tamper-del'];
  let srv, api;

  const ready = await h.test('tamper: start, create 4 keys with encryptionContext {department: x}', async () => {
    srv = await startServer(['--config', setup.configPath], `tamper-1 (${backend.name})`);
    api = makeApi(srv.base);
    const p = await api('PUT', KS, T);
    assertEq(p.status, 200, `create the key store (${p.text.slice(0, 200)})`);
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

  await h.test(`tamper: the stored items have the MPL's shape (${store.describe})`, async () => {
    const id = 'tamper-ec';
    const v = before[id].version;
    const arn = backend.keyArns ? backend.keyArns.local : null; // dynamodb: the peer's key
    const common = ['branch-key-id', 'type', 'enc', 'kms-arn', 'create-time', 'hierarchy-version', 'aws-crypto-ec:department'];
    const items = {
      'branch:ACTIVE': [...common, 'version'], [`branch:version:${v}`]: common, 'beacon:ACTIVE': common,
    };
    for (const [type, attrs] of Object.entries(items)) {
      const it = await store.getItem(id, type);
      assert(it, `no item ${type}`);
      assertEq(Object.keys(it).sort(), [...attrs].sort(), `attributes of ${type}`);
      assertEq(it['branch-key-id'], { S: id }, `${type} branch-key-id`);
      assertEq(it.type, { S: type }, `${type} type`);
      assertEq(it['hierarchy-version'], { N: '1' }, `${type} hierarchy-version`);
      assertEq(it['aws-crypto-ec:department'], { S: 'x' }, `${type} EC`);
      assert(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/.test(it['create-time'].S), `${type} create-time ${it['create-time'].S}`);
      assert(it.enc.B && Buffer.from(it.enc.B, 'base64').length > 32, `${type} enc`);
      assert(/^arn:aws:kms:/.test(it['kms-arn'].S), `${type} kms-arn ${it['kms-arn'].S}`);
      if (arn) assertEq(it['kms-arn'].S, arn, `${type} kms-arn (the relationship's KMS key)`);
    }
    assertEq((await store.getItem(id, 'branch:ACTIVE')).version, { S: `branch:version:${v}` }, 'ACTIVE version');
    assertEq(await store.countVersionItems(id), 1, 'version items');
  });

  await h.test(`tamper: edit the stopped server's items (${store.describe})`, async () => {
    await store.setAttribute('tamper-ec', 'branch:ACTIVE', 'aws-crypto-ec:department', { S: 'y' });
    const ec = await store.getItem('tamper-ec', 'branch:ACTIVE');
    assertEq(ec['aws-crypto-ec:department'], { S: 'y' }, 'edited EC value');

    const encItem = await store.getItem('tamper-enc', 'branch:ACTIVE');
    const enc = Buffer.from(encItem.enc.B, 'base64');
    enc[enc.length - 20] ^= 0x01; // a ciphertext byte
    await store.setAttribute('tamper-enc', 'branch:ACTIVE', 'enc', { B: enc.toString('base64') });
    assertEq((await store.getItem('tamper-enc', 'branch:ACTIVE')).enc, { B: enc.toString('base64') }, 'edited enc');

    await store.setAttribute('tamper-arn', 'branch:ACTIVE', 'kms-arn', { S: 'not-an-arn' });
    assertEq((await store.getItem('tamper-arn', 'branch:ACTIVE'))['kms-arn'], { S: 'not-an-arn' }, 'edited kms-arn');

    await store.deleteItem('tamper-del', 'branch:ACTIVE');
    assertEq(await store.getItem('tamper-del', 'branch:ACTIVE'), null, 'deleted item');
  });

  const restarted = await h.test('tamper: restart on the edited files', async () => {
    srv = await startServer(['--config', setup.configPath], `tamper-2 (${backend.name})`);
    api = makeApi(srv.base);
  });
  if (!restarted) return;

  await h.test('tamper: changed EC value -> GET active 502 KeyManagementException (InvalidCiphertextException), nothing leaks', async () => {
    const r = await api('GET', `${KS}/branch-keys/tamper-ec/active`, T);
    checkRefusal(r, 502, 'KeyManagementException', 'KMS InvalidCiphertextException', secrets);
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
    const n0 = await store.countVersionItems('tamper-ec');
    const r = await api('POST', `${KS}/branch-keys/tamper-ec/versions`, T);
    checkRefusal(r, 502, 'KeyManagementException', 'KMS InvalidCiphertextException', secrets);
    assertEq(await store.countVersionItems('tamper-ec'), n0, 'version items');
  });
  await h.test('tamper: changed enc byte -> GET active 502 KeyManagementException, version item reads', async () => {
    const r = await api('GET', `${KS}/branch-keys/tamper-enc/active`, T);
    checkRefusal(r, 502, 'KeyManagementException', 'KMS InvalidCiphertextException', secrets);
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

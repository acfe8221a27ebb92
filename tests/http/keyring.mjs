// keyring.mjs - the keyring routes (issue 13) where a declarative case cannot say it: bodies over
// the general 64 KiB cap but under server.max_keyring_body_bytes, the u16 limits of the
// encryption context, the batch limits (1,000 requests, 10,000 EDKs), one storage read per
// distinct branch key version in a batch of 1,000 EDKs under 10 versions, an EDK whose version
// does not exist, and a dependency failure during unwrap (a tampered version item: 502, never 400).
// Runs on its own server, for either backend.

import { assert, assertEq } from './lib/harness.mjs';
import { makeApi, rawRequest } from './lib/http.mjs';
import { startServer } from './lib/server.mjs';

const KS = '/v1/keystores/default';

function metric(text, name, labels) {
  const re = new RegExp(`^${name}\\{${labels}\\} (\\d+)$`, 'm');
  const m = re.exec(text);
  return m ? Number(m[1]) : NaN;
}

// GET /metrics needs an admin (or monitor) token (issue 12): runKeyring sets it.
let metricsToken;

async function storageReads(api) {
  const r = await api('GET', '/metrics', { token: metricsToken });
  return metric(r.text, 'keystored_storage_reads_total', 'key_store="default"');
}

function edkOf(w) {
  return w.json.encryptedDataKey;
}

export async function runKeyring(h, backend) {
  const setup = backend.makeSetup('keyring');
  const store = backend.store(setup);
  const A = { token: setup.tokens.admin };
  const K = { token: setup.tokens.keyring };
  let srv, api, id;
  metricsToken = setup.tokens.admin;

  const ready = await h.test('keyring: start, create the key store and a key', async () => {
    srv = await startServer(['--config', setup.configPath], `keyring (${backend.name})`);
    api = makeApi(srv.base);
    assertEq((await api('PUT', KS, A)).status, 200, 'PUT key store');
    const c = await api('POST', `${KS}/branch-keys`, A);
    assertEq(c.status, 201, 'create key');
    id = c.json.branchKeyIdentifier;
  });
  if (!ready) {
    if (srv) await srv.stop().catch(() => {});
    return;
  }
  try {
    await bodyCaps(h, api, K, id, srv, setup.tokens.keyring);
    await batchLimits(h, api, K, id);
    await readsPerVersion(h, api, A, K);
    await unknownVersionAndDependency(h, api, A, K, store);
  } finally {
    await h.test('keyring: SIGTERM -> exit 0; no data key in the log', async () => {
      const info = await srv.stop();
      assertEq(info.code, 0, 'exit code');
    });
  }
}

async function bodyCaps(h, api, K, id, srv, token) {
  await h.test('keyring: a 140 KB wrap body (over server.max_body_bytes) is accepted; a 65535-byte context value wraps and unwraps', async () => {
    const ec = { big: 'v'.repeat(65535), other: 'x'.repeat(65535), '\u00e9': 'y'.repeat(10000) };
    const w = await api('POST', `${KS}/keyring/wrap`, { ...K, body: { branchKeyIdentifier: id, encryptionContext: ec } });
    assertEq(w.status, 200, `wrap (${w.text.slice(0, 200)})`);
    const u = await api('POST', `${KS}/keyring/unwrap`, { ...K, body: { encryptedDataKeys: [edkOf(w)], encryptionContext: ec } });
    assertEq(u.status, 200, `unwrap (${u.text.slice(0, 200)})`);
    assertEq(u.json.dataKey, w.json.dataKey, 'data key');
  });
  await h.test('keyring: a context key or value of 65536 bytes -> 400 before any read (refused, never truncated)', async () => {
    const before = await storageReads(api);
    for (const ec of [{ ['k'.repeat(65536)]: 'v' }, { k: 'v'.repeat(65536) }]) {
      const w = await api('POST', `${KS}/keyring/wrap`, { ...K, body: { branchKeyIdentifier: id, encryptionContext: ec } });
      assertEq(w.status, 400, 'wrap');
      assert(/65536 bytes; at most 65535/.test(w.json.error.message), w.json.error.message);
      const u = await api('POST', `${KS}/keyring/unwrap`, {
        ...K, body: { encryptedDataKeys: [{ providerId: 'aws-kms-hierarchy', providerInfo: 'aWQ=', ciphertext: 'AAAA' }], encryptionContext: ec },
      });
      assertEq(u.status, 400, 'unwrap');
      assertEq(u.json.error.type, 'KeyStoreException', 'type');
    }
    assertEq(await storageReads(api), before, 'storage reads');
  });
  await h.test('keyring: a body over server.max_keyring_body_bytes (4 MiB) -> 413; the same size on a non-keyring route -> 413 at 64 KiB', async () => {
    // Content-Length alone decides (the server answers before reading): one byte over each cap.
    const send = (p, n) => rawRequest(srv.host, srv.port, {
      method: 'POST', path: p,
      headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json', 'Content-Length': String(n) },
    });
    const w = await send(`${KS}/keyring/unwrap-batch`, 4 * 1024 * 1024 + 1);
    assertEq(w.status, 413, 'keyring route over 4 MiB');
    assert(/4194304 bytes/.test(w.json.error.message), w.json.error.message);
    const c = await send(`${KS}/branch-keys`, 65537);
    assertEq(c.status, 413, 'create key over 64 KiB');
    assert(/65536 bytes/.test(c.json.error.message), c.json.error.message);
  });
}

async function batchLimits(h, api, K, id) {
  let edk;
  await h.test('keyring: batch limits: 1,000 requests with 10,000 EDKs in all -> 200; 1,001 requests or 10,001 EDKs -> 400 before any read', async () => {
    const w = await api('POST', `${KS}/keyring/wrap`, { ...K, body: { branchKeyIdentifier: id } });
    assertEq(w.status, 200, 'wrap');
    edk = edkOf(w);
    const ten = Array(10).fill(edk);
    const ok = await api('POST', `${KS}/keyring/unwrap-batch`, { ...K, body: { requests: Array(1000).fill({ encryptedDataKeys: ten }) } });
    assertEq(ok.status, 200, `1,000 x 10 (${ok.text.slice(0, 200)})`);
    assertEq(ok.json.results.length, 1000, 'results');
    assert(ok.json.results.every((r) => r.dataKey === w.json.dataKey && r.encryptedDataKeyIndex === 0), 'every result opens EDK 0');
    const before = await storageReads(api);
    const tooMany = await api('POST', `${KS}/keyring/unwrap-batch`, { ...K, body: { requests: Array(1001).fill({ encryptedDataKeys: [edk] }) } });
    assertEq(tooMany.status, 400, '1,001 requests');
    assert(/at most 1000/.test(tooMany.json.error.message), tooMany.json.error.message);
    const reqs = Array(1000).fill({ encryptedDataKeys: ten });
    reqs[999] = { encryptedDataKeys: Array(11).fill(edk) };
    const tooManyEdks = await api('POST', `${KS}/keyring/unwrap-batch`, { ...K, body: { requests: reqs } });
    assertEq(tooManyEdks.status, 400, '10,001 EDKs');
    assert(/more than 10000/.test(tooManyEdks.json.error.message), tooManyEdks.json.error.message);
    const one = await api('POST', `${KS}/keyring/unwrap`, { ...K, body: { encryptedDataKeys: Array(10001).fill(edk) } });
    assertEq(one.status, 400, 'one unwrap with 10,001 EDKs');
    assertEq(await storageReads(api), before, 'no read for a refused batch');
  });
}

async function readsPerVersion(h, api, A, K) {
  await h.test('keyring: batch unwrap of 1,000 EDKs under 10 versions reads storage 10 times', async () => {
    const c = await api('POST', `${KS}/branch-keys`, A);
    assertEq(c.status, 201, 'create key');
    const bk = c.json.branchKeyIdentifier;
    const edks = [];
    const keys = [];
    for (let v = 0; v < 10; v++) {
      if (v > 0) assertEq((await api('POST', `${KS}/branch-keys/${bk}/versions`, A)).status, 201, 'version');
      for (let i = 0; i < 100; i++) {
        // Each wrap reads ACTIVE (cached until VersionKey drops it); the versions are not cached yet.
        const w = await api('POST', `${KS}/keyring/wrap`, { ...K, body: { branchKeyIdentifier: bk, encryptionContext: { row: String(i) } } });
        assertEq(w.status, 200, 'wrap');
        edks.push({ encryptedDataKeys: [edkOf(w)], encryptionContext: { row: String(i) } });
        keys.push(w.json.dataKey);
      }
    }
    const before = await storageReads(api);
    const t0 = process.hrtime.bigint();
    const r = await api('POST', `${KS}/keyring/unwrap-batch`, { ...K, body: { requests: edks } });
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    assertEq(r.status, 200, `batch (${r.text.slice(0, 200)})`);
    assertEq(r.json.results.map((x) => x.dataKey), keys, 'data keys in order');
    assertEq(new Set(r.json.results.map((x) => x.branchKeyVersion)).size, 10, 'versions');
    assertEq(await storageReads(api) - before, 10, 'storage reads');
    console.log(`     1,000 EDKs under 10 versions: ${ms.toFixed(1)} ms`);
  });
}

async function unknownVersionAndDependency(h, api, A, K, store) {
  await h.test('keyring: an EDK naming a version that does not exist -> 400 UnableToDecryptException "unknown version"', async () => {
    const c = await api('POST', `${KS}/branch-keys`, A);
    const bk = c.json.branchKeyIdentifier;
    const w = await api('POST', `${KS}/keyring/wrap`, { ...K, body: { branchKeyIdentifier: bk } });
    const ct = Buffer.from(edkOf(w).ciphertext, 'base64');
    Buffer.from('0b0c8a544f1e4c559d435a2f3c1b7e21', 'hex').copy(ct, 28);
    const u = await api('POST', `${KS}/keyring/unwrap`, {
      ...K, body: { encryptedDataKeys: [{ ...edkOf(w), ciphertext: ct.toString('base64') }] },
    });
    assertEq(u.status, 400, 'status');
    assertEq(u.json.error.type, 'UnableToDecryptException', 'type');
    assert(u.json.error.message.includes('unknown version 0b0c8a54-4f1e-4c55-9d43-5a2f3c1b7e21'), u.json.error.message);
  });
  await h.test('keyring: KMS refuses the version item during unwrap -> 502 KeyManagementException, never 400; in a batch, the item carries it', async () => {
    const c = await api('POST', `${KS}/branch-keys`, A);
    const bk = c.json.branchKeyIdentifier;
    const w = await api('POST', `${KS}/keyring/wrap`, { ...K, body: { branchKeyIdentifier: bk } });
    assertEq(w.status, 200, 'wrap');
    const type = `branch:version:${w.json.branchKeyVersion}`;
    const item = await store.getItem(bk, type);
    const enc = Buffer.from(item.enc.B, 'base64');
    enc[enc.length - 20] ^= 0x01;
    await store.setAttribute(bk, type, 'enc', { B: enc.toString('base64') });
    const u = await api('POST', `${KS}/keyring/unwrap`, { ...K, body: { encryptedDataKeys: [edkOf(w)] } });
    assertEq(u.status, 502, `status (${u.text.slice(0, 200)})`);
    assertEq(u.json.error.type, 'KeyManagementException', 'type');
    assert(!u.text.includes(w.json.dataKey), 'the data key leaked');
    const b = await api('POST', `${KS}/keyring/unwrap-batch`, { ...K, body: { requests: [{ encryptedDataKeys: [edkOf(w)] }] } });
    assertEq(b.status, 200, 'batch');
    assertEq(b.json.results[0].error.__type, 'KeyManagementException', 'batch item');
    const m = await api('GET', '/metrics', A);
    assert(metric(m.text, 'keystored_keyring_unwraps_total', 'outcome="dependency_error"') >= 2, 'dependency_error counted');
  });
}

#!/usr/bin/env node
// keyring_batch.mjs - one POST .../keyring/unwrap-batch of 1,000 EDKs made under 10 versions of
// one branch key (100 per version, each with its own encryption context), against a running
// keystored (bench/keyring.sh starts one). Prints the batch's latency and the storage reads it
// made (from /metrics), cold (no version cached yet) and then warm, 5 times.
//   node bench/keyring_batch.mjs BASE ADMIN_TOKEN KEYRING_TOKEN
const [base, admin, keyring] = process.argv.slice(2);
if (!keyring) {
  console.error('usage: keyring_batch.mjs BASE ADMIN_TOKEN KEYRING_TOKEN');
  process.exit(2);
}
const origin = new URL(base).origin;

async function call(method, url, token, body) {
  const r = await fetch(url, {
    method,
    headers: { Authorization: `Bearer ${token}`, ...(body ? { 'Content-Type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await r.text();
  if (r.status !== 200 && r.status !== 201) throw new Error(`${method} ${url}: ${r.status} ${text.slice(0, 200)}`);
  return text.startsWith('{') ? JSON.parse(text) : text;
}

async function storageReads() {
  const text = await call('GET', `${origin}/metrics`, admin);
  return Number(/^keystored_storage_reads_total\{key_store="default"\} (\d+)$/m.exec(text)[1]);
}

const id = (await call('POST', `${base}/branch-keys`, admin)).branchKeyIdentifier;
const requests = [];
const expected = [];
for (let v = 0; v < 10; v++) {
  if (v > 0) await call('POST', `${base}/branch-keys/${id}/versions`, admin);
  for (let i = 0; i < 100; i++) {
    const ec = { table: 'orders', row: String(v * 100 + i) };
    const w = await call('POST', `${base}/keyring/wrap`, keyring, { branchKeyIdentifier: id, encryptionContext: ec });
    requests.push({ encryptedDataKeys: [w.encryptedDataKey], encryptionContext: ec });
    expected.push(w.dataKey);
  }
}
const body = JSON.stringify({ requests });
for (let round = 0; round < 6; round++) {
  const before = await storageReads();
  const t0 = process.hrtime.bigint();
  const r = await call('POST', `${base}/keyring/unwrap-batch`, keyring, JSON.parse(body));
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  const reads = (await storageReads()) - before;
  const ok = r.results.every((x, i) => x.dataKey === expected[i]);
  const versions = new Set(r.results.map((x) => x.branchKeyVersion)).size;
  console.log(`batch unwrap ${round === 0 ? 'cold' : 'warm'}: 1000 EDKs, ${versions} versions, ` +
    `body ${(body.length / 1024).toFixed(0)} KiB, ${ms.toFixed(1)} ms, storage reads ${reads}, all data keys ${ok ? 'match' : 'DIFFER'}`);
}

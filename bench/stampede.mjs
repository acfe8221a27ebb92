// stampede.mjs - 1000 concurrent GetActiveBranchKey of one cold key (issue 5): with the shared
// cache's storm tracking, exactly 1 KMS Decrypt and 1 storage read must happen, counted by the
// KMS test peer (its /__admin/counts) and by keystored's /metrics. Backends: DynamoDB Local +
// the KMS peer (SigV4-checked), on loopback.
//
//   node bench/stampede.mjs [requests=1000] [server_threads=32] [rounds=3]
//
// Each round uses a fresh key (cold in the cache); all requests are sent at once, each on its
// own connection. Exits 1 if any round saw more than one fetch or a non-200 answer.
import os from 'node:os';
import http from 'node:http';
import { kmsAdmin } from '../tests/interop/lib/peers.mjs';
import { startBench } from './lib/peers.mjs';

const N = Number(process.argv[2] || 1000);
const THREADS = Number(process.argv[3] || 32);
const ROUNDS = Number(process.argv[4] || 3);

function request(port, method, p, token, agent) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path: p, agent,
      headers: { Authorization: `Bearer ${token}` } }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    req.end();
  });
}

function metric(text, name) {
  const line = text.split('\n').find((l) => l.startsWith(name + ' '));
  return line ? Number(line.slice(name.length + 1)) : 0; // a partition appears on first use
}

async function main() {
  const { kms, port, token, stop } = await startBench({
    threads: THREADS, table: 'StampedeTable', extraYaml: 'cache: {capacity: 1000, ttl_seconds: 600}\n',
  });
  const base = '/v1/keystores/bench';
  const one = new http.Agent({ keepAlive: false });
  let r = await request(port, 'PUT', base, token, one);
  if (r.status !== 200) throw new Error(`CreateKeyStore: ${r.status} ${r.body}`);

  console.log(`stampede: ${N} concurrent GetActiveBranchKey of one cold key, keystored threads=${THREADS}, ` +
    `DynamoDB Local + KMS peer, ${os.cpus().length} cores`);
  let ok = true;
  for (let round = 1; round <= ROUNDS; round++) {
    r = await request(port, 'POST', `${base}/branch-keys`, token, one);
    const id = JSON.parse(r.body).branchKeyIdentifier;
    const peer0 = (await kmsAdmin(kms.endpoint, 'GET', 'counts')).operations.Decrypt || 0;
    const m0 = (await request(port, 'GET', '/metrics', token, one)).body;
    // One connection per request, all opened at once.
    const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });
    const t0 = process.hrtime.bigint();
    const answers = await Promise.all(Array.from({ length: N }, () =>
      request(port, 'GET', `${base}/branch-keys/${id}/active`, token, agent)));
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    const peer1 = (await kmsAdmin(kms.endpoint, 'GET', 'counts')).operations.Decrypt || 0;
    const m1 = (await request(port, 'GET', '/metrics', token, one)).body;
    const non200 = answers.filter((a) => a.status !== 200).length;
    const keys = new Set(answers.filter((a) => a.status === 200).map((a) => JSON.parse(a.body).branchKey));
    const dec = 'keystored_kms_requests_total{relationship="kms",operation="Decrypt"}';
    const reads = 'keystored_storage_reads_total{key_store="bench"}';
    const waits = 'keystored_cache_waits_total{partition="tenant:*"}';
    const hits = 'keystored_cache_hits_total{partition="tenant:*"}';
    const misses = 'keystored_cache_misses_total{partition="tenant:*"}';
    const row = {
      peerDecrypts: peer1 - peer0,
      keystoredDecrypts: metric(m1, dec) - metric(m0, dec),
      storageReads: metric(m1, reads) - metric(m0, reads),
      misses: metric(m1, misses) - metric(m0, misses),
      waits: metric(m1, waits) - metric(m0, waits),
      hits: metric(m1, hits) - metric(m0, hits),
    };
    console.log(`round ${round}: ${N} answers in ${ms.toFixed(0)} ms, non-200: ${non200}, distinct keys: ${keys.size}; ` +
      `KMS Decrypt (peer count) ${row.peerDecrypts}, (keystored metrics) ${row.keystoredDecrypts}; ` +
      `storage reads ${row.storageReads}; cache misses ${row.misses}, waits ${row.waits}, hits ${row.hits}`);
    if (non200 || keys.size !== 1 || row.peerDecrypts !== 1 || row.keystoredDecrypts !== 1 || row.storageReads !== 1)
      ok = false;
    agent.destroy();
  }
  await stop();
  console.log(ok ? 'result: every round 1 Decrypt and 1 storage read' : 'result: FAILED');
  process.exit(ok ? 0 : 1);
}

main().catch((e) => { console.error(e); process.exit(1); });

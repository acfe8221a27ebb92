// stampede.mjs - 1000 concurrent GetActiveBranchKey of one cold key (issue 5): with the shared
// cache's storm tracking, exactly 1 KMS Decrypt and 1 storage read must happen, counted by the
// KMS test peer (its /__admin/counts) and by keystored's /metrics. Backends: DynamoDB Local +
// the KMS peer (SigV4-checked), on loopback.
//
//   node bench/stampede.mjs [requests=1000] [server_threads=32] [rounds=3]
//
// Each round uses a fresh key (cold in the cache); all requests are sent at once, each on its
// own connection. Exits 1 if any round saw more than one fetch or a non-200 answer.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import http from 'node:http';
import crypto from 'node:crypto';
import { spawn } from 'node:child_process';
import { startKmsPeer, kmsAdmin, KMS_CREDS, DDB_CREDS, REPO } from '../tests/interop/lib/peers.mjs';
import { startDynamoDBLocal } from '../tests/peers/dynamodb-local.mjs';

const N = Number(process.argv[2] || 1000);
const THREADS = Number(process.argv[3] || 32);
const ROUNDS = Number(process.argv[4] || 3);
const KEYSTORED = process.env.KEYSTORED || path.join(REPO, 'build', 'keystored');

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
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-stampede-'));
  const kms = await startKmsPeer();
  const ddb = await startDynamoDBLocal({ log: { write() {} } });
  const { arn } = await kmsAdmin(kms.endpoint, 'POST', 'keys', { region: 'us-west-2' });
  const token = 'ks_' + crypto.randomBytes(32).toString('hex');
  const hash = crypto.createHash('sha256').update(token).digest('hex');
  const cfg = path.join(tmp, 'keystored.yaml');
  fs.writeFileSync(cfg, `listen: 127.0.0.1:0
server: {threads: ${THREADS}}
kms_relationships:
  - name: kms
    type: aws
    region: us-west-2
    endpoint: ${kms.endpoint}
    credentials: {source: static, access_key_id: ${KMS_CREDS.accessKeyId}, secret_access_key: ${KMS_CREDS.secretAccessKey}}
    kms_configuration: {kms_key_arn: "${arn}"}
key_stores:
  - name: bench
    logical_key_store_name: bench-logical
    kms_relationship: kms
    storage: {type: dynamodb, table: StampedeTable, region: us-west-2, endpoint: ${ddb.endpoint},
              credentials: {source: static, access_key_id: ${DDB_CREDS.accessKeyId}, secret_access_key: ${DDB_CREDS.secretAccessKey}}}
cache: {capacity: 1000, ttl_seconds: 600}
tenants:
  - {name: bench, token_sha256: "${hash}", role: admin, key_stores: [bench], kms_relationships: [kms]}
`);
  const ks = spawn(KEYSTORED, ['--config', cfg], { stdio: ['ignore', 'ignore', 'pipe'] });
  process.once('exit', () => ks.kill('SIGKILL')); // also when the run fails half-way
  let log = '';
  const port = await new Promise((resolve, reject) => {
    ks.stderr.on('data', (d) => {
      log += d;
      const m = /listening on [^:]+:(\d+)/.exec(log);
      if (m) resolve(Number(m[1]));
    });
    ks.once('exit', (c) => reject(new Error(`keystored exited ${c}: ${log}`)));
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
    const waits = 'keystored_cache_waits_total{partition="tenant:bench"}';
    const hits = 'keystored_cache_hits_total{partition="tenant:bench"}';
    const misses = 'keystored_cache_misses_total{partition="tenant:bench"}';
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
  ks.kill('SIGTERM');
  await new Promise((res) => ks.once('exit', res));
  await kms.stop();
  await ddb.stop();
  fs.rmSync(tmp, { recursive: true, force: true });
  console.log(ok ? 'result: every round 1 Decrypt and 1 storage read' : 'result: FAILED');
  process.exit(ok ? 0 : 1);
}

main().catch((e) => { console.error(e); process.exit(1); });

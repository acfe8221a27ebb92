// miss_path.mjs - GetActiveBranchKey's miss path (a DynamoDB GetItem + a KMS Decrypt per call:
// keystored runs with cache capacity 0) against the peers on loopback, side by side with AWS's own JS
// library (@aws-crypto/branch-keystore-node) doing the same gets on the same peers, in one run.
//
//   node bench/miss_path.mjs [requests=2000] [concurrency=16] [rounds=3]
//
// Reports, per side: requests/s, p50/p99 latency, and CPU per request of the process doing the
// work (keystored's own process for keystored; this node process for AWS's library, which runs
// in it). The peers' CPU is shown too: on a 2-core machine they take most of it.
import fs from 'node:fs';
import os from 'node:os';
import { startBench } from './lib/peers.mjs';
import { awsKeyStore, ddbClient } from '../tests/interop/lib/aws.mjs';

const N = Number(process.argv[2] || 2000);
const C = Number(process.argv[3] || 16);
const ROUNDS = Number(process.argv[4] || 3);
const TICK = 100; // USER_HZ: /proc/<pid>/stat times are in 1/100 s on Linux

function cpuSecondsOf(pid) {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / TICK; // utime + stime
}
function cpuTree(pids) {
  return pids.reduce((s, p) => s + cpuSecondsOf(p), 0);
}
function javaPids() {
  return fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d)).filter((d) => {
    try {
      return fs.readFileSync(`/proc/${d}/cmdline`, 'utf8').includes('LoopbackDynamoDBLocal');
    } catch { return false; }
  }).map(Number);
}

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function runLoad(fn) {
  const lat = [];
  let next = 0;
  const t0 = process.hrtime.bigint();
  const cpu0 = process.cpuUsage();
  async function worker() {
    while (next < N) {
      next++;
      const s = process.hrtime.bigint();
      await fn();
      lat.push(Number(process.hrtime.bigint() - s) / 1e6);
    }
  }
  await Promise.all(Array.from({ length: C }, worker));
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  lat.sort((a, b) => a - b);
  return { wall, rps: N / wall, p50: percentile(lat, 50), p99: percentile(lat, 99),
    selfCpu: (cpu.user + cpu.system) / 1e6 };
}

async function main() {
  // cache capacity 0 (the MPL's "No" cache): every keystored get is a miss, like every call of
  // AWS's library here, which has no cache of its own in this benchmark.
  const { kms, ddb, arn, ks, port, token, stop } = await startBench({
    threads: 8, table: 'BenchTable', extraYaml: 'cache: {capacity: 0}\n',
  });
  const base = `http://127.0.0.1:${port}/v1/keystores/bench`;
  const auth = { Authorization: `Bearer ${token}` };
  let r = await fetch(base, { method: 'PUT', headers: auth });
  if (r.status !== 200) throw new Error(`CreateKeyStore: ${r.status} ${await r.text()}`);
  r = await fetch(`${base}/branch-keys`, { method: 'POST', headers: auth });
  const { branchKeyIdentifier: id } = await r.json();

  const js = awsKeyStore({
    logicalKeyStoreName: 'bench-logical', tableName: 'BenchTable', ddb: ddbClient(ddb.endpoint),
    kmsEndpoint: kms.endpoint, region: 'us-west-2', kmsConfiguration: { identifier: arn },
  });
  // Both sides must return the same key, or the comparison means nothing.
  const mine = await (await fetch(`${base}/branch-keys/${id}/active`, { headers: auth })).json();
  const theirs = await js.getActiveBranchKey(id);
  if (Buffer.from(theirs.branchKey()).toString('base64') !== mine.branchKey)
    throw new Error('keystored and AWS library returned different keys');

  const keystoredGet = async () => {
    const res = await fetch(`${base}/branch-keys/${id}/active`, { headers: auth });
    if (res.status !== 200) throw new Error(`get: ${res.status}`);
    await res.arrayBuffer();
  };
  const jsGet = async () => { await js.getActiveBranchKey(id); };
  const peers = () => [kms.pid, ...javaPids()];

  // Warm up both paths (JIT, connection pools), then alternate rounds.
  for (let i = 0; i < 200; i++) { await keystoredGet(); await jsGet(); }
  const rows = [];
  for (let round = 1; round <= ROUNDS; round++) {
    for (const side of ['keystored', 'aws-js']) {
      const kc0 = cpuSecondsOf(ks.pid), pc0 = cpuTree(peers());
      const res = await runLoad(side === 'keystored' ? keystoredGet : jsGet);
      const kcpu = cpuSecondsOf(ks.pid) - kc0, pcpu = cpuTree(peers()) - pc0;
      const workCpu = side === 'keystored' ? kcpu : res.selfCpu;
      rows.push({ round, side, ...res, workCpuMsPerReq: (workCpu * 1000) / N,
        driverCpuMsPerReq: side === 'keystored' ? (res.selfCpu * 1000) / N : 0,
        peerCpuMsPerReq: (pcpu * 1000) / N });
    }
  }
  console.log(`miss path: GetActiveBranchKey, ${N} requests x ${ROUNDS} rounds, concurrency ${C}, ${os.cpus().length} cores`);
  console.log('round side       req/s    p50 ms  p99 ms  work CPU ms/req  (driver)  peers CPU ms/req');
  for (const x of rows)
    console.log(`${x.round}     ${x.side.padEnd(10)} ${x.rps.toFixed(0).padStart(6)}  ${x.p50.toFixed(2).padStart(6)}  ${x.p99.toFixed(2).padStart(6)}  ${x.workCpuMsPerReq.toFixed(3).padStart(15)}  ${x.driverCpuMsPerReq.toFixed(3).padStart(8)}  ${x.peerCpuMsPerReq.toFixed(3).padStart(16)}`);
  const med = (side, k) => {
    const v = rows.filter((x) => x.side === side).map((x) => x[k]).sort((a, b) => a - b);
    return v[Math.floor(v.length / 2)];
  };
  console.log(`median req/s: keystored ${med('keystored', 'rps').toFixed(0)}, aws-js ${med('aws-js', 'rps').toFixed(0)}, ratio ${(med('keystored', 'rps') / med('aws-js', 'rps')).toFixed(2)}`);
  console.log(`median work CPU ms/req: keystored ${med('keystored', 'workCpuMsPerReq').toFixed(3)}, aws-js ${med('aws-js', 'workCpuMsPerReq').toFixed(3)}, ratio ${(med('aws-js', 'workCpuMsPerReq') / med('keystored', 'workCpuMsPerReq')).toFixed(2)}x less CPU in keystored`);

  await stop();
}

main().catch((e) => { console.error(e); process.exit(1); });

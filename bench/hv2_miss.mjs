// hv2_miss.mjs - miss-path CPU per GetActiveBranchKey for an HV-2 key vs an HV-1 key in one run
// (issue 11 item 10; docs/reference/hv2.md section 7). keystored runs with cache capacity 0, so
// every get is a storage read + KMS Decrypt (DynamoDB Local and the KMS peer on loopback); HV-2
// adds the strict model check, a SHA-384 over the serialized branch key context and a
// constant-time compare. Rounds alternate HV-1 and HV-2 so machine noise hits both alike.
//
//   node bench/hv2_miss.mjs [requests=2000] [concurrency=16] [rounds=3]
import fs from 'node:fs';
import os from 'node:os';
import { startBench } from './lib/peers.mjs';

const N = Number(process.argv[2] || 2000);
const C = Number(process.argv[3] || 16);
const ROUNDS = Number(process.argv[4] || 3);
const TICK = 100; // USER_HZ

function cpuSecondsOf(pid) {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / TICK; // utime + stime
}

async function runLoad(fn) {
  let next = 0;
  const t0 = process.hrtime.bigint();
  async function worker() {
    while (next < N) {
      next++;
      await fn();
    }
  }
  await Promise.all(Array.from({ length: C }, worker));
  return { rps: N / (Number(process.hrtime.bigint() - t0) / 1e9) };
}

async function main() {
  const { ks, port, token, stop } = await startBench({
    threads: 8, table: 'BenchHv2', extraYaml: 'cache: {capacity: 0}\n',
  });
  const base = `http://127.0.0.1:${port}/v1/keystores/bench`;
  const headers = { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' };
  let r = await fetch(base, { method: 'PUT', headers });
  if (r.status !== 200) throw new Error(`CreateKeyStore: ${r.status} ${await r.text()}`);
  const ids = {};
  for (const hv of ['1', '2']) {
    // The same custom context on both, so the items differ only in their hierarchy version.
    r = await fetch(`${base}/branch-keys`, { method: 'POST', headers,
      body: JSON.stringify({ hierarchyVersion: hv, encryptionContext: { tenant: 'bench', region: 'eu' } }) });
    if (r.status !== 201) throw new Error(`CreateKey ${hv}: ${r.status} ${await r.text()}`);
    ids[hv] = (await r.json()).branchKeyIdentifier;
    const a = await (await fetch(`${base}/branch-keys/${ids[hv]}/active`, { headers })).json();
    if (a.hierarchyVersion !== hv) throw new Error(`key ${hv} reads as ${a.hierarchyVersion}`);
  }
  const get = (hv) => async () => {
    const res = await fetch(`${base}/branch-keys/${ids[hv]}/active`, { headers });
    if (res.status !== 200) throw new Error(`get: ${res.status}`);
    await res.arrayBuffer();
  };
  for (let i = 0; i < 200; i++) { await get('1')(); await get('2')(); }
  const rows = [];
  for (let round = 1; round <= ROUNDS; round++) {
    for (const hv of ['1', '2']) {
      const c0 = cpuSecondsOf(ks.pid);
      const res = await runLoad(get(hv));
      rows.push({ round, hv, rps: res.rps, cpuMs: ((cpuSecondsOf(ks.pid) - c0) * 1000) / N });
    }
  }
  console.log(`HV-2 vs HV-1 miss path: GetActiveBranchKey, ${N} requests x ${ROUNDS} rounds, concurrency ${C}, ${os.cpus().length} cores`);
  console.log('round  hv   req/s   keystored CPU ms/req');
  for (const x of rows)
    console.log(`${x.round}      ${x.hv}  ${x.rps.toFixed(0).padStart(6)}   ${x.cpuMs.toFixed(3).padStart(8)}`);
  const med = (hv) => {
    const v = rows.filter((x) => x.hv === hv).map((x) => x.cpuMs).sort((a, b) => a - b);
    return v[Math.floor(v.length / 2)];
  };
  console.log(`median keystored CPU ms/req: HV-1 ${med('1').toFixed(3)}, HV-2 ${med('2').toFixed(3)}, HV-2/HV-1 ${(med('2') / med('1')).toFixed(3)}`);
  await stop();
}

main().catch((e) => { console.error(e); process.exit(1); });

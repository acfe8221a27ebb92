// mutations.mjs - ApplyMutation throughput (issue 10 item 10; figures in bench/RESULTS.md).
//
//   KEYSTORED=./build/keystored node bench/mutations.mjs [--backend sqlite|dynamodb|all]
//       [--sizes 1000,5000,10000] [--baseline-sizes 1000,5000,10000]
//       [--strategies reencrypt,decrypt-encrypt] [--delay-ms 20] [--json FILE]
//
// Per backend (SQLite file, or a DynamoDB Local table), keystored runs with one AWS KMS
// relationship "kms" at the KMS test peer (tests/peers/kms-server.mjs), which delays every KMS
// request by --delay-ms (default 20 ms, a remote KMS's round trip), and one key store "bench" with
// the trust-storage system key. One branch key per size is made first (CreateKey + VersionKey
// until it has that many versions; the delay is off while they are made). Then, per strategy and
// size, one mutation is timed from InitializeMutation to the ApplyMutation answering
// "completed": true, with
//   - the defaults (page size and kms_in_flight as the key store's `mutations:` defaults), then
//   - the one-call-at-a-time baseline, `mutations: {kms_in_flight: 1}` (keystored restarted on
//     the same storage), for --baseline-sizes,
// and the ratio of the two per version is printed (each run adds a version, so the two runs of
// one size differ by a version or two). Each mutation changes only the key's encryption context
// ({"tier": "a"} <-> {"tier": "b"}), so the same key is mutated back and forth; reencrypt is
// {"reEncrypt": {"kmsRelationship": "kms"}}, decrypt-encrypt {"decryptEncrypt": {"decrypt":
// "kms", "encrypt": "kms"}}. A new ACTIVE version is written each time (doNotVersion false, the
// default), so a key has one version more per run: the table gives the count DescribeMutation
// reported. KMS calls per version are the peer's request count over the run divided by that.
//
// Prints one Markdown table (paste it into bench/RESULTS.md with the machine and the date).
// Needs the mutation routes (issue 10); it stops with a message when the server lacks them.

import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startKmsPeer, PEER_CREDENTIALS, PEER_REGION } from '../tests/http/lib/backends.mjs';
import { startServer } from '../tests/http/lib/server.mjs';

function parseArgs(argv) {
  const o = {
    backends: ['sqlite', 'dynamodb'], sizes: [1000, 5000, 10000], baselineSizes: null,
    strategies: ['reencrypt', 'decrypt-encrypt'], delayMs: 20, json: null,
  };
  const list = (s) => s.split(',').map((x) => x.trim()).filter(Boolean);
  for (let i = 0; i < argv.length; i++) {
    const [k, inline] = argv[i].split(/=(.*)/s);
    const v = inline !== undefined ? inline : argv[++i];
    if (v === undefined) throw new Error(`${k} needs a value`);
    if (k === '--backend') o.backends = v === 'all' ? ['sqlite', 'dynamodb'] : [v];
    else if (k === '--sizes') o.sizes = list(v).map(Number);
    else if (k === '--baseline-sizes') o.baselineSizes = list(v).map(Number);
    else if (k === '--strategies') o.strategies = list(v);
    else if (k === '--delay-ms') o.delayMs = Number(v);
    else if (k === '--json') o.json = v;
    else throw new Error(`unknown argument ${k}`);
  }
  o.baselineSizes ??= o.sizes;
  for (const b of o.backends) if (!['sqlite', 'dynamodb'].includes(b)) throw new Error(`unknown backend ${b}`);
  for (const s of o.strategies) if (!STRATEGIES[s]) throw new Error(`unknown strategy ${s}`);
  for (const n of [...o.sizes, ...o.baselineSizes]) if (!(Number.isInteger(n) && n > 0)) throw new Error(`bad size ${n}`);
  return o;
}

const STRATEGIES = {
  reencrypt: { reEncrypt: { kmsRelationship: 'kms' } },
  'decrypt-encrypt': { decryptEncrypt: { decrypt: 'kms', encrypt: 'kms' } },
};

// ---- keystored on the peers --------------------------------------------------------------------

function storageYaml(backend, dir, ddb, table) {
  if (backend === 'sqlite') return `    storage: {type: sqlite, path: ${dir}/bench.db}\n`;
  return `    storage: {type: dynamodb, table: ${table}, region: ${PEER_REGION}, endpoint: ${ddb.endpoint},\n` +
    `              credentials: {source: static, access_key_id: ${PEER_CREDENTIALS.accessKeyId}, ` +
    `secret_access_key: ${PEER_CREDENTIALS.secretAccessKey}}}\n`;
}

function configYaml(env, kmsInFlight) {
  const mutations = kmsInFlight ? `    mutations: {kms_in_flight: ${kmsInFlight}}\n` : '';
  return `listen: 127.0.0.1:0
kms_relationships:
  - name: kms
    type: aws
    region: ${PEER_REGION}
    endpoint: ${env.kms.endpoint}
    credentials: {source: static, access_key_id: ${PEER_CREDENTIALS.accessKeyId}, secret_access_key: ${PEER_CREDENTIALS.secretAccessKey}}
    kms_configuration: {kms_key_arn: "${env.arn}"}
key_stores:
  - name: bench
    logical_key_store_name: bench-logical
    kms_relationship: kms
${env.storage}${mutations}tenants:
  - {name: bench, token_sha256: "${crypto.createHash('sha256').update(env.token).digest('hex')}", role: admin, key_stores: [bench], kms_relationships: [kms]}
`;
}

async function startKeystored(env, kmsInFlight) {
  const cfg = path.join(env.dir, `keystored-${kmsInFlight || 'default'}.yaml`);
  fs.writeFileSync(cfg, configYaml(env, kmsInFlight), { mode: 0o600 });
  const srv = await startServer(['--config', cfg], `bench mutations (${env.backend})`);
  const api = async (method, p, body) => {
    const r = await fetch(srv.base + p, {
      method,
      headers: { Authorization: `Bearer ${env.token}`, ...(body ? { 'Content-Type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
      signal: AbortSignal.timeout(600000),
    });
    const text = await r.text();
    let json;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: r.status, json, text };
  };
  return { srv, api };
}

function must(r, status, what) {
  if (r.status !== status) throw new Error(`${what}: HTTP ${r.status} ${r.text.slice(0, 300)}`);
  return r.json;
}

const keyPath = (id, s = '') => `/v1/keystores/bench/branch-keys/${encodeURIComponent(id)}${s}`;

// CreateKey + VersionKey until the key has n versions (sequential: VersionKey on one key races).
async function makeKey(api, id, n) {
  must(await api('POST', '/v1/keystores/bench/branch-keys',
    { branchKeyIdentifier: id, encryptionContext: { tier: 'a' } }), 201, `create ${id}`);
  for (let i = 1; i < n; i++) must(await api('POST', keyPath(id, '/versions')), 201, `version ${i} of ${id}`);
}

// ---- one timed mutation ------------------------------------------------------------------------

async function kmsCount(env) {
  return (await env.kms.admin('GET', '/__admin/counts')).total;
}

async function timeMutation(env, api, id, strategy) {
  const tier = env.tiers.get(id) === 'a' ? 'b' : 'a';
  const calls0 = await kmsCount(env);
  const t0 = process.hrtime.bigint();
  const init = must(await api('POST', keyPath(id, '/mutation'),
    { terminalEncryptionContext: { tier }, strategy: STRATEGIES[strategy] }), 201, `initialize ${id}`);
  const d = must(await api('GET', keyPath(id, '/mutation')), 200, `describe ${id}`);
  const versions = d.versions.original + d.versions.terminal;
  let token = init.mutationToken;
  let pages = 0;
  for (;;) {
    const r = must(await api('POST', keyPath(id, '/mutation/apply'),
      { mutationToken: token, strategy: STRATEGIES[strategy] }), 200, `apply page ${pages + 1} of ${id}`);
    pages++;
    if (r.completed) break;
    token = r.mutationToken || token;
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const calls = (await kmsCount(env)) - calls0;
  env.tiers.set(id, tier);
  return { versions, pages, seconds, kmsPerVersion: calls / versions };
}

// ---- one backend -------------------------------------------------------------------------------

async function setUp(backend, o) {
  const env = { backend, dir: fs.mkdtempSync(path.join(os.tmpdir(), `bench-mut-${backend}-`)), tiers: new Map() };
  env.token = `ks_bench_${crypto.randomBytes(24).toString('hex')}`;
  env.kms = await startKmsPeer();
  env.arn = (await env.kms.admin('POST', '/__admin/keys', { region: PEER_REGION })).arn;
  if (backend === 'dynamodb') {
    const { startDynamoDBLocal } = await import('../tests/peers/dynamodb-local.mjs');
    env.ddb = await startDynamoDBLocal({ timeoutMs: 120000, log: { write() {} } });
  }
  env.storage = storageYaml(backend, env.dir, env.ddb, `bench-mutations-${process.pid}`);
  return env;
}

async function tearDown(env) {
  await Promise.allSettled([env.kms && env.kms.stop(), env.ddb && env.ddb.stop()]);
  fs.rmSync(env.dir, { recursive: true, force: true });
}

async function makeKeys(env, o) {
  const { srv, api } = await startKeystored(env, 0);
  try {
    must(await api('PUT', '/v1/keystores/bench'), 200, 'CreateKeyStore');
    const probe = await api('GET', keyPath('probe', '/mutation'));
    if (probe.status === 404 && probe.json?.error?.type === 'NotFoundException')
      throw new Error('this keystored has no mutation routes (issue 10 not merged): nothing to measure');
    const sizes = [...new Set([...o.sizes, ...o.baselineSizes])];
    const t0 = Date.now();
    await env.kms.admin('POST', '/__admin/delay', { ms: 0 });
    await Promise.all(sizes.map((n) => makeKey(api, `bench-${n}`, n)));
    for (const n of sizes) env.tiers.set(`bench-${n}`, 'a');
    console.error(`[${env.backend}] keys with ${sizes.join(', ')} versions made in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  } catch (e) {
    e.message += `\nkeystored's last log lines:\n${srv.stderr().slice(-3000)}`;
    throw e;
  } finally {
    await srv.stop();
  }
}

// All runs of one configuration (kmsInFlight 0: the defaults) on one keystored.
async function runConfig(env, o, kmsInFlight, sizes) {
  const out = [];
  const { srv, api } = await startKeystored(env, kmsInFlight);
  try {
    await env.kms.admin('POST', '/__admin/delay', { ms: o.delayMs });
    for (const strategy of o.strategies) {
      for (const n of sizes) {
        const r = await timeMutation(env, api, `bench-${n}`, strategy);
        const row = { backend: env.backend, strategy, size: n, kmsInFlight: kmsInFlight || 'default', ...r };
        console.error(`[${env.backend}] ${strategy} ${r.versions} versions, kms_in_flight ${row.kmsInFlight}: ` +
          `${r.seconds.toFixed(2)} s, ${r.pages} pages, ${r.kmsPerVersion.toFixed(2)} KMS calls/version`);
        out.push(row);
      }
    }
  } catch (e) {
    e.message += `\nkeystored's last log lines:\n${srv.stderr().slice(-3000)}`;
    throw e;
  } finally {
    await env.kms.admin('POST', '/__admin/delay', { ms: 0 }).catch(() => {});
    await srv.stop();
  }
  return out;
}

function table(rows, o) {
  const lines = [
    `KMS test peer delay ${o.delayMs} ms per call; trust-storage system key; default page size and kms_in_flight vs kms_in_flight 1`,
    '',
    '| backend | strategy | versions | pages | total (s) | versions/s | KMS calls/version | one at a time: versions, s | speed-up per version |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of rows.filter((x) => x.kmsInFlight === 'default')) {
    const b = rows.find((x) => x.kmsInFlight === 1 && x.backend === r.backend && x.strategy === r.strategy && x.size === r.size);
    lines.push(`| ${r.backend} | ${r.strategy} | ${r.versions} | ${r.pages} | ${r.seconds.toFixed(2)} | ` +
      `${(r.versions / r.seconds).toFixed(0)} | ${r.kmsPerVersion.toFixed(2)} | ` +
      `${b ? `${b.versions}, ${b.seconds.toFixed(1)}` : 'not run'} | ` +
      `${b ? `${((b.seconds / b.versions) / (r.seconds / r.versions)).toFixed(1)}x` : '-'} |`);
  }
  return lines.join('\n');
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const rows = [];
  for (const backend of o.backends) {
    const env = await setUp(backend, o);
    try {
      await makeKeys(env, o);
      rows.push(...await runConfig(env, o, 0, o.sizes));
      rows.push(...await runConfig(env, o, 1, o.baselineSizes));
    } finally {
      await tearDown(env);
    }
  }
  if (o.json) fs.writeFileSync(o.json, JSON.stringify(rows, null, 2));
  console.log(table(rows, o));
}

main().then(() => process.exit(0), (e) => {
  console.error(`bench/mutations.mjs: ${e && e.stack ? e.stack : e}`);
  process.exit(1);
});

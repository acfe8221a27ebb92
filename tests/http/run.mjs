#!/usr/bin/env node
// run.mjs - the HTTP-level suite of keystored (docs/style.md "Tests"; curl's tests/data is the model).
//
//   KEYSTORED=./build/keystored node tests/http/run.mjs [--backend sqlite|dynamodb|all]
//   (make http; make asan uses build-asan)
//
// Runs once per backend pair (lib/backends.mjs; default all: sqlite, then dynamodb):
//   sqlite:   local KMS relationships + SQLite key stores;
//   dynamodb: AWS KMS relationships at the KMS test peer + DynamoDB Local tables (both peers
//             started once, on loopback, for the whole dynamodb run).
// For each backend:
// 1. Starts keystored with a generated config in a fresh temp dir on port 0, runs every
//    tests/http/cases/*.json in name order (one test per step; backend-specific values reach
//    the cases as variables), then the VersionKey race on the same server, stops it with
//    SIGTERM (exit 0 expected) and checks its access log.
// 2. Programmatic suites, each on its own server(s): tamper, hierarchy version 2 (hv2.mjs), keyring, mutations (mutations.mjs:
//    every error row, concurrency, SIGKILL crash safety), inventory and scheduled rotation with
//    two instances on one store (inventory.mjs), graceful shutdown; sqlite only:
//    key file, --check-config, embedded default, shared cache, the log (log.mjs),
//    readiness and connection limits (limits.mjs), the README walkthrough, keystorectl
//    (cli.mjs, build/keystorectl next to KEYSTORED); dynamodb only: two
//    instances on one table (multi.mjs), with and without KMS throttling.
// 3. Once: no keystored process may have printed a sanitizer report.
// Prints one line per test (prefixed [backend]), the counts per backend, and a final
// "N passed, N failed"; exits 1 on any failure.
// Node 18+ built-ins, plus @aws-sdk/client-dynamodb and the peers' packages for dynamodb.

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Harness, assert, assertEq } from './lib/harness.mjs';
import { Recorder, makeApi } from './lib/http.mjs';
import { runCaseFile } from './lib/cases.mjs';
import {
  KEYSTORED, accessLines, allProcessOutputs, sanitizerFindings, startServer, tempDirs,
} from './lib/server.mjs';
import { BACKENDS, makeBackend } from './lib/backends.mjs';
import { runMultiInstance } from './multi.mjs';
import { runCreateRace, runRace } from './race.mjs';
import { runTamper } from './tamper.mjs';
import { runHv2 } from './hv2.mjs';
import { runConfigCheck, runEmbedded, runKeyFile } from './startup.mjs';
import { runShutdown } from './shutdown.mjs';
import { runCache } from './cache.mjs';
import { runReload } from './reload.mjs';
import { runWalkthrough } from './walkthrough.mjs';
import { runLog } from './log.mjs';
import { runLimits, waitReadyz } from './limits.mjs';
import { runCli, runCliScripted } from './cli.mjs';
import { runKeyring } from './keyring.mjs';
import { runMutationCrash, runMutations, runMutationsHv2 } from './mutations.mjs';
import { runInventory, runScheduledRotation } from './inventory.mjs';
import { runFaults } from './faults.mjs';
import { runAudit } from './audit.mjs';
import { runSecretScan } from './lib/secrets.mjs';
import { runTls } from './tls.mjs';
import { runProxy } from './proxy.mjs';
import { runRateLimits } from './ratelimit.mjs';
import { runMetrics } from './metrics.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '..', '..');
const h = new Harness();

async function guarded(name, fn) {
  try {
    await fn();
  } catch (e) {
    h.fail(name, `aborted: ${e && e.stack ? e.stack : e}`);
  }
}

async function mainServerSuite(backend) {
  h.section(`[${backend.name}] declarative cases (tests/http/cases)`);
  // Probes every 200 ms: /readyz answers from the background probes' last result.
  const setup = backend.makeSetup('main', 'server:\n  readiness_interval_ms: 200');
  fs.appendFileSync(setup.configPath, `audit:\n  path: ${setup.dir}/audit.log\n`); // secret grep
  let srv;
  try {
    srv = await startServer(['--config', setup.configPath], `main (${backend.name})`);
  } catch (e) {
    h.fail('main server: start', e.message);
    return;
  }
  const recorder = new Recorder();
  const ctx = {
    harness: h, host: srv.host, port: srv.port, tokens: setup.tokens, recorder,
    vars: { ...backend.caseVars(setup), readerToken: setup.tokens.reader },
  };
  if (backend.name === 'dynamodb') {
    // SQLite makes its tables when the server opens the file; a DynamoDB table exists only once
    // CreateKeyStore made it (before that /readyz says storage:<ks> unavailable and every item
    // operation is 502 ResourceNotFoundException). The cases start with /readyz, so the tables
    // are made first, by the server itself; 20-keystores.json then checks PUT on existing tables.
    await h.test('create the key stores\' tables first: PUT /v1/keystores/default and /other -> 200', async () => {
      const api = makeApi(srv.base, recorder);
      for (const ks of ['default', 'other']) {
        const r = await api('PUT', `/v1/keystores/${ks}`, { token: setup.tokens.admin });
        assertEq(r.status, 200, `PUT ${ks} (${r.text.slice(0, 200)})`);
      }
    });
  }
  // /readyz reports what the background probes last found: "starting" until each dependency has
  // been probed once (and, for DynamoDB, unavailable until the round after CreateKeyStore).
  await h.test('readiness: /readyz turns 200 once every dependency has been probed', async () => {
    const r = await waitReadyz(makeApi(srv.base, recorder), (x) => x.status === 200, 10000);
    assertEq(r.status, 200, `readyz (${r.text.slice(0, 300)})`);
  });
  const dir = path.join(here, 'cases');
  const files = fs.readdirSync(dir).filter((f) => f.endsWith('.json')).sort();
  for (const f of files) {
    let doc;
    try {
      doc = JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8'));
    } catch (e) {
      h.fail(f, `cannot parse: ${e.message}`);
      continue;
    }
    await guarded(f, () => runCaseFile(f, doc, ctx));
  }

  h.section(`[${backend.name}] VersionKey race (16 clients x 50 rounds)`);
  const raceArgs = { api: makeApi(srv.base, recorder), tokens: setup.tokens, store: backend.store(setup) };
  await guarded('race', () => runRace(h, raceArgs));
  await guarded('create race', () => runCreateRace(h, raceArgs));

  h.section(`[${backend.name}] main server: shutdown and access log`);
  let info;
  await h.test('main server: SIGTERM -> exit 0', async () => {
    info = await srv.stop();
    assertEq(info.code, 0, `exit code (signal ${info.signal})`);
  });
  const stderr = srv.stderr();
  const lines = accessLines(stderr);
  await h.test('access log: one JSON line per response, with method, route, status, latencyMs, tenant, requestId', async () => {
    const byId = new Map();
    for (const l of lines) {
      for (const [k, t] of [['method', 'string'], ['route', 'string'], ['status', 'number'],
        ['latencyMs', 'number'], ['tenant', 'string'], ['requestId', 'string']])
        assert(typeof l[k] === t, `access line without ${k} (${t}): ${JSON.stringify(l)}`);
      if (!byId.has(l.requestId)) byId.set(l.requestId, []);
      byId.get(l.requestId).push(l);
    }
    const problems = [];
    for (const r of recorder.responses) {
      const ls = byId.get(r.requestId) || [];
      if (!ls.some((l) => l.status === r.status && l.method === r.method))
        problems.push(`${r.method} ${r.status} ${r.requestId}: ${ls.length ? JSON.stringify(ls) : 'no line'}`);
    }
    assert(problems.length === 0, `${problems.length} responses without a matching line, e.g.\n${problems.slice(0, 5).join('\n')}`);
    assertEq(lines.length, recorder.responses.length, 'access lines = responses received');
  });
  await h.test('access log: tenant names the caller; route is the pattern, never the raw path', async () => {
    assert(lines.some((l) => l.tenant === 'admin') && lines.some((l) => l.tenant === 'reader'), 'tenants');
    for (const l of lines)
      assert(l.route === '-' || /^\/[A-Za-z0-9/{}._-]*$/.test(l.route) && !/tamper|custom|%/.test(l.route),
        `route is not a pattern: ${l.route}`);
  });
  await h.test('access log: no line contains a token or a key returned in the run', async () => {
    const secrets = [...Object.values(setup.tokens), ...recorder.secrets];
    assert(recorder.secrets.size > 10, `only ${recorder.secrets.size} keys recorded`);
    for (const line of stderr.split('\n'))
      for (const s of secrets) assert(!line.includes(s), `stderr line contains a secret: ${line.slice(0, 200)}`);
  });
}

function parseBackends(argv) {
  let which = 'all';
  for (let i = 0; i < argv.length; i++) {
    const m = /^--backend(?:=(.*))?$/.exec(argv[i]);
    if (m) which = m[1] !== undefined ? m[1] : argv[++i];
    else throw new Error(`unknown argument ${argv[i]} (usage: run.mjs [--backend sqlite|dynamodb|all])`);
  }
  if (which === 'all') return BACKENDS;
  if (!BACKENDS.includes(which)) throw new Error(`unknown backend ${which} (sqlite | dynamodb | all)`);
  return [which];
}

async function backendSuite(backend) {
  h.section(`[${backend.name}] backend`);
  const started = backend.name === 'sqlite' || await h.test(
    'start the KMS peer and DynamoDB Local (loopback), create one KMS key per relationship', async () => {
    const t0 = Date.now();
    await backend.start();
    if (backend.kms) console.log(`     KMS peer ${backend.kms.endpoint}, DynamoDB Local ${backend.ddb.endpoint} (${Date.now() - t0} ms); keys ${JSON.stringify(backend.keyArns)}`);
  });
  if (!started) {
    await backend.stop().catch(() => {});
    return;
  }
  try {
    await guarded('main server suite', () => mainServerSuite(backend));
    h.section(`[${backend.name}] tamper`);
    await guarded('tamper', () => runTamper(h, backend));
    h.section(`[${backend.name}] hierarchy version 2: mixed store, tamper matrix`);
    await guarded('hv2', () => runHv2(h, backend));
    h.section(`[${backend.name}] keyring: body caps, batch limits, reads per version, failures`);
    await guarded('keyring', () => runKeyring(h, backend));
    h.section(`[${backend.name}] mutations`);
    await guarded('mutations', () => runMutations(h, backend));
    h.section(`[${backend.name}] mutations: crash safety (SIGKILL during a paged mutation)`);
    await guarded('mutation crash', () => runMutationCrash(h, backend));
    h.section(`[${backend.name}] mutations: hierarchy version 2 (mixed store, HV-1 -> HV-2, HV-2 -> new KMS key)`);
    await guarded('hv2 mutations', () => runMutationsHv2(h, backend));
    h.section(`[${backend.name}] mutations: crash safety of an HV-1 -> HV-2 mutation`);
    // 60 versions in pages of 2: 30 pages, more than 8 kills of at most ~3 pages each can finish,
    // so that every kill can land inside the mutation (30 versions sometimes completed first).
    await guarded('hv2 mutation crash', () => runMutationCrash(h, backend, { versions: 60, kills: 8, tag: 'hv2-crash',
      extraBody: { terminalHierarchyVersion: '2' } }));
    h.section(`[${backend.name}] inventory: list keys and versions`);
    await guarded('inventory', () => runInventory(h, backend));
    h.section(`[${backend.name}] scheduled rotation: two instances on one store`);
    await guarded('scheduled rotation', () => runScheduledRotation(h, backend));
    h.section(`[${backend.name}] graceful shutdown`);
    await guarded('shutdown', () => runShutdown(h, backend));
    h.section(`[${backend.name}] faults: ${backend.name === 'sqlite' ? 'KMS' : 'DynamoDB'} down, slow, throttled, 500, garbage; SIGKILL during VersionKey`);
    await guarded('faults', () => runFaults(h, backend));
    if (backend.name === 'sqlite') {
      h.section('[sqlite] key file');
      await guarded('key file', () => runKeyFile(h));
      h.section('[sqlite] --check-config');
      await guarded('check-config', () => runConfigCheck(h));
      h.section('[sqlite] embedded default');
      await guarded('embedded', () => runEmbedded(h));
      h.section('[sqlite] shared cache');
      await guarded('cache', () => runCache(h));
      h.section('[sqlite] reload: SIGHUP and POST /v1/admin/reload');
      await guarded('reload', () => runReload(h));
      h.section('[sqlite] log: hostile requests, URI and header caps, every line parsed');
      await guarded('log', () => runLog(h));
      h.section('[sqlite] readiness and connection limits');
      await guarded('limits', () => runLimits(h));
      h.section('[sqlite] rate limits, in-flight cap, slow clients');
      await guarded('rate limits', () => runRateLimits(h));
      h.section('[sqlite] metrics: counters, histogram, roles, promtool');
      await guarded('metrics', () => runMetrics(h));
      h.section('[sqlite] README walkthrough');
      await guarded('walkthrough', () => runWalkthrough(h, repoRoot));
      h.section('[sqlite] audit log: fields, fail closed, SIGHUP reopen');
      await guarded('audit', () => runAudit(h));
      h.section('[sqlite] keystorectl');
      await guarded('keystorectl', () => runCli(h));
      await guarded('keystorectl (scripted server)', () => runCliScripted(h));
      h.section('[sqlite] TLS served directly (server.tls)');
      await guarded('tls', () => runTls(h));
      h.section('[sqlite] behind nginx (deploy/nginx.conf): two instances, one killed under load');
      await guarded('proxy', () => runProxy(h));
    }
    if (backend.name === 'dynamodb') {
      h.section('[dynamodb] two instances, one table');
      await guarded('multi-instance', () => runMultiInstance(h, backend));
    }
  } finally {
    await backend.stop();
  }
}

async function main() {
  const t0 = Date.now();
  const names = parseBackends(process.argv.slice(2));
  const counts = [];
  if (!fs.existsSync(KEYSTORED)) {
    console.log(`keystored binary not found: ${KEYSTORED} (run make first)`);
    h.fail('setup', `no ${KEYSTORED}`);
  } else {
    console.log(`keystored: ${KEYSTORED}; backends: ${names.join(', ')}`);
    for (const name of names) {
      const p0 = h.passed, f0 = h.failed, b0 = Date.now();
      h.prefix = `[${name}] `;
      await guarded(`${name} backend`, () => backendSuite(makeBackend(name)));
      counts.push({ name, passed: h.passed - p0, failed: h.failed - f0, ms: Date.now() - b0 });
      h.prefix = '';
    }
    h.section('sanitizers');
    const p0 = h.passed, f0 = h.failed;
    await h.test('no keystored process printed a sanitizer report', async () => {
      const found = allProcessOutputs
        .map(({ label, out }) => ({ label, f: sanitizerFindings(out.text), text: out.text }))
        .filter((x) => x.f.length);
      if (found.length) {
        const first = found[0];
        const at = first.text.indexOf(first.f[0]);
        throw new Error(`${found.map((x) => `${x.label}: ${x.f.join(', ')}`).join('; ')}\n` +
          first.text.slice(Math.max(0, at - 200), at + 3000));
      }
    });
    await runSecretScan(h, allProcessOutputs, tempDirs);
    counts.push({ name: 'common', passed: h.passed - p0, failed: h.failed - f0 });
  }
  if (h.failures.length) {
    console.log('\nfailures:');
    for (const f of h.failures) console.log(`  - ${f.name}`);
    console.log(`temp dirs kept: ${tempDirs.length ? path.dirname(tempDirs[0]) + '/keystored-http-*' : '-'}`);
  } else {
    for (const d of tempDirs) fs.rmSync(d, { recursive: true, force: true });
  }
  console.log('');
  for (const c of counts)
    console.log(`${c.name}: ${c.passed} passed, ${c.failed} failed${c.ms !== undefined ? ` (${(c.ms / 1000).toFixed(1)} s)` : ''}`);
  console.log(`total time ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  console.log(`\n${h.passed} passed, ${h.failed} failed`);
  process.exit(h.failed ? 1 : 0);
}

main().catch((e) => {
  console.log(`runner crashed: ${e && e.stack ? e.stack : e}`);
  console.log(`${h.passed} passed, ${h.failed + 1} failed`);
  process.exit(1);
});

#!/usr/bin/env node
// run.mjs - the HTTP-level suite of keystored (STYLE.md "Tests"; curl's tests/data is the model).
//
//   KEYSTORED=./build/keystored node tests/http/run.mjs     (make http; make asan uses build-asan)
//
// 1. Starts keystored with a generated config in a fresh temp dir on port 0, runs every
//    tests/http/cases/*.json in name order (one test per step), then the VersionKey race on the
//    same server, stops it with SIGTERM (exit 0 expected) and checks its access log.
// 2. Programmatic suites, each on its own server(s): tamper, key file, --check-config, embedded
//    default, graceful shutdown, the README walkthrough.
// 3. No keystored process may have printed a sanitizer report.
// Prints one line per test and a final "N passed, N failed"; exits 1 on any failure.
// Node 18+ built-ins only.

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Harness, assert, assertEq } from './lib/harness.mjs';
import { Recorder, makeApi } from './lib/http.mjs';
import { runCaseFile } from './lib/cases.mjs';
import {
  KEYSTORED, accessLines, allProcessOutputs, makeSuiteSetup, sanitizerFindings, startServer, tempDirs,
} from './lib/server.mjs';
import { runCreateRace, runRace } from './race.mjs';
import { runTamper } from './tamper.mjs';
import { runConfigCheck, runEmbedded, runKeyFile } from './startup.mjs';
import { runShutdown } from './shutdown.mjs';
import { runWalkthrough } from './walkthrough.mjs';

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

async function mainServerSuite() {
  h.section('declarative cases (tests/http/cases)');
  const setup = makeSuiteSetup('main');
  let srv;
  try {
    srv = await startServer(['--config', setup.configPath], 'main');
  } catch (e) {
    h.fail('main server: start', e.message);
    return;
  }
  const recorder = new Recorder();
  const ctx = {
    harness: h, host: srv.host, port: srv.port, tokens: setup.tokens, recorder,
    vars: { dir: setup.dir, readerToken: setup.tokens.reader },
  };
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

  h.section('VersionKey race (16 clients x 50 rounds)');
  const raceArgs = { api: makeApi(srv.base, recorder), tokens: setup.tokens, dir: setup.dir };
  await guarded('race', () => runRace(h, raceArgs));
  await guarded('create race', () => runCreateRace(h, raceArgs));

  h.section('main server: shutdown and access log');
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

async function main() {
  if (!fs.existsSync(KEYSTORED)) {
    console.log(`keystored binary not found: ${KEYSTORED} (run make first)`);
    h.fail('setup', `no ${KEYSTORED}`);
  } else {
    console.log(`keystored: ${KEYSTORED}`);
    await guarded('main server suite', mainServerSuite);
    h.section('tamper');
    await guarded('tamper', () => runTamper(h));
    h.section('key file');
    await guarded('key file', () => runKeyFile(h));
    h.section('--check-config');
    await guarded('check-config', () => runConfigCheck(h));
    h.section('embedded default');
    await guarded('embedded', () => runEmbedded(h));
    h.section('graceful shutdown');
    await guarded('shutdown', () => runShutdown(h));
    h.section('README walkthrough');
    await guarded('walkthrough', () => runWalkthrough(h, repoRoot));
    h.section('sanitizers');
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
  }
  if (h.failures.length) {
    console.log('\nfailures:');
    for (const f of h.failures) console.log(`  - ${f.name}`);
    console.log(`temp dirs kept: ${tempDirs.length ? path.dirname(tempDirs[0]) + '/keystored-http-*' : '-'}`);
  } else {
    for (const d of tempDirs) fs.rmSync(d, { recursive: true, force: true });
  }
  console.log(`\n${h.passed} passed, ${h.failed} failed`);
  process.exit(h.failed ? 1 : 0);
}

main().catch((e) => {
  console.log(`runner crashed: ${e && e.stack ? e.stack : e}`);
  console.log(`${h.passed} passed, ${h.failed + 1} failed`);
  process.exit(1);
});

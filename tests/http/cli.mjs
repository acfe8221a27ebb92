// cli.mjs - keystorectl (cli/, README "keystorectl") against a real keystored (SQLite backend):
// every endpoint through the client, its output compared with what the server answers to a
// direct request, the error paths (exit 1 with the HTTP status and error.type on stderr, exit 2
// for usage errors, exit 3 when no server answers) and the token rules (never on argv, from
// KEYSTORED_TOKEN or --token-file, never printed).
//
// The mutation commands (mutate, mutation init|apply|show|abort) need the mutation routes
// (issue 10). A probe asks the server for GET .../mutation first: when the router does not
// know the route, the mutation tests are not run and a loud "SKIPPED: mutation routes absent"
// line says so (it is not counted as a pass).
//
// The binary: KEYSTORECTL, else keystorectl next to KEYSTORED (build/ or build-asan/).

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { assert, assertEq } from './lib/harness.mjs';
import { makeApi } from './lib/http.mjs';
import { KEYSTORED, makeSuiteSetup, sanitizerFindings, startServer } from './lib/server.mjs';
import { waitReadyz } from './limits.mjs';

export const KEYSTORECTL = process.env.KEYSTORECTL || path.join(path.dirname(KEYSTORED), 'keystorectl');

/*
 * Runs keystorectl with args; env replaces the suite's defaults (URL, token) member by member,
 * a member set to undefined is removed. onStderr(text so far, child) sees stderr as it comes;
 * onSpawn(child) gets the process as soon as it runs; input (a string) is its stdin.
 * Resolves {code, signal, stdout, stderr, json (stdout parsed, or undefined)}.
 */
export function ctl(args, env = {}, { onStderr, onSpawn, input, timeoutMs = 120000 } = {}) {
  return new Promise((resolve, reject) => {
    const full = { ...process.env };
    delete full.KEYSTORED_TOKEN;
    delete full.KEYSTORED_URL;
    for (const [k, v] of Object.entries(env)) {
      if (v === undefined) delete full[k];
      else full[k] = v;
    }
    const child = spawn(KEYSTORECTL, args, { env: full, stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    if (input !== undefined) {
      child.stdin.on('error', () => {}); // EPIPE when keystorectl exits without reading it
      child.stdin.end(input);
    }
    if (onSpawn) onSpawn(child);
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => {
      stderr += d;
      if (onStderr) onStderr(stderr, child);
    });
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      let json;
      try {
        json = JSON.parse(stdout);
      } catch {
        json = undefined;
      }
      resolve({ code, signal, stdout, stderr, json });
    });
  });
}

function expectExit(r, code, what) {
  // under `make asan` keystorectl is the sanitizer build too: a report fails the test
  const found = sanitizerFindings(r.stderr);
  assert(found.length === 0, `${what}: keystorectl printed a sanitizer report (${found.join(', ')}):\n${r.stderr.slice(0, 3000)}`);
  assert(r.code === code,
    `${what}: exit ${r.code} (signal ${r.signal}), expected ${code}\nstdout: ${r.stdout.slice(0, 500)}\nstderr: ${r.stderr.slice(0, 800)}`);
}

// exit 1 and "HTTP <status> <type>" on stderr.
function expectServerError(r, status, type, what) {
  expectExit(r, 1, what);
  assert(r.stderr.includes(`HTTP ${status} ${type}`), `${what}: stderr lacks "HTTP ${status} ${type}": ${r.stderr}`);
  assertEq(r.stdout, '', `${what}: stdout`);
}

function expectUsage(r, what, pattern) {
  expectExit(r, 2, what);
  if (pattern) assert(pattern.test(r.stderr), `${what}: stderr does not match ${pattern}: ${r.stderr}`);
}

export async function runCli(h) {
  const ok = await h.test(`cli: ${KEYSTORECTL} exists (make builds it)`, async () => {
    assert(fs.existsSync(KEYSTORECTL), `no ${KEYSTORECTL}: run make`);
  });
  if (!ok) return;
  const setup = makeSuiteSetup('cli', 'server:\n  readiness_interval_ms: 200');
  let srv;
  try {
    srv = await startServer(['--config', setup.configPath], 'cli');
  } catch (e) {
    h.fail('cli: start the server', e.message);
    return;
  }
  try {
    const t = setup.tokens;
    const base = { KEYSTORED_URL: srv.base, KEYSTORED_TOKEN: t.admin };
    const api = makeApi(srv.base);
    const run = (args, env = {}, opts) => ctl(args, { ...base, ...env }, opts);
    await systemTests(h, run, api);
    await keyTests(h, run, api, t);
    await errorTests(h, run, t, setup, srv);
    await keyringTests(h, run, setup);
    await mutationTests(h, run, api, t);
  } finally {
    const info = await srv.stop();
    await h.test('cli: server exits 0', async () => assertEq(info.code, 0, 'exit code'));
  }
  await readyUnavailable(h);
}

// A KMS relationship at a closed port: /readyz is 503, `ready` exits 1 and still shows the checks.
async function readyUnavailable(h) {
  const setup = makeSuiteSetup('cli-unready', 'server:\n  readiness_interval_ms: 200');
  const cfg = setup.configPath;
  fs.writeFileSync(cfg, fs.readFileSync(cfg, 'utf8').replace('kms_relationships:\n', 'kms_relationships:\n' +
    '  - name: dead\n    type: aws\n    region: us-west-2\n    endpoint: http://127.0.0.1:1\n' +
    '    credentials:\n      source: static\n      access_key_id: AKIAIOSFODNN7EXAMPLE\n' +
    '      secret_access_key: wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n    kms_configuration:\n' +
    '      kms_key_arn: "arn:aws:kms:us-west-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"\n'));
  let srv;
  try {
    srv = await startServer(['--config', cfg], 'cli (unready)');
  } catch (e) {
    h.fail('cli: start a server with an unreachable KMS', e.message);
    return;
  }
  try {
    await h.test('cli: ready with a dependency down -> exit 1, "HTTP 503" on stderr, the checks on stdout', async () => {
      const r = await ctl(['ready', '--compact'], { KEYSTORED_URL: srv.base });
      expectExit(r, 1, 'ready');
      assert(/^keystorectl: HTTP 503\n$/.test(r.stderr), `stderr: ${r.stderr}`);
      assert(r.json && r.json.checks && r.json.checks['kms:dead'] !== 'ok', `stdout: ${r.stdout}`);
    });
  } finally {
    await srv.stop();
  }
}

async function systemTests(h, run, api) {
  await h.test('cli: health -> exit 0, the server\'s JSON on stdout', async () => {
    const r = await run(['health']);
    expectExit(r, 0, 'health');
    assertEq(r.json, (await api('GET', '/healthz')).json, 'health body');
  });
  await h.test('cli: ready -> exit 0 once the probes ran ({"status":"ready"})', async () => {
    await waitReadyz(api, (x) => x.status === 200, 10000);
    const r = await run(['ready']);
    expectExit(r, 0, 'ready');
    assertEq(r.json.status, 'ready', 'status');
  });
  await h.test('cli: metrics -> exit 0, the Prometheus text as it came', async () => {
    const r = await run(['metrics']);
    expectExit(r, 0, 'metrics');
    assert(/^# HELP keystored_/m.test(r.stdout), `no keystored_ metric: ${r.stdout.slice(0, 200)}`);
  });
  await h.test('cli: openapi -> exit 0, the document', async () => {
    const r = await run(['openapi']);
    expectExit(r, 0, 'openapi');
    assertEq(r.stdout, (await api('GET', '/v1/openapi.yaml')).text, 'document');
  });
}

async function keyTests(h, run, api, t) {
  const auth = { token: t.admin };
  await h.test('cli: keystore create default -> exit 0, {tableArn}', async () => {
    const r = await run(['keystore', 'create', 'default']);
    expectExit(r, 0, 'keystore create');
    assert(/^sqlite:.*ks\.db$/.test(r.json.tableArn), `tableArn ${r.json.tableArn}`);
  });
  await h.test('cli: keystore show default [--kms-relationship local2] = GET /v1/keystores/default', async () => {
    const r = await run(['keystore', 'show', 'default']);
    expectExit(r, 0, 'keystore show');
    assertEq(r.json, (await api('GET', '/v1/keystores/default', auth)).json, 'body');
    const r2 = await run(['keystore', 'show', 'default', '--kms-relationship', 'local2']);
    expectExit(r2, 0, 'keystore show --kms-relationship');
    assertEq(r2.json.kmsRelationship, 'local2', 'relationship');
  });
  await h.test('cli: pretty by default (several lines), --compact one line, same JSON', async () => {
    const p = await run(['keystore', 'show', 'default']);
    const c = await run(['--compact', 'keystore', 'show', 'default']);
    assert(p.stdout.trim().split('\n').length > 3, 'pretty output is one line');
    assertEq(c.stdout.trim().split('\n').length, 1, 'compact lines');
    assertEq(c.json, p.json, 'same object');
  });
  let version;
  await h.test('cli: key create --id --ec k=v --ec k2=v=w --kms-relationship -> the key, with that context', async () => {
    const r = await run(['key', 'create', 'default', '--id', 'cli/key one', '--ec', 'department=sales',
      '--ec', 'odd=a=b', '--kms-relationship', 'local']);
    expectExit(r, 0, 'key create');
    assertEq(r.json, { branchKeyIdentifier: 'cli/key one' }, 'body');
    const a = await api('GET', `/v1/keystores/default/branch-keys/${encodeURIComponent('cli/key one')}/active`, auth);
    assertEq(a.json.encryptionContext, { department: 'sales', odd: 'a=b' }, 'context');
  });
  await h.test('cli: key create without --id -> a generated UUID', async () => {
    const r = await run(['key', 'create', 'default']);
    expectExit(r, 0, 'key create');
    assert(/^[0-9a-f-]{36}$/.test(r.json.branchKeyIdentifier), `id ${r.json.branchKeyIdentifier}`);
  });
  await h.test('cli: key version -> a new ACTIVE version; key active shows it (id percent-encoded)', async () => {
    const r = await run(['key', 'version', 'default', 'cli/key one']);
    expectExit(r, 0, 'key version');
    version = r.json.branchKeyVersion;
    const a = await run(['key', 'active', 'default', 'cli/key one']);
    expectExit(a, 0, 'key active');
    assertEq(a.json.branchKeyVersion, version, 'active version');
    const d = await api('GET', `/v1/keystores/default/branch-keys/${encodeURIComponent('cli/key one')}/active`, auth);
    assertEq(a.json, d.json, 'active = direct GET');
  });
  await h.test('cli: key get KS ID VERSION and key beacon = the direct GETs', async () => {
    const id = encodeURIComponent('cli/key one');
    const g = await run(['key', 'get', 'default', 'cli/key one', version, '--kms-relationship', 'local']);
    expectExit(g, 0, 'key get');
    assertEq(g.json, (await api('GET', `/v1/keystores/default/branch-keys/${id}/versions/${version}`, auth)).json, 'version');
    const b = await run(['key', 'beacon', 'default', 'cli/key one']);
    expectExit(b, 0, 'key beacon');
    assertEq(b.json, (await api('GET', `/v1/keystores/default/branch-keys/${id}/beacon`, auth)).json, 'beacon');
  });
}

async function keyringTests(h, run, setup) {
  let wrapped;
  await h.test('cli: keyring wrap KS --id --ec -> an EDK and the data key it wraps', async () => {
    const r = await run(['keyring', 'wrap', 'default', '--id', 'cli/key one', '--ec', 'tenant=acme']);
    expectExit(r, 0, 'wrap');
    wrapped = r.json;
    assertEq(wrapped.branchKeyIdentifier, 'cli/key one', 'id');
    assert(wrapped.encryptedDataKey && typeof wrapped.dataKey === 'string', `answer: ${r.stdout}`);
  });
  if (!wrapped) return;
  const unwrapBody = (tenant) => ({ encryptedDataKeys: [wrapped.encryptedDataKey], encryptionContext: { tenant } });
  await h.test('cli: keyring unwrap KS --body-file FILE -> the same data key; wrong context -> exit 1, 400', async () => {
    const f = path.join(setup.dir, 'unwrap.json');
    fs.writeFileSync(f, JSON.stringify(unwrapBody('acme')), { mode: 0o600 });
    const r = await run(['keyring', 'unwrap', 'default', '--body-file', f]);
    expectExit(r, 0, 'unwrap');
    assertEq(r.json.dataKey, wrapped.dataKey, 'data key');
    fs.writeFileSync(f, JSON.stringify(unwrapBody('other')), { mode: 0o600 });
    const bad = await run(['keyring', 'unwrap', 'default', '--body-file', f]);
    expectServerError(bad, 400, 'UnableToDecryptException', 'wrong context');
  });
  await h.test('cli: keyring unwrap-batch KS --body-file - (stdin) -> results in order', async () => {
    const body = JSON.stringify({ requests: [unwrapBody('acme'), unwrapBody('other')] });
    const r = await run(['keyring', 'unwrap-batch', 'default', '--body-file', '-'], {}, { input: body });
    expectExit(r, 0, 'unwrap-batch');
    assertEq(r.json.results.length, 2, 'results');
    assertEq(r.json.results[0].dataKey, wrapped.dataKey, 'first');
    assert(r.json.results[1].error, `second: ${JSON.stringify(r.json.results[1])}`);
  });
  await h.test('cli: keyring usage errors -> exit 2 (no --id nor body, both, no body for unwrap, not JSON)', async () => {
    expectUsage(await run(['keyring', 'wrap', 'default']), 'wrap without input', /--id ID/);
    expectUsage(await run(['keyring', 'wrap', 'default', '--id', 'x', '--body-file', '-'], {}, { input: '{}' }), 'both', /--id ID/);
    expectUsage(await run(['keyring', 'unwrap', 'default']), 'unwrap without body', /--body-file/);
    expectUsage(await run(['keyring', 'unwrap', 'default', '--body-file', '-'], {}, { input: '{"a": ' }), 'not JSON', /one JSON object/);
    expectUsage(await run(['keyring', 'unwrap', 'default', '--body-file', path.join(setup.dir, 'absent')]), 'missing file', /cannot open/);
  });
}

async function errorTests(h, run, t, setup, srv) {
  await h.test('cli: bad token -> exit 1, "HTTP 401 UnauthorizedException" on stderr', async () => {
    const r = await run(['key', 'active', 'default', 'cli/key one'], { KEYSTORED_TOKEN: 'ks_wrong_0000' });
    expectServerError(r, 401, 'UnauthorizedException', 'bad token');
  });
  await h.test('cli: reader creating a key -> exit 1, 403 AccessDeniedException', async () => {
    const r = await run(['key', 'create', 'default'], { KEYSTORED_TOKEN: t.reader });
    expectServerError(r, 403, 'AccessDeniedException', 'reader create');
  });
  await h.test('cli: unknown key -> exit 1, 404 KeyStoreException with the request id', async () => {
    const r = await run(['key', 'active', 'default', 'no-such-key']);
    expectServerError(r, 404, 'KeyStoreException', 'unknown key');
    assert(/request id \S+/.test(r.stderr), `no request id: ${r.stderr}`);
  });
  await h.test('cli: custom id without --ec -> exit 1, 400 from the server', async () => {
    const r = await run(['key', 'create', 'default', '--id', 'no-context']);
    expectExit(r, 1, 'create without ec');
    assert(/HTTP 400 /.test(r.stderr), r.stderr);
  });
  await h.test('cli: --token-file (first line, newline stripped) works; a missing file -> exit 2', async () => {
    const f = path.join(setup.dir, 'token');
    fs.writeFileSync(f, `${t.admin}\n`, { mode: 0o600 });
    const r = await run(['--token-file', f, 'keystore', 'show', 'default'], { KEYSTORED_TOKEN: undefined });
    expectExit(r, 0, 'token file');
    const r2 = await run(['keystore', 'show', 'default', '--token-file', f], { KEYSTORED_TOKEN: 'ks_wrong' });
    expectExit(r2, 0, 'the file wins over the environment');
    const m = await run(['--token-file', path.join(setup.dir, 'absent'), 'health']);
    expectUsage(m, 'missing token file', /token file/);
  });
  await h.test('cli: no token at all for a /v1/keystores command -> exit 2 naming KEYSTORED_TOKEN', async () => {
    const r = await run(['keystore', 'show', 'default'], { KEYSTORED_TOKEN: undefined });
    expectUsage(r, 'no token', /KEYSTORED_TOKEN/);
  });
  await h.test('cli: a token on argv is refused (--token X, --token=X) before any request: exit 2', async () => {
    const before = srv.stderr().length;
    for (const args of [['--token', t.admin, 'health'], [`--token=${t.admin}`, 'keystore', 'show', 'default'],
      ['keystore', 'show', 'default', '--token', t.admin]]) {
      const r = await run(args, { KEYSTORED_TOKEN: undefined });
      expectUsage(r, args.join(' ').slice(0, 40), /never taken from the command line/);
      assert(!r.stderr.includes(t.admin) && !r.stdout.includes(t.admin), 'the token was echoed');
    }
    await new Promise((res) => setTimeout(res, 200));
    assert(!srv.stderr().slice(before).includes('"status"'), 'the server logged a request');
  });
  await h.test('cli: the token never appears on stdout or stderr (success and failure)', async () => {
    for (const args of [['keystore', 'show', 'default'], ['key', 'active', 'default', 'nope']]) {
      const r = await run(args);
      assert(!r.stdout.includes(t.admin) && !r.stderr.includes(t.admin), `${args.join(' ')} printed the token`);
    }
  });
  const usage = [
    [[], 'no command', /no command/],
    [['frobnicate'], 'unknown command', /unknown command/],
    [['key', 'active', 'default'], 'too few arguments', /wrong number of arguments/],
    [['key', 'active', 'default', 'a', 'b'], 'too many arguments', /wrong number of arguments/],
    [['key', 'active', 'default', 'a', '--id', 'x'], 'option of another command', /does not apply/],
    [['key', 'create', 'default', '--ec', '=v'], '--ec without a key', /KEY=VALUE/],
    [['key', 'create', 'default', '--ec', 'novalue'], '--ec without =', /KEY=VALUE/],
    [['key', 'create', 'default', '--ec', 'a=1', '--ec', 'a=2'], '--ec twice', /twice/],
    [['mutate', 'default', 'k', '--strategy', 'bogus'], 'bad --strategy', /reencrypt:REL/],
    [['mutate', 'default', 'k', '--strategy', 'decrypt-encrypt:a'], 'decrypt-encrypt without ENC', /reencrypt:REL/],
    [['mutate', 'default', 'k', '--page-size', '0'], '--page-size 0', /positive integer/],
    [['mutation', 'show', 'default', 'k', '--page-size', '5'], 'page size on show', /does not apply/],
    [['--no-such-option', 'health'], 'unknown option', /bad option/],
  ];
  for (const [args, what, re] of usage) {
    await h.test(`cli: usage error (${what}) -> exit 2`, async () => {
      expectUsage(await run(args), what, re);
    });
  }
  await h.test('cli: no server at the URL -> exit 3; --url wins over KEYSTORED_URL', async () => {
    const r = await run(['health'], { KEYSTORED_URL: 'http://127.0.0.1:1' });
    expectExit(r, 3, 'no server');
    const r2 = await run(['--url', srv.base, 'health'], { KEYSTORED_URL: 'http://127.0.0.1:1' });
    expectExit(r2, 0, '--url');
  });
}

// ---- mutations ---------------------------------------------------------------------------------

// 1 when the server routes GET .../mutation (any answer but the router's 404 NotFoundException).
async function mutationRoutesPresent(api, t) {
  const r = await api('GET', '/v1/keystores/default/branch-keys/probe/mutation', { token: t.admin });
  return !(r.status === 404 && r.json && r.json.error && r.json.error.type === 'NotFoundException');
}

async function mutationTests(h, run, api, t) {
  if (!(await mutationRoutesPresent(api, t))) {
    console.log('\n!!!! SKIPPED: mutation routes absent (GET .../mutation is not routed): the keystorectl');
    console.log('!!!! mutate / mutation tests did not run. Merge the mutation branch and rerun.\n');
    return;
  }
  const auth = { token: t.admin };
  const kp = (id, s = '') => `/v1/keystores/default/branch-keys/${id}${s}`;
  const versionsOf = new Map();
  // Remembers the bytes of each version through GetBranchKeyVersion after each VersionKey.
  async function makeKey(id, extra) {
    const c = await api('POST', '/v1/keystores/default/branch-keys', { ...auth, body: { branchKeyIdentifier: id, encryptionContext: { tenant: 'a' } } });
    assertEq(c.status, 201, `create ${id} (${c.text})`);
    const vs = new Map();
    const a0 = await api('GET', kp(id, '/active'), auth);
    vs.set(a0.json.branchKeyVersion, a0.json.branchKey);
    for (let i = 0; i < extra; i++) {
      const v = await api('POST', kp(id, '/versions'), auth);
      assertEq(v.status, 201, `version ${i} (${v.text})`);
      const g = await api('GET', kp(id, `/versions/${v.json.branchKeyVersion}`), auth);
      vs.set(v.json.branchKeyVersion, g.json.branchKey);
    }
    versionsOf.set(id, vs);
  }
  // Every remembered version reads with its original bytes under the expected context.
  async function checkVersions(id, ec) {
    for (const [v, bytes] of versionsOf.get(id)) {
      const g = await api('GET', kp(id, `/versions/${v}`), auth);
      assertEq(g.status, 200, `version ${v} (${g.text})`);
      assertEq(g.json.branchKey, bytes, `bytes of ${v}`);
      assertEq(g.json.encryptionContext, ec, `context of ${v}`);
    }
  }

  await h.test('cli: mutate KS ID --terminal-ec (context only, default strategy) -> exit 0, completed, every version moved', async () => {
    await makeKey('mut-ec', 12);
    const r = await run(['mutate', 'default', 'mut-ec', '--terminal-ec', 'tenant=b', '--page-size', '4']);
    expectExit(r, 0, 'mutate');
    assertEq(r.json && r.json.completed, true, 'completed');
    assert(/Created/.test(r.stderr), `no Created flag: ${r.stderr}`);
    const lines = [...r.stderr.matchAll(/page (\d+): (\d+)\/(\d+) versions/g)];
    assert(lines.length >= 4, `fewer than 4 progress lines for 13+ versions in pages of 4: ${r.stderr}`);
    const last = lines.at(-1);
    assert(Number(last[3]) >= 13 && last[2] === last[3], `the last line is not done/total with total >= 13: ${last[0]}`);
    await checkVersions('mut-ec', { tenant: 'b' });
    const s = await run(['mutation', 'show', 'default', 'mut-ec']);
    expectServerError(s, 404, s.stderr.match(/HTTP 404 (\S+)/)?.[1] || '?', 'show after completion');
  });
  await h.test('cli: mutate again after completion -> exit 0, "nothing to do"', async () => {
    const r = await run(['mutate', 'default', 'mut-ec', '--terminal-ec', 'tenant=b']);
    expectExit(r, 0, 'rerun');
    assert(/nothing to do/.test(r.stderr), r.stderr);
  });
  await h.test('cli: Ctrl-C stops after the current page (exit 130), the same command resumes to completion', async () => {
    await makeKey('mut-int', 60);
    let sent = false;
    // SIGINT right after InitializeMutation answered: 61 pages of one version are left
    const r = await run(['mutate', 'default', 'mut-int', '--terminal-ec', 'tenant=c', '--page-size', '1'], {}, {
      onStderr: (text, child) => {
        if (!sent && /mutation of mut-int: Created/.test(text)) {
          sent = true;
          child.kill('SIGINT');
        }
      },
    });
    expectExit(r, 130, 'interrupted mutate');
    assert(/interrupted after \d+ page/.test(r.stderr), r.stderr);
    const s = await run(['mutation', 'show', 'default', 'mut-int']);
    expectExit(s, 0, 'show in flight');
    assert(s.json.versions && s.json.versions.original > 0, `nothing left to do after Ctrl-C: ${s.stdout}`);
    const again = await run(['mutate', 'default', 'mut-int', '--terminal-ec', 'tenant=c', '--page-size', '7']);
    expectExit(again, 0, 'resume');
    assert(/Resumed/.test(again.stderr), `not resumed: ${again.stderr}`);
    assertEq(again.json.completed, true, 'completed');
    await checkVersions('mut-int', { tenant: 'c' });
  });
  await h.test('cli: mutation init, show, apply one page, a different mutate -> 409 MutationConflictException, abort -> 404 after', async () => {
    await makeKey('mut-abort', 6);
    const i = await run(['mutation', 'init', 'default', 'mut-abort', '--terminal-ec', 'tenant=d']);
    expectExit(i, 0, 'init');
    assertEq(i.json.initializeMutationFlag, 'Created', 'flag');
    const s = await run(['mutation', 'show', 'default', 'mut-abort']);
    expectExit(s, 0, 'show');
    assertEq(s.json.mutationToken, i.json.mutationToken, 'token');
    const p = await run(['mutation', 'apply', 'default', 'mut-abort', '--page-size', '2']);
    expectExit(p, 0, 'apply');
    assertEq(typeof p.json.completed, 'boolean', 'completed');
    const c = await run(['mutate', 'default', 'mut-abort', '--terminal-ec', 'tenant=other']);
    expectServerError(c, 409, 'MutationConflictException', 'conflicting mutate');
    const a = await run(['mutation', 'abort', 'default', 'mut-abort']);
    expectExit(a, 0, 'abort');
    const s2 = await run(['mutation', 'show', 'default', 'mut-abort']);
    expectExit(s2, 1, 'show after abort');
    assert(/HTTP 404 /.test(s2.stderr), s2.stderr);
    const a2 = await run(['mutation', 'abort', 'default', 'mut-abort']);
    expectExit(a2, 1, 'abort with nothing in flight');
  });
  await h.test('cli: mutate --terminal-kms-arn --strategy decrypt-encrypt:local,local2 -> the other key; without --strategy -> 400', async () => {
    await makeKey('mut-arn', 5);
    const other = (await api('GET', '/v1/keystores/default?kmsRelationship=local2', auth)).json.kmsConfiguration.kmsKeyArn;
    const bad = await run(['mutate', 'default', 'mut-arn', '--terminal-kms-arn', other]);
    expectExit(bad, 1, 'no strategy');
    assert(/HTTP 400 /.test(bad.stderr) && /strategy/.test(bad.stderr), bad.stderr);
    const r = await run(['mutate', 'default', 'mut-arn', '--terminal-kms-arn', other, '--strategy', 'decrypt-encrypt:local,local2']);
    expectExit(r, 0, 'mutate to local2');
    const g = await api('GET', kp('mut-arn', '/active?kmsRelationship=local2'), auth);
    assertEq(g.status, 200, `active under local2 (${g.text})`);
  });
  await h.test('cli: mutate --terminal-hierarchy-version 2 --strategy decrypt-encrypt -> every version HV-2, bytes kept; a bad value -> usage error, nothing sent', async () => {
    await makeKey('mut-hv2', 3);
    const bad = await run(['mutate', 'default', 'mut-hv2', '--terminal-hierarchy-version', '3']);
    expectExit(bad, 2, 'bad value');
    assert(/--terminal-hierarchy-version/.test(bad.stderr), bad.stderr);
    assertEq((await api('GET', kp('mut-hv2', '/mutation'), auth)).status, 404, 'nothing initialized');
    const r = await run(['mutate', 'default', 'mut-hv2', '--terminal-hierarchy-version', '2', '--strategy', 'decrypt-encrypt:local,local']);
    expectExit(r, 0, 'mutate to HV-2');
    for (const [v, bytes] of versionsOf.get('mut-hv2')) {
      const g = await api('GET', kp('mut-hv2', `/versions/${v}`), auth);
      assertEq(g.status, 200, `version ${v} (${g.text})`);
      assertEq(g.json.hierarchyVersion, '2', `hierarchy version of ${v}`);
      assertEq(g.json.branchKey, bytes, `bytes of ${v}`);
    }
  });
}


// ---- mutate's client side, against a scripted server ------------------------------------------
//
// What the client itself does (request bodies, following the token, retrying a lost page race,
// progress on a terminal and off it, Ctrl-C between pages, "nothing to do") is checked against a
// small scripted HTTP server that speaks the mutation API of issue 10, so these tests run whether
// or not keystored has the routes yet; the end-to-end tests above run them against keystored.


/*
 * A scripted mutation server: total versions, pages of pageSize (default 3), pageDelayMs per
 * page; conflicts: how many 409s to answer before the page at index conflictAt is accepted;
 * onPageStart(index) runs when a page starts (before its delay).
 * Records every request {method, url, body, auth}.
 */
function startScripted({ total = 10, pageDelayMs = 0, conflictAt = -1, conflicts = 0, initAnswer, onPageStart } = {}) {
  const st = { total, done: 0, inFlight: false, requests: [], pageIndex: 0, conflictsLeft: conflicts, pageStarts: [], pageEnds: [] };
  const token = { identifier: 'k', uuid: '00000000-0000-4000-8000-000000000001', createTime: '2026-01-01T00:00:00Z' };
  const send = (res, status, obj) => {
    const text = obj === undefined ? '' : JSON.stringify(obj);
    res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
    res.end(text);
  };
  const error = (res, status, type, message) => send(res, status, { error: { type, message, requestId: 'scripted' } });
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', async () => {
      let json;
      try {
        json = body ? JSON.parse(body) : undefined;
      } catch {
        return error(res, 400, 'KeyStoreException', 'bad JSON');
      }
      st.requests.push({ method: req.method, url: req.url, body: json, auth: req.headers.authorization });
      const base = '/v1/keystores/ks/branch-keys/k/mutation';
      if (req.method === 'POST' && req.url === base) {
        if (initAnswer) return initAnswer(res, send, error);
        const resumed = st.inFlight;
        st.inFlight = true;
        return send(res, resumed ? 200 : 201, { mutationToken: token, initializeMutationFlag: resumed ? 'Resumed' : 'Created', mutatedBranchKeyItems: [] });
      }
      if (req.method === 'GET' && req.url === base) {
        if (!st.inFlight) return error(res, 404, 'KeyStoreException', 'no mutation in flight');
        return send(res, 200, { mutationToken: token, versions: { original: st.total - st.done, terminal: st.done } });
      }
      if (req.method === 'DELETE' && req.url === base) {
        st.inFlight = false;
        return send(res, 204);
      }
      if (req.method === 'POST' && req.url === `${base}/apply`) {
        const i = st.pageIndex;
        if (i === conflictAt && st.conflictsLeft > 0) {
          st.conflictsLeft--;
          return error(res, 409, 'MutationConflictException', 'lost the race');
        }
        st.pageStarts.push(Date.now());
        if (onPageStart) onPageStart(i);
        await new Promise((r) => setTimeout(r, pageDelayMs));
        const n = Math.min(json.pageSize || 3, st.total - st.done);
        st.done += n;
        st.pageIndex++;
        st.pageEnds.push(Date.now());
        const completed = st.done >= st.total;
        if (completed) st.inFlight = false;
        const out = { completed, mutatedBranchKeyItems: [], versionsMutated: n, versionsVerified: 0 };
        if (!completed) out.mutationToken = { ...token, page: st.pageIndex };
        return send(res, 200, out);
      }
      return error(res, 404, 'NotFoundException', `no route for ${req.url}`);
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => {
    st.url = `http://127.0.0.1:${server.address().port}`;
    st.close = () => new Promise((r) => server.close(r));
    resolve(st);
  }));
}

// keystorectl under a pseudo-terminal (script(1)): resolves {code, out} (stdout and stderr mixed).
function underTerminal(args, env) {
  const quote = (s) => `'${String(s).replace(/'/g, `'\\''`)}'`;
  return new Promise((resolve) => {
    const child = spawn('script', ['-qfec', [KEYSTORECTL, ...args].map(quote).join(' '), '/dev/null'],
      { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('close', (code) => resolve({ code, out }));
  });
}

export async function runCliScripted(h) {
  const token = 'ks_scripted_token_0123456789';
  const env = (st) => ({ KEYSTORED_URL: st.url, KEYSTORED_TOKEN: token });
  const mutateArgs = ['mutate', 'ks', 'k', '--terminal-kms-arn', 'arn:x', '--terminal-ec', 'tier=b',
    '--strategy', 'decrypt-encrypt:old,new', '--do-not-version', '--page-size', '3'];

  await h.test('cli (scripted server): mutate sends the bodies of issue 10, follows the token page to page, retries a 409 page race', async () => {
    const st = await startScripted({ total: 10, conflictAt: 1, conflicts: 2 });
    try {
      const r = await ctl(mutateArgs, env(st));
      expectExit(r, 0, 'mutate');
      assertEq(r.json && r.json.completed, true, 'final answer printed');
      const init = st.requests.find((x) => x.method === 'POST' && x.url.endsWith('/mutation'));
      assertEq(init.body, {
        terminalKmsArn: 'arn:x', terminalEncryptionContext: { tier: 'b' },
        strategy: { decryptEncrypt: { decrypt: 'old', encrypt: 'new' } }, doNotVersion: true,
      }, 'InitializeMutation body');
      assertEq(init.auth, `Bearer ${token}`, 'Authorization');
      const applies = st.requests.filter((x) => x.url.endsWith('/apply'));
      assertEq(applies.length, 4 + 2, 'apply requests (4 pages + 2 conflicts retried)');
      assertEq(applies[0].body.pageSize, 3, 'pageSize');
      assertEq(applies[0].body.strategy, { decryptEncrypt: { decrypt: 'old', encrypt: 'new' } }, 'apply strategy');
      assertEq(applies.at(-1).body.mutationToken.page, 3, 'the token of the previous answer');
      assertEq((r.stderr.match(/keystorectl: page \d+: /g) || []).length, 4, `one progress line per page:\n${r.stderr}`);
      assert(/page 4: 10\/10 versions/.test(r.stderr), `last line: ${r.stderr}`);
      assert(!/HTTP 409/.test(r.stderr), 'a retried conflict is not reported');
    } finally {
      await st.close();
    }
  });
  await h.test('cli (scripted server): a 409 that persists past the retries -> exit 1 with the error', async () => {
    const st = await startScripted({ total: 10, conflictAt: 0, conflicts: 100 });
    try {
      const r = await ctl(mutateArgs, env(st));
      expectServerError(r, 409, 'MutationConflictException', 'persistent conflict');
      assertEq(st.requests.filter((x) => x.url.endsWith('/apply')).length, 6, 'attempts (1 + 5 retries)');
    } finally {
      await st.close();
    }
  });
  await h.test('cli (scripted server): Ctrl-C waits for the page in flight, exits 130; the rerun resumes and completes', async () => {
    let child;
    let sentAt = 0;
    // SIGINT while the second page is in the server's hands
    const st = await startScripted({
      total: 30, pageDelayMs: 300,
      onPageStart: (i) => {
        if (i === 1 && child) {
          sentAt = Date.now();
          child.kill('SIGINT');
        }
      },
    });
    try {
      const r = await ctl(mutateArgs, env(st), { onSpawn: (c) => (child = c) });
      expectExit(r, 130, 'interrupted');
      assert(sentAt > 0, 'SIGINT never sent');
      // the page in flight was answered and counted, and no further page was started
      assert(/interrupted after 2 page\(s\), 6\/30 versions done; run the same command again to resume/.test(r.stderr), r.stderr);
      assertEq(st.pageStarts.length, 2, 'pages started');
      assert(st.pageEnds.at(-1) >= sentAt, 'SIGINT was sent after the last page ended: not a page in flight');
      const again = await ctl(mutateArgs, env(st));
      expectExit(again, 0, 'resume');
      assert(/Resumed/.test(again.stderr), again.stderr);
      assertEq(st.done, 30, 'every version done');
    } finally {
      await st.close();
    }
  });
  await h.test('cli (scripted server): on a terminal, one bar redrawn in place (done/total, rate, ETA)', async () => {
    const st = await startScripted({ total: 9, pageDelayMs: 20 });
    try {
      const r = await underTerminal(mutateArgs, env(st));
      assertEq(r.code, 0, `exit (${r.out})`);
      assert(/\r\[#{10}\.{20}\] 3\/9 versions +[0-9.]+\/s +ETA [0-9:-]+ +page 1/.test(r.out), `no bar at page 1: ${JSON.stringify(r.out)}`);
      assert(/\r\[#{30}\] 9\/9 versions/.test(r.out), `no full bar: ${JSON.stringify(r.out)}`);
      assert(!/keystorectl: page \d+:/.test(r.out), 'plain lines on a terminal');
    } finally {
      await st.close();
    }
  });
  await h.test('cli (scripted server): 400 MutationInvalidException and no mutation in flight -> "nothing to do", exit 0', async () => {
    const st = await startScripted({
      initAnswer: (res, send, error) => error(res, 400, 'MutationInvalidException', 'already in the terminal state'),
    });
    try {
      const r = await ctl(mutateArgs, env(st));
      expectExit(r, 0, 'nothing to do');
      assertEq(r.json, { completed: true }, 'stdout');
      assert(/nothing to do/.test(r.stderr), r.stderr);
      st.inFlight = true; // the same 400 while a mutation is in flight is an error
      const r2 = await ctl(mutateArgs, env(st));
      expectServerError(r2, 400, 'MutationInvalidException', 'in flight');
    } finally {
      await st.close();
    }
  });
  await h.test('cli (scripted server): mutation abort reads the token from DescribeMutation and sends it in the DELETE', async () => {
    const st = await startScripted();
    try {
      st.inFlight = true;
      const r = await ctl(['mutation', 'abort', 'ks', 'k'], env(st));
      expectExit(r, 0, 'abort');
      assertEq(r.stdout, '', 'stdout of a 204');
      const del = st.requests.find((x) => x.method === 'DELETE');
      assertEq(del && del.body && del.body.mutationToken.uuid, '00000000-0000-4000-8000-000000000001', 'token');
      const r2 = await ctl(['mutation', 'abort', 'ks', 'k'], env(st));
      expectServerError(r2, 404, 'KeyStoreException', 'abort with none in flight');
    } finally {
      await st.close();
    }
  });
}

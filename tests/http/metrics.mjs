// metrics.mjs - GET /metrics (issue 12 item 3; README "Metrics"), SQLite key store and local KMS:
//  - who may read it: admin and monitor 200; reader and keyring 403; no token 401; monitor gets
//    403 on every other authenticated route; server.unauthenticated_metrics: true (by reload)
//    -> 200 without a token, the other routes still need one;
//  - counters move by exactly what was sent: 3 creates -> {route template, POST, 201} +3, two
//    404s, a 401, an unknown path (route "-"), an invented method ("other");
//  - the latency histogram agrees with the counters (count == sum of requests per route and
//    method, +Inf == count, buckets never decrease); in flight is 1 during a scrape;
//  - storage calls by operation and outcome move as well (3 writes ok, 2 reads not_found); KMS
//    calls by outcome, AWS retries, rate-limited and shed families are there;
//  - promtool check metrics (Debian's prometheus package) finds nothing to say, and does fail
//    on a missing HELP and on a broken line (so this check can fail);
//  - no tenant name, branch key id or token anywhere in the text.

import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { assert, assertEq } from './lib/harness.mjs';
import { makeApi, rawRequest, parseMetrics } from './lib/http.mjs';
import { newToken, sha256Hex, startServer, tempDir } from './lib/server.mjs';

const ROLES = ['admin', 'reader', 'keyring', 'monitor'];

function writeConfig(setup, unauthenticated) {
  const tenants = ROLES.map((r) => `  - name: ${setup.names[r]}\n    token_sha256: "${sha256Hex(setup.tokens[r])}"\n` +
    `    role: ${r}\n    key_stores: [default]\n    kms_relationships: [local]\n`).join('');
  fs.writeFileSync(setup.configPath, `listen: 127.0.0.1:0
${unauthenticated ? 'server:\n  unauthenticated_metrics: true\n' : ''}kms_relationships:
  - name: local
    type: local
    key_file: ${setup.dir}/kms.keys
key_stores:
  - name: default
    logical_key_store_name: default
    kms_relationship: local
    storage: {type: sqlite, path: ${setup.dir}/ks.db}
    rotation: {interval_seconds: 31536000, check_interval_seconds: 3600}
tenants:
${tenants}`, { mode: 0o600 });
}


const delta = (a, b, k) => (b.get(k) || 0) - (a.get(k) || 0);
const req = (route, method, status) => `keystored_http_requests_total{route="${route}",method="${method}",status="${status}"}`;

// promtool check metrics on text: {code, out}.
function promtool(text) {
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  if (r.error) throw new Error(`promtool: ${r.error.message} (scripts/install-deps.sh test installs prometheus)`);
  return { code: r.status, out: `${r.stdout}${r.stderr}`.trim() };
}

// Checks the histogram against the counters; returns the number of (route, method) series.
function checkHistogram(m) {
  const perPair = new Map();
  for (const [k, v] of m) {
    const x = /^keystored_http_requests_total\{(route="[^"]*",method="[^"]*"),status="[^"]*"\}$/.exec(k);
    if (x) perPair.set(x[1], (perPair.get(x[1]) || 0) + v);
  }
  for (const [labels, total] of perPair) {
    const count = m.get(`keystored_http_request_duration_seconds_count{${labels}}`);
    assertEq(count, total, `histogram count of {${labels}}`);
    assertEq(m.get(`keystored_http_request_duration_seconds_bucket{${labels},le="+Inf"}`), count, `+Inf of {${labels}}`);
    let prev = 0;
    for (const le of ['0.001', '0.0025', '0.005', '0.01', '0.025', '0.05', '0.1', '0.25', '0.5', '1', '2.5', '5', '10', '+Inf']) {
      const b = m.get(`keystored_http_request_duration_seconds_bucket{${labels},le="${le}"}`);
      assert(b >= prev, `bucket le=${le} of {${labels}} is ${b}, below ${prev}`);
      prev = b;
    }
    assert(m.get(`keystored_http_request_duration_seconds_sum{${labels}}`) >= 0, 'sum');
  }
  const counts = [...m].filter(([k]) => k.startsWith('keystored_http_request_duration_seconds_count{'));
  assertEq(counts.length, perPair.size, 'a histogram series per (route, method) and no other');
  return perPair.size;
}

export async function runMetrics(h) {
  const dir = tempDir('metrics');
  const tag = randomBytes(4).toString('hex');
  const setup = {
    dir,
    configPath: path.join(dir, 'keystored.yaml'),
    names: Object.fromEntries(ROLES.map((r) => [r, `acme-${r}-${tag}`])),
    tokens: Object.fromEntries(ROLES.map((r) => [r, newToken(r)])),
  };
  writeConfig(setup, false);
  const srv = await startServer(['--config', setup.configPath], 'metrics');
  const api = makeApi(srv.base);
  const T = (role) => ({ token: setup.tokens[role] });
  const KS = '/v1/keystores/default';
  const ids = [];
  let text = '';
  try {
    assertEq((await api('PUT', KS, T('admin'))).status, 200, 'PUT key store');
    await h.test('metrics: admin and monitor 200; reader and keyring 403; no token 401', async () => {
      assertEq((await api('GET', '/metrics', T('admin'))).status, 200, 'admin');
      const m = await api('GET', '/metrics', T('monitor'));
      assertEq(m.status, 200, 'monitor');
      assert(/^text\/plain; version=0\.0\.4/.test(m.headers['content-type']), `content type ${m.headers['content-type']}`);
      for (const role of ['reader', 'keyring']) {
        const r = await api('GET', '/metrics', T(role));
        assertEq(r.status, 403, role);
        assertEq(r.json.error.type, 'AccessDeniedException', `${role} type`);
      }
      const none = await api('GET', '/metrics');
      assertEq(none.status, 401, 'no token');
      assert(/^Bearer/.test(none.headers['www-authenticate'] || ''), 'WWW-Authenticate');
    });
    await h.test('metrics: the monitor role gets 403 on every other authenticated route', async () => {
      const routes = [['GET', KS], ['PUT', KS], ['POST', `${KS}/branch-keys`], ['GET', `${KS}/branch-keys`],
        ['GET', `${KS}/branch-keys/x/active`], ['POST', `${KS}/keyring/wrap`], ['POST', '/v1/admin/reload']];
      for (const [method, p] of routes) {
        const r = await api(method, p, T('monitor'));
        assertEq(r.status, 403, `${method} ${p}`);
        assert(/monitor role may only read GET \/metrics/.test(r.json.error.message), `message: ${r.json.error.message}`);
      }
      assertEq((await api('GET', '/healthz', T('monitor'))).status, 200, 'public routes stay public');
    });
    await h.test('metrics: counters move by exactly the requests sent (route templates, bounded methods)', async () => {
      const m0 = parseMetrics((await api('GET', '/metrics', T('monitor'))).text);
      for (let i = 0; i < 3; i++) {
        const r = await api('POST', `${KS}/branch-keys`, T('admin'));
        assertEq(r.status, 201, 'create');
        ids.push(r.json.branchKeyIdentifier);
      }
      for (let i = 0; i < 2; i++) assertEq((await api('GET', `${KS}/branch-keys/no-such-${tag}/active`, T('reader'))).status, 404, 'unknown key');
      assertEq((await api('POST', `${KS}/branch-keys`)).status, 401, 'create without a token');
      assertEq((await api('GET', `/nope-${tag}`)).status, 404, 'unknown path');
      const brew = await rawRequest(srv.host, srv.port, { method: `BREW${tag.toUpperCase()}`, path: KS });
      assertEq(brew.status, 405, 'invented method');
      const res = await api('GET', '/metrics', T('monitor'));
      text = res.text;
      const m1 = parseMetrics(text);
      assertEq(delta(m0, m1, req('/v1/keystores/{ks}/branch-keys', 'POST', '201')), 3, 'creates');
      assertEq(delta(m0, m1, req('/v1/keystores/{ks}/branch-keys', 'POST', '401')), 1, 'unauthenticated create');
      assertEq(delta(m0, m1, req('/v1/keystores/{ks}/branch-keys/{id}/active', 'GET', '404')), 2, 'unknown key');
      assertEq(delta(m0, m1, req('-', 'GET', '404')), 1, 'unknown path');
      assertEq(delta(m0, m1, req('-', 'other', '405')), 1, 'invented method');
      assertEq(delta(m0, m1, req('/metrics', 'GET', '200')), 1, 'the previous scrape');
      assertEq(m1.get('keystored_http_requests_in_flight'), 1, 'in flight during a scrape: the scrape');
      const sc = (op, outcome) => `keystored_storage_calls_total{key_store="default",operation="${op}",outcome="${outcome}"}`;
      assertEq(delta(m0, m1, sc('WriteNewBranchKey', 'ok')), 3, 'storage writes');
      assertEq(delta(m0, m1, sc('GetActive', 'not_found')), 2, 'storage reads of a missing key');
      const ok = (m) => [...m].filter(([k]) => k.startsWith('keystored_kms_calls_total{relationship="local"') && k.endsWith('outcome="ok"}'))
        .reduce((s, [, v]) => s + v, 0);
      assert(ok(m1) - ok(m0) >= 3, `KMS calls ok moved by ${ok(m1) - ok(m0)}`);
      for (const family of ['keystored_aws_retries_total{reason="throttled"}', 'keystored_aws_retries_total{reason="transient"}',
        'keystored_aws_retries_refused_total', 'keystored_http_rate_limited_requests_total', 'keystored_http_shed_requests_total',
        'keystored_audit_failures_total',
        'keystored_kms_calls_total{relationship="local",operation="Decrypt",outcome="error"}']) {
        assert(m1.has(family), `${family} missing`);
      }
    });
    await h.test('metrics: after that traffic every family has samples', async () => {
      const families = [...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((x) => [x[1], x[2]]);
      assert(families.length >= 25, `only ${families.length} families`);
      // the age gauge needs a full pass of scheduled rotation, which may not have run yet
      const empty = families.filter(([name, type]) => name !== 'keystored_oldest_active_key_age_seconds' &&
        !new RegExp(`^${name}${type === 'histogram' ? '_bucket' : ''}[{ ]`, 'm').test(text)).map(([n]) => n);
      assertEq(empty, [], 'families without a sample');
    });
    await h.test('metrics: the histogram agrees with the counters', async () => {
      const n = checkHistogram(parseMetrics(text));
      assert(n >= 5, `only ${n} (route, method) pairs`);
    });
    await h.test('metrics: no tenant name, branch key id or token in the text', async () => {
      for (const name of Object.values(setup.names)) assert(!text.includes(name), `tenant name ${name}`);
      assert(!text.includes(tag), 'a request path or method');
      for (const id of ids) assert(!text.includes(id), `branch key id ${id}`);
      for (const t of Object.values(setup.tokens)) assert(!text.includes(t), 'a token');
    });
    await h.test('metrics: promtool check metrics is clean; it does fail on a missing HELP and a broken line', async () => {
      const r = promtool(text);
      assertEq({ code: r.code, out: r.out }, { code: 0, out: '' }, 'promtool on /metrics');
      const noHelp = text.replace(/^# HELP keystored_http_requests_total .*\n/m, '');
      const lint = promtool(noHelp);
      assert(lint.code !== 0 && /no help text/i.test(lint.out), `missing HELP: exit ${lint.code}, ${lint.out}`);
      const broken = promtool(`${text}keystored_broken{ 1\n`);
      assert(broken.code !== 0, `a broken line: exit ${broken.code}`);
      console.log(`     ${text.split('\n').length} lines; promtool: clean; lint exit ${lint.code}; parse error exit ${broken.code}`);
    });
    await h.test('metrics: unauthenticated_metrics: true (by reload) -> 200 without a token; other routes still 401', async () => {
      writeConfig(setup, true);
      assertEq((await api('POST', '/v1/admin/reload', T('admin'))).status, 200, 'reload');
      const r = await api('GET', '/metrics');
      assertEq(r.status, 200, 'no token');
      assert(r.text.includes('keystored_http_requests_total'), 'the metrics');
      assertEq((await api('GET', KS)).status, 401, 'a key store still needs a token');
      writeConfig(setup, false);
      assertEq((await api('POST', '/v1/admin/reload', T('admin'))).status, 200, 'reload back');
      assertEq((await api('GET', '/metrics')).status, 401, 'a token again');
    });
  } finally {
    await srv.stop();
  }
}

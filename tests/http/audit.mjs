// audit.mjs - the audit log (issue 12; README "Audit log", docs/architecture.md section 12), on
// the sqlite backend: a request and an outcome line per audited call with every field, the
// keyring's wrap, unwrap and unwrap-batch included, no secret in any form; a GET without key
// material not audited; fail closed (503, nothing run, /healthz 200, /readyz 503 naming the audit
// log) with a deleted file until SIGHUP or an admin reload reopens it, and with /dev/full;
// logrotate's rename then SIGHUP; and the secret scanner finding a planted secret.

import fs from 'node:fs';
import path from 'node:path';
import { assert, assertEq } from './lib/harness.mjs';
import { makeApi, parseMetrics } from './lib/http.mjs';
import { makeSuiteSetup, startServer } from './lib/server.mjs';
import { waitReadyz } from './limits.mjs';
import { findSecrets, secretForms } from './lib/secrets.mjs';

const KS = '/v1/keystores/default';
const TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

function auditLines(file) {
  if (!fs.existsSync(file)) return [];
  return fs.readFileSync(file, 'utf8').split('\n').filter((l) => l).map((l) => JSON.parse(l));
}

// The lines of one request id: {request, outcome}.
function byRequest(lines, rid) {
  const mine = lines.filter((l) => l.requestId === rid);
  return { request: mine.find((l) => l.phase === 'request'), outcome: mine.find((l) => l.phase === 'outcome'), n: mine.length };
}

async function waitFor(pred, ms = 5000) {
  const t0 = Date.now();
  while (!pred()) {
    if (Date.now() - t0 > ms) throw new Error(`condition not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

function countEvents(srv, event) {
  return srv.stderr().split('\n').filter((l) => l.includes(`"event":"${event}"`)).length;
}

async function start(tag, auditPath) {
  const setup = makeSuiteSetup(tag, 'server:\n  readiness_interval_ms: 100');
  const file = auditPath || path.join(setup.dir, 'audit.log');
  fs.appendFileSync(setup.configPath, `audit:\n  path: ${file}\n  fsync: every_line\n`);
  const srv = await startServer(['--config', setup.configPath], `audit (${tag})`);
  return { setup, srv, file, api: makeApi(srv.base) };
}

// Every audited operation once, and the fields of its lines.
async function auditedCalls(h, { setup, api, file }) {
  const A = { token: setup.tokens.admin };
  const K = { token: setup.tokens.keyring };
  const rid = (r) => r.headers['x-request-id'];
  const calls = {};
  await h.test('audit: every audited call writes a request and an outcome line with its fields', async () => {
    calls.put = await api('PUT', KS, A);
    calls.create = await api('POST', `${KS}/branch-keys`, { ...A, body: { branchKeyIdentifier: 'audit-k1', encryptionContext: { dept: 'secret-ec-value' } } });
    assertEq(calls.create.status, 201, 'create');
    calls.version = await api('POST', `${KS}/branch-keys/audit-k1/versions`, A);
    assertEq(calls.version.status, 201, 'version');
    calls.active = await api('GET', `${KS}/branch-keys/audit-k1/active`, A);
    calls.byVersion = await api('GET', `${KS}/branch-keys/audit-k1/versions/${calls.version.json.branchKeyVersion}`, A);
    calls.beacon = await api('GET', `${KS}/branch-keys/audit-k1/beacon`, A);
    calls.wrap = await api('POST', `${KS}/keyring/wrap`, { ...K, body: { branchKeyIdentifier: 'audit-k1', encryptionContext: { purpose: 'ec-value-x' } } });
    assertEq(calls.wrap.status, 200, `wrap ${calls.wrap.text}`);
    const edk = calls.wrap.json.encryptedDataKey;
    calls.unwrap = await api('POST', `${KS}/keyring/unwrap`, { ...K, body: { encryptedDataKeys: [edk], encryptionContext: { purpose: 'ec-value-x' } } });
    assertEq(calls.unwrap.status, 200, `unwrap ${calls.unwrap.text}`);
    calls.batch = await api('POST', `${KS}/keyring/unwrap-batch`, { ...K, body: { requests: [1, 2, 3].map(() => ({ encryptedDataKeys: [edk], encryptionContext: { purpose: 'ec-value-x' } })) } });
    assertEq(calls.batch.status, 200, `batch ${calls.batch.text}`);
    calls.abort = await api('DELETE', `${KS}/branch-keys/audit-k1/mutation`, A);
    calls.reload = await api('POST', '/v1/admin/reload', A);
    assertEq(calls.reload.status, 200, 'reload');
    calls.unauth = await api('POST', `${KS}/branch-keys`, { token: 'ks_wrong', body: {} });
    assertEq(calls.unauth.status, 401, 'unauthenticated');

    const lines = auditLines(file);
    const expect = [
      ['put', 'CreateKeyStore', 'admin', null, null],
      ['create', 'CreateKey', 'admin', 'audit-k1', null],
      ['version', 'VersionKey', 'admin', 'audit-k1', calls.version.json.branchKeyVersion],
      ['active', 'GetActiveBranchKey', 'admin', 'audit-k1', calls.active.json.branchKeyVersion],
      ['byVersion', 'GetBranchKeyVersion', 'admin', 'audit-k1', calls.version.json.branchKeyVersion],
      ['beacon', 'GetBeaconKey', 'admin', 'audit-k1', null],
      ['wrap', 'KeyringWrap', 'keyring', 'audit-k1', calls.wrap.json.branchKeyVersion],
      ['unwrap', 'KeyringUnwrap', 'keyring', 'audit-k1', calls.unwrap.json.branchKeyVersion],
      ['batch', 'KeyringUnwrapBatch', 'keyring', null, null],
      ['abort', 'AbortMutation', 'admin', 'audit-k1', null],
      ['reload', 'Reload', 'admin', null, null],
    ];
    for (const [name, op, tenant, id, version] of expect) {
      const { request, outcome, n } = byRequest(lines, rid(calls[name]));
      assert(request && outcome && n === 2, `${name}: want a request and an outcome line, got ${n}`);
      for (const l of [request, outcome]) {
        assert(TIME.test(l.time), `${name}: time ${l.time}`);
        assertEq(l.event, 'audit', `${name}: event`);
        assertEq(l.operation, op, `${name}: operation`);
        assertEq(l.tenant, tenant, `${name}: tenant`);
      }
      assertEq(outcome.status, calls[name].status, `${name}: status`);
      assertEq(outcome.error, calls[name].status < 400 ? null : calls[name].json.error.type, `${name}: error`);
      if (name !== 'reload') assertEq(outcome.keyStore, 'default', `${name}: keyStore`);
      if (id) assertEq(outcome.branchKeyId, id, `${name}: branchKeyId`);
      if (version) assertEq(outcome.version, version, `${name}: version`);
      if (!['put', 'reload', 'abort'].includes(name)) assertEq(outcome.kmsRelationship, 'local', `${name}: kmsRelationship`);
    }
    assertEq(byRequest(lines, rid(calls.batch)).outcome.items, 3, 'batch: items');
    const un = byRequest(lines, rid(calls.unauth));
    assert(!un.request && un.outcome && un.outcome.status === 401 && un.outcome.tenant === null,
      `401: outcome line only, no tenant: ${JSON.stringify(un)}`);
  });
  await h.test('audit: a GET without key material (key store info, a list) writes no line', async () => {
    const info = await api('GET', KS, A);
    const list = await api('GET', `${KS}/branch-keys`, A);
    assertEq(info.status, 200, 'info');
    assertEq(list.status, 200, 'list');
    const lines = auditLines(file);
    for (const r of [info, list]) assertEq(byRequest(lines, rid(r)).n, 0, 'lines of an unaudited GET');
  });
  await h.test('audit: no key, data key, token or encryption context value in the audit log', async () => {
    const buf = fs.readFileSync(file);
    const secrets = [calls.active.json.branchKey, calls.beacon.json.beaconKey, calls.wrap.json.dataKey,
      calls.unwrap.json.dataKey, ...calls.batch.json.results.map((r) => r.dataKey)]
      .map((v) => ({ kind: 'key', value: v, forms: secretForms('key', v) }))
      .concat(Object.values(setup.tokens).map((v) => ({ kind: 'token', value: v, forms: secretForms('token', v) })));
    assert(secrets.length >= 10, `${secrets.length} secrets`);
    assertEq(JSON.stringify(findSecrets(buf, secrets)), '[]', 'hits');
    for (const v of ['secret-ec-value', 'ec-value-x']) assert(!buf.includes(v), `context value ${v} in the audit log`);
  });
}

// Deleted under keystored: fail closed until SIGHUP, then again until an admin reload.
async function deletedFile(h, { setup, srv, api, file }) {
  const A = { token: setup.tokens.admin };
  await h.test('audit: file deleted -> 503 and nothing runs; /healthz 200; /readyz 503 naming audit; unaudited GET 200', async () => {
    fs.unlinkSync(file);
    const r = await api('POST', `${KS}/branch-keys`, { ...A, body: { branchKeyIdentifier: 'audit-deleted' } });
    assertEq(r.status, 503, `create (${r.text})`);
    assertEq(r.json.error.type, 'ServiceUnavailableException', 'type');
    const get = await api('GET', `${KS}/branch-keys/audit-k1/active`, A);
    assertEq(get.status, 503, 'a get returning key material');
    assert(!get.json.branchKey, 'no key served');
    assertEq((await api('GET', '/healthz')).status, 200, '/healthz');
    const ready = await waitReadyz(api, (x) => x.status === 503 && x.json.checks.audit === 'unavailable', 5000);
    assertEq(ready.json.checks.audit, 'unavailable', `/readyz ${ready.text}`);
    assertEq(ready.status, 503, '/readyz status');
    assertEq((await api('GET', KS, A)).status, 200, 'unaudited GET');
    assert(!fs.existsSync(file), 'nothing recreated the file before SIGHUP');
  });
  await h.test('audit: SIGHUP reopens (a new file), /readyz 200 again; the refused call never ran', async () => {
    const before = countEvents(srv, 'audit_reopened');
    srv.proc.kill('SIGHUP');
    await waitFor(() => countEvents(srv, 'audit_reopened') > before);
    const get = await api('GET', `${KS}/branch-keys/audit-deleted/active`, A);
    assertEq(get.status, 404, 'the create refused with 503 wrote nothing');
    const ready = await waitReadyz(api, (x) => x.status === 200, 5000);
    assertEq(ready.status, 200, `/readyz ${ready.text}`);
    assertEq(byRequest(auditLines(file), get.headers['x-request-id']).n, 2, 'lines in the new file');
  });
  await h.test('audit: deleted again -> 503; POST /v1/admin/reload reopens it and is audited', async () => {
    fs.unlinkSync(file);
    assertEq((await api('POST', `${KS}/branch-keys`, { ...A, body: {} })).status, 503, 'create');
    const r = await api('POST', '/v1/admin/reload', A);
    assertEq(r.status, 200, `reload (${r.text})`);
    assertEq(byRequest(auditLines(file), r.headers['x-request-id']).n, 2, 'reload lines');
    assertEq((await api('POST', `${KS}/branch-keys`, { ...A, body: {} })).status, 201, 'create after');
  });
}

// logrotate: rename, SIGHUP, the next lines go to a new file at the path.
async function rotation(h, { setup, srv, api, file }) {
  await h.test('audit: rename + SIGHUP -> a new file gets the next lines; the rotated one keeps the old', async () => {
    const A = { token: setup.tokens.admin };
    const first = await api('POST', `${KS}/branch-keys`, { ...A, body: {} });
    fs.renameSync(file, `${file}.1`);
    const between = await api('POST', `${KS}/branch-keys`, { ...A, body: {} });
    assertEq(between.status, 201, 'a renamed file still takes lines');
    const before = countEvents(srv, 'audit_reopened');
    srv.proc.kill('SIGHUP');
    await waitFor(() => countEvents(srv, 'audit_reopened') > before);
    const after = await api('POST', `${KS}/branch-keys`, { ...A, body: {} });
    assertEq(after.status, 201, 'create after SIGHUP');
    const rotated = auditLines(`${file}.1`), current = auditLines(file);
    for (const r of [first, between]) assertEq(byRequest(rotated, r.headers['x-request-id']).n, 2, 'old lines rotated');
    assertEq(byRequest(current, after.headers['x-request-id']).n, 2, 'new line in the new file');
    assertEq(current.length, 2, 'only the new call in the new file');
  });
}

async function devFull(h) {
  let s;
  await h.test('audit: path /dev/full starts, then every audited call is 503; /healthz 200, /readyz 503', async () => {
    s = await start('audit-full', '/dev/full');
    const A = { token: s.setup.tokens.admin };
    const r = await s.api('POST', `${KS}/branch-keys`, { ...A, body: { branchKeyIdentifier: 'full-1' } });
    assertEq(r.status, 503, `create (${r.text})`);
    assertEq(r.headers['retry-after'], '1', 'Retry-After');
    assertEq((await s.api('GET', '/healthz')).status, 200, '/healthz');
    const ready = await waitReadyz(s.api, (x) => x.json && x.json.checks.audit === 'unavailable', 5000);
    assertEq(ready.status, 503, `/readyz ${ready.text}`);
    assertEq((await s.api('GET', KS, A)).status, 200, 'unaudited GET');
    const log = s.srv.stderr();
    assert(log.includes('"event":"audit_failed"') && log.includes('"path":"/dev/full"'), 'audit_failed logged');
    // The failures are counted on /metrics (the audit log's own counter), one per refused call.
    const failures = async () => {
      const m = await s.api('GET', '/metrics', A);
      assertEq(m.status, 200, `/metrics ${m.text.slice(0, 200)}`);
      const v = parseMetrics(m.text).get('keystored_audit_failures_total');
      assert(v !== undefined, 'no keystored_audit_failures_total sample');
      return v;
    };
    const before = await failures();
    assert(before >= 1, `keystored_audit_failures_total ${before} after a refused call`);
    assertEq((await s.api('POST', `${KS}/branch-keys`, { ...A, body: { branchKeyIdentifier: 'full-2' } })).status, 503, 'second create');
    assertEq(await failures(), before + 1, 'one more failure counted');
  });
  if (s) {
    await h.test('audit (/dev/full): SIGTERM -> exit 0', async () => {
      const info = await s.srv.stop();
      assertEq(info.code, 0, 'exit code');
    });
  }
}

// The scanner must be able to fail: a planted secret is found in every form, a clean file is not.
async function scannerSelfTest(h, dir) {
  await h.test('secret grep self-test: a planted key and token are found as raw, base64, base64url and hex', async () => {
    const key = Buffer.from('00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff', 'hex').toString('base64');
    const secrets = [{ kind: 'key', value: key, forms: secretForms('key', key) },
      { kind: 'token', value: 'ks_planted_0123456789abcdef', forms: secretForms('token', 'ks_planted_0123456789abcdef') }];
    const clean = Buffer.from('{"event":"audit","branchKeyId":"k"}\n');
    assertEq(findSecrets(clean, secrets).length, 0, 'clean');
    for (const s of secrets) {
      for (const [form, bytes] of s.forms) {
        const f = path.join(dir, `planted-${form}.log`);
        fs.writeFileSync(f, Buffer.concat([clean, Buffer.from('x'), bytes, Buffer.from('y\n')]));
        const hits = findSecrets(fs.readFileSync(f), secrets);
        assert(hits.some((x) => x.kind === s.kind && x.form === form), `${s.kind} as ${form} not found`);
        fs.unlinkSync(f);
      }
    }
    assert(secrets[0].forms.map(([f]) => f).join() === 'raw,base64,base64url,hex,HEX', `forms ${secrets[0].forms.map(([f]) => f)}`);
  });
}

export async function runAudit(h) {
  let s;
  try {
    s = await start('audit');
  } catch (e) {
    h.fail('audit: start', e.message);
    return;
  }
  try {
    await auditedCalls(h, s);
    await deletedFile(h, s);
    await rotation(h, s);
    await scannerSelfTest(h, s.setup.dir);
  } finally {
    const info = await s.srv.stop();
    await h.test('audit server: SIGTERM -> exit 0', async () => assertEq(info.code, 0, 'exit code'));
  }
  await devFull(h);
}

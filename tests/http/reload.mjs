// reload.mjs - configuration reload without a restart (issue 15; README "Reload"), by SIGHUP and
// by POST /v1/admin/reload: an invalid file changes nothing (400 with the reason, or a logged
// failure for SIGHUP) and /readyz stays ready; a removed tenant is refused from the next request,
// an added one accepted; a warm cache entry survives (counted: no KMS Decrypt after the reload,
// from keystored's own /metrics); changes that cannot apply live are refused; SIGHUP never ends
// the process, and it still exits 0 on SIGTERM.

import fs from 'node:fs';
import path from 'node:path';
import { assert, assertEq } from './lib/harness.mjs';
import { makeApi, parseMetrics } from './lib/http.mjs';
import { newToken, runKeystored, sha256Hex, startServer, tempDir } from './lib/server.mjs';

function config(dir, t, names, { listen = '127.0.0.1:0', db = 'ks.db', extra = '' } = {}) {
  const tenant = (name) => `  - name: ${name}
    token_sha256: "${sha256Hex(t[name])}"
    role: ${name === 'admin' ? 'admin' : 'reader'}
    key_stores: [default]
    kms_relationships: [local]
`;
  return `listen: ${listen}
kms_relationships:
  - {name: local, type: local, key_file: ${dir}/kms.keys}
key_stores:
  - {name: default, logical_key_store_name: default, kms_relationship: local,
     storage: {type: sqlite, path: ${dir}/${db}}}
${extra}tenants:
${names.map(tenant).join('')}`;
}

function decryptsOf(text) {
  const v = parseMetrics(text).get('keystored_kms_requests_total{relationship="local",operation="Decrypt"}');
  return v === undefined ? NaN : v;
}

// Log events of one kind, parsed.
function events(text, name) {
  return text.split('\n').filter((l) => l.startsWith('{')).map((l) => {
    try {
      return JSON.parse(l);
    } catch {
      return null;
    }
  }).filter((o) => o && o.event === name);
}

async function waitFor(pred, what, ms = 10000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await pred()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out waiting for ${what}`);
}

// `keystored token new`: a 256-bit token and the token_sha256 line that matches it; never the same
// twice.
async function tokenNew(h) {
  await h.test('token new: ks_ + 64 hex digits, its SHA-256 as a YAML line, fresh each time', async () => {
    const seen = new Set();
    for (let i = 0; i < 2; i++) {
      const r = await runKeystored(['token', 'new'], 'token new');
      assertEq(r.code, 0, `exit code (${r.stderr})`);
      const m = /^token: (ks_[0-9a-f]{64})\ntoken_sha256: "([0-9a-f]{64})"\n$/.exec(r.stdout);
      assert(m, `output: ${JSON.stringify(r.stdout)}`);
      assertEq(m[2], sha256Hex(m[1]), 'token_sha256 is the SHA-256 of the token');
      seen.add(m[1]);
    }
    assertEq(seen.size, 2, 'two runs, two tokens');
  });
}

export async function runReload(h) {
  await tokenNew(h);
  const dir = tempDir('reload');
  const t = Object.fromEntries(['admin', 't1', 't2', 't3'].map((n) => [n, newToken(n)]));
  const configPath = path.join(dir, 'keystored.yaml');
  const write = (text) => fs.writeFileSync(configPath, text, { mode: 0o600 });
  write(config(dir, t, ['admin', 't1']));
  const srv = await startServer(['--config', configPath], 'reload');
  const api = makeApi(srv.base);
  const ks = '/v1/keystores/default';
  const decrypts = async () => decryptsOf((await api('GET', '/metrics', { token: t.admin })).text);
  const status = async (who, p) => (await api('GET', p, { token: t[who] })).status;
  const count = (name) => events(srv.stderr(), name).length;
  const sighup = async (name) => {
    const before = count(name);
    srv.proc.kill('SIGHUP');
    await waitFor(() => count(name) > before, `a "${name}" log event after SIGHUP`);
  };
  let active;

  try {
    await h.test('reload: setup: a key, warmed in the cache for admin and t1', async () => {
      assertEq((await api('PUT', ks, { token: t.admin })).status, 200, 'create the key store');
      const r = await api('POST', `${ks}/branch-keys`, { token: t.admin });
      assertEq(r.status, 201, 'create');
      active = `${ks}/branch-keys/${r.json.branchKeyIdentifier}/active`;
      assertEq(await status('admin', active), 200, 'admin get');
      assertEq(await status('t1', active), 200, 't1 get');
      const d = await decrypts();
      assertEq(await status('admin', active), 200, 'admin hit');
      assertEq(await decrypts(), d, 'a hit costs no Decrypt');
      await waitFor(async () => (await api('GET', '/readyz')).status === 200, '/readyz 200');
    });

    await h.test('reload: SIGHUP with an invalid file: the process lives, nothing changes, /readyz ready', async () => {
      write('tenants: [this is not a tenant\n');
      await sighup('reload_failed');
      assertEq(srv.exitInfo(), null, 'still running after SIGHUP');
      assertEq(await status('t1', active), 200, 't1 still accepted');
      assertEq((await api('GET', '/readyz')).status, 200, '/readyz');
    });

    await h.test('reload: POST with an invalid file: 400 with the reason, nothing changes', async () => {
      write(config(dir, t, ['admin', 't2']).replace('role: reader', 'role: superuser'));
      const r = await api('POST', '/v1/admin/reload', { token: t.admin });
      assertEq(r.status, 400, `status (${r.text})`);
      assert(/not reloaded/.test(r.json.error.message) && /role/.test(r.json.error.message),
        `message: ${r.json.error.message}`);
      assertEq(await status('t1', active), 200, 't1 still accepted');
      assertEq(await status('t2', active), 401, 't2 not yet known');
      assertEq((await api('GET', '/readyz')).status, 200, '/readyz');
    });

    await h.test('reload: only the admin role may reload', async () => {
      write(config(dir, t, ['admin', 't1']));
      const r = await api('POST', '/v1/admin/reload', { token: t.t1 });
      assertEq(r.status, 403, 'reader');
      assertEq((await api('POST', '/v1/admin/reload')).status, 401, 'no token');
    });

    await h.test('reload: SIGHUP: removed tenant refused, added one accepted, warm cache kept (no Decrypt)', async () => {
      write(config(dir, t, ['admin', 't2']));
      await sighup('reloaded');
      const d = await decrypts();
      assertEq(await status('t1', active), 401, 't1 removed');
      assertEq(await status('admin', active), 200, 'admin');
      assertEq(await decrypts(), d, 'admin\'s warm entry was kept: no Decrypt');
      assertEq(await status('t2', active), 200, 't2 added');
      assertEq(await decrypts(), d + 1, 't2 has its own partition: one Decrypt');
    });

    await h.test('reload: POST valid: 200, added tenant accepted, cache kept', async () => {
      write(config(dir, t, ['admin', 't2', 't3']));
      const r = await api('POST', '/v1/admin/reload', { token: t.admin });
      assertEq(r.status, 200, `status (${r.text})`);
      assertEq(r.json.status, 'reloaded', 'body');
      const d = await decrypts();
      assertEq(await status('t2', active), 200, 't2');
      assertEq(await status('admin', active), 200, 'admin');
      assertEq(await decrypts(), d, 'warm entries kept');
      assertEq(await status('t3', active), 200, 't3 added');
    });

    await h.test('reload: changes that cannot apply live are refused, nothing changes', async () => {
      const cases = [
        [config(dir, t, ['admin', 't1'], { listen: '127.0.0.1:1' }), /listen/],
        [config(dir, t, ['admin', 't1'], { db: 'moved.db' }), /key store 'default'/],
        [config(dir, t, ['admin', 't1'], { extra: 'server: {threads: 7}\n' }), /server.threads/],
        [config(dir, t, ['admin', 't1'], { extra: 'cache: {capacity: 5}\n' }), /cache/],
      ];
      for (const [text, re] of cases) {
        write(text);
        const r = await api('POST', '/v1/admin/reload', { token: t.admin });
        assertEq(r.status, 400, `status (${r.text})`);
        assert(re.test(r.json.error.message), `message ${r.json.error.message} lacks ${re}`);
        assertEq(await status('t1', active), 401, 't1 still removed');
        assertEq(await status('t3', active), 200, 't3 still there');
      }
      assert(!fs.existsSync(path.join(dir, 'moved.db')), 'the refused storage was not opened');
    });

    await h.test('reload: SIGTERM after reloads still exits 0', async () => {
      const info = await srv.stop();
      assertEq(info.code, 0, `exit code (signal ${info.signal})`);
    });
  } finally {
    await srv.stop().catch(() => {});
  }
}

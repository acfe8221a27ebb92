// startup.mjs - what happens before the first request (docs/architecture.md sections 4 and 6):
//   - the local KMS key file: a corrupt one (bad header, bad base64) or one readable by others
//     stops the start with a message naming the file;
//   - --check-config lists every error as file:line:column; a valid file prints ok;
//   - the embedded default: first start prints the admin token once, makes a 0700 data dir with
//     0600 files; the token works; the second start prints no token and reads the first's keys.

import { randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { assert, assertEq, base64Bytes } from './lib/harness.mjs';
import { makeApi } from './lib/http.mjs';
import { makeSuiteSetup, runKeystored, startServer, tempDir } from './lib/server.mjs';

const HEADER = 'keystored-local-kms v1';

function validKeyFile() {
  return `${HEADER}\n${randomUUID()} ${randomBytes(32).toString('base64')}\n`;
}

async function expectRefusedStart(setup, label, mention) {
  const r = await runKeystored(['--config', setup.configPath, '--listen', '127.0.0.1:0'], label);
  assert(!r.timedOut, `${label}: keystored started and kept running; stderr:\n${r.stderr}`);
  assert(r.code !== 0 && r.code !== null, `exit code ${r.code} (signal ${r.signal}); stderr:\n${r.stderr}`);
  const file = path.join(setup.dir, 'kms.keys');
  assert(r.stderr.includes(file), `stderr does not name ${file}:\n${r.stderr}`);
  if (mention) assert(mention.test(r.stderr), `stderr does not match ${mention}:\n${r.stderr}`);
}

export async function runKeyFile(h) {
  const cases = [
    ['bad header', `keystored-local-kms v0\n${randomUUID()} ${randomBytes(32).toString('base64')}\n`, 0o600, /header/],
    ['bad base64', `${HEADER}\n${randomUUID()} !!!!${'A'.repeat(40)}\n`, 0o600, /base64/],
    ['short key', `${HEADER}\n${randomUUID()} ${randomBytes(16).toString('base64')}\n`, 0o600, null],
    ['no key', `${HEADER}\n`, 0o600, null],
    ['mode 0644', validKeyFile(), 0o644, /0600/],
  ];
  for (const [what, text, mode, mention] of cases) {
    await h.test(`key file: ${what} -> keystored exits non-zero naming the file`, async () => {
      const setup = makeSuiteSetup('keyfile');
      const file = path.join(setup.dir, 'kms.keys');
      fs.writeFileSync(file, text, { mode });
      fs.chmodSync(file, mode);
      await expectRefusedStart(setup, `keyfile-${what}`, mention);
    });
  }
  await h.test('key file: a valid 0600 key file is used (control)', async () => {
    const setup = makeSuiteSetup('keyfile');
    const file = path.join(setup.dir, 'kms.keys');
    const text = validKeyFile();
    fs.writeFileSync(file, text, { mode: 0o600 });
    const srv = await startServer(['--config', setup.configPath], 'keyfile-valid');
    try {
      const api = makeApi(srv.base);
      const r = await api('GET', '/v1/keystores/default', { token: setup.tokens.admin });
      assertEq(r.status, 200, 'status');
      const uuid = text.split('\n')[1].split(' ')[0];
      assertEq(r.json.kmsConfiguration, { kmsKeyArn: `arn:aws:kms:local:000000000000:key/${uuid}` }, 'kmsConfiguration');
    } finally {
      const info = await srv.stop();
      assertEq(info.code, 0, 'exit code');
    }
  });
}

// A config with errors on known lines (1-based): every one must be reported with its line.
const BAD_CONFIG = [
  'listen: 127.0.0.1:99999', // 1: port out of range
  'kms_relationships:', // 2
  '  - name: local', // 3
  '    type: lokal', // 4: unknown type
  'key_stores:', // 5
  '  - name: default', // 6
  '    logical_key_store_name: default', // 7
  '    kms_relationship: missing', // 8: unknown relationship
  '    storage: {type: sqlite, path: ./x.db}', // 9
  'tenants:', // 10
  '  - name: t', // 11
  '    token_sha256: "zz"', // 12: not 64 hex digits
  '    role: superuser', // 13: unknown role
  '    key_stores: [default]', // 14
  '    kms_relationships: [local]', // 15
  '', // 16
];
const BAD_LINES = [1, 4, 8, 12, 13];

export async function runConfigCheck(h) {
  const dir = tempDir('config');
  const bad = path.join(dir, 'bad.yaml');
  fs.writeFileSync(bad, BAD_CONFIG.join('\n'));
  await h.test('check-config: a file with 5 errors -> exit non-zero, every error as file:line:column', async () => {
    const r = await runKeystored(['--check-config', bad], 'check-config-bad');
    assert(r.code !== 0 && r.code !== null, `exit code ${r.code}; stderr:\n${r.stderr}`);
    const re = new RegExp(`^${bad.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:(\\d+):(\\d+): .+`);
    const lines = r.stderr.split('\n').filter((l) => l.trim());
    const located = lines.map((l) => re.exec(l)).filter(Boolean);
    assert(located.length >= BAD_LINES.length, `expected >= ${BAD_LINES.length} located errors, got:\n${r.stderr}`);
    const seen = new Set(located.map((m) => Number(m[1])));
    const missing = BAD_LINES.filter((n) => !seen.has(n));
    assert(missing.length === 0, `no error reported on line(s) ${missing.join(', ')}:\n${r.stderr}`);
    assert(located.every((m) => Number(m[2]) >= 1), 'columns are 1-based');
  });
  await h.test('check-config: a valid file -> prints ok, exit 0', async () => {
    const setup = makeSuiteSetup('config');
    const r = await runKeystored(['--check-config', setup.configPath], 'check-config-good');
    assertEq(r.code, 0, `exit code (stderr ${r.stderr})`);
    assert(/\bok\b/.test(r.stdout + r.stderr), `no "ok" printed: ${r.stdout}${r.stderr}`);
  });
  await h.test('check-config: a missing file -> exit non-zero naming it', async () => {
    const missing = path.join(dir, 'nope.yaml');
    const r = await runKeystored(['--check-config', missing], 'check-config-missing');
    assert(r.code !== 0 && r.code !== null, `exit code ${r.code}`);
    assert(r.stderr.includes(missing), `stderr does not name the file: ${r.stderr}`);
  });
}

function mode(p) {
  return fs.statSync(p).mode & 0o777;
}

export async function runEmbedded(h) {
  const parent = tempDir('embedded');
  const data = path.join(parent, 'data');
  let token, id, key;

  const first = await h.test('embedded default: first start prints the admin token once; 0700 dir, 0600 files; the token works', async () => {
    const srv = await startServer(['--data-dir', data, '--listen', '127.0.0.1:0'], 'embedded-1');
    try {
      const tokens = [...srv.stderr().matchAll(/^admin token: (\S+)$/gm)].map((m) => m[1]);
      assertEq(tokens.length, 1, 'admin token lines');
      token = tokens[0];
      assertEq(mode(data).toString(8), '700', 'data dir mode');
      for (const f of ['keystore.db', 'local-kms.keys', 'admin-token.sha256'])
        assertEq(mode(path.join(data, f)).toString(8), '600', `${f} mode`);
      const api = makeApi(srv.base);
      const T = { token };
      const ks = await api('PUT', '/v1/keystores/default', T);
      assertEq(ks.status, 200, `PUT key store (${ks.text})`);
      const c = await api('POST', '/v1/keystores/default/branch-keys', T);
      assertEq(c.status, 201, 'create key');
      id = c.json.branchKeyIdentifier;
      const a = await api('GET', `/v1/keystores/default/branch-keys/${id}/active`, T);
      assertEq(a.status, 200, 'get active');
      assertEq(base64Bytes(a.json.branchKey).length, 32, 'key bytes');
      key = a.json.branchKey;
      const info = await api('GET', '/v1/keystores/default', T);
      assertEq(info.json.kmsRelationship, 'local', 'kmsRelationship');
      const bogus = await api('GET', '/v1/keystores/default', { token: token + 'x' });
      assertEq(bogus.status, 401, 'a wrong token');
    } finally {
      const info = await srv.stop();
      assertEq(info.code, 0, 'exit code');
    }
  });
  if (!first) return;
  await h.test('embedded default: second start prints no token, keeps the token and reads the first start\'s key', async () => {
    const srv = await startServer(['--data-dir', data, '--listen', '127.0.0.1:0'], 'embedded-2');
    try {
      assert(!/admin token/.test(srv.stderr()), 'a token was printed again');
      const api = makeApi(srv.base);
      const a = await api('GET', `/v1/keystores/default/branch-keys/${id}/active`, { token });
      assertEq(a.status, 200, `get active (${a.text})`);
      assertEq(a.json.branchKey, key, 'same key bytes');
    } finally {
      const info = await srv.stop();
      assertEq(info.code, 0, 'exit code');
    }
    assert(!/admin token/.test(srv.stderr()), 'a token was printed again');
  });
}

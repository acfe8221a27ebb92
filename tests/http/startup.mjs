// startup.mjs - what happens before the first request (docs/architecture.md sections 4 and 6):
//   - the local KMS key file: a corrupt one (bad header, bad base64) or one readable by others
//     stops the start with a message naming the file;
//   - local master keys are never created while a key store holds items: a missing key file, or
//     a kms_key_arn missing from the key file, stops the start and nothing is written; with empty
//     key stores both are still created;
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
  await runMasterKeyCreation(h);
}

// Starts keystored on setup's config, creates one branch key in key store "default" through
// relationship "local" and stops it: the key stores now hold items. Returns the branch key id and
// its key bytes.
async function createItems(setup, label) {
  const srv = await startServer(['--config', setup.configPath], label);
  try {
    const api = makeApi(srv.base);
    const T = { token: setup.tokens.admin };
    const ks = await api('PUT', '/v1/keystores/default', T);
    assertEq(ks.status, 200, `PUT key store (${ks.text})`);
    const c = await api('POST', '/v1/keystores/default/branch-keys', T);
    assertEq(c.status, 201, `create key (${c.text})`);
    const id = c.json.branchKeyIdentifier;
    const a = await api('GET', `/v1/keystores/default/branch-keys/${id}/active`, T);
    assertEq(a.status, 200, 'get active');
    return { id, key: a.json.branchKey };
  } finally {
    const info = await srv.stop();
    assertEq(info.code, 0, 'exit code');
  }
}

// Starts keystored on setup's config, expects it to refuse with stderr matching every pattern.
async function expectRefusal(setup, label, patterns) {
  const r = await runKeystored(['--config', setup.configPath, '--listen', '127.0.0.1:0'], label);
  assert(!r.timedOut, `${label}: keystored started and kept running; stderr:\n${r.stderr}`);
  assert(r.code !== 0 && r.code !== null, `exit code ${r.code} (signal ${r.signal}); stderr:\n${r.stderr}`);
  for (const p of patterns) assert(r.stderr.includes(p), `stderr lacks "${p}":\n${r.stderr}`);
}

// setup's config with kms_key_arn = arn on relationship "local".
function withKeyArn(setup, arn) {
  const file = path.join(setup.dir, 'kms.keys');
  const text = fs.readFileSync(setup.configPath, 'utf8');
  const line = `    key_file: ${file}\n`;
  assert(text.includes(line), 'the suite config changed shape');
  fs.writeFileSync(setup.configPath,
    text.replace(line, `${line}    kms_configuration:\n      kms_key_arn: "${arn}"\n`), { mode: 0o600 });
}

function fileState(p) {
  const st = fs.statSync(p);
  return { text: fs.readFileSync(p, 'utf8'), ino: st.ino, mtimeMs: st.mtimeMs };
}

export async function runMasterKeyCreation(h) {
  const refusing = 'refusing to create';
  await h.test('master keys: key file missing next to a database with items -> start refused, no key file created; restored -> starts', async () => {
    const setup = makeSuiteSetup('mk-file');
    const { id, key } = await createItems(setup, 'mk-file-1');
    const file = path.join(setup.dir, 'kms.keys');
    const backup = path.join(setup.dir, 'kms.keys.backup');
    fs.renameSync(file, backup);
    await expectRefusal(setup, 'mk-file-2', [
      `key store 'default' holds items but the local KMS key file ${file} does not exist`, refusing,
      'restore the key file or point key_file at it']);
    assert(!fs.existsSync(file), 'a new key file was created');
    // The same start with the key file back reads the stored key: the refusal was the file.
    fs.renameSync(backup, file);
    const srv = await startServer(['--config', setup.configPath], 'mk-file-3');
    try {
      const a = await makeApi(srv.base)('GET', `/v1/keystores/default/branch-keys/${id}/active`, { token: setup.tokens.admin });
      assertEq(a.status, 200, `get active (${a.text})`);
      assertEq(a.json.branchKey, key, 'same key bytes');
    } finally {
      assertEq((await srv.stop()).code, 0, 'exit code');
    }
  });
  await h.test('master keys: another relationship\'s key file missing while a key store holds items -> refused (any key store may use any relationship)', async () => {
    const setup = makeSuiteSetup('mk-other');
    await createItems(setup, 'mk-other-1');
    const file = path.join(setup.dir, 'kms2.keys'); // relationship local2: no key store's default
    fs.unlinkSync(file);
    await expectRefusal(setup, 'mk-other-2', [`holds items but the local KMS key file ${file} does not exist`, refusing]);
    assert(!fs.existsSync(file), 'a new key file was created');
  });
  await h.test('master keys: kms_key_arn missing from an existing key file while items exist -> refused, key file unchanged', async () => {
    const setup = makeSuiteSetup('mk-arn');
    await createItems(setup, 'mk-arn-1');
    const file = path.join(setup.dir, 'kms.keys');
    const before = fileState(file);
    const uuid = randomUUID();
    withKeyArn(setup, `arn:aws:kms:local:000000000000:key/${uuid}`);
    await expectRefusal(setup, 'mk-arn-2', [
      `key store 'default' holds items but the local KMS key file ${file} has no key ${uuid}`, refusing]);
    assertEq(fileState(file), before, 'key file');
  });
  await h.test('master keys: empty key stores -> a missing key file and a missing kms_key_arn are still created', async () => {
    const setup = makeSuiteSetup('mk-empty');
    const file = path.join(setup.dir, 'kms.keys');
    // First start: databases and key files created, no items written.
    let srv = await startServer(['--config', setup.configPath], 'mk-empty-1');
    assertEq((await srv.stop()).code, 0, 'exit code');
    assert(fs.existsSync(path.join(setup.dir, 'ks.db')), 'no database');
    fs.unlinkSync(file);
    const uuid = randomUUID();
    withKeyArn(setup, `arn:aws:kms:local:000000000000:key/${uuid}`);
    srv = await startServer(['--config', setup.configPath], 'mk-empty-2');
    try {
      const r = await makeApi(srv.base)('GET', '/v1/keystores/default', { token: setup.tokens.admin });
      assertEq(r.status, 200, 'status');
      assertEq(r.json.kmsConfiguration, { kmsKeyArn: `arn:aws:kms:local:000000000000:key/${uuid}` }, 'kmsConfiguration');
    } finally {
      assertEq((await srv.stop()).code, 0, 'exit code');
    }
    assertEq(mode(file).toString(8), '600', 'key file mode');
    assert(fs.readFileSync(file, 'utf8').includes(uuid), 'the configured key was not added');
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

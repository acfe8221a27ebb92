// mutations.mjs - branch key mutations over HTTP (README "Mutations"; docs/reference/mutations.md),
// on both backends (sqlite + local KMS; DynamoDB Local + the KMS test peer):
//   runMutations: both strategies, context-only and ARN changes, doNotVersion, atomic, abort,
//     DescribeMutation, and every row of the error table provoked (each test names its row);
//     concurrency (two clients applying one mutation; VersionKey racing InitializeMutation);
//   runMutationCrash: SIGKILL the server at random points of a paged mutation of a 300-version
//     key, 50 times, resume each time, then check every version.
// After each completed mutation every version is read back under the terminal relationship and
// compared with its original bytes, and the store holds no commitment or index.

import { randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { assert, assertEq, sleep } from './lib/harness.mjs';
import { makeApi } from './lib/http.mjs';
import { newTokens, sha256Hex, startServer, tempDir } from './lib/server.mjs';
import { PEER_CREDENTIALS, PEER_REGION } from './lib/backends.mjs';

const KS = '/v1/keystores/default';
const MOVE = { decryptEncrypt: { decrypt: 'local', encrypt: 'alt' } };
const COMMITMENT = 'branch:MUTATION_COMMITMENT';
const INDEX = 'branch:MUTATION_INDEX';
// A local KMS key ARN that the sqlite setup ensures in the first key file ("alt"), and one
// that no KMS knows (the terminal side refused).
const ALT_LOCAL = 'arn:aws:kms:local:000000000000:key/a1a1a1a1-1111-4111-8111-111111111111';

let counter = 0;

// ---- configuration ----------------------------------------------------------------------------

/*
 * Relationships: local (strict, key A: the key store default), alt (strict, key B), far and far2
 * (a KMS, or credentials, that refuse A and B: the original / terminal side denied); DynamoDB
 * also disc (discovery over the KMS peer; the local KMS has no discovery). Tenants: admin (every
 * relationship), narrow (admin role, only `local`: a strategy naming another relationship is
 * 403), reader.
 */
function mutationSetup(backend, tag, mutationsYaml) {
  const dir = tempDir(`mut-${tag}`);
  const tokens = { ...newTokens(), narrow: `ks_narrow_${sha256Hex(String(Math.random())).slice(0, 32)}` };
  let rels;
  let storage;
  const setup = { dir, tokens, backend };
  if (backend.name === 'sqlite') {
    // The local KMS has no discovery: two key files made here, far.keys holding A and B with
    // other key material (so A is refused on the original side, B on the terminal side).
    const keyFile = (file, uuids) => fs.writeFileSync(path.join(dir, file),
      `keystored-local-kms v1\n${uuids.map((u) => `${u} ${randomBytes(32).toString('base64')}\n`).join('')}`, { mode: 0o600 });
    const a = randomUUID(), b = ALT_LOCAL.slice(ALT_LOCAL.lastIndexOf('/') + 1);
    keyFile('kms.keys', [a, b]);
    keyFile('far.keys', [a, b]);
    const strict = (name, file, uuid) => `  - name: ${name}\n    type: local\n    key_file: ${dir}/${file}\n` +
      `    kms_configuration: {kms_key_arn: "arn:aws:kms:local:000000000000:key/${uuid}"}\n`;
    rels = strict('local', 'kms.keys', a) + strict('alt', 'kms.keys', b) + strict('far', 'far.keys', a) +
      strict('far2', 'far.keys', b);
    setup.rels = ['local', 'alt', 'far', 'far2'];
    storage = `    storage: {type: sqlite, path: ${dir}/ks.db}\n`;
  } else {
    counter++;
    const table = `ks-mut-${tag}-${process.pid}-${counter}`;
    setup.tables = { default: table };
    const peer = (name, conf, creds = PEER_CREDENTIALS) =>
      `  - name: ${name}\n    type: aws\n    region: ${PEER_REGION}\n    endpoint: ${backend.kms.endpoint}\n` +
      `    credentials:\n      source: static\n      access_key_id: ${creds.accessKeyId}\n` +
      `      secret_access_key: ${creds.secretAccessKey}\n    kms_configuration: ${conf}\n`;
    rels = peer('local', `{kms_key_arn: "${backend.keyArns.local}"}`) +
      peer('alt', `{kms_key_arn: "${backend.keyArns.local2}"}`) + peer('disc', '{discovery: {}}') +
      peer('far', '{discovery: {}}', { accessKeyId: PEER_CREDENTIALS.accessKeyId, secretAccessKey: 'wrong-secret' }) +
      peer('far2', '{discovery: {}}', { accessKeyId: PEER_CREDENTIALS.accessKeyId, secretAccessKey: 'wrong-secret' });
    setup.rels = ['local', 'alt', 'disc', 'far', 'far2'];
    storage = `    storage:\n      type: dynamodb\n      table: ${table}\n      region: ${PEER_REGION}\n` +
      `      endpoint: ${backend.ddb.endpoint}\n      credentials:\n        source: static\n` +
      `        access_key_id: ${PEER_CREDENTIALS.accessKeyId}\n        secret_access_key: ${PEER_CREDENTIALS.secretAccessKey}\n`;
  }
  const text = `listen: 127.0.0.1:0\nkms_relationships:\n${rels}key_stores:\n` +
    `  - name: default\n    logical_key_store_name: default\n    kms_relationship: local\n${storage}` +
    (mutationsYaml ? `    mutations: ${mutationsYaml}\n` : '') +
    `tenants:\n  - name: admin\n    token_sha256: "${sha256Hex(tokens.admin)}"\n    role: admin\n` +
    `    key_stores: [default]\n    kms_relationships: [${setup.rels.join(', ')}]\n` +
    `  - name: narrow\n    token_sha256: "${sha256Hex(tokens.narrow)}"\n    role: admin\n` +
    `    key_stores: [default]\n    kms_relationships: [local]\n` +
    `  - name: reader\n    token_sha256: "${sha256Hex(tokens.reader)}"\n    role: reader\n` +
    `    key_stores: [default]\n    kms_relationships: [local, alt]\n`;
  setup.configPath = path.join(dir, 'keystored.yaml');
  fs.writeFileSync(setup.configPath, text, { mode: 0o600 });
  setup.store = () => backend.store(setup);
  return setup;
}

// ---- a client of the mutation API -------------------------------------------------------------

function client(api, tokens) {
  const T = { token: tokens.admin };
  const bk = (id) => `${KS}/branch-keys/${encodeURIComponent(id)}`;
  const c = {
    T,
    bk,
    api,
    narrowToken: tokens.narrow,
    async createKey(versions, ec = { tenant: 'a' }) {
      const r = await api('POST', `${KS}/branch-keys`, { ...T, body: { encryptionContext: ec } });
      assertEq(r.status, 201, `CreateKey (${r.text.slice(0, 200)})`);
      const id = r.json.branchKeyIdentifier;
      for (let i = 1; i < versions; i++) {
        const v = await api('POST', `${bk(id)}/versions`, T);
        assertEq(v.status, 201, `VersionKey (${v.text.slice(0, 200)})`);
      }
      return id;
    },
    init: (id, body, token = T.token) => api('POST', `${bk(id)}/mutation`, { token, body }),
    apply: (id, body) => api('POST', `${bk(id)}/mutation/apply`, { ...T, body }),
    describe: (id) => api('GET', `${bk(id)}/mutation`, T),
    abort: (id, token) => api('DELETE', `${bk(id)}/mutation`, { ...T, body: { mutationToken: token } }),
    async arn(rel) {
      const r = await api('GET', `${KS}?kmsRelationship=${rel}`, T);
      assertEq(r.status, 200, `key store info (${r.text.slice(0, 200)})`);
      return r.json.kmsConfiguration.kmsKeyArn;
    },
    // Every version uuid of the key (from the store) with its bytes read under rel.
    async snapshot(id, store, rel) {
      const versions = await listVersions(store, id);
      const out = new Map();
      for (const v of versions) out.set(v, await c.readVersion(id, v, rel));
      const b = await api('GET', `${bk(id)}/beacon?kmsRelationship=${rel}`, T);
      assertEq(b.status, 200, `beacon (${b.text.slice(0, 200)})`);
      return { versions: out, beacon: b.json.beaconKey };
    },
    async readVersion(id, v, rel) {
      const r = await api('GET', `${bk(id)}/versions/${v}?kmsRelationship=${rel}`, T);
      assertEq(r.status, 200, `version ${v} under ${rel} (${r.text.slice(0, 200)})`);
      return { key: r.json.branchKey, ec: r.json.encryptionContext };
    },
    // ApplyMutation until complete; 409 MutationConflictException is retried. Returns stats.
    async applyAll(id, token, extra = {}) {
      let pages = 0, mutated = 0, verified = 0, conflicts = 0;
      for (;;) {
        const { otherClients, ...body } = extra;
        const r = await c.apply(id, { mutationToken: token, ...body });
        if (r.status === 409 && r.json.error.type === 'MutationConflictException') {
          conflicts++;
          continue;
        }
        // Another client completed it (two clients on one mutation): the token is now stale.
        if (extra.otherClients && r.status === 400 && errorType(r) === 'MutationInvalidException')
          return { pages, mutated, verified, conflicts, completedByOther: true };
        assertEq(r.status, 200, `ApplyMutation (${r.text.slice(0, 300)})`);
        pages++;
        mutated += r.json.versionsMutated;
        verified += r.json.versionsVerified;
        if (r.json.completed) return { pages, mutated, verified, conflicts };
        assert(pages < 2000, 'too many pages');
      }
    },
  };
  return c;
}

// keystored has no list operation (MPL PR #1841 is still open): version uuids come from storage.
async function listVersions(store, id) {
  return store.listVersions(id);
}

// Every version of before reads under rel with the same bytes and context ec; beacon too; no
// commitment or index is left.
async function checkTerminal(c, store, id, before, rel, ec) {
  for (const [v, old] of before.versions) {
    const now = await c.readVersion(id, v, rel);
    assertEq(now.key, old.key, `version ${v} bytes`);
    assertEq(now.ec, ec, `version ${v} context`);
  }
  const b = await c.describe(id);
  assertEq(b.status, 404, `DescribeMutation after completion (${b.text.slice(0, 200)})`);
  assertEq(await store.getItem(id, COMMITMENT), null, 'commitment left');
  assertEq(await store.getItem(id, INDEX), null, 'index left');
}

function errorType(r) {
  return r.json && r.json.error ? r.json.error.type : undefined;
}

function expectError(r, status, type, contains) {
  assertEq(r.status, status, `status (${r.text.slice(0, 300)})`);
  assertEq(errorType(r), type, 'error.type');
  if (contains) assert(r.json.error.message.includes(contains), `message ${JSON.stringify(r.json.error.message)} lacks ${contains}`);
}

// store() of lib/backends.mjs plus a version listing.
function withListing(backend, setup) {
  const store = setup.store();
  store.listVersions = async (id) => {
    if (backend.name === 'sqlite') {
      const { sqlite, sqlQuote } = await import('./lib/sqlite.mjs');
      const out = sqlite(path.join(setup.dir, 'ks.db'),
        `SELECT type FROM items WHERE branch_key_id = ${sqlQuote(id)} AND type LIKE 'branch:version:%' ORDER BY type;`);
      return out.split('\n').filter(Boolean).map((t) => t.slice('branch:version:'.length));
    }
    const { QueryCommand } = backend.sdk;
    const res = [];
    let start;
    do {
      const r = await backend.client.send(new QueryCommand({
        TableName: setup.tables.default, ConsistentRead: true, ExclusiveStartKey: start,
        KeyConditionExpression: '#id = :id AND begins_with(#t, :p)',
        ExpressionAttributeNames: { '#id': 'branch-key-id', '#t': 'type' },
        ExpressionAttributeValues: { ':id': { S: id }, ':p': { S: 'branch:version:' } },
      }));
      for (const it of r.Items) res.push(it.type.S.slice('branch:version:'.length));
      start = r.LastEvaluatedKey;
    } while (start);
    return res;
  };
  return store;
}

// ---- the main mutation suite ------------------------------------------------------------------

export async function runMutations(h, backend) {
  const setup = mutationSetup(backend, 'main', '{page_size: 3, kms_in_flight: 4}');
  const srv = await startServer(['--config', setup.configPath], `mutations (${backend.name})`);
  const api = makeApi(srv.base);
  const c = client(api, setup.tokens);
  const store = withListing(backend, setup);
  try {
    if (backend.name === 'dynamodb') {
      const r = await api('PUT', KS, c.T);
      assertEq(r.status, 200, `CreateKeyStore (${r.text.slice(0, 200)})`);
    }
    await mutationCases(h, backend, c, store);
    await concurrencyCases(h, c, store);
  } finally {
    const info = await srv.stop();
    await h.test('mutations: server stops with exit 0', async () => assertEq(info.code, 0, 'exit code'));
  }
  await systemKeyCases(h, backend);
}

// A key store whose system key is KMS (alt's key): commitment and index are signed with KMS
// Encrypt and verified with Decrypt; an index altered in storage fails verification.
async function systemKeyCases(h, backend) {
  const sysArn = backend.name === 'sqlite' ? ALT_LOCAL : backend.keyArns.local2;
  const setup = mutationSetup(backend, 'syskey', `{system_key: {kms_relationship: alt, kms_key_arn: "${sysArn}"}}`);
  const srv = await startServer(['--config', setup.configPath], `mutations syskey (${backend.name})`);
  const c = client(makeApi(srv.base), setup.tokens);
  const store = withListing(backend, setup);
  try {
    await h.test('mutations: KMS system key: signed commitment and index, paged to completion', async () => {
      if (backend.name === 'dynamodb') assertEq((await c.api('PUT', KS, c.T)).status, 200, 'CreateKeyStore');
      const id = await c.createKey(4);
      const snap = await c.snapshot(id, store, 'local');
      const r = await c.init(id, { terminalEncryptionContext: { tenant: 'signed' } });
      assertEq(r.status, 201, `init (${r.text.slice(0, 300)})`);
      const d = await c.describe(id);
      assertEq(d.json.systemKey, 'kmsSymmetricEncryption', 'systemKey');
      const idx = await store.getItem(id, INDEX);
      assert(Buffer.from(idx.enc.B, 'base64').length > 32, 'the index enc is a KMS ciphertext');
      await c.applyAll(id, r.json.mutationToken, { pageSize: 2 });
      await checkTerminal(c, store, id, snap, 'local', { tenant: 'signed' });
    });
    await h.test('mutations: row MutationVerificationException 502 (KMS system key): an index altered in storage', async () => {
      const id = await c.createKey(2);
      const r = await c.init(id, { terminalEncryptionContext: { tenant: 'signed' } });
      assertEq(r.status, 201, 'init');
      await store.setAttribute(id, INDEX, 'create-time', { S: '2001-01-01T00:00:00.000000Z' });
      expectError(await c.apply(id, { mutationToken: r.json.mutationToken }), 502, 'MutationVerificationException');
      expectError(await c.init(id, { terminalEncryptionContext: { tenant: 'signed' } }), 502, 'MutationVerificationException');
    });
  } finally {
    await srv.stop();
  }
}

async function mutationCases(h, backend, c, store) {
  const arnA = await c.arn('local');
  const arnB = await c.arn('alt');
  const nowhere = arnB.replace(/key\/.*$/, 'key/0f0f0f0f-0000-4000-8000-000000000000');
  let id, before, token;

  await h.test('mutations: input errors -> 400 before any write (KeyStoreException)', async () => {
    id = await c.createKey(5);
    before = await c.snapshot(id, store, 'local');
    expectError(await c.init(id, {}), 400, 'KeyStoreException', 'terminalKmsArn');
    expectError(await c.init(id, { terminalKmsArn: arnB }), 400, 'KeyStoreException', 'strategy');
    expectError(await c.init(id, { terminalEncryptionContext: {} }), 400, 'KeyStoreException', 'terminalEncryptionContext');
    expectError(await c.init(id, { terminalEncryptionContext: { 'aws-crypto-ec:x': '1' } }), 400, 'KeyStoreException');
    expectError(await c.init(id, { terminalEncryptionContext: { x: 1 } }), 400, 'KeyStoreException');
    expectError(await c.init(id, { terminalEncryptionContext: { x: '1' }, bogus: 1 }), 400, 'KeyStoreException', 'bogus');
    expectError(await c.init(id, { terminalKmsArn: arnB, strategy: { reEncrypt: {} } }), 400, 'KeyStoreException', 'strategy');
    assertEq((await c.describe(id)).status, 404, 'nothing written');
  });

  await h.test('mutations: row UnsupportedFeatureException 400: a strategy that cannot do it (strict reEncrypt to another ARN; decrypt/encrypt on the wrong keys)', async () => {
    expectError(await c.init(id, { terminalKmsArn: arnB, strategy: { reEncrypt: { kmsRelationship: 'local' } } }),
      400, 'UnsupportedFeatureException', 'local');
    expectError(await c.init(id, { terminalKmsArn: arnB, strategy: { decryptEncrypt: { decrypt: 'alt', encrypt: 'alt' } } }),
      400, 'UnsupportedFeatureException');
    expectError(await c.init(id, { terminalEncryptionContext: { t: 'x' }, strategy: { reEncrypt: { kmsRelationship: 'alt' } } }),
      400, 'UnsupportedFeatureException');
    assertEq((await c.describe(id)).status, 404, 'nothing written');
  });

  await h.test('mutations: a strategy relationship the tenant may not use -> 403; unknown -> 404', async () => {
    const narrow = await c.init(id, { terminalKmsArn: arnB, strategy: { decryptEncrypt: { decrypt: 'local', encrypt: 'alt' } } }, c.narrowToken);
    expectError(narrow, 403, 'AccessDeniedException', 'alt');
    expectError(await c.init(id, { terminalKmsArn: arnB, strategy: { reEncrypt: { kmsRelationship: 'nope' } } }), 404, 'KeyStoreException', 'nope');
  });

  await h.test('mutations: row MutationInvalidException 400: nothing to do (already in the terminal state)', async () => {
    expectError(await c.init(id, { terminalKmsArn: arnA, strategy: { reEncrypt: { kmsRelationship: 'local' } } }),
      400, 'MutationInvalidException', 'terminal state');
    expectError(await c.init(id, { terminalEncryptionContext: { tenant: 'a' } }), 400, 'MutationInvalidException');
  });

  await h.test('mutations: InitializeMutation decryptEncrypt local -> alt with a new context -> 201 Created', async () => {
    const r = await c.init(id, { terminalKmsArn: arnB, terminalEncryptionContext: { tenant: 'b' },
      strategy: { decryptEncrypt: { decrypt: 'local', encrypt: 'alt' } } });
    assertEq(r.status, 201, `status (${r.text.slice(0, 300)})`);
    assertEq(r.json.initializeMutationFlag, 'Created', 'flag');
    token = r.json.mutationToken;
    assertEq(Object.keys(token).sort(), ['createTime', 'identifier', 'uuid'], 'token members');
    assertEq(token.identifier, id, 'token identifier');
    assertEq(r.json.mutatedBranchKeyItems.length, 5, 'log entries');
    assert(r.json.mutatedBranchKeyItems.every((e) => typeof e.itemType === 'string' && typeof e.description === 'string'), 'log shape');
  });

  await h.test('mutations: the same input resumes -> 200 Resumed, same token', async () => {
    const r = await c.init(id, { terminalKmsArn: arnB, terminalEncryptionContext: { tenant: 'b' },
      strategy: { decryptEncrypt: { decrypt: 'local', encrypt: 'alt' } }, doNotVersion: true });
    assertEq(r.status, 200, `status (${r.text.slice(0, 300)})`);
    assertEq(r.json.initializeMutationFlag, 'Resumed', 'flag');
    assertEq(r.json.mutationToken, token, 'token');
  });

  await h.test('mutations: row MutationConflictException 409: a different mutation in flight; VersionKey on the key', async () => {
    expectError(await c.init(id, { terminalEncryptionContext: { tenant: 'z' }, strategy: MOVE }),
      409, 'MutationConflictException');
    expectError(await c.init(id, { terminalKmsArn: arnB, strategy: MOVE }), 409, 'MutationConflictException');
    expectError(await cApi(c, 'POST', `${c.bk(id)}/versions`), 409, 'MutationConflictException');
  });

  await h.test('mutations: DescribeMutation without the token -> every field', async () => {
    const r = await c.describe(id);
    assertEq(r.status, 200, `status (${r.text.slice(0, 300)})`);
    const d = r.json;
    assertEq(Object.keys(d).sort(), ['createTime', 'input', 'lastPageDone', 'mutationToken', 'original', 'systemKey', 'terminal', 'versions'], 'members');
    assertEq(d.mutationToken, token, 'token');
    assertEq(d.original, { kmsArn: arnA, encryptionContext: { tenant: 'a' }, hierarchyVersion: '1' }, 'original');
    assertEq(d.terminal, { kmsArn: arnB, encryptionContext: { tenant: 'b' }, hierarchyVersion: '1' }, 'terminal');
    assertEq(d.input, { terminalKmsArn: arnB, terminalEncryptionContext: { tenant: 'b' }, doNotVersion: false, terminalHierarchyVersion: null }, 'input');
    assertEq(d.systemKey, 'trustStorage', 'systemKey');
    assertEq(d.versions, { original: 5, terminal: 1 }, 'versions');
    assertEq(d.lastPageDone, false, 'lastPageDone');
  });

  await h.test('mutations: row MutationInvalidException 400: unknown or stale token; token of another key', async () => {
    expectError(await c.apply(id, { mutationToken: { ...token, uuid: '00000000-0000-4000-8000-000000000000' } }), 400, 'MutationInvalidException');
    expectError(await c.apply(id, { mutationToken: { ...token, identifier: 'other' } }), 400, 'MutationInvalidException');
    expectError(await c.apply(id, { mutationToken: { ...token, uuid: 'x' } }), 400, 'MutationInvalidException');
    expectError(await c.apply(id, {}), 400, 'KeyStoreException', 'mutationToken');
    expectError(await c.apply(id, { mutationToken: token, pageSize: 99 }), 400, 'KeyStoreException', 'pageSize');
  });

  await h.test('mutations: ApplyMutation pages until completed (default strategy refused: 400 UnsupportedFeatureException)', async () => {
    expectError(await c.apply(id, { mutationToken: token }), 400, 'UnsupportedFeatureException');
    const s = await c.applyAll(id, token, { pageSize: 2, strategy: { decryptEncrypt: { decrypt: 'local', encrypt: 'alt' } } });
    assertEq(s.mutated, 5, 'versions mutated');
    assertEq(s.verified, 1, 'versions verified (the new version)');
    assertEq(s.pages, 3, 'pages of 2');
  });

  await h.test('mutations: every old version and the beacon read under alt with original bytes and {tenant: b}; no commitment or index left', async () => {
    await checkTerminal(c, store, id, before, 'alt', { tenant: 'b' });
    const b = await cApi(c, 'GET', `${c.bk(id)}/beacon?kmsRelationship=alt`);
    assertEq(b.json.beaconKey, before.beacon, 'beacon bytes');
    const a = await cApi(c, 'GET', `${c.bk(id)}/active?kmsRelationship=alt`);
    assert(!before.versions.has(a.json.branchKeyVersion), 'rotated: the ACTIVE is a new version');
  });

  await h.test('mutations: a context-only change through the default relationship (reEncrypt on local) with doNotVersion', async () => {
    const id2 = await c.createKey(4);
    const snap = await c.snapshot(id2, store, 'local');
    const act = await cApi(c, 'GET', `${c.bk(id2)}/active`);
    const r = await c.init(id2, { terminalEncryptionContext: { tenant: 'c', region: 'eu' }, doNotVersion: true });
    assertEq(r.status, 201, `init (${r.text.slice(0, 300)})`);
    const s = await c.applyAll(id2, r.json.mutationToken);
    assertEq(s.mutated, 3, 'the ACTIVE\'s version was mutated by InitializeMutation');
    await checkTerminal(c, store, id2, snap, 'local', { tenant: 'c', region: 'eu' });
    const a = await cApi(c, 'GET', `${c.bk(id2)}/active`);
    assertEq(a.json.branchKeyVersion, act.json.branchKeyVersion, 'doNotVersion keeps the ACTIVE version');
    assertEq(a.json.branchKey, act.json.branchKey, 'and its bytes');
  });

  if (backend.name === 'dynamodb') await h.test('mutations: reEncrypt through a discovery relationship to another ARN', async () => {
    const id3 = await c.createKey(3);
    const snap = await c.snapshot(id3, store, 'local');
    const r = await c.init(id3, { terminalKmsArn: arnB, strategy: { reEncrypt: { kmsRelationship: 'disc' } } });
    assertEq(r.status, 201, `init (${r.text.slice(0, 300)})`);
    await c.applyAll(id3, r.json.mutationToken, { strategy: { reEncrypt: { kmsRelationship: 'disc' } } });
    await checkTerminal(c, store, id3, snap, 'alt', { tenant: 'a' });
  });

  await h.test('mutations: atomic -> 201 completed without a token; every version moved', async () => {
    const id4 = await c.createKey(4);
    const snap = await c.snapshot(id4, store, 'local');
    const r = await c.init(id4, { terminalKmsArn: arnB, terminalEncryptionContext: { tenant: 'd' }, atomic: true,
      strategy: MOVE });
    assertEq(r.status, 201, `init (${r.text.slice(0, 300)})`);
    assertEq(r.json.completed, true, 'completed');
    assertEq(r.json.mutationToken, undefined, 'no token');
    await checkTerminal(c, store, id4, snap, 'alt', { tenant: 'd' });
  });

  await h.test('mutations: abort -> 204; stale token afterwards; every item still readable under its own state', async () => {
    const id5 = await c.createKey(4);
    const snap = await c.snapshot(id5, store, 'local');
    const r = await c.init(id5, { terminalEncryptionContext: { tenant: 'e' } });
    assertEq(r.status, 201, `init (${r.text.slice(0, 300)})`);
    const p = await c.apply(id5, { mutationToken: r.json.mutationToken, pageSize: 2 });
    assertEq(p.status, 200, 'one page');
    expectError(await c.abort(id5, { ...r.json.mutationToken, uuid: '00000000-0000-4000-8000-000000000000' }), 400, 'MutationInvalidException');
    const a = await c.abort(id5, r.json.mutationToken);
    assertEq(a.status, 204, `abort (${a.text.slice(0, 200)})`);
    assertEq((await c.describe(id5)).status, 404, 'describe');
    expectError(await c.apply(id5, { mutationToken: r.json.mutationToken }), 400, 'MutationInvalidException');
    assertEq(await store.getItem(id5, COMMITMENT), null, 'commitment');
    assertEq(await store.getItem(id5, INDEX), null, 'index');
    for (const [v, old] of snap.versions) {
      const now = await c.readVersion(id5, v, 'local');
      assertEq(now.key, old.key, `version ${v} bytes`);
    }
    // The ACTIVE and beacon moved at InitializeMutation: a later mutation back to the first
    // state completes the move (versions already there are only verified).
    const again = await c.init(id5, { terminalEncryptionContext: { tenant: 'a' } });
    assertEq(again.status, 201, `re-init (${again.text.slice(0, 300)})`);
    const s = await c.applyAll(id5, again.json.mutationToken);
    assert(s.verified >= 2, `versions already in the state verified: ${s.verified}`);
    await checkTerminal(c, store, id5, snap, 'local', { tenant: 'a' });
  });

  await h.test('mutations: row MutationInvalidException 400: commitment without index; resume -> 200 ResumedWithoutIndex', async () => {
    const id6 = await c.createKey(3);
    const snap = await c.snapshot(id6, store, 'local');
    const body = { terminalEncryptionContext: { tenant: 'f' } };
    const r = await c.init(id6, body);
    assertEq(r.status, 201, 'init');
    await store.deleteItem(id6, INDEX);
    expectError(await c.apply(id6, { mutationToken: r.json.mutationToken }), 400, 'MutationInvalidException', 'index');
    expectError(await c.describe(id6), 400, 'MutationInvalidException');
    const again = await c.init(id6, body);
    assertEq(again.status, 200, `resume (${again.text.slice(0, 300)})`);
    assertEq(again.json.initializeMutationFlag, 'ResumedWithoutIndex', 'flag');
    await c.applyAll(id6, again.json.mutationToken);
    await checkTerminal(c, store, id6, snap, 'local', { tenant: 'f' });
  });

  await h.test('mutations: row MutationInvalidException 400: index without commitment (Initialize, Apply, Describe)', async () => {
    const id = await c.createKey(2);
    const body = { terminalEncryptionContext: { tenant: 'orphan' } };
    const r = await c.init(id, body);
    assertEq(r.status, 201, 'init');
    await store.deleteItem(id, COMMITMENT);
    expectError(await c.init(id, body), 400, 'MutationInvalidException', 'index');
    expectError(await c.apply(id, { mutationToken: r.json.mutationToken }), 400, 'MutationInvalidException');
    const d = await c.describe(id);
    expectError(d, 400, 'MutationInvalidException', r.json.mutationToken.uuid);
  });

  await h.test('mutations: an orphaned index (commitment gone) is removed by abort with its uuid; a stale uuid -> 400, nothing removed; then a new mutation runs', async () => {
    const id = await c.createKey(2);
    const snap = await c.snapshot(id, store, 'local');
    const body = { terminalEncryptionContext: { tenant: 'after-orphan' } };
    const r = await c.init(id, body);
    assertEq(r.status, 201, 'init');
    await store.deleteItem(id, COMMITMENT);
    const stale = { ...r.json.mutationToken, uuid: '00000000-0000-4000-8000-000000000000' };
    expectError(await c.abort(id, stale), 400, 'MutationInvalidException', r.json.mutationToken.uuid);
    assert(await store.getItem(id, INDEX), 'a stale token removed the index');
    // The uuid alone is enough (DescribeMutation names it): createTime is optional in a token.
    const a = await c.abort(id, { identifier: id, uuid: r.json.mutationToken.uuid });
    assertEq(a.status, 204, `abort (${a.text})`);
    assertEq(await store.getItem(id, INDEX), null, 'index removed');
    assertEq((await c.describe(id)).status, 404, 'nothing in flight');
    // The orphaned mutation's InitializeMutation had moved the ACTIVE (and made a new version)
    // while the older versions stayed: a mutation back to their context reunites the key.
    const back = { terminalEncryptionContext: { tenant: 'a' } };
    const again = await c.init(id, back);
    assertEq(again.status, 201, `a new mutation (${again.text.slice(0, 300)})`);
    await c.applyAll(id, again.json.mutationToken);
    await checkTerminal(c, store, id, snap, 'local', { tenant: 'a' });
    const act = await c.api('GET', `${c.bk(id)}/active?kmsRelationship=local`, c.T);
    assertEq(act.status, 200, `GetActive (${act.text.slice(0, 200)})`);
    assertEq(act.json.encryptionContext, { tenant: 'a' }, 'ACTIVE context');
  });

  await h.test('mutations: row MutationVerificationException 502: a commitment altered in storage', async () => {
    const id7 = await c.createKey(2);
    const r = await c.init(id7, { terminalEncryptionContext: { tenant: 'g' } });
    assertEq(r.status, 201, 'init');
    await store.setAttribute(id7, COMMITMENT, 'enc', { B: Buffer.from('tampered').toString('base64') });
    expectError(await c.apply(id7, { mutationToken: r.json.mutationToken }), 502, 'MutationVerificationException');
    expectError(await c.init(id7, { terminalEncryptionContext: { tenant: 'g' } }), 502, 'MutationVerificationException');
    assertEq((await c.describe(id7)).json.systemKey, 'unknown', 'describe does not verify');
    assertEq((await c.abort(id7, r.json.mutationToken)).status, 204, 'abort still works');
  });

  await h.test('mutations: row UnexpectedStateException 409: a version in neither state; the beacon not original', async () => {
    const id8 = await c.createKey(3);
    const r = await c.init(id8, { terminalEncryptionContext: { tenant: 'h' } });
    assertEq(r.status, 201, 'init');
    const vs = await store.listVersions(id8);
    const old = vs.find((v) => r.json.mutatedBranchKeyItems.every((e) => !e.itemType.includes(v)));
    await store.setAttribute(id8, `branch:version:${old}`, 'aws-crypto-ec:tenant', { S: 'someone-else' });
    expectError(await c.apply(id8, { mutationToken: r.json.mutationToken, pageSize: 10 }), 409, 'UnexpectedStateException');
    assertEq((await c.abort(id8, r.json.mutationToken)).status, 204, 'abort');
    const id9 = await c.createKey(1);
    await store.setAttribute(id9, 'beacon:ACTIVE', 'aws-crypto-ec:tenant', { S: 'someone-else' });
    expectError(await c.init(id9, { terminalEncryptionContext: { tenant: 'h' } }), 409, 'UnexpectedStateException', 'beacon');
    assertEq((await c.describe(id9)).status, 404, 'nothing written');
  });

  await h.test('mutations: rows MutationFromException / MutationToException 502: KMS refused a side (message names the KMS code and ARN)', async () => {
    const id10 = await c.createKey(2);
    const from = await c.init(id10, { terminalKmsArn: arnB, strategy: { decryptEncrypt: { decrypt: 'far', encrypt: 'alt' } } });
    expectError(from, 502, 'MutationFromException', arnA);
    assert(/KMS [A-Za-z]+Exception/.test(from.json.error.message), `KMS code in ${from.json.error.message}`);
    assertEq((await c.describe(id10)).status, 404, 'nothing written');
    // The new version is in the terminal state: ApplyMutation verifies it through the encrypt
    // relationship, which is refused.
    const r = await c.init(id10, { terminalKmsArn: arnB, strategy: MOVE });
    assertEq(r.status, 201, 'init');
    const to = await c.apply(id10, { mutationToken: r.json.mutationToken, strategy: { decryptEncrypt: { decrypt: 'local', encrypt: 'far2' } } });
    expectError(to, 502, 'MutationToException', arnB);
    assert(/KMS [A-Za-z]+Exception/.test(to.json.error.message), `KMS code in ${to.json.error.message}`);
    assertEq((await c.abort(id10, r.json.mutationToken)).status, 204, 'abort');
  });

  await h.test('mutations: atomic over the limit -> 400 UnsupportedFeatureException naming it', async () => {
    const id11 = await c.createKey(97);
    expectError(await c.init(id11, { terminalEncryptionContext: { tenant: 'i' }, atomic: true }), 400, 'UnsupportedFeatureException', '95');
    assertEq((await c.describe(id11)).status, 404, 'nothing written');
  });
}

function cApi(c, method, p, body) {
  return c.api(method, p, { ...c.T, body });
}

// ---- concurrency (issue 10 item 7) -------------------------------------------------------------

async function concurrencyCases(h, c, store) {
  await h.test('mutations: two clients apply one mutation at once -> each page written once, the loser gets 409 and retries; every version terminal', async () => {
    const id = await c.createKey(30);
    const snap = await c.snapshot(id, store, 'local');
    const r = await c.init(id, { terminalEncryptionContext: { tenant: 'race' } });
    assertEq(r.status, 201, 'init');
    const stats = await Promise.all([0, 1].map(() => c.applyAll(id, r.json.mutationToken, { pageSize: 3, otherClients: true })));
    assert(stats.some((x) => !x.completedByOther), 'one client saw the completion');
    const conflicts = stats[0].conflicts + stats[1].conflicts;
    console.log(`     pages ${stats[0].pages} + ${stats[1].pages}, 409s ${conflicts}`);
    // One completes; the other either completes too (its last page was empty) or sees the
    // commitment gone: a completed page is never counted twice in versionsMutated.
    assertEq(stats[0].mutated + stats[1].mutated, 30, 'every old version mutated exactly once');
    await checkTerminal(c, store, id, snap, 'local', { tenant: 'race' });
  });

  await h.test('mutations: VersionKey racing InitializeMutation (10 rounds) -> never both win on the same ACTIVE; every version ends terminal', async () => {
    let initWins = 0, vkWins = 0, both = 0;
    for (let round = 0; round < 10; round++) {
      const id = await c.createKey(2);
      const [vk, init] = await Promise.all([
        cApi(c, 'POST', `${c.bk(id)}/versions`),
        c.init(id, { terminalEncryptionContext: { tenant: `r${round}` } }),
      ]);
      assert([201, 409].includes(vk.status), `VersionKey ${vk.status} ${vk.text.slice(0, 200)}`);
      assert([201, 409].includes(init.status), `Init ${init.status} ${init.text.slice(0, 200)}`);
      if (vk.status === 409) assert(['MutationConflictException', 'VersionRaceException'].includes(errorType(vk)), `vk ${vk.text}`);
      if (init.status === 409) assertEq(errorType(init), 'MutationConflictException', 'init 409 type');
      if (init.status === 201 && vk.status === 201) both++;
      else if (init.status === 201) initWins++;
      else vkWins++;
      if (init.status === 201) {
        await c.applyAll(id, init.json.mutationToken);
        // Every version (including one VersionKey made before the mutation started) is terminal.
        for (const v of await store.listVersions(id)) {
          const now = await c.readVersion(id, v, 'local');
          assertEq(now.ec, { tenant: `r${round}` }, `version ${v} context`);
        }
      }
    }
    console.log(`     InitializeMutation won ${initWins}, VersionKey won ${vkWins}, sequential (both) ${both}`);
  });
}

// ---- crash safety (issue 10 item 6) ------------------------------------------------------------

export async function runMutationCrash(h, backend, { versions = 300, kills = 50, extraBody = {}, tag = 'crash' } = {}) {
  const setup = mutationSetup(backend, tag, '{page_size: 2, kms_in_flight: 8}');
  const store = withListing(backend, setup);
  let srv = await startServer(['--config', setup.configPath], `crash (${backend.name})`);
  let api = makeApi(srv.base);
  let c = client(api, setup.tokens);
  let id, snap, arnB;
  const body = () => ({ terminalKmsArn: arnB, terminalEncryptionContext: { tenant: 'after-crash' }, strategy: MOVE, ...extraBody });
  const ok = await h.test(`${tag}: a key with ${versions} versions, snapshot of every version's bytes`, async () => {
    if (backend.name === 'dynamodb') assertEq((await api('PUT', KS, c.T)).status, 200, 'CreateKeyStore');
    arnB = await c.arn('alt');
    id = await c.createKey(versions);
    snap = await c.snapshot(id, store, 'local');
    assertEq(snap.versions.size, versions, 'versions');
  });
  if (!ok) {
    await srv.stop();
    return;
  }
  let resumes = 0, created = 0, pagesBeforeKill = 0, killedInInit = 0, killsInside = 0;
  await h.test(`${tag}: SIGKILL at random points of the paged mutation, ${kills} times, restart and resume each time`, async () => {
    for (let k = 0; k < kills; k++) {
      // Kill after a random number of pages (0..3; sometimes during InitializeMutation itself),
      // a few ms into the next request, so that every kill lands inside the mutation.
      const target = Math.random() < 0.1 ? -1 : Math.floor(Math.random() * 3);
      let pages = 0;
      let reached;
      const reachedP = new Promise((res) => (reached = res));
      const work = (async () => {
        if (target < 0) reached();
        const r = await c.init(id, body());
        if (r.status === 201) created++;
        else if (r.status === 200) resumes++;
        else return reached();
        if (target === 0) reached();
        for (;;) {
          const p = await c.apply(id, { mutationToken: r.json.mutationToken, strategy: MOVE });
          if (p.status !== 200 || p.json.completed) return reached();
          pages++;
          pagesBeforeKill++;
          if (pages >= target) reached();
        }
      })().catch(() => reached());
      await Promise.race([reachedP, sleep(10000)]);
      await sleep(Math.floor(Math.random() * 4));
      if (target < 0) killedInInit++;
      srv.proc.kill('SIGKILL');
      await srv.exited;
      await work;
      // The commitment still there after the kill: the kill landed inside the mutation.
      if (target < 0 || (await store.getItem(id, COMMITMENT))) killsInside++;
      srv = await startServer(['--config', setup.configPath], `crash ${k} (${backend.name})`);
      api = makeApi(srv.base);
      c = client(api, setup.tokens);
    }
    console.log(`     ${kills} kills (${killedInInit} aimed at InitializeMutation, ${killsInside} with the mutation in flight): ` +
      `mutation created ${created}x, resumed ${resumes}x, ${pagesBeforeKill} pages applied between kills`);
    assert(killsInside >= kills * 0.8, `only ${killsInside} of ${kills} kills landed inside the mutation`);
  });
  await h.test(`${tag}: a final resume completes the mutation`, async () => {
    const r = await c.init(id, body());
    if (r.status === 400) {
      // Completed before the last kill: already in the terminal state and nothing in flight.
      assertEq(errorType(r), 'MutationInvalidException', 'already terminal');
      assertEq((await c.describe(id)).status, 404, 'nothing in flight');
    } else {
      assert(r.status === 200 || r.status === 201, `init ${r.status} ${r.text.slice(0, 300)}`);
      if (r.status === 200) resumes++;
      await c.applyAll(id, r.json.mutationToken, { strategy: MOVE });
    }
  });
  await h.test(`${tag}: every one of the ${versions} versions decrypts under the terminal key and context with its original bytes; no item in neither state; no commitment or index`, async () => {
    await checkTerminal(c, store, id, snap, 'alt', { tenant: 'after-crash' });
    const all = await store.listVersions(id);
    for (const v of all) {
      const now = await c.readVersion(id, v, 'alt');
      assertEq(now.ec, { tenant: 'after-crash' }, `version ${v} context`);
      if (extraBody.terminalHierarchyVersion === '2') {
        const item = await store.getItem(id, `branch:version:${v}`);
        assertEq(JSON.stringify(item['hierarchy-version']), JSON.stringify({ N: '2' }), `version ${v} hierarchy-version`);
      }
    }
    console.log(`     runs ${kills}, resumes ${resumes}, versions checked ${all.length} (${snap.versions.size} original + ${all.length - snap.versions.size} created)`);
  });
  await srv.stop();
}

// ---- hierarchy version 2 (issue 11 items 6 and 7; docs/reference/mutations.md section 14) ----

const hvOf = (item) => (item && item['hierarchy-version'] ? JSON.stringify(item['hierarchy-version']) : 'none');
const N2 = JSON.stringify({ N: '2' });
const N1 = JSON.stringify({ N: '1' });

/*
 * A mixed store: an HV-1 and an HV-2 key side by side, both versioned; the HV-1 key mutated to
 * HV-2 (with rotation, a new context, a resume in between), the HV-2 key mutated to another KMS
 * key (doNotVersion); every version, ACTIVE and beacon of both read back; the refusals.
 */
export async function runMutationsHv2(h, backend) {
  const setup = mutationSetup(backend, 'hv2', '{page_size: 3, kms_in_flight: 4}');
  const srv = await startServer(['--config', setup.configPath], `hv2 mutations (${backend.name})`);
  const api = makeApi(srv.base);
  const c = client(api, setup.tokens);
  const store = withListing(backend, setup);
  const SAME = { decryptEncrypt: { decrypt: 'local', encrypt: 'local' } };
  let id1, id2, snap1, snap2, arnB;
  try {
    if (backend.name === 'dynamodb') assertEq((await api('PUT', KS, c.T)).status, 200, 'CreateKeyStore');
    arnB = await c.arn('alt');
    await h.test('hv2 mutations: a mixed store: an HV-1 key and an HV-2 key, each with 5 versions', async () => {
      id1 = await c.createKey(5);
      const r = await api('POST', `${KS}/branch-keys`, { ...c.T, body: { encryptionContext: { tenant: 'a' }, hierarchyVersion: '2' } });
      assertEq(r.status, 201, `CreateKey HV-2 (${r.text.slice(0, 200)})`);
      id2 = r.json.branchKeyIdentifier;
      for (let i = 1; i < 5; i++) assertEq((await api('POST', `${c.bk(id2)}/versions`, c.T)).status, 201, 'VersionKey HV-2');
      assertEq(hvOf(await store.getItem(id1, 'branch:ACTIVE')), N1, 'HV-1 key');
      assertEq(hvOf(await store.getItem(id2, 'branch:ACTIVE')), N2, 'HV-2 key');
      snap1 = await c.snapshot(id1, store, 'local');
      snap2 = await c.snapshot(id2, store, 'local');
      assertEq(snap1.versions.size, 5, 'HV-1 versions');
      assertEq(snap2.versions.size, 5, 'HV-2 versions');
    });
    await h.test('hv2 mutations: HV-2 terminal with reEncrypt or no strategy -> 400 UnsupportedFeatureException naming decryptEncrypt; a bad version -> 400; nothing written', async () => {
      expectError(await c.init(id1, { terminalHierarchyVersion: '2' }), 400, 'UnsupportedFeatureException', 'decryptEncrypt');
      expectError(await c.init(id1, { terminalHierarchyVersion: '2', strategy: { reEncrypt: { kmsRelationship: 'local' } } }),
        400, 'UnsupportedFeatureException', 'decryptEncrypt');
      // HV 2 inferred from the HV-2 ACTIVE: reEncrypt is refused too.
      expectError(await c.init(id2, { terminalEncryptionContext: { tenant: 'x' } }), 400, 'UnsupportedFeatureException', 'decryptEncrypt');
      expectError(await c.init(id1, { terminalHierarchyVersion: '3', strategy: SAME }), 400, 'KeyStoreException', 'terminalHierarchyVersion');
      expectError(await c.init(id1, { terminalHierarchyVersion: 2, strategy: SAME }), 400, 'KeyStoreException', 'terminalHierarchyVersion');
      assertEq((await c.describe(id1)).status, 404, 'nothing written (HV-1 key)');
      assertEq((await c.describe(id2)).status, 404, 'nothing written (HV-2 key)');
    });
    await h.test('hv2 mutations: an un-modeled attribute on the ACTIVE blocks HV-1 -> HV-2 (400 UnsupportedFeatureException naming it, before any KMS call)', async () => {
      const id = await c.createKey(1);
      await store.setAttribute(id, 'branch:ACTIVE', 'color', { S: 'red' });
      expectError(await c.init(id, { terminalHierarchyVersion: '2', strategy: SAME }), 400, 'UnsupportedFeatureException', 'color');
      assertEq((await c.describe(id)).status, 404, 'nothing written');
    });
    await h.test('hv2 mutations: HV-2 -> HV-1 -> 400 UnsupportedFeatureException', async () => {
      expectError(await c.init(id2, { terminalHierarchyVersion: '1', terminalKmsArn: arnB, strategy: MOVE }), 400, 'UnsupportedFeatureException', '2 -> 1');
      assertEq((await c.describe(id2)).status, 404, 'nothing written');
    });
    await h.test('hv2 mutations: HV-1 -> HV-2 with a new context and rotation: commitment and index N 2 with three-member JSON, resume, every version read back under the new context', async () => {
      const body = { terminalHierarchyVersion: '2', terminalEncryptionContext: { tenant: 'b' }, strategy: SAME };
      const r = await c.init(id1, body);
      assertEq(r.status, 201, `InitializeMutation (${r.text.slice(0, 300)})`);
      const cm = await store.getItem(id1, COMMITMENT);
      assertEq(hvOf(cm), N2, 'commitment N 2');
      assertEq(hvOf(await store.getItem(id1, INDEX)), N2, 'index N 2');
      const json = (attr) => Buffer.from(cm[attr].B, 'base64').toString('utf8');
      assert(json('terminal').endsWith(',"hierarchy-version":"2"}'), `terminal ${json('terminal')}`);
      assert(json('original').endsWith(',"hierarchy-version":"1"}'), `original ${json('original')}`);
      assert(json('input').endsWith(',"hierarchy-version":"2"}'), `input ${json('input')}`);
      const d = await c.describe(id1);
      assertEq(d.status, 200, `DescribeMutation (${d.text.slice(0, 300)})`);
      assertEq([d.json.original.hierarchyVersion, d.json.terminal.hierarchyVersion, d.json.input.terminalHierarchyVersion],
        ['1', '2', '2'], 'DescribeMutation hierarchy versions');
      const again = await c.init(id1, body);
      assertEq(again.status, 200, `resume (${again.text.slice(0, 300)})`);
      // Without the hierarchy version it is another mutation.
      expectError(await c.init(id1, { terminalEncryptionContext: { tenant: 'b' }, strategy: SAME }), 409, 'MutationConflictException');
      expectError(await c.apply(id1, { mutationToken: r.json.mutationToken, strategy: { reEncrypt: { kmsRelationship: 'local' } } }),
        400, 'UnsupportedFeatureException');
      const st = await c.applyAll(id1, r.json.mutationToken, { strategy: SAME });
      assertEq(st.mutated, 5, 'versions mutated');
      await checkTerminal(c, store, id1, snap1, 'local', { tenant: 'b' });
      for (const v of snap1.versions.keys())
        assertEq(hvOf(await store.getItem(id1, `branch:version:${v}`)), N2, `version ${v} N 2`);
      // Rotated: the ACTIVE is a new version, HV-2, equal to GetBranchKeyVersion of itself.
      const a = await api('GET', `${c.bk(id1)}/active?kmsRelationship=local`, c.T);
      assertEq(a.status, 200, `GetActive (${a.text.slice(0, 200)})`);
      assert(!snap1.versions.has(a.json.branchKeyVersion), 'rotation made a new version');
      assertEq((await c.readVersion(id1, a.json.branchKeyVersion, 'local')).key, a.json.branchKey, 'new version = ACTIVE');
      assertEq(hvOf(await store.getItem(id1, 'branch:ACTIVE')), N2, 'ACTIVE N 2');
    });
    await h.test('hv2 mutations: HV-2 -> HV-2 to another KMS key (doNotVersion): every version, the ACTIVE and the beacon read back under the new key', async () => {
      const r = await c.init(id2, { terminalKmsArn: arnB, strategy: MOVE, doNotVersion: true });
      assertEq(r.status, 201, `InitializeMutation (${r.text.slice(0, 300)})`);
      assertEq(hvOf(await store.getItem(id2, COMMITMENT)), N2, 'commitment N 2');
      await c.applyAll(id2, r.json.mutationToken, { strategy: MOVE });
      await checkTerminal(c, store, id2, snap2, 'alt', { tenant: 'a' });
      const b = await api('GET', `${c.bk(id2)}/beacon?kmsRelationship=alt`, c.T);
      assertEq(b.status, 200, 'beacon under alt');
      assertEq(b.json.beaconKey, snap2.beacon, 'beacon bytes');
      const a = await api('GET', `${c.bk(id2)}/active?kmsRelationship=alt`, c.T);
      assertEq(a.status, 200, 'ACTIVE under alt');
      assert(snap2.versions.has(a.json.branchKeyVersion), 'doNotVersion kept the version');
      // The old key no longer reads it.
      assert((await api('GET', `${c.bk(id2)}/active?kmsRelationship=local`, c.T)).status >= 400, 'not under the old key');
    });
    await h.test('hv2 mutations: HV-2 -> HV-2 with a new context (rotation): versions keep their bytes under the new context', async () => {
      const ALT = { decryptEncrypt: { decrypt: 'alt', encrypt: 'alt' } };
      const r = await c.init(id2, { terminalEncryptionContext: { tenant: 'c', team: 'd' }, strategy: ALT });
      assertEq(r.status, 201, `InitializeMutation (${r.text.slice(0, 300)})`);
      await c.applyAll(id2, r.json.mutationToken, { strategy: ALT });
      await checkTerminal(c, store, id2, snap2, 'alt', { tenant: 'c', team: 'd' });
      const a = await api('GET', `${c.bk(id2)}/active?kmsRelationship=alt`, c.T);
      assertEq(a.status, 200, 'ACTIVE');
      assertEq(a.json.encryptionContext, { tenant: 'c', team: 'd' }, 'ACTIVE context');
      assertEq(hvOf(await store.getItem(id2, `branch:version:${a.json.branchKeyVersion}`)), N2, 'new version N 2');
    });
    await h.test('hv2 mutations: both keys still read (mixed store after the mutations)', async () => {
      assertEq((await c.snapshot(id1, store, 'local')).beacon, snap1.beacon, 'HV-1 -> HV-2 beacon bytes');
      assertEq((await c.snapshot(id2, store, 'alt')).versions.size, 6, 'HV-2 key versions (one rotation)');
    });
  } finally {
    const info = await srv.stop();
    await h.test('hv2 mutations: server stops with exit 0', async () => assertEq(info.code, 0, 'exit code'));
  }
}

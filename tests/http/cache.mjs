// cache.mjs - the shared branch key cache seen from outside (issue 5; docs/reference/cache.md):
// partitions are trust boundaries (equal partitions share entries, others never do), a hit
// still checks the tenant's permissions and the relationship's KMS configuration, VersionKey
// invalidates the key's ACTIVE entries in every partition, concurrent misses share one fetch,
// and /metrics shows it all. KMS Decrypt calls are counted by keystored's own /metrics
// (keystored_kms_requests_total), so every claim below is a counted fact, not a timing.

import fs from 'node:fs';
import path from 'node:path';
import { assert, assertEq } from './lib/harness.mjs';
import { makeApi, parseMetrics } from './lib/http.mjs';
import { newToken, sha256Hex, startServer, tempDir } from './lib/server.mjs';

function config(dir, t) {
  const tenant = (name, role, stores, rels, partition) => `  - name: ${name}
    token_sha256: "${sha256Hex(t[name])}"
    role: ${role}
    key_stores: [${stores}]
    kms_relationships: [${rels}]
${partition ? `    partition: ${partition}\n` : ''}`;
  // metrics_tenant_labels: the per-tenant partitions' counters are read below (issue 12).
  return `listen: 127.0.0.1:0
server: {metrics_tenant_labels: true}
kms_relationships:
  - {name: local, type: local, key_file: ${dir}/kms.keys}
  - {name: local2, type: local, key_file: ${dir}/kms2.keys}
key_stores:
  - {name: default, logical_key_store_name: default, kms_relationship: local,
     storage: {type: sqlite, path: ${dir}/ks.db}}
  - {name: other, logical_key_store_name: other-logical, kms_relationship: local,
     storage: {type: sqlite, path: ${dir}/other.db}}
cache: {capacity: 100, ttl_seconds: 600}
tenants:
${tenant('admin', 'admin', 'default, other', 'local, local2')}${tenant('shared1', 'reader', 'default', 'local, local2', 'p-shared')}${tenant('shared2', 'reader', 'default', 'local', 'p-shared')}${tenant('alone', 'reader', 'default', 'local')}${tenant('narrow', 'reader', 'other', 'local', 'p-shared')}`;
}


export async function runCache(h) {
  const dir = tempDir('cache');
  const names = ['admin', 'shared1', 'shared2', 'alone', 'narrow'];
  const t = Object.fromEntries(names.map((n) => [n, newToken(n)]));
  const configPath = path.join(dir, 'keystored.yaml');
  fs.writeFileSync(configPath, config(dir, t), { mode: 0o600 });
  const srv = await startServer(['--config', configPath], 'cache');
  const api = makeApi(srv.base);
  const ks = '/v1/keystores/default';
  const metrics = async () => {
    const r = await api('GET', '/metrics', { token: t.admin });
    assertEq(r.status, 200, '/metrics');
    return parseMetrics(r.text);
  };
  const decrypts = async () =>
    (await metrics()).get('keystored_kms_requests_total{relationship="local",operation="Decrypt"}');
  const get = async (who, p) => {
    const r = await api('GET', p, { token: t[who] });
    return r;
  };
  let id, v1, key1;

  try {
    await h.test('cache: setup: create a key', async () => {
      const r = await api('POST', `${ks}/branch-keys`, { token: t.admin });
      assertEq(r.status, 201, 'create');
      id = r.json.branchKeyIdentifier;
    });

    await h.test('cache: a miss costs one Decrypt, a hit none; equal partitions share, others never do', async () => {
      const d0 = await decrypts();
      const a = await get('shared1', `${ks}/branch-keys/${id}/active`);
      assertEq(a.status, 200, 'shared1 miss');
      assertEq(await decrypts(), d0 + 1, 'Decrypts after the first get');
      const b = await get('shared1', `${ks}/branch-keys/${id}/active`);
      assertEq(b.status, 200, 'shared1 hit');
      assertEq(await decrypts(), d0 + 1, 'Decrypts after a hit');
      const c = await get('shared2', `${ks}/branch-keys/${id}/active`);
      assertEq(c.status, 200, 'shared2 (same partition)');
      assertEq(await decrypts(), d0 + 1, 'Decrypts after the same partition read it');
      const d = await get('alone', `${ks}/branch-keys/${id}/active`);
      assertEq(d.status, 200, 'alone (own partition)');
      assertEq(await decrypts(), d0 + 2, 'Decrypts after another partition read it');
      const e = await get('admin', `${ks}/branch-keys/${id}/active`);
      assertEq(await decrypts(), d0 + 3, 'Decrypts after a third partition read it');
      for (const r of [b, c, d, e]) assertEq(r.json.branchKey, a.json.branchKey, 'same key');
      v1 = a.json.branchKeyVersion;
      key1 = a.json.branchKey;
      const m = await metrics();
      assertEq(m.get('keystored_cache_hits_total{partition="p-shared"}'), 2, 'p-shared hits');
      assertEq(m.get('keystored_cache_misses_total{partition="p-shared"}'), 1, 'p-shared misses');
      assertEq(m.get('keystored_cache_misses_total{partition="tenant:alone"}'), 1, 'alone misses');
    });

    await h.test('cache: a hit still checks the tenant: same partition, key store not allowed -> 403, no key', async () => {
      const d0 = await decrypts();
      const r = await get('narrow', `${ks}/branch-keys/${id}/active`);
      assertEq(r.status, 403, `status (${r.text.slice(0, 200)})`);
      assert(!r.text.includes(key1), 'the key leaked');
      assertEq(await decrypts(), d0, 'Decrypts');
    });

    await h.test('cache: a hit still applies the relationship\'s KMS configuration (local2 refuses a local key) -> 400', async () => {
      const r = await get('shared1', `${ks}/branch-keys/${id}/active?kmsRelationship=local2`);
      assertEq(r.status, 400, `status (${r.text.slice(0, 200)})`);
      assert(!r.text.includes(key1), 'the key leaked');
    });

    await h.test('cache: versions and beacons are cached too (one Decrypt each for repeated gets)', async () => {
      const d0 = await decrypts();
      for (let i = 0; i < 3; i++) {
        assertEq((await get('shared1', `${ks}/branch-keys/${id}/versions/${v1}`)).status, 200, 'version');
        assertEq((await get('shared1', `${ks}/branch-keys/${id}/beacon`)).status, 200, 'beacon');
      }
      assertEq(await decrypts(), d0 + 2, 'Decrypts');
    });

    await h.test('cache: VersionKey drops the ACTIVE entries in every partition: the next get of each sees the new version', async () => {
      const r = await api('POST', `${ks}/branch-keys/${id}/versions`, { token: t.admin });
      assertEq(r.status, 201, 'version');
      const v2 = r.json.branchKeyVersion;
      const d0 = await decrypts();
      for (const who of ['shared1', 'alone', 'admin']) {
        const g = await get(who, `${ks}/branch-keys/${id}/active`);
        assertEq(g.status, 200, who);
        assertEq(g.json.branchKeyVersion, v2, `${who} ACTIVE version`);
      }
      assertEq(await decrypts(), d0 + 3, 'one Decrypt per partition after the invalidation');
      const old = await get('shared1', `${ks}/branch-keys/${id}/versions/${v1}`);
      assertEq(old.json.branchKey, key1, 'the old version (still cached) keeps its key');
      const m = await metrics();
      assert(m.get('keystored_cache_invalidations_total{partition="p-shared"}') >= 1, 'invalidations counted');
    });

    await h.test('cache: 64 concurrent gets of a cold key -> exactly 1 Decrypt and 1 storage read (single flight)', async () => {
      const c = await api('POST', `${ks}/branch-keys`, { token: t.admin });
      assertEq(c.status, 201, 'create');
      const cold = c.json.branchKeyIdentifier;
      const m0 = await metrics();
      const rs = await Promise.all(Array.from({ length: 64 }, () => get('alone', `${ks}/branch-keys/${cold}/active`)));
      for (const r of rs) assertEq(r.status, 200, 'status');
      assert(new Set(rs.map((r) => r.json.branchKey)).size === 1, 'all got the same key');
      const m1 = await metrics();
      const dd = (k) => m1.get(k) - m0.get(k);
      assertEq(dd('keystored_kms_requests_total{relationship="local",operation="Decrypt"}'), 1, 'Decrypts');
      assertEq(dd('keystored_storage_reads_total{key_store="default"}'), 1, 'storage reads');
    });

    await h.test('cache: /metrics is Prometheus text with HELP/TYPE for each family, and carries no key or token', async () => {
      const r = await api('GET', '/metrics', { token: t.admin });
      assert(/^text\/plain; version=0\.0\.4/.test(r.headers['content-type']), `content type ${r.headers['content-type']}`);
      for (const fam of ['keystored_cache_hits_total', 'keystored_cache_misses_total', 'keystored_cache_waits_total',
        'keystored_cache_evictions_total', 'keystored_cache_fetch_errors_total', 'keystored_cache_entries',
        'keystored_cache_in_flight', 'keystored_storage_reads_total', 'keystored_kms_requests_total'])
        assert(r.text.includes(`# TYPE ${fam} `), `no TYPE line for ${fam}`);
      for (const s of [...Object.values(t), key1]) assert(!r.text.includes(s), 'a secret in /metrics');
      assert(!r.text.includes(id), 'a branch key id in /metrics');
    });
  } finally {
    const info = await srv.stop();
    await h.test('cache: server exits 0', async () => assertEq(info.code, 0, 'exit code'));
  }
}

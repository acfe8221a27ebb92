// inventory.mjs - issue 14 on both backends (run.mjs):
//   runInventory: GET /v1/keystores/{ks}/branch-keys and .../branch-keys/{id}/versions:
//     every key exactly once while following nextToken (limits 1, 2, 7, 100, 1000; on DynamoDB
//     the filtered Scan gives short and empty pages, followed to the end), the fields, limits
//     1..1000 and out-of-range 400, foreign / garbage tokens 400, the query allowlist, roles,
//     versions newest first with every create-time format the MPL runtimes write (set in the
//     store behind the server's back), the list cost per page;
//   runScheduledRotation: two instances on one store (one SQLite file / one DynamoDB table),
//     rotation {interval_seconds: 10, check_interval_seconds: 1}: every key rotated, never two
//     rotations of one key closer than the interval, and the metrics of both instances add up.

import { assert, assertEq } from './lib/harness.mjs';
import { makeApi } from './lib/http.mjs';
import { startServer } from './lib/server.mjs';
import { waitReadyz } from './limits.mjs';
import fs from 'node:fs';
import { ctl, KEYSTORECTL } from './cli.mjs';

const KEYS = 40;

async function startOne(h, backend, setup, label) {
  const srv = await startServer(['--config', setup.configPath], label);
  const api = makeApi(srv.base);
  if (backend.name === 'dynamodb')
    for (const ks of ['default', 'other']) {
      const r = await api('PUT', `/v1/keystores/${ks}`, { token: setup.tokens.admin });
      assertEq(r.status, 200, `PUT ${ks} (${r.text.slice(0, 200)})`);
    }
  return { srv, api };
}

// Every page of a listing: [{status, json}], following nextToken; fails on a non-200.
async function listAll(api, path, token, limit) {
  const pages = [];
  let next;
  for (let i = 0; i < 100000; i++) {
    const q = new URLSearchParams();
    if (limit !== undefined) q.set('limit', String(limit));
    if (next !== undefined) q.set('nextToken', next);
    const qs = q.toString();
    const r = await api('GET', `${path}${qs ? `?${qs}` : ''}`, { token });
    assertEq(r.status, 200, `page ${i} of ${path} limit ${limit} (${r.text.slice(0, 300)})`);
    pages.push(r.json);
    next = r.json.nextToken;
    if (next === undefined) return pages;
    assert(typeof next === 'string' && next.length > 0, `nextToken ${JSON.stringify(next)}`);
  }
  throw new Error('more than 100000 pages');
}

function keysOf(pages) {
  return pages.flatMap((p) => p.branchKeys.map((k) => k.branchKeyIdentifier));
}

export async function runInventory(h, backend) {
  const setup = backend.makeSetup('inventory', 'server:\n  readiness_interval_ms: 200');
  const A = { token: setup.tokens.admin };
  const R = { token: setup.tokens.reader };
  const ks = '/v1/keystores/default';
  let srv, api;
  const ids = [];
  const versions = {}; // id -> versions in creation order
  const stats = {};

  const up = await h.test(`inventory: start, create ${KEYS} keys (every 5th with 2 more versions)`, async () => {
    ({ srv, api } = await startOne(h, backend, setup, `inventory (${backend.name})`));
    for (let i = 0; i < KEYS; i++) {
      const r = await api('POST', `${ks}/branch-keys`, A);
      assertEq(r.status, 201, `create (${r.text.slice(0, 200)})`);
      const id = r.json.branchKeyIdentifier;
      ids.push(id);
      const a = await api('GET', `${ks}/branch-keys/${encodeURIComponent(id)}/active`, R);
      versions[id] = [a.json.branchKeyVersion];
      if (i % 5 === 0)
        for (let v = 0; v < 2; v++) {
          const x = await api('POST', `${ks}/branch-keys/${encodeURIComponent(id)}/versions`, A);
          assertEq(x.status, 201, `version (${x.text.slice(0, 200)})`);
          versions[id].push(x.json.branchKeyVersion);
        }
    }
  });
  if (!up) {
    if (srv) await srv.stop();
    return;
  }

  for (const limit of [1, 2, 7, 100, 1000, undefined]) {
    await h.test(`inventory: limit ${limit ?? '(default 100)'}: every key exactly once, following nextToken to the end`, async () => {
      const pages = await listAll(api, `${ks}/branch-keys`, R.token, limit);
      const got = keysOf(pages);
      const want = [...ids].sort();
      assertEq(got.length, want.length, `keys listed (${pages.length} pages)`);
      assertEq(JSON.stringify([...got].sort()), JSON.stringify(want), 'the set of keys');
      assertEq(new Set(got).size, got.length, 'no key twice');
      const max = limit ?? 100;
      assert(pages.every((p) => p.branchKeys.length <= max), 'a page over the limit');
      if (backend.name === 'sqlite') {
        // Storage order: by branch key id, and full pages but the last.
        assertEq(JSON.stringify(got), JSON.stringify(want), 'id order');
        assert(pages.slice(0, -1).every((p) => p.branchKeys.length === max), 'a short page before the last');
      }
      const empty = pages.filter((p) => p.branchKeys.length === 0).length;
      const short = pages.filter((p, i) => p.branchKeys.length < max && i < pages.length - 1).length;
      stats[limit ?? 100] = { pages: pages.length, empty, short };
      if (backend.name === 'dynamodb' && limit !== undefined && limit <= 7)
        assert(short > 0, `limit ${limit}: the filtered Scan gave no short page (${pages.length} pages)`);
      if (backend.name === 'dynamodb' && limit === 1)
        assert(empty > 0, 'limit 1: the filtered Scan gave no empty page');
    });
  }
  console.log(`     pages (limit: pages, empty, short before the last): ${JSON.stringify(stats)}`);

  await h.test('inventory: key fields (activeVersion, createTime, hierarchyVersion, kmsArn), no key material', async () => {
    const [page] = await listAll(api, `${ks}/branch-keys`, R.token, 1000);
    const kmsArn = new RegExp(backend.caseVars(setup).kmsArnRe);
    for (const k of page.branchKeys) {
      assertEq(JSON.stringify(Object.keys(k).sort()),
        JSON.stringify(['activeVersion', 'branchKeyIdentifier', 'createTime', 'hierarchyVersion', 'kmsArn']), 'members');
      const vs = versions[k.branchKeyIdentifier];
      assertEq(k.activeVersion, vs[vs.length - 1], `activeVersion of ${k.branchKeyIdentifier}`);
      assertEq(k.hierarchyVersion, '1', 'hierarchyVersion');
      assert(kmsArn.test(k.kmsArn), `kmsArn ${k.kmsArn}`);
      assert(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/.test(k.createTime), `createTime ${k.createTime}`);
    }
  });

  await h.test('inventory: limit 1..1000 accepted; 0, 1001, -1, 1.5, abc, empty, 01000x and a repeated limit -> 400', async () => {
    for (const l of ['1', '1000', '0100'])
      assertEq((await api('GET', `${ks}/branch-keys?limit=${l}`, R)).status, 200, `limit=${l}`);
    for (const l of ['0', '1001', '-1', '1.5', 'abc', '', '01000x', '99999999999999999999']) {
      const r = await api('GET', `${ks}/branch-keys?limit=${encodeURIComponent(l)}`, R);
      assertEq(r.status, 400, `limit=${l}`);
      assert(/limit/.test(r.json.error.message), r.text);
      const v = await api('GET', `${ks}/branch-keys/${encodeURIComponent(ids[0])}/versions?limit=${encodeURIComponent(l)}`, R);
      assertEq(v.status, 400, `versions limit=${l}`);
    }
    assertEq((await api('GET', `${ks}/branch-keys?limit=1&limit=2`, R)).status, 400, 'repeated limit');
  });

  await h.test('inventory: limit and nextToken only on the list routes; other query parameters refused', async () => {
    const id = encodeURIComponent(ids[0]);
    for (const p of [`${ks}/branch-keys/${id}/active?limit=1`, `${ks}?nextToken=x`, `${ks}/branch-keys?foo=1`,
      `${ks}/branch-keys/${id}/versions/${versions[ids[0]][0]}?limit=2`])
      assertEq((await api('GET', p, R)).status, 400, p);
  });

  await h.test('inventory: foreign, garbage and empty tokens -> 400 (key store, list kind, branch key)', async () => {
    const keysPage = await api('GET', `${ks}/branch-keys?limit=1`, A);
    const keysToken = keysPage.json.nextToken;
    const multi = ids.find((id) => versions[id].length > 1);
    const single = ids.find((id) => versions[id].length === 1);
    const vPage = await api('GET', `${ks}/branch-keys/${encodeURIComponent(multi)}/versions?limit=1`, A);
    const vToken = vPage.json.nextToken;
    assert(keysToken && vToken, 'tokens');
    for (const t of [keysToken, vToken]) assert(/^[A-Za-z0-9_-]+$/.test(t), `url-safe token ${t}`);
    const decoded = Buffer.from(vToken, 'base64url').toString();
    assert(!/enc|branchKey"/.test(decoded), `token carries no key material: ${decoded}`);
    // A second key store for the admin: the same token is refused there.
    const other = await startOther(api, A);
    const cases = [
      ['GET', `/v1/keystores/other/branch-keys?nextToken=${keysToken}`, 'another key store'],
      ['GET', `${ks}/branch-keys?nextToken=${vToken}`, 'a versions token on the keys list'],
      ['GET', `${ks}/branch-keys/${encodeURIComponent(multi)}/versions?nextToken=${keysToken}`, 'a keys token on versions'],
      ['GET', `${ks}/branch-keys/${encodeURIComponent(single)}/versions?nextToken=${vToken}`, 'another key\'s token'],
      ['GET', `${ks}/branch-keys?nextToken=${'x'.repeat(20)}`, 'garbage'],
      ['GET', `${ks}/branch-keys?nextToken=${Buffer.from('{"ks":"default"}').toString('base64url')}`, 'no kind'],
      ['GET', `${ks}/branch-keys?nextToken=`, 'empty'],
      ['GET', `${ks}/branch-keys?nextToken=${'A'.repeat(20000)}`, 'huge'],
    ];
    for (const [m, p, why] of cases) {
      const r = await api(m, p, A);
      assert(r.status === 400 || (why === 'huge' && r.status === 414), `${why}: ${r.status} ${r.text.slice(0, 200)}`);
      if (r.status === 400) assert(/nextToken/.test(r.json.error.message), `${why}: ${r.text}`);
    }
    assert(other, 'other key store');
    // The same tokens where they belong: accepted.
    assertEq((await api('GET', `${ks}/branch-keys?nextToken=${keysToken}`, R)).status, 200, 'keys token');
    assertEq((await api('GET', `${ks}/branch-keys/${encodeURIComponent(multi)}/versions?nextToken=${vToken}`, R)).status, 200, 'versions token');
  });

  await h.test('inventory: roles: reader may list its key store; not another (403); no token 401; unknown key 404', async () => {
    assertEq((await api('GET', '/v1/keystores/other/branch-keys', R)).status, 403, 'reader on other');
    assertEq((await api('GET', `${ks}/branch-keys`, {})).status, 401, 'no token');
    assertEq((await api('GET', `${ks}/branch-keys/no-such-key/versions`, R)).status, 404, 'unknown key');
    assertEq((await api('DELETE', `${ks}/branch-keys`, A)).status, 405, 'DELETE');
  });

  await h.test('inventory: versions newest first (creation order reversed), active only on the newest, every limit', async () => {
    const id = ids.find((x) => versions[x].length === 3);
    for (const limit of [1, 2, 3, 100]) {
      const pages = await listAll(api, `${ks}/branch-keys/${encodeURIComponent(id)}/versions`, R.token, limit);
      const got = pages.flatMap((p) => p.versions);
      assertEq(JSON.stringify(got.map((v) => v.branchKeyVersion)), JSON.stringify([...versions[id]].reverse()), `limit ${limit}`);
      assertEq(JSON.stringify(got.map((v) => v.active)), '[true,false,false]', 'active');
      assertEq(pages.length, Math.ceil(3 / limit), `pages at limit ${limit}`);
    }
  });

  await h.test('inventory: versions with every create-time format (Java padded ms, .NET/Python µs, Go local + Z, SPEC ms, unparseable)', async () => {
    const id = ids.find((x) => versions[x].length === 3);
    const store = backend.store(setup);
    const [v0, v1, v2] = versions[id];
    // Stored behind the server's back: the listing reads only plain attributes.
    const times = {
      [v0]: '2024-01-01T00:00:05.000429Z', // Java: 429 ms written as 000429 (read as 429 µs)
      [v1]: 'not a time',                   // unparseable: last, shown as stored
      [v2]: '2024-01-01T00:00:05.358Z',     // the SPEC's example
    };
    for (const [v, t] of Object.entries(times))
      await store.setAttribute(id, `branch:version:${v}`, 'create-time', { S: t });
    const extra = await api('POST', `${ks}/branch-keys/${encodeURIComponent(id)}/versions`, A);
    assertEq(extra.status, 201, 'version');
    const v3 = extra.json.branchKeyVersion;
    await store.setAttribute(id, `branch:version:${v3}`, 'create-time', { S: '2023-12-31T19:00:00.123456Z' }); // Go: local time with Z
    const pages = await listAll(api, `${ks}/branch-keys/${encodeURIComponent(id)}/versions`, R.token, 2);
    const got = pages.flatMap((p) => p.versions);
    assertEq(JSON.stringify(got.map((v) => v.branchKeyVersion)), JSON.stringify([v2, v0, v3, v1]), 'order');
    assertEq(got[3].createTime, 'not a time', 'unparseable shown as stored');
    assertEq(JSON.stringify(got.map((v) => v.active)), '[false,false,true,false]', 'the ACTIVE is v3');
  });

  if (backend.name === 'dynamodb') {
    await h.test('inventory: cost of one keys page on DynamoDB (the Scan the server sends, read with ReturnConsumedCapacity)', async () => {
      const { ScanCommand } = backend.sdk;
      for (const limit of [10, 100]) {
        const r = await backend.client.send(new ScanCommand({
          TableName: setup.tables.default, ConsistentRead: true, Limit: limit,
          FilterExpression: '#t = :a', ExpressionAttributeNames: { '#t': 'type' },
          ExpressionAttributeValues: { ':a': { S: 'branch:ACTIVE' } }, ReturnConsumedCapacity: 'TOTAL',
        }));
        console.log(`     DynamoDB Scan limit ${limit}: ScannedCount ${r.ScannedCount} items read, Count ${r.Count} ACTIVE returned, ` +
          `ConsumedCapacity ${r.ConsumedCapacity ? r.ConsumedCapacity.CapacityUnits : 'n/a'} RCU (table: ${KEYS} keys, ${3 * KEYS + 2 * (KEYS / 5)} items)`);
        assertEq(r.ScannedCount, limit, 'items read = limit');
      }
    });
  }

  await h.test('inventory: keystorectl keys list / versions list / rotate', async () => {
    assert(fs.existsSync(KEYSTORECTL), `no ${KEYSTORECTL}`);
    const env = { KEYSTORED_URL: srv.base, KEYSTORED_TOKEN: setup.tokens.admin };
    const all = await ctl(['--compact', 'keys', 'list', 'default', '--all', '--limit', '3'], env);
    assertEq(all.code, 0, `keys list --all (${all.stderr})`);
    assertEq(JSON.stringify(all.json.branchKeys.map((k) => k.branchKeyIdentifier).sort()), JSON.stringify([...ids].sort()), 'every key');
    assertEq(all.json.nextToken, undefined, 'no token on the combined list');
    const one = await ctl(['keys', 'list', 'default', '--limit', '7'], env);
    assertEq(one.code, 0, 'one page');
    assert(one.json.branchKeys.length <= 7 && typeof one.json.nextToken === 'string', 'a page and its token');
    const next = await ctl(['keys', 'list', 'default', '--limit', '7', '--next-token', one.json.nextToken], env);
    assertEq(next.code, 0, 'the next page');
    const firstTwo = [...one.json.branchKeys, ...next.json.branchKeys].map((k) => k.branchKeyIdentifier);
    assertEq(new Set(firstTwo).size, firstTwo.length, 'pages do not overlap');
    const id = ids[1];
    const rot = await ctl(['rotate', 'default', id], env);
    assertEq(rot.code, 0, `rotate (${rot.stderr})`);
    const vs = await ctl(['versions', 'list', 'default', id, '--all', '--limit', '1'], env);
    assertEq(vs.code, 0, 'versions list');
    assertEq(vs.json.versions.length, versions[id].length + 1, 'one version more');
    assertEq(vs.json.versions[0].branchKeyVersion, rot.json.branchKeyVersion, 'the new version first');
    assertEq(vs.json.versions[0].active, true, 'and ACTIVE');
    const bad = await ctl(['keys', 'list', 'default', '--limit', '0'], env);
    assertEq(bad.code, 2, 'usage error');
    const big = await ctl(['keys', 'list', 'default', '--limit', '1001'], env);
    assertEq(big.code, 1, 'server refuses limit 1001');
    assert(/400/.test(big.stderr), big.stderr);
    const foreign = await ctl(['keys', 'list', 'other', '--next-token', one.json.nextToken], env);
    assertEq(foreign.code, 1, 'a foreign token');
    const reader = await ctl(['keys', 'list', 'other'], { ...env, KEYSTORED_TOKEN: setup.tokens.reader });
    assertEq(reader.code, 1, 'reader on other: 403');
  });

  await h.test('inventory: server stops cleanly', async () => {
    const info = await srv.stop();
    assertEq(info.code, 0, 'exit code');
  });
}

// A key in key store "other" so that it has a listing too.
async function startOther(api, A) {
  const r = await api('POST', '/v1/keystores/other/branch-keys', A);
  return r.status === 201;
}

// ---- scheduled rotation: two instances on one store --------------------------------------------

const INTERVAL = 10;
const ROTATION_KEYS = 40;

function withRotation(configPath) {
  const text = fs.readFileSync(configPath, 'utf8');
  // Every key store gets the rotation block (after its kms_relationship line).
  const out = text.replace(/^(    kms_relationship: local\n)/gm,
    `$1    rotation: {interval_seconds: ${INTERVAL}, check_interval_seconds: 1}\n`);
  assert(out !== text, 'rotation inserted');
  fs.writeFileSync(configPath, out, { mode: 0o600 });
}

function metric(text, ks, outcome) {
  const re = new RegExp(`^keystored_rotations_total\\{key_store="${ks}",outcome="${outcome}"\\} (\\d+)$`, 'm');
  const m = re.exec(text);
  return m ? Number(m[1]) : NaN;
}

export async function runScheduledRotation(h, backend) {
  const setup = backend.makeSetup('rotation', 'server:\n  readiness_interval_ms: 200');
  withRotation(setup.configPath);
  const A = { token: setup.tokens.admin };
  const ks = '/v1/keystores/default';
  const servers = [];
  const apis = [];
  const ids = [];
  let t0, mutated, mutatedVersions;
  const versionCount = async (api, id) => (await listAll(api, `${ks}/branch-keys/${encodeURIComponent(id)}/versions`, A.token, 100))
    .flatMap((p) => p.versions).length;

  const up = await h.test(`scheduled rotation: two instances on one ${backend.name === 'sqlite' ? 'SQLite file' : 'DynamoDB table'} (interval ${INTERVAL} s, checks every ~1 s), ${ROTATION_KEYS} keys`, async () => {
    for (const tag of ['a', 'b']) {
      const { srv, api } = await startOne(h, backend, setup, `rotation-${tag} (${backend.name})`);
      servers.push(srv);
      apis.push(api);
    }
    await waitReadyz(apis[0]);
    t0 = Date.now();
    for (let i = 0; i < ROTATION_KEYS; i++) {
      const r = await apis[i % 2]('POST', `${ks}/branch-keys`, A);
      assertEq(r.status, 201, `create (${r.text.slice(0, 200)})`);
      ids.push(r.json.branchKeyIdentifier);
    }
    // One more key, left under mutation (InitializeMutation without ApplyMutation): skipped.
    const m = await apis[0]('POST', `${ks}/branch-keys`, A);
    assertEq(m.status, 201, 'create the key to mutate');
    mutated = m.json.branchKeyIdentifier;
    const init = await apis[0]('POST', `${ks}/branch-keys/${encodeURIComponent(mutated)}/mutation`,
      { ...A, body: { terminalEncryptionContext: { purpose: 'rotation-test' } } });
    assertEq(init.status, 201, `InitializeMutation (${init.text.slice(0, 300)})`);
    mutatedVersions = await versionCount(apis[0], mutated);
  });
  if (!up) {
    for (const s of servers) await s.stop();
    return;
  }

  const figures = {};
  await h.test(`scheduled rotation: after ${INTERVAL + 7} s every key was rotated exactly once (a second rotation cannot come before ${2 * INTERVAL} s)`, async () => {
    await new Promise((r) => setTimeout(r, Math.max(0, t0 + (INTERVAL + 7) * 1000 - Date.now())));
    const counts = [];
    for (const id of ids) {
      const pages = await listAll(apis[0], `${ks}/branch-keys/${encodeURIComponent(id)}/versions`, A.token, 100);
      counts.push(pages.flatMap((p) => p.versions).length);
    }
    figures.versionsAt17s = counts;
    assert(counts.every((c) => c === 2), `versions per key at ${INTERVAL + 7} s: ${JSON.stringify(counts)}`);
  });

  await h.test(`scheduled rotation: after ${3 * INTERVAL - 1} s: rotated exactly twice (a third cannot come before ${3 * INTERVAL} s), never two rotations of one key within ${INTERVAL} s`, async () => {
    await new Promise((r) => setTimeout(r, Math.max(0, t0 + (3 * INTERVAL - 1) * 1000 - Date.now())));
    const counts = [];
    let minGap = Infinity;
    for (const id of ids) {
      const pages = await listAll(apis[1], `${ks}/branch-keys/${encodeURIComponent(id)}/versions`, A.token, 100);
      const vs = pages.flatMap((p) => p.versions);
      counts.push(vs.length);
      const ts = vs.map((v) => Date.parse(v.createTime)).sort((a, b) => a - b);
      for (let i = 1; i < ts.length; i++) minGap = Math.min(minGap, ts[i] - ts[i - 1]);
    }
    figures.versionsAt29s = counts;
    figures.minGapMs = minGap;
    assert(counts.every((c) => c === 3), `versions per key at ${3 * INTERVAL - 1} s: ${JSON.stringify(counts)}`);
    assert(minGap >= INTERVAL * 1000, `two versions of one key ${minGap} ms apart`);
  });

  await h.test('scheduled rotation: the metrics of both instances add up to the versions written; the key under mutation was skipped and counted, never rotated', async () => {
    const per = [];
    for (const api of apis) {
      const r = await api('GET', '/metrics', { token: setup.tokens.admin });
      assertEq(r.status, 200, 'metrics');
      const o = {};
      for (const k of ['rotated', 'not_due', 'lost_race', 'under_mutation', 'kms_arn_mismatch', 'bad_create_time', 'error'])
        o[k] = metric(r.text, 'default', k);
      o.oldestAge = Number((/^keystored_oldest_active_key_age_seconds\{key_store="default"\} ([0-9.]+)$/m.exec(r.text) || [])[1]);
      per.push(o);
    }
    figures.metrics = per;
    const total = (await Promise.all(ids.map(async (id) => {
      const pages = await listAll(apis[0], `${ks}/branch-keys/${encodeURIComponent(id)}/versions`, A.token, 100);
      return pages.flatMap((p) => p.versions).length;
    }))).reduce((a, b) => a + b, 0);
    const rotated = per[0].rotated + per[1].rotated;
    assertEq(rotated, total - ROTATION_KEYS, `rotated counters (${JSON.stringify(per)}) vs versions written`);
    assert(per[0].under_mutation + per[1].under_mutation > 0, 'the key under mutation was not counted as skipped');
    assertEq(await versionCount(apis[1], mutated), mutatedVersions, 'versions of the key under mutation');
    for (const o of per) {
      assertEq(o.error, 0, 'errors');
      assertEq(o.bad_create_time + o.kms_arn_mismatch, 0, 'skips');
      assert(o.oldestAge >= 0 && o.oldestAge < 3 * INTERVAL, `oldest ACTIVE age ${o.oldestAge}`);
    }
  });
  console.log(`     rotation figures: ${JSON.stringify(figures)}`);

  await h.test('scheduled rotation: both instances stop cleanly (SIGTERM -> 0)', async () => {
    for (const s of servers) assertEq((await s.stop()).code, 0, 'exit code');
  });
}

// race.mjs - VersionKey under contention (docs/architecture.md section 5, "Mitigate Update Race"):
// 16 clients x 50 rounds of POST .../versions on one key. Every answer is 201 or 409
// VersionRaceException; every 201 version is readable; the table holds exactly 1 + #201
// version items; ACTIVE is one of the 201 versions.
// The same test drives several instances on one table (multi.mjs): client c sends its round i
// to instance (c + i) mod n, and reads go round-robin too. With throttle set, 429
// ThrottlingException (with Retry-After) is an allowed answer as well.
// The version items are counted through the backend (lib/backends.mjs store()).

import { assert, assertEq, base64Bytes } from './lib/harness.mjs';

export const CLIENTS = 16;
export const ROUNDS = 50;

async function pool(items, n, fn) {
  let next = 0;
  const workers = Array.from({ length: n }, async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i], i);
    }
  });
  await Promise.all(workers);
}

export async function runRace(h, { api, apis, tokens, store, label = 'race', throttle = false, beforeLoad, afterLoad }) {
  apis = apis || [api];
  const T = { token: tokens.admin };
  const ks = '/v1/keystores/default';
  const at = (k) => apis[((k % apis.length) + apis.length) % apis.length];
  let id;
  const won = [];
  const other = [];
  let raced = 0;
  let throttled = 0;

  const created = await h.test(`${label}: create the key`, async () => {
    const r = await at(0)('POST', `${ks}/branch-keys`, T);
    assertEq(r.status, 201, `status (${r.text.slice(0, 200)})`);
    id = r.json.branchKeyIdentifier;
  });
  if (!created) return null;
  const bk = `${ks}/branch-keys/${encodeURIComponent(id)}`;

  const what = throttle ? '201, 409 VersionRaceException or 429 ThrottlingException with Retry-After' : '201 or 409 VersionRaceException';
  const via = apis.length > 1 ? `, alternating between ${apis.length} instances` : '';
  await h.test(`${label}: ${CLIENTS} clients x ${ROUNDS} VersionKey${via} -> only ${what}`, async () => {
    if (beforeLoad) await beforeLoad();
    try {
      await Promise.all(Array.from({ length: CLIENTS }, async (_, c) => {
        for (let i = 0; i < ROUNDS; i++) {
          let r;
          try {
            r = await at(c + i)('POST', `${bk}/versions`, T);
          } catch (e) {
            other.push(`transport error: ${e.message}`);
            continue;
          }
          const type = r.json && r.json.error && r.json.error.type;
          if (r.status === 201 && r.json && r.json.branchKeyIdentifier === id &&
              typeof r.json.branchKeyVersion === 'string')
            won.push(r.json.branchKeyVersion);
          else if (r.status === 409 && type === 'VersionRaceException')
            raced++;
          else if (throttle && r.status === 429 && type === 'ThrottlingException' && /^[0-9]+$/.test(r.headers['retry-after'] || ''))
            throttled++;
          else other.push(`${r.status} ${r.status === 429 ? `Retry-After ${r.headers['retry-after']} ` : ''}${r.text.slice(0, 200)}`);
        }
      }));
    } finally {
      if (afterLoad) await afterLoad();
    }
    console.log(`     ${won.length} x 201, ${raced} x 409${throttle ? `, ${throttled} x 429` : ''}`);
    assert(other.length === 0, `${other.length} unexpected answers, e.g. ${other.slice(0, 3).join(' | ')}`);
    assertEq(won.length + raced + throttled, CLIENTS * ROUNDS, 'answers');
    assert(won.length > 0, 'no VersionKey succeeded');
    assertEq(new Set(won).size, won.length, 'distinct versions');
  });

  await h.test(`${label}: every 201 version is readable${apis.length > 1 ? ' from every instance' : ''} and holds 32 key bytes`, async () => {
    const bad = [];
    const keys = new Map(); // version -> key bytes
    const reads = won.flatMap((v) => apis.map((_, k) => [v, k]));
    await pool(reads, CLIENTS, async ([v, k]) => {
      const r = await apis[k]('GET', `${bk}/versions/${v}`, { token: tokens.reader });
      const b = r.status === 200 ? base64Bytes(r.json.branchKey) : null;
      if (!b || b.length !== 32 || r.json.branchKeyVersion !== v) bad.push(`${v} (instance ${k}): ${r.status} ${r.text.slice(0, 120)}`);
      else if (keys.has(v) && keys.get(v) !== r.json.branchKey) bad.push(`${v}: instance ${k} returns other key bytes`);
      else keys.set(v, r.json.branchKey);
    });
    assert(bad.length === 0, `${bad.length} unreadable, e.g. ${bad.slice(0, 3).join(' | ')}`);
    assertEq(new Set(keys.values()).size, won.length, 'distinct key bytes');
  });

  await h.test(`${label}: the table holds exactly 1 + #201 version items (losers wrote nothing)`, async () => {
    const n = await store.countVersionItems(id);
    assertEq(n, 1 + won.length, `version items in ${store.describe}`);
  });

  await h.test(`${label}: ACTIVE is one of the 201 versions${apis.length > 1 ? ', the same on every instance' : ''}`, async () => {
    const seen = new Set();
    for (const a of apis) {
      const r = await a('GET', `${bk}/active`, { token: tokens.reader });
      assertEq(r.status, 200, `status (${r.text.slice(0, 200)})`);
      assert(won.includes(r.json.branchKeyVersion), `ACTIVE ${r.json.branchKeyVersion} is not a 201 version`);
      const v = await a('GET', `${bk}/versions/${r.json.branchKeyVersion}`, { token: tokens.reader });
      assertEq(v.json.branchKey, r.json.branchKey, 'ACTIVE key = its version item key');
      seen.add(r.json.branchKeyVersion);
    }
    assertEq(seen.size, 1, 'ACTIVE versions seen by the instances');
  });
  return { id, won, raced, throttled };
}

// CreateKey with one custom id from 16 clients at once: exactly one 201, the rest 409
// AlreadyExistsException, and the stored key is the winner's (its context).
export async function runCreateRace(h, { api, tokens, store }) {
  await h.test(`race: ${CLIENTS} concurrent CreateKey with one custom id -> one 201, ${CLIENTS - 1} x 409 AlreadyExistsException`, async () => {
    const id = 'create-race';
    const results = await Promise.all(Array.from({ length: CLIENTS }, (_, i) =>
      api('POST', '/v1/keystores/default/branch-keys',
        { token: tokens.admin, body: { branchKeyIdentifier: id, encryptionContext: { client: String(i) } } })));
    const won = results.map((r, i) => [r, i]).filter(([r]) => r.status === 201);
    const lost = results.filter((r) => r.status === 409 && r.json && r.json.error && r.json.error.type === 'AlreadyExistsException');
    assertEq(won.length, 1, `201 answers (statuses ${results.map((r) => r.status).join(',')})`);
    assertEq(lost.length, CLIENTS - 1, '409 AlreadyExistsException answers');
    const a = await api('GET', `/v1/keystores/default/branch-keys/${id}/active`, { token: tokens.reader });
    assertEq(a.status, 200, 'get active');
    assertEq(a.json.encryptionContext, { client: String(won[0][1]) }, 'the winner\'s context');
    assertEq(await store.countVersionItems(id), 1, `version items in ${store.describe}`);
  });
}

// race.mjs - VersionKey under contention (DESIGN.md section 5, "Mitigate Update Race"):
// 16 clients x 50 rounds of POST .../versions on one key. Every answer is 201 or 409
// VersionRaceException; every 201 version is readable; the table holds exactly 1 + #201
// version items; ACTIVE is one of the 201 versions.

import path from 'node:path';
import { assert, assertEq, base64Bytes } from './lib/harness.mjs';
import { countVersionItems } from './lib/sqlite.mjs';

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

export async function runRace(h, { api, tokens, dir }) {
  const T = { token: tokens.admin };
  const ks = '/v1/keystores/default';
  let id;
  const won = [];
  const other = [];
  let raced = 0;

  const created = await h.test('race: create the key', async () => {
    const r = await api('POST', `${ks}/branch-keys`, T);
    assertEq(r.status, 201, 'status');
    id = r.json.branchKeyIdentifier;
  });
  if (!created) return;
  const bk = `${ks}/branch-keys/${encodeURIComponent(id)}`;

  await h.test(`race: ${CLIENTS} clients x ${ROUNDS} VersionKey -> only 201 or 409 VersionRaceException`, async () => {
    await Promise.all(Array.from({ length: CLIENTS }, async () => {
      for (let i = 0; i < ROUNDS; i++) {
        let r;
        try {
          r = await api('POST', `${bk}/versions`, T);
        } catch (e) {
          other.push(`transport error: ${e.message}`);
          continue;
        }
        if (r.status === 201 && r.json && r.json.branchKeyIdentifier === id &&
            typeof r.json.branchKeyVersion === 'string')
          won.push(r.json.branchKeyVersion);
        else if (r.status === 409 && r.json && r.json.error && r.json.error.type === 'VersionRaceException')
          raced++;
        else other.push(`${r.status} ${r.text.slice(0, 200)}`);
      }
    }));
    assert(other.length === 0, `${other.length} unexpected answers, e.g. ${other.slice(0, 3).join(' | ')}`);
    assertEq(won.length + raced, CLIENTS * ROUNDS, 'answers');
    assert(won.length > 0, 'no VersionKey succeeded');
    assertEq(new Set(won).size, won.length, 'distinct versions');
    console.log(`     ${won.length} x 201, ${raced} x 409`);
  });

  await h.test('race: every 201 version is readable and holds 32 key bytes', async () => {
    const bad = [];
    const keys = new Set();
    await pool(won, CLIENTS, async (v) => {
      const r = await api('GET', `${bk}/versions/${v}`, { token: tokens.reader });
      const b = r.status === 200 ? base64Bytes(r.json.branchKey) : null;
      if (!b || b.length !== 32 || r.json.branchKeyVersion !== v) bad.push(`${v}: ${r.status} ${r.text.slice(0, 120)}`);
      else keys.add(r.json.branchKey);
    });
    assert(bad.length === 0, `${bad.length} unreadable, e.g. ${bad.slice(0, 3).join(' | ')}`);
    assertEq(keys.size, won.length, 'distinct key bytes');
  });

  await h.test('race: the table holds exactly 1 + #201 version items (losers wrote nothing)', async () => {
    const n = countVersionItems(path.join(dir, 'ks.db'), id);
    assertEq(n, 1 + won.length, 'version items in SQLite');
  });

  await h.test('race: ACTIVE is one of the 201 versions', async () => {
    const r = await api('GET', `${bk}/active`, { token: tokens.reader });
    assertEq(r.status, 200, 'status');
    assert(won.includes(r.json.branchKeyVersion), `ACTIVE ${r.json.branchKeyVersion} is not a 201 version`);
    const v = await api('GET', `${bk}/versions/${r.json.branchKeyVersion}`, { token: tokens.reader });
    assertEq(v.json.branchKey, r.json.branchKey, 'ACTIVE key = its version item key');
  });
}

// CreateKey with one custom id from 16 clients at once: exactly one 201, the rest 409
// AlreadyExistsException, and the stored key is the winner's (its context).
export async function runCreateRace(h, { api, tokens, dir }) {
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
    assertEq(countVersionItems(path.join(dir, 'ks.db'), id), 1, 'version items');
  });
}

#!/usr/bin/env node
// run.mjs - interoperability of keystored with AWS's own branch key store library,
// @aws-crypto/branch-keystore-node 5.x, over one DynamoDB table and one KMS.
//
//   node tests/interop/run.mjs          (KEYSTORED=path overrides ./build/keystored;
//                                        KS_INTEROP_ONLY=mutations: only the mutation section)
//
// Starts the KMS test peer and DynamoDB Local (127.0.0.1 only), makes KMS keys (a single-region
// key K1, a second key K2, a multi-region key with replicas in us-west-2 and us-east-1), starts
// keystored with one dynamodb key store and an aws relationship per KMS configuration kind, and
// builds AWS's BranchKeyStoreNode for the same table, logical name and KMS.
//
// KMS configuration kinds (keystored relationship <-> AWS's kmsConfiguration):
//   kms_key_arn     strict  K1                     <-> {identifier: K1}
//   kms_mr_key_arn  mrk     MRK ARN in us-east-1   <-> {mrkIdentifier: MRK ARN in us-west-2}
//   discovery       disc    discovery: {}          <-> 'discovery'
//   mr_discovery    mrdisc  mr_discovery us-east-1 <-> {region: 'us-east-1'}
// Rows of the matrix: kind x direction (keystored writes / AWS reads, AWS writes / keystored
// reads). Create and version only where the kind allows it; reads with all four.
// Columns: write (create with and without custom id + EC, version; keystored's KMS requests =
// AWS's), active, version (an older one), beacon (keystored's GetBeaconKey vs. the beacon item
// decrypted with @aws-sdk/client-kms under the MPL encryption context), items (attribute names
// and types exactly the MPL's, same as what the other side wrote), tamper (a changed custom EC
// value on the ACTIVE / version / beacon item: both refuse; restored: both read), cross-version
// (the reading side versions the writer's key), version race (both sides version at once),
// odd ids + EC. A second table checks configuration mismatches against the MPL's rules
// (docs/reference/branch-key-store.md section 7) and the logical name binding. Last, mutations:
// keystored moves keys from K1 to K2 (rotating and doNotVersion) and AWS's library reads them.
// The generated matrix is also written to tests/interop/MATRIX.md.
// Prints one line per test, the matrices, and "N passed, N failed"; exits 1 on any failure.

import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { REPO, KMS_CREDS, DDB_CREDS, startKmsPeer, kmsAdmin } from './lib/peers.mjs';
import { startDynamoDBLocal } from '../peers/dynamodb-local.mjs';
import {
  awsKeyStore, awsMaterials, awsEcMatches, ecShapes, ddbClient, getItem, itemsOf, setAttr,
  rawDecrypt, attrTypes, expectedAttrTypes, EC_PREFIX,
} from './lib/aws.mjs';
import { Matrix } from './lib/matrix.mjs';
import { Harness, assert, assertEq, show } from '../http/lib/harness.mjs';

// AWS SDK v3 warns once about Node < 22 on stderr; the warning is not about this suite.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
if (!process.env.KEYSTORED) process.env.KEYSTORED = path.join(REPO, 'build', 'keystored');
const { startServer, sha256Hex, newToken, tempDir, tempDirs, sanitizerFindings, allProcessOutputs } =
  await import('../http/lib/server.mjs');
const { makeApi } = await import('../http/lib/http.mjs');

const T0 = Date.now();
const DEADLINE_MS = Number(process.env.KS_INTEROP_DEADLINE_S || 240) * 1000;
const h = new Harness();
const LOGICAL = 'interop-logical';
const TABLE = 'KeyStoreInterop';
const KS = 'interop';
// A second key store over the same table whose logical name is the table name: the logical
// name, not the table name, must be bound into every KMS encryption context.
const KS_PHYSICAL = 'interop-physical';
const WEST = 'us-west-2';
const EAST = 'us-east-1';
const rnd = () => randomBytes(4).toString('hex');

const ROWS = [];
const KIND_ORDER = ['strict', 'mrk', 'disc', 'mrdisc'];
const KIND_LABEL = {
  strict: 'kms_key_arn', mrk: 'kms_mr_key_arn (other region)', disc: 'discovery', mrdisc: 'mr_discovery (us-east-1)',
};
for (const k of KIND_ORDER) {
  ROWS.push({ key: `${k}/ks`, label: `${KIND_LABEL[k]}: keystored writes, AWS reads` });
  ROWS.push({ key: `${k}/aws`, label: `${KIND_LABEL[k]}: AWS writes, keystored reads` });
}
const matrix = new Matrix('interop', ROWS, [
  { key: 'write', label: 'write' }, { key: 'active', label: 'active' }, { key: 'version', label: 'version' },
  { key: 'beacon', label: 'beacon' }, { key: 'items', label: 'items' }, { key: 'tamper', label: 'tamper' },
  { key: 'xversion', label: 'cross-version' }, { key: 'race', label: 'version race' },
  { key: 'odd', label: 'odd ids + EC' },
]);
const MISMATCH_ROWS = [
  { key: 'k2-reads-k1', label: 'kms_key_arn K2 reads a key made under K1' },
  { key: 'k1-reads-mrk', label: 'kms_key_arn K1 reads a key made under the MRK' },
  { key: 'mrk-reads-k1', label: 'kms_mr_key_arn (us-east-1) reads a key made under K1' },
  { key: 'mrk-reads-mrk', label: 'kms_mr_key_arn (us-east-1) reads a key made under the us-west-2 MRK' },
  { key: 'disc-reads-all', label: 'discovery reads keys made under K1 and the MRK' },
  { key: 'mrdisc-keyid', label: 'mr_discovery (us-east-1) Decrypt KeyId' },
  { key: 'logical-name', label: 'logical name = the table name instead of the configured logical name (discovery)' },
  { key: 'create-discovery', label: 'CreateKey under discovery / mr_discovery' },
  { key: 'version-discovery', label: 'VersionKey under discovery / mr_discovery' },
  { key: 'version-k2', label: 'VersionKey of a K1 key under kms_key_arn K2' },
];
const mismatch = new Matrix('mismatch', MISMATCH_ROWS, [
  { key: 'keystored', label: 'keystored (HTTP)' }, { key: 'aws', label: 'AWS BranchKeyStoreNode' },
]);

async function t(m, row, col, name, fn) {
  const ok = await h.test(name, fn);
  m.record(row, col, ok);
  return ok;
}

// ---- peers, keys, keystored -----------------------------------------------------------------

let kms;
let ddb;
let srv;
const cleanup = async () => {
  await Promise.allSettled([srv?.stop(), kms?.stop(), ddb?.stop()]);
};
const deadline = setTimeout(async () => {
  console.log(`FAIL interop suite: still running after ${DEADLINE_MS / 1000} s; stopping`);
  await cleanup();
  console.log(`${h.passed} passed, ${h.failed + 1} failed`);
  process.exit(1);
}, DEADLINE_MS);
deadline.unref();

async function setup() {
  h.section('peers');
  [kms, ddb] = await Promise.all([startKmsPeer(), startDynamoDBLocal({ log: { write() {} } })]);
  console.log(`kms peer ${kms.endpoint}, dynamodb-local ${ddb.endpoint} (${ddb.startupMs} ms)`);
  const k1 = (await kmsAdmin(kms.endpoint, 'POST', 'keys', { region: WEST })).arn;
  const k2 = (await kmsAdmin(kms.endpoint, 'POST', 'keys', { region: WEST })).arn;
  const mrk = await kmsAdmin(kms.endpoint, 'POST', 'keys', { regions: [WEST, EAST], multiRegion: true });
  const mrkWest = mrk.arns.find((a) => a.split(':')[3] === WEST);
  const mrkEast = mrk.arns.find((a) => a.split(':')[3] === EAST);
  assert(mrkWest && mrkEast && mrkWest.includes(':key/mrk-'), `MRK replicas: ${show(mrk)}`);
  console.log(`K1 ${k1}\nK2 ${k2}\nMRK ${mrkWest} + ${mrkEast}`);

  const dir = tempDir('interop');
  const token = newToken('interop');
  const creds = (c) =>
    `{source: static, access_key_id: "${c.accessKeyId}", secret_access_key: "${c.secretAccessKey}"}`;
  const rel = (name, region, conf) => `  - name: ${name}
    type: aws
    region: ${region}
    endpoint: ${kms.endpoint}
    credentials: ${creds(KMS_CREDS)}
    kms_configuration: ${conf}
`;
  // Readiness probes (a DescribeKey per relationship) once at start, then hourly: the tests
  // that assert "no KMS call" read the peer's log, where a periodic probe would be noise.
  const config = `# generated by tests/interop/run.mjs
listen: 127.0.0.1:0
server: {readiness_interval_ms: 3600000}
kms_relationships:
${rel('strict', WEST, `{kms_key_arn: "${k1}"}`)}${rel('mrk', EAST, `{kms_mr_key_arn: "${mrkEast}"}`)}${rel('disc', WEST, '{discovery: {}}')}${rel('mrdisc', EAST, `{mr_discovery: {region: ${EAST}}}`)}${rel('wrong', WEST, `{kms_key_arn: "${k2}"}`)}key_stores:
  - name: ${KS}
    logical_key_store_name: ${LOGICAL}
    kms_relationship: strict
    storage:
      type: dynamodb
      table: ${TABLE}
      region: ${WEST}
      endpoint: ${ddb.endpoint}
      credentials: ${creds(DDB_CREDS)}
  - name: ${KS_PHYSICAL}
    logical_key_store_name: ${TABLE}
    kms_relationship: disc
    storage:
      type: dynamodb
      table: ${TABLE}
      region: ${WEST}
      endpoint: ${ddb.endpoint}
      credentials: ${creds(DDB_CREDS)}
# The MPL's "No" cache: AWS's library writes (versionKey) behind keystored's back, and every
# read here must show what the table and KMS hold now, not a cached ACTIVE of up to ttl_seconds
# ago (README "Cache"); the cache has its own tests in tests/http/cache.mjs.
cache: {capacity: 0}
tenants:
  - name: admin
    token_sha256: "${sha256Hex(token)}"
    role: admin
    key_stores: [${KS}, ${KS_PHYSICAL}]
    kms_relationships: [strict, mrk, disc, mrdisc, wrong]
`;
  const configPath = path.join(dir, 'keystored.yaml');
  fs.writeFileSync(configPath, config, { mode: 0o600 });
  h.section('keystored');
  srv = await startServer(['--config', configPath], 'interop');
  console.log(`keystored ${srv.base} (${process.env.KEYSTORED})`);
  const api = makeApi(srv.base);
  const call = async (method, p, body, ksName = KS) => api(method, `/v1/keystores/${ksName}${p}`, { token, body });
  await h.test('keystored: PUT /v1/keystores/interop (CreateKeyStore on DynamoDB Local)', async () => {
    const r = await call('PUT', '');
    assertEq(r.status, 200, `PUT status (${r.text})`);
  });
  const ddbc = ddbClient(ddb.endpoint);
  const common = { logicalKeyStoreName: LOGICAL, tableName: TABLE, ddb: ddbc, kmsEndpoint: kms.endpoint };
  const kinds = {
    strict: { key: 'strict', type: 'kms_key_arn', arn: k1, writeArn: k1, rel: 'strict',
      aws: awsKeyStore({ ...common, region: WEST, kmsConfiguration: { identifier: k1 } }) },
    // keystored names the us-east-1 replica, AWS's library the us-west-2 one.
    mrk: { key: 'mrk', type: 'kms_mr_key_arn', arn: mrkEast, writeArn: mrkEast, awsArn: mrkWest, rel: 'mrk',
      aws: awsKeyStore({ ...common, region: WEST, kmsConfiguration: { mrkIdentifier: mrkWest } }) },
    disc: { key: 'disc', type: 'discovery', rel: 'disc',
      aws: awsKeyStore({ ...common, region: WEST, kmsConfiguration: 'discovery' }) },
    mrdisc: { key: 'mrdisc', type: 'mr_discovery', region: EAST, rel: 'mrdisc',
      aws: awsKeyStore({ ...common, region: EAST, kmsConfiguration: { region: EAST } }) },
  };
  const wrongAws = awsKeyStore({ ...common, region: WEST, kmsConfiguration: { identifier: k2 } });
  const physicalAws = awsKeyStore({ ...common, logicalKeyStoreName: TABLE, region: WEST, kmsConfiguration: 'discovery' });
  return { k1, k2, mrkWest, mrkEast, call, ddbc, kinds, wrongAws, physicalAws, dir };
}

// ---- keystored over HTTP --------------------------------------------------------------------

function ksOps(call) {
  const enc = encodeURIComponent;
  const q = (rel) => `?kmsRelationship=${enc(rel)}`;
  return {
    create: (rel, body = {}) => call('POST', '/branch-keys', { ...body, kmsRelationship: rel }),
    version: (rel, id) => call('POST', `/branch-keys/${enc(id)}/versions`, { kmsRelationship: rel }),
    active: (rel, id) => call('GET', `/branch-keys/${enc(id)}/active${q(rel)}`),
    ver: (rel, id, v) => call('GET', `/branch-keys/${enc(id)}/versions/${enc(v)}${q(rel)}`),
    beacon: (rel, id) => call('GET', `/branch-keys/${enc(id)}/beacon${q(rel)}`),
  };
}

function ok200(r, what) {
  if (r.status !== 200) throw new Error(`${what}: expected 200, got ${r.status} ${r.text}`);
  return r.json;
}

function expectError(r, status, type, what) {
  if (r.status !== status || r.json?.error?.type !== type)
    throw new Error(`${what}: expected ${status} ${type}, got ${r.status} ${r.text}`);
}

// AWS's library must throw; `why` (a RegExp on "name: message") says for which reason.
async function expectAwsRefuses(p, what, why) {
  let res;
  try {
    res = await p;
  } catch (e) {
    const text = `${e && e.name}: ${e && e.message}`;
    if (why && !why.test(text)) throw new Error(`${what}: AWS's library refused, but not as expected (${why}): ${text}`);
    return e;
  }
  throw new Error(`${what}: AWS's library accepted (${show(res && res.branchKeyIdentifier)})`);
}

// KMS requests the peer saw since the last reset, normalized for comparing the two writers:
// per request the operation, key ids (the writer's own ARN as <arn>), NumberOfBytes and the
// encryption contexts with the per-key values (id, uuids, timestamp, ARN) replaced.
const UUID_RE = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g;
async function kmsLog() {
  return (await kmsAdmin(kms.endpoint, 'GET', 'requests')).requests;
}
function normalizeKmsLog(reqs, { id, arn }) {
  const ec = (m) => m && Object.fromEntries(Object.entries(m).sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => {
    if (k === 'branch-key-id') return [k, v === id ? '<id>' : v];
    if (k === 'create-time') return [k, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/.test(v) ? '<ts>' : v];
    if (k === 'kms-arn') return [k, v === arn ? '<arn>' : v];
    if (k === 'type' || k === 'version') return [k, v.replace(UUID_RE, '<v>')];
    return [k, v];
  }));
  const kid = (x) => (x === arn ? '<arn>' : x);
  return reqs.map((r) => ({
    op: r.operation, status: r.status, keyId: kid(r.keyId), sourceKeyId: kid(r.sourceKeyId),
    numberOfBytes: r.numberOfBytes, keySpec: r.keySpec, ec: ec(r.encryptionContext),
    sourceEc: ec(r.sourceEncryptionContext), grantTokens: r.grantTokens,
  }));
}

// ---- the suite ------------------------------------------------------------------------------

const EC_CUSTOM = { department: 'interop', 'unicode-ü': 'wert ✓ 値', empty: '' };

async function main() {
  const env = await setup();
  // KS_INTEROP_ONLY=mutations runs only the mutation section (for a quick check of it).
  if (process.env.KS_INTEROP_ONLY === 'mutations') return mutationInterop(env);
  const { call, ddbc, kinds } = env;
  const ks = ksOps(call);
  const kmsLogs = {}; // row -> {create, version}: normalized KMS requests of the custom key
  const keys = { ks: [], aws: [] }; // {id, under (kind key), custom, ec, versions: [..], active, tamper}

  // The current ACTIVE version of a key, read from the table.
  const activeOf = async (id) => {
    const it = await getItem(ddbc, TABLE, id, 'branch:ACTIVE');
    assert(it, `no ACTIVE item for ${id}`);
    return it.version.S.slice('branch:version:'.length);
  };

  // -- writes ------------------------------------------------------------------------------
  h.section('writes: keystored (HTTP) and AWS (createKey / versionKey)');
  for (const kk of ['strict', 'mrk']) {
    const kind = kinds[kk];
    const row = `${kk}/ks`;
    for (const custom of [true, false]) {
      const name = `keystored creates under ${kk} ${custom ? 'with custom id + encryptionContext' : 'with neither'}, then versions it`;
      await t(matrix, row, 'write', name, async () => {
        const body = custom ? { branchKeyIdentifier: `ks-${kk}-custom-${rnd()}`, encryptionContext: EC_CUSTOM } : {};
        await kmsAdmin(kms.endpoint, 'POST', 'reset');
        const r = await call('POST', '/branch-keys', { ...body, kmsRelationship: kind.rel });
        if (r.status !== 201) throw new Error(`create: expected 201, got ${r.status} ${r.text}`);
        const id = r.json.branchKeyIdentifier;
        if (custom) assertEq(id, body.branchKeyIdentifier, 'branchKeyIdentifier');
        else assert(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(id), `generated id ${id} is not a UUIDv4`);
        const v1 = await activeOf(id);
        const createLog = normalizeKmsLog(await kmsLog(), { id, arn: kind.writeArn });
        await kmsAdmin(kms.endpoint, 'POST', 'reset');
        const rv = await ks.version(kind.rel, id);
        if (custom) kmsLogs[row] = { create: createLog, version: normalizeKmsLog(await kmsLog(), { id, arn: kind.writeArn }) };
        if (rv.status !== 201) throw new Error(`version: expected 201, got ${rv.status} ${rv.text}`);
        assertEq(rv.json.branchKeyIdentifier, id, 'version: branchKeyIdentifier');
        const v2 = await activeOf(id);
        assertEq(rv.json.branchKeyVersion, v2, 'version: branchKeyVersion = the new ACTIVE version in the table');
        assert(v1 !== v2, 'version: a new version');
        keys.ks.push({ id, under: kk, custom, ec: custom ? EC_CUSTOM : {}, versions: [v1, v2], active: v2, writeArn: kind.writeArn });
      });
    }
    const arow = `${kk}/aws`;
    for (const custom of [true, false]) {
      const name = `AWS createKey under ${kk} ${custom ? 'with custom id + encryptionContext' : 'with neither'}, then versionKey`;
      await t(matrix, arow, 'write', name, async () => {
        const input = custom ? { branchKeyIdentifier: `aws-${kk}-custom-${rnd()}`, encryptionContext: EC_CUSTOM } : undefined;
        await kmsAdmin(kms.endpoint, 'POST', 'reset');
        const { branchKeyIdentifier: id } = await kind.aws.createKey(input);
        const v1 = await activeOf(id);
        const awsArn = kind.awsArn || kind.arn;
        const createLog = normalizeKmsLog(await kmsLog(), { id, arn: awsArn });
        await kmsAdmin(kms.endpoint, 'POST', 'reset');
        await kind.aws.versionKey({ branchKeyIdentifier: id });
        if (custom) kmsLogs[arow] = { create: createLog, version: normalizeKmsLog(await kmsLog(), { id, arn: awsArn }) };
        const v2 = await activeOf(id);
        assert(v1 !== v2, 'versionKey: a new version');
        keys.aws.push({ id, under: kk, custom, ec: custom ? EC_CUSTOM : {}, versions: [v1, v2], active: v2,
          writeArn: kind.awsArn || kind.arn });
      });
    }
  }
  for (const kk of ['strict', 'mrk']) {
    const ok = await h.test(`${kk}: keystored's KMS calls for CreateKey and VersionKey = AWS's (operations, key ids, NumberOfBytes, encryption contexts)`, async () => {
      const mine = kmsLogs[`${kk}/ks`];
      const theirs = kmsLogs[`${kk}/aws`];
      assert(mine && theirs, 'both writers were logged');
      assertEq(mine.create.map((r) => r.op), ['GenerateDataKeyWithoutPlaintext', 'ReEncrypt', 'GenerateDataKeyWithoutPlaintext'], 'CreateKey operations');
      assertEq(mine.version.map((r) => r.op), ['ReEncrypt', 'GenerateDataKeyWithoutPlaintext', 'ReEncrypt'], 'VersionKey operations');
      for (const op of ['create', 'version']) {
        assertEq(mine[op].length, theirs[op].length, `${op}: number of KMS calls`);
        mine[op].forEach((r, i) => assertEq(r, theirs[op][i], `${op}: KMS call ${i + 1} (${r.op})`));
      }
    });
    if (process.env.KS_INTEROP_DEBUG) console.log(JSON.stringify(kmsLogs[`${kk}/ks`], null, 1));
    matrix.record(`${kk}/ks`, 'write', ok);
    matrix.record(`${kk}/aws`, 'write', ok);
  }
  // Keys for the tamper column: one per row, made by that row's writer, not read by anyone yet.
  const tamperKeys = {};
  for (const kk of KIND_ORDER) {
    const under = kk === 'strict' || kk === 'disc' ? 'strict' : 'mrk';
    for (const dir of ['ks', 'aws']) {
      const row = `${kk}/${dir}`;
      await t(matrix, row, 'tamper', `${dir === 'ks' ? 'keystored' : 'AWS'} creates the tamper key of row ${row} under ${under}`, async () => {
        const ec = { purpose: 'tamper', row };
        let id;
        if (dir === 'ks') {
          const r = await ks.create(kinds[under].rel, { branchKeyIdentifier: `tamper-${kk}-${dir}-${rnd()}`, encryptionContext: ec });
          if (r.status !== 201) throw new Error(`create: ${r.status} ${r.text}`);
          id = r.json.branchKeyIdentifier;
        } else {
          id = (await kinds[under].aws.createKey({ branchKeyIdentifier: `tamper-${kk}-${dir}-${rnd()}`, encryptionContext: ec })).branchKeyIdentifier;
        }
        tamperKeys[row] = { id, ec, under };
      });
    }
  }

  // -- reads -------------------------------------------------------------------------------
  const compatible = (kk, key) => (kk === 'strict' || kk === 'mrk' ? key.under === kk : true);
  for (const kk of KIND_ORDER) {
    const kind = kinds[kk];
    for (const dir of ['ks', 'aws']) {
      const row = `${kk}/${dir}`;
      h.section(`reads: ${ROWS.find((r) => r.key === row).label}`);
      const list = keys[dir].filter((k) => compatible(kk, k));
      if (list.length === 0) h.fail(`${row}: keys to read`, 'no keys were written for this row');
      for (const key of list) {
        const tag = `${key.id} (under ${key.under}${key.custom ? ', custom EC' : ''})`;
        let activeKey;
        await t(matrix, row, 'active', `${kk}: ACTIVE of ${tag}: keystored and AWS agree`, async () => {
          const k = ok200(await ks.active(kind.rel, key.id), 'keystored GET active');
          const a = awsMaterials(await kind.aws.getActiveBranchKey(key.id));
          assertEq(k.branchKeyIdentifier, key.id, 'keystored branchKeyIdentifier');
          assertEq(a.id, key.id, 'AWS branchKeyIdentifier');
          assertEq(k.branchKeyVersion, key.active, 'keystored branchKeyVersion');
          assertEq(a.version, key.active, 'AWS branchKeyVersion');
          assertEq(Buffer.from(k.branchKey, 'base64').length, 32, 'key length');
          assertEq(k.branchKey, a.key, 'branch key bytes (base64): keystored vs AWS');
          assertEq(k.encryptionContext, key.ec, 'keystored encryptionContext (MPL: prefix stripped)');
          assert(awsEcMatches(a.ec, key.ec), `AWS encryptionContext (prefix difference accounted for): ${show(a.ec)} vs ${show(key.ec)}`);
          assertEq(k.hierarchyVersion, '1', 'hierarchyVersion');
          activeKey = k.branchKey;
        });
        await t(matrix, row, 'version', `${kk}: older version ${key.versions[0]} of ${tag}: keystored and AWS agree`, async () => {
          const v = key.versions[0];
          const k = ok200(await ks.ver(kind.rel, key.id, v), 'keystored GET version');
          const a = awsMaterials(await kind.aws.getBranchKeyVersion(key.id, v));
          assertEq(k.branchKeyVersion, v, 'keystored branchKeyVersion');
          assertEq(a.version, v, 'AWS branchKeyVersion');
          assertEq(k.branchKey, a.key, 'branch key bytes (base64): keystored vs AWS');
          assert(k.branchKey !== activeKey, 'the older version differs from the ACTIVE key');
          assertEq(k.encryptionContext, key.ec, 'keystored encryptionContext');
          assert(awsEcMatches(a.ec, key.ec), `AWS encryptionContext: ${show(a.ec)} vs ${show(key.ec)}`);
          // The ACTIVE version is also readable as a version, with the ACTIVE bytes.
          const kv2 = ok200(await ks.ver(kind.rel, key.id, key.active), 'keystored GET version (active)');
          const av2 = awsMaterials(await kind.aws.getBranchKeyVersion(key.id, key.active));
          assertEq(kv2.branchKey, av2.key, 'current version bytes: keystored vs AWS');
          if (activeKey) assertEq(kv2.branchKey, activeKey, 'current version bytes = ACTIVE bytes');
        });
        await t(matrix, row, 'beacon', `${kk}: beacon of ${tag}: keystored GetBeaconKey = KMS Decrypt of the beacon item`, async () => {
          const k = ok200(await ks.beacon(kind.rel, key.id), 'keystored GET beacon');
          const item = await getItem(ddbc, TABLE, key.id, 'beacon:ACTIVE');
          assert(item, 'beacon item in the table');
          const raw = await rawDecrypt({ kmsEndpoint: kms.endpoint, kind, item, logicalName: LOGICAL });
          assertEq(k.beaconKeyIdentifier, key.id, 'beaconKeyIdentifier');
          assertEq(Buffer.from(raw, 'base64').length, 32, 'beacon key length');
          assertEq(k.beaconKey, raw, 'beacon key bytes: keystored vs @aws-sdk/client-kms Decrypt');
          assert(k.beaconKey !== activeKey, 'the beacon key differs from the branch key');
          assertEq(k.encryptionContext, key.ec, 'beacon encryptionContext');
        });
      }

      // items: only where this row's writer wrote under this kind
      if (kk === 'strict' || kk === 'mrk') {
        for (const key of keys[dir].filter((k) => k.under === kk)) {
          await t(matrix, row, 'items', `${kk}: items of ${key.id} (${dir === 'ks' ? 'keystored' : 'AWS'}-written) have exactly the MPL attributes`, async () => {
            await checkItems(ddbc, key);
            const other = keys[dir === 'ks' ? 'aws' : 'ks'].find((o) => o.under === kk && o.custom === key.custom);
            assert(other, 'a counterpart key written by the other side');
            const mine = shapes(await itemsOf(ddbc, TABLE, key.id));
            const theirs = shapes(await itemsOf(ddbc, TABLE, other.id));
            assertEq(mine, theirs, `attribute names/types by item kind: ${key.id} vs ${other.id} (written by the other side)`);
          });
        }
      }

      // tamper
      const tk = tamperKeys[row];
      if (tk) {
        await t(matrix, row, 'tamper', `${kk}: tampered custom EC value on the ACTIVE item of ${tk.id}: both refuse; restored: both read`, async () => {
          await setAttr(ddbc, TABLE, tk.id, 'branch:ACTIVE', `${EC_PREFIX}purpose`, 'tampered');
          await expectAwsRefuses(kind.aws.getActiveBranchKey(tk.id), 'AWS getActiveBranchKey of the tampered item', /InvalidCiphertext/);
          const r = await ks.active(kind.rel, tk.id);
          if (r.status !== 502) throw new Error(`keystored GET active of the tampered item: expected 502, got ${r.status} ${r.text}`);
          await setAttr(ddbc, TABLE, tk.id, 'branch:ACTIVE', `${EC_PREFIX}purpose`, tk.ec.purpose);
          const a = awsMaterials(await kind.aws.getActiveBranchKey(tk.id));
          const k = ok200(await ks.active(kind.rel, tk.id), 'keystored GET active after the restore');
          assertEq(k.branchKey, a.key, 'restored: branch key bytes keystored vs AWS');
          assertEq(k.encryptionContext, tk.ec, 'restored: keystored encryptionContext');
          assert(awsEcMatches(a.ec, tk.ec), `restored: AWS encryptionContext: ${show(a.ec)} vs ${show(tk.ec)}`);
          tk.version = k.branchKeyVersion;
          tk.activeKey = k.branchKey;
        });
        await t(matrix, row, 'tamper', `${kk}: tampered custom EC value on the version item of ${tk.id}: both refuse; restored: both read`, async () => {
          assert(tk.version, 'the ACTIVE step ran');
          const type = `branch:version:${tk.version}`;
          await setAttr(ddbc, TABLE, tk.id, type, `${EC_PREFIX}row`, 'tampered');
          await expectAwsRefuses(kind.aws.getBranchKeyVersion(tk.id, tk.version), 'AWS getBranchKeyVersion of the tampered item', /InvalidCiphertext/);
          const r = await ks.ver(kind.rel, tk.id, tk.version);
          if (r.status !== 502) throw new Error(`keystored GET version of the tampered item: expected 502, got ${r.status} ${r.text}`);
          await setAttr(ddbc, TABLE, tk.id, type, `${EC_PREFIX}row`, tk.ec.row);
          const a = awsMaterials(await kind.aws.getBranchKeyVersion(tk.id, tk.version));
          const k = ok200(await ks.ver(kind.rel, tk.id, tk.version), 'keystored GET version after the restore');
          assertEq(k.branchKey, a.key, 'restored: version bytes keystored vs AWS');
          assertEq(k.branchKey, tk.activeKey, 'restored: version bytes = ACTIVE bytes');
        });
        await t(matrix, row, 'tamper', `${kk}: tampered custom EC value on the beacon item of ${tk.id}: keystored and a plain KMS Decrypt refuse; restored: both read`, async () => {
          await setAttr(ddbc, TABLE, tk.id, 'beacon:ACTIVE', `${EC_PREFIX}purpose`, 'tampered');
          let item = await getItem(ddbc, TABLE, tk.id, 'beacon:ACTIVE');
          await expectAwsRefuses(rawDecrypt({ kmsEndpoint: kms.endpoint, kind, item, logicalName: LOGICAL }), '@aws-sdk/client-kms Decrypt of the tampered beacon', /InvalidCiphertext/);
          const r = await ks.beacon(kind.rel, tk.id);
          if (r.status !== 502) throw new Error(`keystored GET beacon of the tampered item: expected 502, got ${r.status} ${r.text}`);
          await setAttr(ddbc, TABLE, tk.id, 'beacon:ACTIVE', `${EC_PREFIX}purpose`, tk.ec.purpose);
          item = await getItem(ddbc, TABLE, tk.id, 'beacon:ACTIVE');
          const raw = await rawDecrypt({ kmsEndpoint: kms.endpoint, kind, item, logicalName: LOGICAL });
          const k = ok200(await ks.beacon(kind.rel, tk.id), 'keystored GET beacon after the restore');
          assertEq(k.beaconKey, raw, 'restored: beacon bytes keystored vs KMS Decrypt');
        });
      }
    }
  }

  // -- cross-version: the reading side versions the writer's key ---------------------------
  h.section('cross-version: the other side versions the key');
  for (const kk of ['strict', 'mrk']) {
    const kind = kinds[kk];
    for (const dir of ['ks', 'aws']) {
      const row = `${kk}/${dir}`;
      const key = keys[dir].find((k) => k.under === kk && k.custom);
      if (!key) continue;
      await t(matrix, row, 'xversion', `${kk}: ${dir === 'ks' ? 'AWS versionKey of keystored' : 'keystored VersionKey of AWS'}'s key ${key.id}; both read the new ACTIVE and the previous one`, async () => {
        const before = key.active;
        if (dir === 'ks') {
          await kind.aws.versionKey({ branchKeyIdentifier: key.id });
        } else {
          const r = await ks.version(kind.rel, key.id);
          if (r.status !== 201) throw new Error(`keystored VersionKey: expected 201, got ${r.status} ${r.text}`);
        }
        const v3 = await activeOf(key.id);
        assert(v3 !== before, 'a new ACTIVE version');
        key.versions.push(v3);
        key.active = v3;
        const k = ok200(await ks.active(kind.rel, key.id), 'keystored GET active');
        const a = awsMaterials(await kind.aws.getActiveBranchKey(key.id));
        assertEq(k.branchKeyVersion, v3, 'keystored version');
        assertEq(a.version, v3, 'AWS version');
        assertEq(k.branchKey, a.key, 'new ACTIVE bytes keystored vs AWS');
        assertEq(k.encryptionContext, key.ec, 'custom EC carried over (keystored)');
        assert(awsEcMatches(a.ec, key.ec), `custom EC carried over (AWS): ${show(a.ec)} vs ${show(key.ec)}`);
        const kp = ok200(await ks.ver(kind.rel, key.id, before), 'keystored GET previous version');
        const ap = awsMaterials(await kind.aws.getBranchKeyVersion(key.id, before));
        assertEq(kp.branchKey, ap.key, 'previous version bytes keystored vs AWS');
        assert(kp.branchKey !== k.branchKey, 'previous version differs from the new ACTIVE');
        await checkItems(ddbc, key);
      });
    }
  }

  // -- concurrent VersionKey from both sides: the optimistic lock on enc keeps one ACTIVE ---
  h.section('version race: keystored VersionKey and AWS versionKey at the same time');
  for (const kk of ['strict', 'mrk']) {
    const kind = kinds[kk];
    for (const dir of ['ks', 'aws']) {
      const row = `${kk}/${dir}`;
      const key = keys[dir].find((k) => k.under === kk && !k.custom);
      if (!key) continue;
      await t(matrix, row, 'race', `${kk}: 4 rounds of concurrent VersionKey (keystored + AWS) on ${key.id}: losers refused (409 / TransactionCanceled), table consistent`, async () => {
        const countVersions = async () => (await itemsOf(ddbc, TABLE, key.id)).filter((i) => i.type.S.startsWith('branch:version:')).length;
        const before = await countVersions();
        let wins = 0;
        const outcomes = [];
        for (let round = 0; round < 4; round++) {
          const [r, a] = await Promise.allSettled([ks.version(kind.rel, key.id), kind.aws.versionKey({ branchKeyIdentifier: key.id })]);
          const ksWon = r.status === 'fulfilled' && r.value.status === 201;
          if (!ksWon && !(r.status === 'fulfilled' && r.value.status === 409 && r.value.json?.error?.type === 'VersionRaceException'))
            throw new Error(`round ${round}: keystored VersionKey: expected 201 or 409 VersionRaceException, got ${r.status === 'fulfilled' ? `${r.value.status} ${r.value.text}` : r.reason}`);
          const awsWon = a.status === 'fulfilled';
          if (!awsWon && !/TransactionCanceled|ConditionalCheckFailed/.test(`${a.reason?.name} ${a.reason?.message}`))
            throw new Error(`round ${round}: AWS versionKey failed for another reason: ${a.reason?.name}: ${a.reason?.message}`);
          assert(ksWon || awsWon, `round ${round}: neither side versioned the key`);
          wins += (ksWon ? 1 : 0) + (awsWon ? 1 : 0);
          outcomes.push(ksWon && awsWon ? 'both' : ksWon ? 'keystored' : 'AWS');
        }
        console.log(`     rounds won by: ${outcomes.join(', ')}`);
        assertEq(await countVersions(), before + wins, 'version items = before + successful VersionKey calls');
        key.active = await activeOf(key.id);
        const k = ok200(await ks.active(kind.rel, key.id), 'keystored GET active');
        const a = awsMaterials(await kind.aws.getActiveBranchKey(key.id));
        assertEq(k.branchKeyVersion, key.active, 'keystored ACTIVE version');
        assertEq(a.version, key.active, 'AWS ACTIVE version');
        assertEq(k.branchKey, a.key, 'ACTIVE bytes keystored vs AWS');
        const kv = ok200(await ks.ver(kind.rel, key.id, key.active), 'keystored GET the ACTIVE version item');
        assertEq(kv.branchKey, k.branchKey, 'ACTIVE bytes = its version item bytes (no lost update)');
      });
    }
  }

  // -- ids and custom EC that stress paths and names ----------------------------------------
  h.section('odd branch key ids and custom encryption contexts');
  const ODD_EC = { tablename: 'not-the-table', 'kms-arn': 'not-an-arn', 'aws-crypto-ec:nested': 'n', 'sp ace': 'tab\there', 'ü': '値' };
  for (const dir of ['ks', 'aws']) {
    const row = `strict/${dir}`;
    const kind = kinds.strict;
    const cases = [
      { name: 'an id with / space + % ? # and non-ASCII, reserved-looking EC keys', id: `odd/${dir} key+%?#ü-${rnd()}`, ec: ODD_EC },
      { name: 'an empty EC key and an empty EC value (the MPL accepts both)', id: `odd-empty-${dir}-${rnd()}`, ec: { '': 'empty key', e: '' } },
    ];
    for (const c of cases) {
      await t(matrix, row, 'odd', `${dir === 'ks' ? 'keystored' : 'AWS'} creates ${c.name}; the other side reads it`, async () => {
        if (dir === 'ks') {
          const r = await ks.create(kind.rel, { branchKeyIdentifier: c.id, encryptionContext: c.ec });
          if (r.status !== 201) throw new Error(`keystored CreateKey: expected 201, got ${r.status} ${r.text}`);
          assertEq(r.json.branchKeyIdentifier, c.id, 'branchKeyIdentifier');
        } else {
          await kind.aws.createKey({ branchKeyIdentifier: c.id, encryptionContext: c.ec });
        }
        const k = ok200(await ks.active(kind.rel, c.id), 'keystored GET active');
        const a = awsMaterials(await kind.aws.getActiveBranchKey(c.id));
        assertEq(k.branchKeyIdentifier, c.id, 'keystored branchKeyIdentifier');
        assertEq(k.branchKey, a.key, 'ACTIVE bytes keystored vs AWS');
        assertEq(k.encryptionContext, c.ec, 'keystored encryptionContext');
        assert(awsEcMatches(a.ec, c.ec), `AWS encryptionContext: ${show(a.ec)} vs ${show(c.ec)}`);
        const b = ok200(await ks.beacon(kind.rel, c.id), 'keystored GET beacon');
        const item = await getItem(ddbc, TABLE, c.id, 'beacon:ACTIVE');
        assertEq(b.beaconKey, await rawDecrypt({ kmsEndpoint: kms.endpoint, kind, item, logicalName: LOGICAL }), 'beacon bytes');
        const active = await getItem(ddbc, TABLE, c.id, 'branch:ACTIVE');
        assertEq(attrTypes(active), expectedAttrTypes('branch:ACTIVE', Object.keys(c.ec)), 'ACTIVE item attributes');
      });
    }
  }

  await mismatches(env, ks, keys);
  await mutationInterop(env);
}

// ---- mutations (issue 10 item 8; README "Mutations") ----------------------------------------
// keystored moves a key made under K1 to K2 with a new custom context (paged ApplyMutation on
// DynamoDB Local); AWS's library, configured with K2 only, then reads every old version with its
// original bytes and the ACTIVE (a new version after a rotating mutation, the old ACTIVE's bytes
// with doNotVersion). It has no beacon read: the beacon item is opened with a plain KMS Decrypt
// under K2 and the terminal context.
async function mutationInterop(env) {
  const { call, ddbc, k2, wrongAws } = env;
  const ks = ksOps(call);
  const enc = encodeURIComponent;
  h.section('mutations: keystored mutates K1 -> K2, AWS reads under K2');
  const k2Kind = { type: 'kms_key_arn', arn: k2 };
  for (const doNotVersion of [false, true]) {
    await h.test(`mutation${doNotVersion ? ' with doNotVersion' : ''}: every old version and the ACTIVE read by AWS's library under K2 with the original bytes; beacon by KMS Decrypt`, async () => {
      const r = await ks.create('strict', { encryptionContext: { tenant: 'before' } });
      if (r.status !== 201) throw new Error(`create: ${r.status} ${r.text}`);
      const id = r.json.branchKeyIdentifier;
      for (let i = 0; i < 4; i++) assertEq((await ks.version('strict', id)).status, 201, 'version');
      const items = await itemsOf(ddbc, TABLE, id);
      const versions = items.filter((it) => it.type.S.startsWith('branch:version:')).map((it) => it.type.S.slice(15));
      const before = new Map();
      for (const v of versions) before.set(v, ok200(await ks.ver('strict', id, v), 'read before').branchKey);
      const oldActive = ok200(await ks.active('strict', id), 'active before');
      const oldBeacon = ok200(await ks.beacon('strict', id), 'beacon before').beaconKey;
      const strategy = { decryptEncrypt: { decrypt: 'strict', encrypt: 'wrong' } };
      const init = await call('POST', `/branch-keys/${enc(id)}/mutation`,
        { terminalKmsArn: k2, terminalEncryptionContext: { tenant: 'after' }, strategy, doNotVersion });
      if (init.status !== 201) throw new Error(`InitializeMutation: ${init.status} ${init.text}`);
      for (let page = 0; ; page++) {
        const a = await call('POST', `/branch-keys/${enc(id)}/mutation/apply`,
          { mutationToken: init.json.mutationToken, pageSize: 2, strategy });
        if (a.status !== 200) throw new Error(`ApplyMutation: ${a.status} ${a.text}`);
        if (a.json.completed) break;
        assert(page < 50, 'pages');
      }
      assertEq(await getItem(ddbc, TABLE, id, 'branch:MUTATION_COMMITMENT'), null, 'commitment left');
      assertEq(await getItem(ddbc, TABLE, id, 'branch:MUTATION_INDEX'), null, 'index left');
      for (const [v, bytes] of before) {
        const a = awsMaterials(await wrongAws.getBranchKeyVersion(id, v));
        assertEq(a.key, bytes, `AWS version ${v} bytes`);
        assert(awsEcMatches(a.ec, { tenant: 'after' }), `AWS version ${v} context ${show(a.ec)}`);
      }
      const act = awsMaterials(await wrongAws.getActiveBranchKey(id));
      const mine = ok200(await ks.active('wrong', id), 'keystored active after');
      assertEq(act.key, mine.branchKey, 'ACTIVE bytes AWS vs keystored');
      if (doNotVersion) {
        assertEq(act.version, oldActive.branchKeyVersion, 'doNotVersion: same ACTIVE version');
        assertEq(act.key, oldActive.branchKey, 'doNotVersion: the old ACTIVE\'s bytes');
      } else {
        assert(!before.has(act.version), 'rotated: a new ACTIVE version');
      }
      const beacon = await getItem(ddbc, TABLE, id, 'beacon:ACTIVE');
      assertEq(beacon['kms-arn'].S, k2, 'beacon kms-arn');
      assertEq(await rawDecrypt({ kmsEndpoint: kms.endpoint, kind: k2Kind, item: beacon, logicalName: LOGICAL }), oldBeacon, 'beacon bytes');
    });
  }
}

// Attribute shape per item kind: {"version": {...}, "ACTIVE": {...}, "beacon": {...}}.
function shapes(items) {
  const out = {};
  for (const it of items) {
    const type = it.type.S;
    const kind = type === 'branch:ACTIVE' ? 'ACTIVE' : type === 'beacon:ACTIVE' ? 'beacon' : 'version';
    const s = attrTypes(it);
    if (out[kind]) assertEq(s, out[kind], `all ${kind} items have the same attributes`);
    out[kind] = s;
  }
  return out;
}

// Exactly the MPL's items for key (reference §2): names, types and the values that are fixed.
async function checkItems(ddbc, key) {
  const items = await itemsOf(ddbc, TABLE, key.id);
  const byType = Object.fromEntries(items.map((it) => [it.type.S, it]));
  const expectTypes = ['branch:ACTIVE', 'beacon:ACTIVE', ...key.versions.map((v) => `branch:version:${v}`)].sort();
  assertEq(Object.keys(byType).sort(), expectTypes, 'item types of the key');
  const ecKeys = Object.keys(key.ec);
  for (const it of items) {
    const type = it.type.S;
    assertEq(attrTypes(it), expectedAttrTypes(type, ecKeys), `attributes of ${type}`);
    assertEq(it['branch-key-id'].S, key.id, `${type}: branch-key-id`);
    assertEq(it['hierarchy-version'].N, '1', `${type}: hierarchy-version`);
    assertEq(it['kms-arn'].S, key.writeArn, `${type}: kms-arn (the creating configuration's ARN, kept on versions)`);
    for (const [k, v] of Object.entries(key.ec)) assertEq(it[EC_PREFIX + k].S, v, `${type}: ${EC_PREFIX}${k}`);
    assert(it.enc.B.length > 0, `${type}: enc not empty`);
  }
  const active = byType['branch:ACTIVE'];
  assertEq(active.version.S, `branch:version:${key.active}`, 'ACTIVE version');
  assertEq(active['create-time'].S, byType[`branch:version:${key.active}`]['create-time'].S,
    'ACTIVE create-time = its version item create-time');
  assertEq(byType['beacon:ACTIVE']['create-time'].S, byType[`branch:version:${key.versions[0]}`]['create-time'].S,
    'beacon create-time = the first version create-time');
}

// ---- configuration mismatches (part e) ------------------------------------------------------

async function mismatches(env, ks, keys) {
  h.section('configuration mismatches behave like the MPL');
  const { kinds, wrongAws, ddbc, mrkEast } = env;
  const k1Key = keys.ks.find((k) => k.under === 'strict' && k.custom);
  const mrkKey = keys.ks.find((k) => k.under === 'mrk' && k.custom);
  const awsMrkKey = keys.aws.find((k) => k.under === 'mrk' && k.custom);
  const awsK1Key = keys.aws.find((k) => k.under === 'strict' && k.custom);
  if (!k1Key || !mrkKey || !awsMrkKey || !awsK1Key) {
    h.fail('mismatch: keys', 'the keys of the write phase are missing');
    return;
  }
  const M = (row, col, name, fn) => t(mismatch, row, col, name, fn);

  await M('k2-reads-k1', 'keystored', `keystored 'wrong' (kms_key_arn K2): GET active/version/beacon of ${k1Key.id} -> 400 KeyStoreException, no KMS call`, async () => {
    await kmsAdmin(kms.endpoint, 'POST', 'reset');
    expectError(await ks.active('wrong', k1Key.id), 400, 'KeyStoreException', 'GET active');
    expectError(await ks.ver('wrong', k1Key.id, k1Key.versions[0]), 400, 'KeyStoreException', 'GET version');
    expectError(await ks.beacon('wrong', k1Key.id), 400, 'KeyStoreException', 'GET beacon');
    assertEq((await kmsLog()).map((r) => r.operation), [], 'KMS requests (the ARN check comes first)');
  });
  await M('k2-reads-k1', 'aws', `AWS {identifier: K2}: getActiveBranchKey / getBranchKeyVersion of ${k1Key.id} refused, no KMS call`, async () => {
    await kmsAdmin(kms.endpoint, 'POST', 'reset');
    await expectAwsRefuses(wrongAws.getActiveBranchKey(k1Key.id), 'getActiveBranchKey', /compatible/);
    await expectAwsRefuses(wrongAws.getBranchKeyVersion(k1Key.id, k1Key.versions[0]), 'getBranchKeyVersion', /compatible/);
    assertEq((await kmsLog()).map((r) => r.operation), [], 'KMS requests');
  });
  await M('k1-reads-mrk', 'keystored', `keystored 'strict' (K1): GET active of the MRK key ${mrkKey.id} -> 400 KeyStoreException`, async () => {
    expectError(await ks.active('strict', mrkKey.id), 400, 'KeyStoreException', 'GET active');
    expectError(await ks.beacon('strict', awsMrkKey.id), 400, 'KeyStoreException', 'GET beacon (AWS-written MRK key)');
  });
  await M('k1-reads-mrk', 'aws', `AWS {identifier: K1}: getActiveBranchKey of the MRK key ${mrkKey.id} refused`, async () => {
    await expectAwsRefuses(kinds.strict.aws.getActiveBranchKey(mrkKey.id), 'getActiveBranchKey', /compatible/);
  });
  await M('mrk-reads-k1', 'keystored', `keystored 'mrk' (us-east-1 MRK): GET active of the K1 keys -> 400 KeyStoreException`, async () => {
    expectError(await ks.active('mrk', k1Key.id), 400, 'KeyStoreException', 'GET active (keystored-written)');
    expectError(await ks.ver('mrk', awsK1Key.id, awsK1Key.versions[0]), 400, 'KeyStoreException', 'GET version (AWS-written)');
  });
  await M('mrk-reads-k1', 'aws', `AWS {mrkIdentifier: us-west-2 MRK}: getActiveBranchKey of the K1 key refused`, async () => {
    await expectAwsRefuses(kinds.mrk.aws.getActiveBranchKey(k1Key.id), 'getActiveBranchKey', /compatible/);
  });
  await M('mrk-reads-mrk', 'keystored', `keystored 'mrk' (us-east-1) reads AWS's key made under the us-west-2 MRK; Decrypt uses the configured us-east-1 ARN`, async () => {
    await kmsAdmin(kms.endpoint, 'POST', 'reset');
    const k = ok200(await ks.active('mrk', awsMrkKey.id), 'GET active');
    assertEq(k.branchKeyVersion, awsMrkKey.active, 'version');
    const decrypts = (await kmsAdmin(kms.endpoint, 'GET', 'requests')).requests.filter((r) => r.operation === 'Decrypt');
    assert(decrypts.length > 0, 'keystored called KMS Decrypt (no cached answer expected for this relationship)');
    assertEq(decrypts.at(-1).keyId, mrkEast, 'Decrypt KeyId = the configured MRK ARN (reference §7)');
  });
  await M('mrk-reads-mrk', 'aws', `AWS {mrkIdentifier: us-west-2} reads keystored's key made under the us-east-1 MRK`, async () => {
    const a = awsMaterials(await kinds.mrk.aws.getActiveBranchKey(mrkKey.id));
    assertEq(a.version, mrkKey.active, 'version');
  });
  await M('disc-reads-all', 'keystored', `keystored 'disc' reads all four custom keys (K1 and MRK, both writers)`, async () => {
    for (const key of [k1Key, mrkKey, awsK1Key, awsMrkKey]) ok200(await ks.active('disc', key.id), `GET active ${key.id}`);
  });
  await M('disc-reads-all', 'aws', `AWS 'discovery' reads all four custom keys`, async () => {
    for (const key of [k1Key, mrkKey, awsK1Key, awsMrkKey]) await kinds.disc.aws.getActiveBranchKey(key.id);
  });
  await M('mrdisc-keyid', 'keystored', `keystored 'mrdisc': Decrypt KeyId = stored MRK ARN moved to us-east-1; stored ARN for K1`, async () => {
    await kmsAdmin(kms.endpoint, 'POST', 'reset');
    ok200(await ks.ver('mrdisc', awsMrkKey.id, awsMrkKey.versions[0]), 'GET version of the us-west-2 MRK key');
    let d = (await kmsAdmin(kms.endpoint, 'GET', 'requests')).requests.filter((r) => r.operation === 'Decrypt');
    assertEq(d.at(-1)?.keyId, mrkEast, 'Decrypt KeyId for an MRK stored as us-west-2');
    await kmsAdmin(kms.endpoint, 'POST', 'reset');
    ok200(await ks.ver('mrdisc', awsK1Key.id, awsK1Key.versions[0]), 'GET version of the K1 key');
    d = (await kmsAdmin(kms.endpoint, 'GET', 'requests')).requests.filter((r) => r.operation === 'Decrypt');
    assertEq(d.at(-1)?.keyId, env.k1, 'Decrypt KeyId for a single-region key');
  });
  await M('mrdisc-keyid', 'aws', `AWS {region: us-east-1}: Decrypt KeyId = stored MRK ARN moved to us-east-1`, async () => {
    await kmsAdmin(kms.endpoint, 'POST', 'reset');
    await kinds.mrdisc.aws.getBranchKeyVersion(awsMrkKey.id, awsMrkKey.versions[0]);
    const d = (await kmsAdmin(kms.endpoint, 'GET', 'requests')).requests.filter((r) => r.operation === 'Decrypt');
    assertEq(d.at(-1)?.keyId, mrkEast, 'Decrypt KeyId');
  });
  await M('logical-name', 'keystored', `keystored key store '${KS_PHYSICAL}' (logical name ${TABLE}, same table): GET active/beacon of AWS's ${awsK1Key.id} -> 502, KMS refused the context`, async () => {
    await kmsAdmin(kms.endpoint, 'POST', 'reset');
    const r = await env.call('GET', `/branch-keys/${encodeURIComponent(awsK1Key.id)}/active?kmsRelationship=disc`, undefined, KS_PHYSICAL);
    if (r.status !== 502) throw new Error(`GET active: expected 502, got ${r.status} ${r.text}`);
    const b = await env.call('GET', `/branch-keys/${encodeURIComponent(awsK1Key.id)}/beacon`, undefined, KS_PHYSICAL);
    if (b.status !== 502) throw new Error(`GET beacon: expected 502, got ${b.status} ${b.text}`);
    const d = (await kmsLog()).filter((x) => x.operation === 'Decrypt');
    assert(d.length >= 2 && d.every((x) => x.type === 'InvalidCiphertextException' && x.encryptionContext?.tablename === TABLE),
      `Decrypts with tablename=${TABLE} refused by KMS: ${show(d.map((x) => [x.type, x.encryptionContext?.tablename]))}`);
  });
  await M('logical-name', 'aws', `AWS with logicalKeyStoreName ${TABLE}: getActiveBranchKey of keystored's ${k1Key.id} refused by KMS`, async () => {
    await expectAwsRefuses(env.physicalAws.getActiveBranchKey(k1Key.id), 'getActiveBranchKey', /InvalidCiphertext/);
  });
  await M('create-discovery', 'keystored', `keystored CreateKey with 'disc' and 'mrdisc' -> 400 KeyStoreException, nothing written`, async () => {
    for (const rel of ['disc', 'mrdisc']) {
      const id = `never-${rel}-${rnd()}`;
      expectError(await ks.create(rel, { branchKeyIdentifier: id, encryptionContext: { a: 'b' } }), 400, 'KeyStoreException', `CreateKey ${rel}`);
      assertEq((await itemsOf(ddbc, TABLE, id)).length, 0, `items of ${id}`);
    }
  });
  await M('create-discovery', 'aws', `AWS createKey with 'discovery' and {region} refused`, async () => {
    await expectAwsRefuses(kinds.disc.aws.createKey(), 'createKey discovery', /not supported/);
    await expectAwsRefuses(kinds.mrdisc.aws.createKey(), 'createKey mr discovery', /not supported/);
  });
  await M('version-discovery', 'keystored', `keystored VersionKey with 'disc' and 'mrdisc' -> 400 KeyStoreException, ACTIVE unchanged`, async () => {
    for (const rel of ['disc', 'mrdisc']) {
      expectError(await ks.version(rel, k1Key.id), 400, 'KeyStoreException', `VersionKey ${rel}`);
    }
    const it = await getItem(ddbc, TABLE, k1Key.id, 'branch:ACTIVE');
    assertEq(it.version.S, `branch:version:${k1Key.active}`, 'ACTIVE unchanged');
  });
  await M('version-discovery', 'aws', `AWS versionKey with 'discovery' and {region} refused`, async () => {
    await expectAwsRefuses(kinds.disc.aws.versionKey({ branchKeyIdentifier: k1Key.id }), 'versionKey discovery', /not supported/);
    await expectAwsRefuses(kinds.mrdisc.aws.versionKey({ branchKeyIdentifier: k1Key.id }), 'versionKey mr discovery', /not supported/);
  });
  await M('version-k2', 'keystored', `keystored VersionKey of ${k1Key.id} with 'wrong' (K2) -> 400 KeyStoreException, ACTIVE unchanged`, async () => {
    expectError(await ks.version('wrong', k1Key.id), 400, 'KeyStoreException', 'VersionKey wrong');
    const it = await getItem(ddbc, TABLE, k1Key.id, 'branch:ACTIVE');
    assertEq(it.version.S, `branch:version:${k1Key.active}`, 'ACTIVE unchanged');
  });
  await M('version-k2', 'aws', `AWS {identifier: K2} versionKey of ${k1Key.id} refused, ACTIVE unchanged`, async () => {
    await expectAwsRefuses(wrongAws.versionKey({ branchKeyIdentifier: k1Key.id }), 'versionKey');
    const it = await getItem(ddbc, TABLE, k1Key.id, 'branch:ACTIVE');
    assertEq(it.version.S, `branch:version:${k1Key.active}`, 'ACTIVE unchanged');
  });
}

// ---- run ------------------------------------------------------------------------------------

let aborted = null;
try {
  await main();
} catch (e) {
  aborted = e;
  h.fail('interop suite', `aborted: ${e && e.stack ? e.stack : e}`);
}
if (srv) {
  const info = await srv.stop().catch((e) => ({ error: e.message }));
  await h.test('keystored stops cleanly on SIGTERM (exit 0)', async () => {
    assertEq(info.code ?? info.error, 0, `exit (${show(info)})`);
  });
}
await cleanup();
await h.test('no keystored process printed a sanitizer report', async () => {
  for (const { label, out } of allProcessOutputs) {
    const f = sanitizerFindings(out.text);
    if (f.length) throw new Error(`${label}: ${f.join(', ')}`);
  }
});

const seconds = ((Date.now() - T0) / 1000).toFixed(1);
const shape = ecShapes.size ? [...ecShapes].join(' and ') : 'not observed';
const md = `# keystored <-> AWS branch key store interop matrix

Generated by \`node tests/interop/run.mjs\` (do not edit). keystored over HTTP vs. AWS's
\`@aws-crypto/branch-keystore-node\` ${awsLibVersion()}, one DynamoDB Local table
(\`${TABLE}\`, logical name \`${LOGICAL}\` on both sides) and the KMS test peer (SigV4 checked).
Each cell: the tests filed under it (ok = all passed).

- write: create with and without custom id + encryptionContext, then version (the row's writer)
- active / version: ACTIVE and an older version read by both sides: same bytes (base64), same version, same custom EC
- beacon: keystored GetBeaconKey = the beacon item decrypted with @aws-sdk/client-kms under the MPL encryption context (AWS's JS library has no GetBeaconKey)
- items: attribute names and types exactly the MPL's, and the same as the other side wrote
- write also compares the KMS requests of keystored's CreateKey/VersionKey with AWS's (operations, key ids, NumberOfBytes, encryption contexts)
- tamper: a custom EC value changed on the ACTIVE, the version and the beacon item of a key nobody has read yet: both refuse (keystored 502; for the beacon a plain KMS Decrypt); restored: both read the same bytes
- cross-version: the reading side versions the writer's key; both read the new ACTIVE and the previous version
- version race: keystored VersionKey and AWS versionKey at the same time, 4 rounds: each loser refused (409 VersionRaceException / TransactionCanceledException), no lost update
- odd ids + EC: ids with / space + % ? # and non-ASCII, EC keys that look like item attributes, an empty EC key and value

${matrix.render()}

## Configuration mismatches (the MPL's rules, reference §7)

${mismatch.render()}

Custom encryption context returned by AWS's library: ${shape} (keystored: stripped, as the MPL).

${h.passed} passed, ${h.failed} failed in ${seconds} s.
`;
try {
  if (!process.env.KS_INTEROP_ONLY) fs.writeFileSync(path.join(REPO, 'tests', 'interop', 'MATRIX.md'), md);
} catch (e) {
  console.log(`cannot write MATRIX.md: ${e.message}`);
}
console.log(`\n${matrix.render()}\n\n${mismatch.render()}\n`);
console.log(`AWS custom EC shape: ${shape}; runtime ${seconds} s`);
if (h.failed === 0 && !aborted) for (const d of tempDirs) fs.rmSync(d, { recursive: true, force: true });
clearTimeout(deadline);
console.log(`${h.passed} passed, ${h.failed} failed`);
process.exit(h.failed ? 1 : 0);

function awsLibVersion() {
  try {
    return JSON.parse(fs.readFileSync(path.join(REPO, 'node_modules', '@aws-crypto', 'branch-keystore-node', 'package.json'), 'utf8')).version;
  } catch {
    return '5.x';
  }
}

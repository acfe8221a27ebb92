// peers.mjs - what the peer benchmarks share: the KMS test peer and DynamoDB Local on loopback,
// one KMS key, and keystored configured on them (AWS KMS relationship "kms", DynamoDB key store
// "bench" with logical name "bench-logical", one admin tenant "bench").
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import { spawn } from 'node:child_process';
import { startKmsPeer, kmsAdmin, KMS_CREDS, DDB_CREDS, REPO } from '../../tests/interop/lib/peers.mjs';
import { startDynamoDBLocal } from '../../tests/peers/dynamodb-local.mjs';

export const KEYSTORED = process.env.KEYSTORED || path.join(REPO, 'build', 'keystored');

/*
 * Starts the peers and keystored. opts: {threads, table, extraYaml}. Resolves
 * {kms, ddb, arn, ks (the child), port, token, stop()}; keystored is killed when this process
 * exits, also when a run fails half-way.
 */
export async function startBench({ threads, table, extraYaml = '' }) {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-'));
  const kms = await startKmsPeer();
  const ddb = await startDynamoDBLocal({ log: { write() {} } });
  const { arn } = await kmsAdmin(kms.endpoint, 'POST', 'keys', { region: 'us-west-2' });
  const token = 'ks_' + crypto.randomBytes(32).toString('hex');
  const hash = crypto.createHash('sha256').update(token).digest('hex');
  const cfg = path.join(tmp, 'keystored.yaml');
  fs.writeFileSync(cfg, `listen: 127.0.0.1:0
server: {threads: ${threads}}
kms_relationships:
  - name: kms
    type: aws
    region: us-west-2
    endpoint: ${kms.endpoint}
    credentials: {source: static, access_key_id: ${KMS_CREDS.accessKeyId}, secret_access_key: ${KMS_CREDS.secretAccessKey}}
    kms_configuration: {kms_key_arn: "${arn}"}
key_stores:
  - name: bench
    logical_key_store_name: bench-logical
    kms_relationship: kms
    storage: {type: dynamodb, table: ${table}, region: us-west-2, endpoint: ${ddb.endpoint},
              credentials: {source: static, access_key_id: ${DDB_CREDS.accessKeyId}, secret_access_key: ${DDB_CREDS.secretAccessKey}}}
${extraYaml}tenants:
  - {name: bench, token_sha256: "${hash}", role: admin, key_stores: [bench], kms_relationships: [kms]}
`);
  const ks = spawn(KEYSTORED, ['--config', cfg], { stdio: ['ignore', 'ignore', 'pipe'] });
  process.once('exit', () => ks.kill('SIGKILL'));
  let log = '';
  const port = await new Promise((resolve, reject) => {
    ks.stderr.on('data', (d) => {
      log += d;
      const m = /listening on [^:]+:(\d+)/.exec(log);
      if (m) resolve(Number(m[1]));
    });
    ks.once('exit', (c) => reject(new Error(`keystored exited ${c}: ${log}`)));
  });
  const stop = async () => {
    ks.kill('SIGTERM');
    await new Promise((res) => ks.once('exit', res));
    await kms.stop();
    await ddb.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
  };
  return { kms, ddb, arn, ks, port, token, stop };
}

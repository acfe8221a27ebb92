// peers.mjs - the interop suite's peers: the KMS test server (tests/peers/kms-server.mjs, run as
// a child process) and DynamoDB Local (tests/peers/dynamodb-local.mjs, as a module). Both listen
// on 127.0.0.1 only.

import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnPeer } from '../../peers/spawn.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(here, '..', '..', '..');

// The credentials the KMS peer accepts (its defaults, set explicitly so an environment override
// cannot split the peer and its clients).
export const KMS_CREDS = { accessKeyId: 'AKIDINTEROP', secretAccessKey: 'kms-peer-interop-secret' };
// DynamoDB Local does not check signatures; any static set will do.
export const DDB_CREDS = { accessKeyId: 'AKIDDDBLOCAL', secretAccessKey: 'ddb-local-secret' };

export async function startKmsPeer({ timeoutMs = 15000 } = {}) {
  const p = await spawnPeer(path.join(REPO, 'tests', 'peers', 'kms-server.mjs'), ['0',
    '--access-key-id', KMS_CREDS.accessKeyId,
    '--secret-access-key', KMS_CREDS.secretAccessKey,
  ], { name: 'kms-server', timeoutMs, listening: /kms-server listening on 127\.0\.0\.1:(\d+)/ });
  const port = Number(p.match[1]);
  return {
    endpoint: `http://127.0.0.1:${port}`, port, pid: p.pid, stderr: p.output,
    stop: async () => { await p.stop('SIGTERM'); },
  };
}

export async function kmsAdmin(endpoint, method, route, body) {
  const r = await fetch(`${endpoint}/__admin/${route}`, {
    method,
    headers: body ? { 'Content-Type': 'application/json' } : {},
    body: body ? JSON.stringify(body) : undefined,
    signal: AbortSignal.timeout(5000),
  });
  const text = await r.text();
  if (r.status !== 200) throw new Error(`kms admin ${method} ${route}: ${r.status} ${text}`);
  return JSON.parse(text);
}

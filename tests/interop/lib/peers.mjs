// peers.mjs - the interop suite's peers: the KMS test server (tests/peers/kms-server.mjs, run as
// a child process) and DynamoDB Local (tests/peers/dynamodb-local.mjs, as a module). Both listen
// on 127.0.0.1 only.

import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(here, '..', '..', '..');

// The credentials the KMS peer accepts (its defaults, set explicitly so an environment override
// cannot split the peer and its clients).
export const KMS_CREDS = { accessKeyId: 'AKIDINTEROP', secretAccessKey: 'kms-peer-interop-secret' };
// DynamoDB Local does not check signatures; any static set will do.
export const DDB_CREDS = { accessKeyId: 'AKIDDDBLOCAL', secretAccessKey: 'ddb-local-secret' };

export function startKmsPeer({ timeoutMs = 15000 } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [
      path.join(REPO, 'tests', 'peers', 'kms-server.mjs'), '0',
      '--access-key-id', KMS_CREDS.accessKeyId,
      '--secret-access-key', KMS_CREDS.secretAccessKey,
    ], { stdio: ['ignore', 'pipe', 'pipe'], cwd: REPO });
    let out = '';
    let err = '';
    let settled = false;
    const timer = setTimeout(() => {
      if (settled) return;
      settled = true;
      child.kill('SIGKILL');
      reject(new Error(`kms-server did not start in ${timeoutMs} ms: ${err}`));
    }, timeoutMs);
    const exited = new Promise((res) => child.once('exit', (code, signal) => res({ code, signal })));
    child.stderr.on('data', (d) => (err += d));
    child.stdout.on('data', (d) => {
      out += d;
      const m = /kms-server listening on 127\.0\.0\.1:(\d+)/.exec(out);
      if (m && !settled) {
        settled = true;
        clearTimeout(timer);
        const port = Number(m[1]);
        const endpoint = `http://127.0.0.1:${port}`;
        const stop = async () => {
          if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
          const t = setTimeout(() => child.kill('SIGKILL'), 3000);
          await exited;
          clearTimeout(t);
        };
        process.once('exit', () => {
          if (child.exitCode === null) child.kill('SIGKILL');
        });
        resolve({ endpoint, port, pid: child.pid, stop, stderr: () => err });
      }
    });
    child.once('exit', (code, signal) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      reject(new Error(`kms-server exited (code ${code}, signal ${signal}): ${err}`));
    });
  });
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

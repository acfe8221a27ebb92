// fault-proxy-start.mjs - starts tests/peers/fault-proxy.mjs as a child process for tests.
//
//   const p = await startFaultProxy('http://127.0.0.1:8000');
//   p.endpoint  (the data port: point keystored here), p.admin(method, path, body?) -> JSON,
//   p.stop()
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { adminClient, spawnPeer } from './spawn.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));

export async function startFaultProxy(target, { timeoutMs = 15000 } = {}) {
  const p = await spawnPeer(path.join(here, 'fault-proxy.mjs'), ['--target', target], {
    name: 'fault-proxy', timeoutMs,
    listening: /fault-proxy listening on 127\.0\.0\.1:(\d+) admin 127\.0\.0\.1:(\d+)/,
  });
  const adminBase = `http://127.0.0.1:${p.match[2]}`;
  return {
    endpoint: `http://127.0.0.1:${p.match[1]}`, port: Number(p.match[1]), adminBase,
    admin: adminClient(adminBase, 'fault-proxy'), pid: p.pid, output: p.output,
    stop: () => p.stop('SIGTERM'),
  };
}

// fault-proxy-start.mjs - starts tests/peers/fault-proxy.mjs as a child process for tests.
//
//   const p = await startFaultProxy('http://127.0.0.1:8000');
//   p.endpoint  (the data port: point keystored here), p.admin(method, path, body?) -> JSON,
//   p.stop()
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));

export function startFaultProxy(target, { timeoutMs = 15000 } = {}) {
  const child = spawn(process.execPath, [path.join(here, 'fault-proxy.mjs'), '--target', target],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const exited = new Promise((res) => child.once('exit', (code, signal) => res({ code, signal })));
  const killNow = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  process.once('exit', killNow);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      killNow();
      reject(new Error(`fault-proxy not listening after ${timeoutMs} ms:\n${out}`));
    }, timeoutMs);
    child.stderr.on('data', (d) => (out += d));
    child.stdout.on('data', (d) => {
      out += d;
      const m = /fault-proxy listening on 127\.0\.0\.1:(\d+) admin 127\.0\.0\.1:(\d+)/.exec(out);
      if (!m || child.listening) return;
      child.listening = true;
      clearTimeout(timer);
      const adminBase = `http://127.0.0.1:${m[2]}`;
      const admin = async (method, p, body) => {
        const r = await fetch(adminBase + p, {
          method,
          headers: body === undefined ? {} : { 'Content-Type': 'application/json' },
          body: body === undefined ? undefined : JSON.stringify(body),
          signal: AbortSignal.timeout(10000),
        });
        const text = await r.text();
        if (r.status !== 200) throw new Error(`fault-proxy admin ${method} ${p}: ${r.status} ${text}`);
        return JSON.parse(text);
      };
      resolve({
        endpoint: `http://127.0.0.1:${m[1]}`, port: Number(m[1]), adminBase, admin, pid: child.pid,
        output: () => out,
        stop: async () => {
          if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
          const t = setTimeout(killNow, 5000);
          const r = await exited;
          clearTimeout(t);
          return r;
        },
      });
    });
    exited.then((info) => {
      clearTimeout(timer);
      if (!child.listening) reject(new Error(`fault-proxy exited (${info.code}, ${info.signal}):\n${out}`));
    });
  });
}

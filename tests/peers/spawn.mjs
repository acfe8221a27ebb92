// spawn.mjs - starts a test peer (a Node.js script under tests/peers/) as a child process and
// waits for its "listening" line: one place for what every peer launcher needs (the output kept
// for error messages, a SIGKILL when the test process exits, a timeout, an early exit reported).
//
//   const p = await spawnPeer(script, args, { name, listening: /on 127\.0\.0\.1:(\d+)/ });
//   p.match (the listening line's match), p.pid, p.output(), p.stop(signal = 'SIGTERM')
//   adminClient(base, name)(method, path, body?) -> parsed JSON of a 200 answer
import { spawn } from 'node:child_process';

export function spawnPeer(script, args, { name, listening, timeoutMs = 15000 }) {
  const child = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let started = false;
  const exited = new Promise((res) => child.once('exit', (code, signal) => res({ code, signal })));
  const killNow = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  process.once('exit', killNow);
  // Sends signal, then SIGKILL after 5 s; resolves the exit {code, signal}.
  const stop = async (signal = 'SIGTERM') => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    const t = setTimeout(killNow, 5000);
    const r = await exited;
    clearTimeout(t);
    return r;
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      killNow();
      reject(new Error(`${name} not listening after ${timeoutMs} ms:\n${out}`));
    }, timeoutMs);
    child.stderr.on('data', (d) => (out += d));
    child.stdout.on('data', (d) => {
      out += d;
      const match = listening.exec(out);
      if (!match || started) return;
      started = true;
      clearTimeout(timer);
      resolve({ match, pid: child.pid, output: () => out, stop });
    });
    exited.then((info) => {
      clearTimeout(timer);
      if (!started) reject(new Error(`${name} exited (code ${info.code}, signal ${info.signal}):\n${out}`));
    });
  });
}

// A peer's admin endpoint: JSON in, JSON of a 200 answer out; anything else throws.
export function adminClient(base, name) {
  return async (method, p, body) => {
    const r = await fetch(base + p, {
      method,
      headers: body === undefined ? {} : { 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(10000),
    });
    const text = await r.text();
    if (r.status !== 200) throw new Error(`${name} admin ${method} ${p}: ${r.status} ${text}`);
    return JSON.parse(text);
  };
}

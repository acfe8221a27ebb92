// limits.mjs - readiness and connections cannot stall the service (issue 9 item 8; README
// "Readiness and connection limits"). SQLite key stores and local KMS, each check on its own
// server with a small `server:` section:
//  - a KMS endpoint that accepts TCP and never answers (a node:net server on loopback) as an aws
//    relationship: /readyz still answers at once, says which check is not ready and why only by
//    name; 16 concurrent /readyz do not delay an authenticated request on another key store;
//  - /readyz 200 on a healthy server, and the log line saying it became ready;
//  - header deadline: a client trickling header bytes is disconnected after
//    header_timeout_seconds although it keeps sending; a kept-alive idle connection is not; a
//    trickled second request on a kept-alive connection is cut too;
//  - max_connections_per_ip: the N+1th connection from 127.0.0.1 is refused; once the others
//    close a normal request works again.
// Time bounds are correctness bounds (seconds against an old behaviour of 30 s or forever),
// generous enough for the sanitizer build.

import net from 'node:net';
import fs from 'node:fs';
import path from 'node:path';
import { assert, assertEq } from './lib/harness.mjs';
import { makeApi, rawRequest } from './lib/http.mjs';
import { configText, newTokens, startServer, suiteConfig, tempDir } from './lib/server.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// A config of the SQLite suite (two local relationships, two key stores) with `server:` lines.
function setupWith(tag, serverLines, extraRelationships = '') {
  const dir = tempDir(tag);
  const tokens = newTokens();
  const extra = `server:\n${serverLines.map((l) => `  ${l}\n`).join('')}`;
  let text = suiteConfig(dir, tokens, extra);
  if (extraRelationships) {
    const rels = `  - name: local\n    type: local\n    key_file: ${dir}/kms.keys\n` +
      `  - name: local2\n    type: local\n    key_file: ${dir}/kms2.keys\n` + extraRelationships;
    const stores = text.slice(text.indexOf('key_stores:\n') + 'key_stores:\n'.length, text.indexOf('tenants:\n'));
    text = configText(tokens, extra, rels, stores);
  }
  const configPath = path.join(dir, 'keystored.yaml');
  fs.writeFileSync(configPath, text, { mode: 0o600 });
  return { dir, configPath, tokens };
}

// The JSON lines of a stderr text with msg in msgs.
function logLines(stderrText, msgs) {
  const out = [];
  for (const line of stderrText.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const o = JSON.parse(line);
      if (msgs.includes(o.msg)) out.push(o);
    } catch {
      /* not JSON */
    }
  }
  return out;
}

// Polls /readyz until pred(response) or timeoutMs; returns the last response.
export async function waitReadyz(api, pred = (r) => r.status === 200, timeoutMs = 10000) {
  const t0 = Date.now();
  let r;
  for (;;) {
    r = await api('GET', '/readyz');
    if (pred(r) || Date.now() - t0 > timeoutMs) return r;
    await sleep(50);
  }
}

// A TCP server that accepts and never answers; close() destroys what it accepted.
async function blackHole() {
  const sockets = new Set();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
  });
  await new Promise((res) => server.listen(0, '127.0.0.1', res));
  return {
    port: server.address().port,
    accepted: () => sockets.size,
    close: () => new Promise((res) => {
      for (const s of sockets) s.destroy();
      server.close(() => res());
    }),
  };
}

// Opens a connection; resolves {sock, closed: Promise<{ms, data}>} once connected. closed
// resolves when the server ends or resets it (ms since connect).
function connect(port) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    let data = '';
    let t0;
    const closed = new Promise((res) => {
      sock.on('data', (d) => (data += d.toString()));
      sock.on('error', () => {});
      sock.on('close', () => res({ ms: Date.now() - t0, data }));
    });
    sock.once('connect', () => {
      t0 = Date.now();
      resolve({ sock, closed, data: () => data });
    });
    sock.once('error', reject);
  });
}

const within = (p, ms) => Promise.race([p, sleep(ms).then(() => null)]);

async function runStuckKms(h) {
  const hole = await blackHole();
  const setup = setupWith('readiness-stuck', ['threads: 4', 'readiness_interval_ms: 200',
    'readiness_timeout_ms: 300'],
  `  - name: stuck\n    type: aws\n    region: us-west-2\n    endpoint: http://127.0.0.1:${hole.port}\n` +
    '    credentials:\n      source: static\n      access_key_id: AKIAIOSFODNN7EXAMPLE\n' +
    '      secret_access_key: wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n' +
    '    kms_configuration:\n' +
    '      kms_key_arn: "arn:aws:kms:us-west-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"\n');
  let srv;
  try {
    await h.test('readiness: a KMS that accepts and never answers -> /readyz 503 at once', async () => {
      srv = await startServer(['--config', setup.configPath], 'readiness (stuck KMS)');
      const api = makeApi(srv.base);
      const t0 = Date.now();
      const r = await api('GET', '/readyz');
      const ms = Date.now() - t0;
      assertEq(r.status, 503, `first /readyz (${r.text.slice(0, 300)})`);
      assert(['starting', 'unavailable'].includes(r.json.status), `status ${r.json.status}`);
      assert(ms < 250, `first /readyz took ${ms} ms (the probe must not be waited for)`);
      console.log(`     first /readyz: ${ms} ms, ${r.text}`);
    });
    if (!srv) return;
    const api = makeApi(srv.base);
    await h.test('readiness: the stuck check turns "timeout" within the deadline; the others stay ok; names only', async () => {
      const r = await waitReadyz(api, (x) => x.json && x.json.checks['kms:stuck'] === 'timeout', 5000);
      assertEq(r.status, 503, 'status');
      assertEq(r.json, {
        checks: { 'storage:default': 'ok', 'storage:other': 'ok', 'kms:local': 'ok', 'kms:local2': 'ok', 'kms:stuck': 'timeout' },
        status: 'unavailable',
      }, '/readyz body');
      assert(hole.accepted() >= 1, 'the probe never connected to the black hole');
      const changes = logLines(srv.stderr(), ['readiness check changed', 'not ready', 'ready']);
      assert(changes.some((l) => l.check === 'kms:stuck' && l.to === 'timeout' && l.level === 'warn'),
        `no log line for kms:stuck -> timeout: ${JSON.stringify(changes)}`);
      assert(changes.some((l) => l.msg === 'not ready' && l.failing.includes('kms:stuck')),
        `no "not ready" line naming kms:stuck: ${JSON.stringify(changes)}`);
    });
    await h.test('readiness: 16 concurrent /readyz do not delay an authenticated request on another key store (< 1 s each)', async () => {
      const T = { token: setup.tokens.admin };
      assertEq((await api('PUT', '/v1/keystores/default', T)).status, 200, 'PUT key store');
      const c = await api('POST', '/v1/keystores/default/branch-keys', T);
      assertEq(c.status, 201, `create a branch key (${c.text.slice(0, 200)})`);
      const timed = async (fn) => {
        const t0 = Date.now();
        const r = await fn();
        return { r, ms: Date.now() - t0 };
      };
      const readys = Array.from({ length: 16 }, () => timed(() => api('GET', '/readyz')));
      const active = timed(() => api('GET', `/v1/keystores/default/branch-keys/${c.json.branchKeyIdentifier}/active`, T));
      const [a, ...rs] = await Promise.all([active, ...readys]);
      assertEq(a.r.status, 200, `active (${a.r.text.slice(0, 200)})`);
      assert(a.ms < 1000, `the authenticated request took ${a.ms} ms`);
      for (const x of rs) {
        assertEq(x.r.status, 503, '/readyz');
        assert(x.ms < 1000, `a /readyz took ${x.ms} ms`);
      }
      console.log(`     authenticated GET ${a.ms} ms; slowest /readyz ${Math.max(...rs.map((x) => x.ms))} ms`);
    });
    await h.test('readiness: SIGTERM once the endpoint goes away -> exit 0 (the stuck probe thread is joined)', async () => {
      await hole.close();
      const t0 = Date.now();
      const info = await srv.stop();
      assertEq(info.code, 0, `exit code (signal ${info.signal})`);
      console.log(`     stopped in ${Date.now() - t0} ms`);
      srv = null;
    });
  } finally {
    await hole.close();
    if (srv) await srv.stop().catch(() => {});
  }
}

async function runHealthy(h) {
  const setup = setupWith('readiness-ok', ['readiness_interval_ms: 100', 'readiness_timeout_ms: 1000']);
  const srv = await startServer(['--config', setup.configPath], 'readiness (healthy)');
  try {
    await h.test('readiness: a healthy server -> /readyz 200 ready, every check ok; logged once', async () => {
      const api = makeApi(srv.base);
      const r = await waitReadyz(api, (x) => x.status === 200, 5000);
      assertEq(r.status, 200, `/readyz (${r.text.slice(0, 300)})`);
      assertEq(r.json, {
        checks: { 'storage:default': 'ok', 'storage:other': 'ok', 'kms:local': 'ok', 'kms:local2': 'ok' },
        status: 'ready',
      }, '/readyz body');
      await sleep(400); // several probe rounds: an unchanged state is not logged again
      const lines = logLines(srv.stderr(), ['ready', 'not ready', 'readiness check changed']);
      assertEq(lines.filter((l) => l.msg === 'ready').length, 1, `"ready" lines (${JSON.stringify(lines)})`);
      assertEq(lines.filter((l) => l.msg === 'readiness check changed').length, 4, 'check change lines');
      const lim = logLines(srv.stderr(), ['connection limit']);
      assertEq(lim.length, 1, 'one "connection limit" line');
      assert(lim[0].maxConnections > 0 && lim[0].maxConnections < lim[0].fdLimit,
        `maxConnections ${lim[0].maxConnections} not below fdLimit ${lim[0].fdLimit}`);
    });
  } finally {
    await srv.stop();
  }
}

async function runHeaderDeadline(h) {
  const setup = setupWith('header-deadline', ['header_timeout_seconds: 1', 'connection_timeout_seconds: 3']);
  const srv = await startServer(['--config', setup.configPath], 'header deadline');
  try {
    await h.test('header deadline: a client trickling header bytes every 200 ms is cut after ~1 s', async () => {
      const c = await connect(srv.port);
      let sent = 0;
      c.sock.write('GET /healthz HTTP/1.1\r\nHost: x\r\n');
      const timer = setInterval(() => {
        if (!c.sock.destroyed) {
          c.sock.write('X-Slow: a\r\n');
          sent++;
        }
      }, 200);
      const res = await within(c.closed, 6000);
      clearInterval(timer);
      c.sock.destroy();
      assert(res, 'still connected after 6 s of trickling');
      assert(res.ms >= 900 && res.ms < 3000, `closed after ${res.ms} ms`);
      assert(sent >= 4, `only ${sent} header lines sent before the close`);
      assertEq(res.data, '', 'no response');
      console.log(`     closed after ${res.ms} ms, ${sent} header lines sent`);
    });
    await h.test('header deadline: an idle kept-alive connection outlives it; a trickled second request is cut', async () => {
      const c = await connect(srv.port);
      c.sock.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
      await sleep(1600); // past the 1 s header deadline, within the 3 s idle timeout
      assert(/^HTTP\/1\.1 200/.test(c.data()), `first answer: ${c.data().slice(0, 100)}`);
      c.sock.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
      await sleep(300);
      assertEq((c.data().match(/HTTP\/1\.1 200/g) || []).length, 2, 'second answer on the same connection');
      const t0 = Date.now();
      c.sock.write('GET /healthz HTTP/1.1\r\n');
      const timer = setInterval(() => !c.sock.destroyed && c.sock.write('X-Slow: a\r\n'), 200);
      const res = await within(c.closed, 8000);
      clearInterval(timer);
      c.sock.destroy();
      assert(res, 'a trickled second request held the connection for 8 s');
      const ms = Date.now() - t0;
      assert(ms < 5000, `cut after ${ms} ms`);
      console.log(`     trickled second request cut after ${ms} ms`);
    });
    await h.test('header deadline: the server still answers; the cut was logged', async () => {
      const r = await rawRequest(srv.host, srv.port, { method: 'GET', path: '/healthz' });
      assertEq(r.status, 200, 'healthz');
      const lines = logLines(srv.stderr(), ['connections closed: headers not complete by the deadline']);
      assert(lines.length >= 1 && lines.every((l) => l.headerTimeoutMs === 1000),
        `log lines: ${JSON.stringify(lines)}`);
    });
  } finally {
    await srv.stop();
  }
}

async function runPerIp(h) {
  const N = 4;
  const setup = setupWith('per-ip', [`max_connections_per_ip: ${N}`, 'threads: 2']);
  const srv = await startServer(['--config', setup.configPath], 'per-ip limit');
  const held = [];
  try {
    await h.test(`max_connections_per_ip ${N}: the ${N + 1}th connection from 127.0.0.1 is refused`, async () => {
      for (let i = 0; i < N; i++) held.push(await connect(srv.port));
      await sleep(300); // libmicrohttpd has accepted them all
      for (const c of held) assert(!c.sock.destroyed, 'a held connection was closed');
      const extra = await connect(srv.port);
      extra.sock.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
      const res = await within(extra.closed, 3000);
      extra.sock.destroy();
      assert(res, `the ${N + 1}th connection stayed open`);
      assert(!/HTTP\/1\.1 200/.test(res.data), `the ${N + 1}th connection was answered: ${res.data.slice(0, 80)}`);
      // A held connection still gets its answer.
      held[0].sock.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
      await sleep(300);
      assert(/HTTP\/1\.1 200/.test(held[0].data()), `a held connection got ${held[0].data().slice(0, 80)}`);
    });
    await h.test('max_connections_per_ip: after the others close, a normal request works', async () => {
      for (const c of held) c.sock.destroy();
      await Promise.all(held.map((c) => c.closed));
      let r;
      for (let i = 0; i < 40; i++) {
        r = await rawRequest(srv.host, srv.port, { method: 'GET', path: '/healthz' }).catch((e) => ({ status: 0, e }));
        if (r.status === 200) break;
        await sleep(50);
      }
      assertEq(r.status, 200, 'healthz');
    });
  } finally {
    for (const c of held) c.sock.destroy();
    await srv.stop();
  }
}

export async function runLimits(h) {
  await runStuckKms(h);
  await runHealthy(h);
  await runHeaderDeadline(h);
  await runPerIp(h);
}

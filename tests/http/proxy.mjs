// proxy.mjs - keystored behind nginx (deploy/nginx.conf, deploy/README.md; issue 12 item 7).
// Real nginx (Debian's nginx-light) on loopback runs deploy/nginx.conf itself, its ports,
// certificate paths, upstream addresses and /var/ paths replaced by renderNginxConf (each
// replacement must match: a drift of the deploy file fails here). In front of it: two keystored
// instances (A and B) on one SQLite store and one local KMS key file.
//  - TLS termination with the test CA of tls.mjs; TLS 1.1 refused by nginx too;
//  - X-Request-Id: a client's id comes back and is in keystored's log and nginx's; without one,
//    nginx's $request_id (32 hex digits) is passed on, answered and logged by keystored;
//  - both instances serve; bodies up to the keyring cap reach keystored, larger ones get nginx's
//    413; responses keep Cache-Control: no-store;
//  - load through nginx (concurrent GET active + POST VersionKey, every request with its own
//    X-Request-Id), SIGKILL B mid-load: every request answers 200/201 except some of those in
//    flight when B died, each of which nginx had sent to B (its access log); the failures are at
//    most the requests in flight on B; requests started after B's exit all succeed on A;
//  - nginx's access log holds no bearer token and no Authorization header.
// Prints: requests total, failed, in flight at the kill (all, and on B), retried by nginx.

import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import net from 'node:net';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { assert, assertEq } from './lib/harness.mjs';
import { accessLines, makeSuiteSetup, startServer } from './lib/server.mjs';
import { makeCertificates, run } from './tls.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const DEPLOY_CONF = path.resolve(here, '..', '..', 'deploy', 'nginx.conf');
const NGINX = process.env.NGINX || '/usr/sbin/nginx';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const LOAD_WORKERS = 16;
const LOAD_MS = 3000;
const KILL_AT_MS = 1200;
const RACE_MS = 250;

// The deploy file with the test's values. Each [from, to, count]: from must occur count times.
export function renderNginxConf(text, { port, cert, key, upstreams, dir }) {
  const subs = [
    ['listen 443 ssl;', `listen 127.0.0.1:${port} ssl;`, 1],
    ['server 127.0.0.1:8080 ', `server 127.0.0.1:${upstreams[0]} `, 1],
    ['server 127.0.0.1:8081 ', `server 127.0.0.1:${upstreams[1]} `, 1],
    ['/etc/keystored/tls/cert.pem', cert, 1],
    ['/etc/keystored/tls/key.pem', key, 1],
    ['/var/lib/nginx/', `${dir}/nginx-temp/`, 5],
    ['/var/log/nginx/', `${dir}/`, 1],
  ];
  for (const [from, to, count] of subs) {
    const n = text.split(from).length - 1;
    if (n !== count) throw new Error(`deploy/nginx.conf: "${from}" occurs ${n} times, expected ${count}`);
    text = text.split(from).join(to);
  }
  return text;
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// Starts nginx in the foreground on conf; resolves {proc, stderr(), stop()}.
function startNginx(dir, conf) {
  const args = ['-p', `${dir}/`, '-c', conf, '-e', 'stderr',
    '-g', `daemon off; pid ${dir}/nginx.pid; error_log stderr warn;`];
  const proc = spawn(NGINX, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let text = '';
  proc.stderr.on('data', (d) => (text += d.toString()));
  const exited = new Promise((res) => proc.on('exit', (code, signal) => res({ code, signal })));
  proc.on('error', (e) => (text += `cannot start ${NGINX}: ${e.message}\n`));
  return {
    proc, exited, stderr: () => text,
    // SIGQUIT: graceful stop.
    stop: async () => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGQUIT');
      const t = setTimeout(() => proc.kill('SIGKILL'), 10000);
      const info = await exited;
      clearTimeout(t);
      return info;
    },
  };
}

// One HTTPS request through nginx: {status, headers, text, json} or {error}.
function request(agent, port, method, urlPath, { token, requestId, body } = {}) {
  return new Promise((resolve) => {
    const headers = {};
    if (token) headers.authorization = `Bearer ${token}`;
    if (requestId) headers['x-request-id'] = requestId;
    if (body !== undefined) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = Buffer.byteLength(body);
    } else if (method === 'POST' || method === 'PUT') {
      headers['content-length'] = 0;
    }
    const req = https.request({ host: '127.0.0.1', port, method, path: urlPath, headers, agent, timeout: 30000 }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        let json;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode, headers: res.headers, text, json });
      });
      res.on('error', (e) => resolve({ error: e.message }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e) => resolve({ error: e.message }));
    if (body !== undefined) req.write(body);
    req.end();
  });
}

// nginx's JSON access lines by requestId.
function nginxLog(file) {
  const byId = new Map();
  const lines = fs.existsSync(file) ? fs.readFileSync(file, 'utf8').split('\n').filter(Boolean) : [];
  for (const l of lines) {
    const o = JSON.parse(l);
    byId.set(o.requestId, o);
  }
  return { lines, byId };
}

// $upstream_addr: "addr" or "addr1, addr2" (nginx tried addr1, then addr2).
const hops = (o) => (o && o.upstream ? o.upstream.split(/\s*,\s*|\s+:\s+/).filter(Boolean) : []);

async function waitFor(pred, what, ms = 5000) {
  const t0 = Date.now();
  while (!pred()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

async function setUp(h, ctx) {
  return h.test('proxy: two keystored instances on one SQLite store, nginx (deploy/nginx.conf) in front with TLS', async () => {
    const r = await run(NGINX, ['-v']);
    assertEq(r.code, 0, `${NGINX} -v (install nginx-light)`);
    ctx.setup = makeSuiteSetup('proxy', 'server:\n  threads: 8\n  readiness_interval_ms: 200');
    const { dir } = ctx.setup;
    ctx.files = await makeCertificates(dir);
    // One after the other: the first creates the local KMS key file the second then reads.
    ctx.a = await startServer(['--config', ctx.setup.configPath], 'proxy-a');
    ctx.b = await startServer(['--config', ctx.setup.configPath], 'proxy-b');
    ctx.port = await freePort();
    // Running as root (CI), nginx's workers run as the file's `user www-data`: they must reach
    // the temp dir nginx creates for them inside this one.
    if (process.getuid && process.getuid() === 0) fs.chmodSync(dir, 0o711);
    const conf = path.join(dir, 'nginx.conf');
    fs.writeFileSync(conf, renderNginxConf(fs.readFileSync(DEPLOY_CONF, 'utf8'), {
      port: ctx.port, cert: ctx.files.cert, key: ctx.files.key, upstreams: [ctx.a.port, ctx.b.port], dir,
    }));
    fs.mkdirSync(path.join(dir, 'nginx-temp'), { recursive: true });
    const t = await run(NGINX, ['-t', '-p', `${dir}/`, '-c', conf, '-e', 'stderr', '-g', `pid ${dir}/nginx.pid;`]);
    assertEq(t.code, 0, `nginx -t:\n${t.stderr}`);
    ctx.nginx = startNginx(dir, conf);
    ctx.accessLog = path.join(dir, 'keystored-access.log');
    ctx.agent = new https.Agent({ ca: fs.readFileSync(ctx.files.ca), keepAlive: true, maxSockets: 64 });
    const t0 = Date.now();
    for (;;) {
      const res = await request(ctx.agent, ctx.port, 'GET', '/healthz');
      if (res.status === 200) break;
      if (ctx.nginx.proc.exitCode !== null || Date.now() - t0 > 15000)
        throw new Error(`nginx not answering: ${res.error || res.status}\n${ctx.nginx.stderr()}`);
      await sleep(100);
    }
    const ks = await request(ctx.agent, ctx.port, 'PUT', '/v1/keystores/default', { token: ctx.setup.tokens.admin });
    assertEq(ks.status, 200, `PUT key store through nginx (${ks.text})`);
  });
}

async function checkFront(h, ctx) {
  const T = { token: ctx.setup.tokens.admin };
  await h.test('proxy: TLS 1.2 and 1.3 through nginx (curl --cacert), TLS 1.1 refused (s_client)', async () => {
    for (const flags of [['--tlsv1.2', '--tls-max', '1.2'], ['--tlsv1.3']]) {
      const r = await run('curl', ['-sS', '--cacert', ctx.files.ca, ...flags, '-o', '/dev/null', '-w', '%{http_code}',
        `https://127.0.0.1:${ctx.port}/healthz`]);
      assertEq(r.stdout, '200', `curl ${flags.join(' ')} (${r.stderr})`);
    }
    const args = (v) => ['s_client', '-connect', `127.0.0.1:${ctx.port}`, v, '-cipher', 'DEFAULT@SECLEVEL=0'];
    const ok = await run('openssl', args('-tls1_2'));
    assertEq(ok.code, 0, `s_client -tls1_2 (${ok.stderr.slice(-200)})`);
    const old = await run('openssl', args('-tls1_1'));
    assert(old.code !== 0 && /Cipher is \(NONE\)/.test(old.stdout), `s_client -tls1_1 got through:\n${old.stdout.slice(0, 400)}`);
  });

  await h.test('proxy: X-Request-Id: the client\'s comes back and is logged by keystored and nginx; nginx makes one when absent', async () => {
    const mine = `client-${Date.now()}-rid`;
    const r1 = await request(ctx.agent, ctx.port, 'GET', '/v1/keystores/default', { ...T, requestId: mine });
    assertEq(r1.status, 200, `status (${r1.text})`);
    assertEq(r1.headers['x-request-id'], mine, 'echoed id');
    assertEq(r1.headers['cache-control'], 'no-store', 'Cache-Control passed through');
    const r2 = await request(ctx.agent, ctx.port, 'GET', '/v1/keystores/default', T);
    assertEq(r2.status, 200, 'status');
    const made = r2.headers['x-request-id'];
    assert(/^[0-9a-f]{32}$/.test(made || ''), `id for a request without one: ${made} (nginx's $request_id is 32 hex digits)`);
    const inKeystored = (id) => [ctx.a, ctx.b].some((s) => accessLines(s.stderr()).some((l) => l.requestId === id));
    await waitFor(() => inKeystored(mine) && inKeystored(made), 'both ids in a keystored access log');
    await waitFor(() => nginxLog(ctx.accessLog).byId.has(mine) && nginxLog(ctx.accessLog).byId.has(made), 'both ids in nginx\'s log');
  });

  await h.test('proxy: requests are spread over both instances', async () => {
    const ids = [];
    for (let i = 0; i < 24; i++) {
      const id = `spread-${i}-${Date.now()}`;
      ids.push(id);
      const r = await request(ctx.agent, ctx.port, 'GET', '/healthz', { requestId: id });
      assertEq(r.status, 200, 'healthz');
    }
    let log;
    await waitFor(() => {
      log = nginxLog(ctx.accessLog);
      return ids.every((id) => log.byId.has(id));
    }, 'nginx log lines');
    const used = new Set(ids.map((id) => log.byId.get(id).upstream));
    assertEq([...used].sort(), [`127.0.0.1:${ctx.a.port}`, `127.0.0.1:${ctx.b.port}`].sort(), 'upstreams used');
  });

  await h.test('proxy: a 1 MiB body reaches keystored (its JSON answer); 5 MiB gets nginx\'s 413', async () => {
    const url = '/v1/keystores/default/keyring/unwrap-batch';
    const mid = await request(ctx.agent, ctx.port, 'POST', url, { ...T, body: `{"x":"${'a'.repeat(1 << 20)}"}` });
    assert(mid.json && mid.json.error && mid.status === 400, `1 MiB: ${mid.status} ${mid.text.slice(0, 200)}`);
    const big = await request(ctx.agent, ctx.port, 'POST', url, { ...T, requestId: 'big-body-1', body: `{"x":"${'a'.repeat(5 << 20)}"}` });
    assertEq(big.status, 413, `5 MiB (${(big.text || big.error || '').slice(0, 200)})`);
    assert(!big.json, 'the 413 is nginx\'s, not keystored\'s JSON');
    assertEq(big.headers['x-request-id'], 'big-body-1', 'nginx\'s own answer names the request id');
  });
}

// Each worker: its own branch key, GET active or POST VersionKey until stop; every request with
// its own id. Returns {records, killedAt, exitedAt, outstandingAtKill, startedBeforeExit}.
async function load(ctx, ids) {
  const T = ctx.setup.tokens.admin;
  const records = [];
  const outstanding = new Set();
  const state = { stop: false, n: 0 };
  const started = new Map(); // id -> start ms
  const t0 = Date.now();
  const worker = async (w) => {
    while (!state.stop) {
      const id = `load-${w}-${state.n++}`;
      const post = state.n % 3 === 0;
      const url = `/v1/keystores/default/branch-keys/${ids[w]}${post ? '/versions' : '/active'}`;
      outstanding.add(id);
      started.set(id, Date.now() - t0);
      const r = await request(ctx.agent, ctx.port, post ? 'POST' : 'GET', url, { token: T, requestId: id });
      outstanding.delete(id);
      records.push({ id, method: post ? 'POST' : 'GET', start: started.get(id), end: Date.now() - t0,
        status: r.status, error: r.error, echoed: r.headers && r.headers['x-request-id'] });
    }
  };
  const killer = (async () => {
    await sleep(KILL_AT_MS);
    const snapshot = new Set(outstanding);
    const atSignal = snapshot.size;
    const killedAt = Date.now() - t0;
    ctx.b.proc.kill('SIGKILL');
    await ctx.b.exited;
    const exitedAt = Date.now() - t0;
    // Requests started between the signal and the moment the exit was seen may have reached B
    // too: they count as in flight at the kill.
    for (const id of outstanding) snapshot.add(id);
    return { killedAt, exitedAt, outstandingAtKill: snapshot, atSignal };
  })();
  const stopper = sleep(LOAD_MS).then(() => (state.stop = true));
  await Promise.all([...ids.map((_, w) => worker(w)), killer, stopper]);
  return { records, ...(await killer) };
}

async function checkKill(h, ctx) {
  const T = { token: ctx.setup.tokens.admin };
  let result;
  const ids = [];
  const ran = await h.test(`proxy: load through nginx (${LOAD_WORKERS} clients, GET active + POST VersionKey), SIGKILL one instance at ${KILL_AT_MS} ms`, async () => {
    for (let w = 0; w < LOAD_WORKERS; w++) {
      const c = await request(ctx.agent, ctx.port, 'POST', '/v1/keystores/default/branch-keys', T);
      assertEq(c.status, 201, `create (${c.text})`);
      ids.push(c.json.branchKeyIdentifier);
    }
    result = await load(ctx, ids);
    assert(result.records.length >= 200, `only ${result.records.length} requests`);
  });
  if (!ran) return;

  await h.test('proxy: only requests in flight on the killed instance failed; afterwards all went to the survivor', async () => {
    const bAddr = `127.0.0.1:${ctx.b.port}`;
    const aAddr = `127.0.0.1:${ctx.a.port}`;
    const { records, outstandingAtKill, exitedAt, killedAt } = result;
    let log;
    await waitFor(() => {
      log = nginxLog(ctx.accessLog);
      return records.every((r) => log.byId.has(r.id));
    }, 'every load request in nginx\'s log', 10000);
    const failed = records.filter((r) => r.error || (r.status !== 200 && r.status !== 201));
    const onB = [...outstandingAtKill].filter((id) => hops(log.byId.get(id))[0] === bAddr);
    const retried = records.filter((r) => hops(log.byId.get(r.id)).length > 1);
    // nginx learns that a kept-alive connection to B is dead only when it processes its close: a
    // request it takes in that instant may still be written to B. Such a request, started just
    // after the exit was seen and sent to B, is in flight on B too (counted apart: "raced").
    const raced = records.filter((r) => !outstandingAtKill.has(r.id) && r.start >= killedAt && r.start <= exitedAt + RACE_MS &&
      hops(log.byId.get(r.id))[0] === bAddr);
    const after = records.filter((r) => r.start > exitedAt + RACE_MS);
    const served = (addr) => records.filter((r) => hops(log.byId.get(r.id)).slice(-1)[0] === addr).length;
    console.log(`     requests ${records.length} (GET ${records.filter((r) => r.method === 'GET').length}, POST ${records.filter((r) => r.method === 'POST').length}); ` +
      `failed ${failed.length} (${failed.map((r) => `${r.method} ${r.status || r.error}`).join(', ') || '-'}); ` +
      `in flight at the kill ${outstandingAtKill.size} (${result.atSignal} at the signal, the rest started before the exit was seen), ` +
      `of them sent to the killed instance ${onB.length}; sent to it within ${RACE_MS} ms after the exit ${raced.length}; ` +
      `retried by nginx ${retried.length}; kill at ${killedAt} ms, exit seen at ${exitedAt} ms; ` +
      `served by A ${served(aAddr)}, by B ${served(bAddr)}; started after the exit ${after.length}`);
    for (const r of failed) {
      assert(outstandingAtKill.has(r.id) || raced.includes(r),
        `${r.id} (${r.method}) failed (${r.status || r.error}) but was not in flight at the kill`);
      assertEq(hops(log.byId.get(r.id))[0], bAddr, `${r.id}: nginx sent it to the killed instance`);
      // A GET that reached the dead instance is retried on the survivor; only POSTs are not.
      assertEq(r.method, 'POST', `${r.id} failed (${r.status || r.error})`);
    }
    assert(failed.length <= onB.length + raced.length,
      `${failed.length} failed > ${onB.length + raced.length} in flight on the killed instance`);
    assert(after.length > 50, `only ${after.length} requests after the kill`);
    for (const r of after) {
      assert(r.status === 200 || r.status === 201, `${r.id} after the kill: ${r.status || r.error}`);
      assertEq(hops(log.byId.get(r.id)).slice(-1)[0], aAddr, `${r.id} after the kill answered by`);
    }
    // keystored's answers echo the id; nginx's own 502s carry it too (deploy/nginx.conf).
    for (const r of records.filter((x) => !x.error)) assertEq(r.echoed, r.id, `X-Request-Id of a ${r.status}`);
    assert(served(bAddr) > 0, 'the killed instance served nothing before the kill');
    // Every POST that succeeded made a version: readable through the survivor.
    const posts = records.filter((r) => r.method === 'POST' && r.status === 201).length;
    let versions = 0;
    for (const id of ids) {
      const v = await request(ctx.agent, ctx.port, 'GET', `/v1/keystores/default/branch-keys/${id}/versions?limit=1000`, T);
      assertEq(v.status, 200, `list versions (${v.text.slice(0, 200)})`);
      const list = v.json.versions || v.json.items || [];
      versions += list.length - 1; // minus the version of CreateKey
    }
    assert(versions >= posts, `${versions} new versions stored < ${posts} VersionKey answered 201`);
  });
}

export async function runProxy(h) {
  const ctx = {};
  try {
    if (await setUp(h, ctx)) {
      await checkFront(h, ctx);
      await checkKill(h, ctx);
    }
  } finally {
    if (ctx.agent) ctx.agent.destroy();
    const t0 = Date.now();
    const nginx = ctx.nginx ? await ctx.nginx.stop() : null;
    const t1 = Date.now();
    const a = ctx.a ? await ctx.a.stop().catch((e) => ({ code: e.message })) : null;
    console.log(`     stopped nginx in ${t1 - t0} ms, keystored A in ${Date.now() - t1} ms`);
    if (ctx.b && ctx.b.proc.exitCode === null && ctx.b.proc.signalCode === null) await ctx.b.stop().catch(() => {});
    if (ctx.nginx) {
      await h.test('proxy: survivor exits 0 on SIGTERM, nginx on SIGQUIT; nginx\'s log holds no token', async () => {
        assert(a && a.code === 0, `keystored A exit ${a && a.code}`);
        assert(nginx && nginx.code === 0, `nginx exit ${JSON.stringify(nginx)}\n${ctx.nginx && ctx.nginx.stderr().slice(-1500)}`);
        const text = fs.existsSync(ctx.accessLog) ? fs.readFileSync(ctx.accessLog, 'utf8') : '';
        assert(text.length > 0, 'empty nginx access log');
        for (const tok of Object.values(ctx.setup.tokens)) assert(!text.includes(tok), 'a token in nginx\'s access log');
        assert(!/bearer|authorization/i.test(text), 'Authorization in nginx\'s access log');
      });
    }
  }
}

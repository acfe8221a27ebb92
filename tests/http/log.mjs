// log.mjs - the log cannot be forged, and the URI and header caps answer in JSON (issue 9 items 5
// and 7; README "Logs" and "Request ids"):
//   - hostile methods, paths (raw and percent-encoded quotes, control characters, invalid UTF-8)
//     and X-Request-Id values (quotes, backslashes, control characters, 129 and 10,000 bytes,
//     non-ASCII, invalid UTF-8) are sent byte for byte on their own connections;
//   - every answer carries an X-Request-Id of the accepted form, the JSON error body is valid
//     UTF-8 and names the same id; an accepted id is echoed, any other is replaced by a UUID;
//   - the request target at keystored's caps: 8192 bytes passes, 8193 is JSON 414; a header
//     section over 16384 bytes is JSON 431 (both with an access line);
//   - beyond libmicrohttpd's own buffer (which keystored raises above its caps) libmicrohttpd
//     still answers itself, and the log says so;
//   - a 5xx (a stored item edited behind the server's back) names the failure and the request
//     id; its log line carries the same id;
//   - then EVERY stderr line must be valid UTF-8 and parse as one JSON object with only known
//     members, no "forged" member anywhere, and one access line per answer with the status sent.

import net from 'node:net';
import { assert, assertEq } from './lib/harness.mjs';
import { makeApi } from './lib/http.mjs';
import { SqliteBackend } from './lib/backends.mjs';
import { startServer } from './lib/server.mjs';

const ID_RE = /^[A-Za-z0-9._:-]{1,128}$/;
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
// Every member a log line may have (README "Logs"); anything else was injected.
const KNOWN_MEMBERS = new Set([
  'time', 'level', 'event', 'msg', 'method', 'route', 'uri', 'status', 'latencyMs', 'tenant',
  'requestId', 'aborted', 'type', 'originalType', 'message', 'detail', 'uriBytes', 'termination',
  'host', 'port', 'version', 'truncated',
  // readiness (server/readiness.c) and connection limits (server/connections.c)
  'check', 'from', 'to', 'reason', 'timeoutMs', 'error', 'failing', 'maxConnections', 'configured',
  'fdLimit', 'fdReserve', 'note', 'connections', 'headerTimeoutMs',
]);
const LEVELS = new Set(['debug', 'info', 'warn', 'error']);

// One request, exactly these bytes, on its own connection. Resolves {status, headers, body
// (Buffer)} or {status: null} when the server closed without an HTTP answer.
function sendBytes(host, port, bytes, timeoutMs = 20000) {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host, port });
    const chunks = [];
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    const done = () => {
      clearTimeout(timer);
      const buf = Buffer.concat(chunks);
      const sep = buf.indexOf('\r\n\r\n');
      if (sep < 0) return resolve({ status: null, headers: {}, body: buf });
      const head = buf.subarray(0, sep).toString('latin1').split('\r\n');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(head[0]);
      const headers = {};
      for (const l of head.slice(1)) {
        const i = l.indexOf(':');
        if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
      }
      resolve({ status: m ? Number(m[1]) : null, headers, body: buf.subarray(sep + 4) });
    };
    sock.on('connect', () => sock.write(bytes));
    sock.on('data', (d) => chunks.push(d));
    sock.on('error', () => done()); // a reset after a refusal: what was read decides
    sock.on('close', done);
  });
}

function request({ method = 'GET', target = '/healthz', headers = [] }) {
  const parts = [Buffer.from(method, 'latin1'), Buffer.from(' '), Buffer.isBuffer(target) ? target : Buffer.from(target, 'latin1'),
    Buffer.from(' HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n')];
  for (const [k, v] of headers) parts.push(Buffer.from(`${k}: `), Buffer.isBuffer(v) ? v : Buffer.from(v, 'latin1'), Buffer.from('\r\n'));
  parts.push(Buffer.from('\r\n'));
  return Buffer.concat(parts);
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

// The hostile requests: [what, bytes, {sentId, accepted}] - sentId: the X-Request-Id sent (raw
// bytes as latin1), accepted: whether it must be echoed.
function hostileRequests(token) {
  const auth = ['Authorization', `Bearer ${token}`];
  const forged = 'X","status":200,"forged":"1';
  const list = [
    ['method with quotes (the issue\'s forged access-log field)', { method: forged }],
    ['method with a backslash and a quote', { method: 'G\\"ET' }],
    ['method with control characters', { method: 'GE\x01T\x1b[31m' }],
    ['method with invalid UTF-8', { method: 'GET\xff\xfe' }],
    ['path with raw quotes', { target: `/${forged}` }],
    ['path with percent-encoded quotes', { target: '/v1/keystores/%22%2C%22forged%22%3A%221', headers: [auth] }],
    ['path with percent-encoded control characters', { target: '/v1/keystores/a%0a%0d%01%1b%7f', headers: [auth] }],
    ['path with raw control characters', { target: '/x\x01\x7f\x1b[2J' }],
    ['path with raw invalid UTF-8', { target: Buffer.from([0x2f, 0x76, 0x31, 0x2f, 0x6b, 0x65, 0x79, 0x73, 0x74, 0x6f, 0x72, 0x65, 0x73, 0x2f, 0xff, 0xc3, 0x28, 0xe2, 0x82]), headers: [auth] }],
    ['path with percent-encoded invalid UTF-8 (a cut sequence last)', { target: '/v1/keystores/%ff%c3%28%e2%82', headers: [auth] }],
    ['path with percent-encoded non-ASCII', { target: '/v1/keystores/%C3%A9t%C3%A9%F0%9F%94%91', headers: [auth] }],
    ['query with quotes and a newline', { target: '/v1/keystores/default?%22forged%22=1%0a', headers: [auth] }],
  ];
  const ids = [
    ['X-Request-Id with quotes', forged, false],
    ['X-Request-Id with a backslash', 'a\\"b', false],
    ['X-Request-Id with a control character', 'abc\x01def', false],
    ['X-Request-Id with a tab', 'abc\tdef', false],
    ['X-Request-Id non-ASCII (UTF-8)', Buffer.from('rid-é-🔑', 'utf8').toString('latin1'), false],
    ['X-Request-Id with invalid UTF-8', 'rid-\xff\xfe', false],
    ['X-Request-Id of 129 bytes', 'a'.repeat(129), false],
    ['X-Request-Id of 10,000 bytes', 'b'.repeat(10000), false],
    ['X-Request-Id of 128 bytes (accepted)', 'c'.repeat(127) + 'Z', true],
    ['X-Request-Id of the accepted alphabet', 'Ab.9_z:Y-0', true],
  ];
  for (const [what, id, accepted] of ids)
    list.push([what, { headers: [['X-Request-Id', id]], sentId: id, accepted }]);
  return list;
}

function checkAnswer(r, spec) {
  assert(r.status !== null, 'no HTTP answer');
  const rid = r.headers['x-request-id'];
  assert(rid && ID_RE.test(rid), `X-Request-Id ${JSON.stringify(rid)} is not of the accepted form`);
  if (spec.sentId !== undefined) {
    if (spec.accepted) assertEq(rid, spec.sentId, 'accepted id echoed');
    else assert(UUID_RE.test(rid), `refused id not replaced by a UUID: ${rid}`);
  }
  if (r.status >= 400) {
    let text;
    try {
      text = utf8.decode(r.body);
    } catch {
      throw new Error(`error body is not valid UTF-8: ${r.body.toString('hex').slice(0, 200)}`);
    }
    const j = JSON.parse(text);
    assertEq(Object.keys(j), ['error'], 'error body members');
    assertEq(Object.keys(j.error), ['type', 'message', 'requestId'], 'error members');
    assertEq(j.error.requestId, rid, 'error.requestId = X-Request-Id');
  }
  return rid;
}

// Parses every line; returns the objects. Throws naming the first bad line.
export function parseEveryLine(bytes) {
  let text;
  try {
    text = utf8.decode(bytes);
  } catch {
    throw new Error('the log is not valid UTF-8');
  }
  const lines = text.split('\n');
  assertEq(lines.pop(), '', 'the log ends with a newline');
  return lines.map((line, i) => {
    let o;
    try {
      o = JSON.parse(line);
    } catch (e) {
      throw new Error(`line ${i + 1} is not JSON (${e.message}): ${line.slice(0, 300)}`);
    }
    assert(o && typeof o === 'object' && !Array.isArray(o), `line ${i + 1} is not an object`);
    for (const [k, v] of Object.entries(o)) {
      assert(KNOWN_MEMBERS.has(k), `line ${i + 1} has an unknown member ${JSON.stringify(k)}: ${line.slice(0, 300)}`);
      assert(v === null || ['string', 'number', 'boolean'].includes(typeof v), `line ${i + 1}: ${k} is ${typeof v}`);
    }
    assert(typeof o.time === 'string' && LEVELS.has(o.level) && typeof o.event === 'string',
      `line ${i + 1} lacks time/level/event: ${line.slice(0, 300)}`);
    return o;
  });
}

async function capCases(h, srv, answers) {
  const cap = (what, target, headers, status, type) => h.test(what, async () => {
    const r = await sendBytes(srv.host, srv.port, request({ target, headers }));
    assertEq(r.status, status, 'status');
    const rid = checkAnswer(r, {});
    assertEq(/json/.test(r.headers['content-type'] || ''), true, 'JSON answer');
    if (type) assertEq(JSON.parse(r.body.toString('utf8')).error.type, type, 'error.type');
    answers.push({ rid, status });
  });
  const path = (n) => `/${'a'.repeat(n - 1)}`;
  await cap('URI of 8192 bytes (the cap) -> 404 from keystored, not refused', path(8192), [], 404, 'NotFoundException');
  await cap('URI of 8193 bytes -> JSON 414 UriTooLongException with X-Request-Id', path(8193), [], 414, 'UriTooLongException');
  await cap('URI of 8193 bytes counting the query -> JSON 414', `/healthz?${'q'.repeat(8193 - 9)}`, [], 414, 'UriTooLongException');
  await cap('headers of 20,000 bytes -> JSON 431 RequestHeaderFieldsTooLargeException', '/healthz',
    [['X-Filler', 'f'.repeat(20000)]], 431, 'RequestHeaderFieldsTooLargeException');
  await cap('headers of 15,000 bytes -> 200 (under the cap)', '/healthz', [['X-Filler', 'f'.repeat(15000)]], 200, null);
}

// A 502: the ACTIVE item's kms-arn edited under the running server. Returns {rid, status}.
async function failingRequest(h, srv, setup, backend) {
  let answer = null;
  await h.test('log: a 5xx carries the request id in its body, its log line the same id', async () => {
    const api = makeApi(srv.base);
    const T = { token: setup.tokens.admin };
    assertEq((await api('PUT', '/v1/keystores/default', T)).status, 200, 'create the key store');
    const c = await api('POST', '/v1/keystores/default/branch-keys', { ...T, body: { branchKeyIdentifier: 'log-5xx', encryptionContext: { department: 'x' } } });
    assertEq(c.status, 201, `create (${c.text.slice(0, 200)})`);
    await backend.store(setup).setAttribute('log-5xx', 'branch:ACTIVE', 'kms-arn', { S: 'not-an-arn' });
    const r = await api('GET', '/v1/keystores/default/branch-keys/log-5xx/active', T);
    assertEq(r.status, 502, `status (${r.text.slice(0, 200)})`);
    assertEq(r.json.error.type, 'BranchKeyCiphertextException', 'error.type');
    assertEq(r.json.error.requestId, r.headers['x-request-id'], 'error.requestId');
    answer = { rid: r.headers['x-request-id'], status: 502 };
  });
  return answer;
}

export async function runLog(h) {
  const backend = new SqliteBackend();
  const setup = backend.makeSetup('log');
  const srv = await startServer(['--config', setup.configPath], 'log');
  const answers = []; // {rid, status}
  let stopped = false;
  let failed = null; // the 5xx answer
  try {
    for (const [what, spec] of hostileRequests(setup.tokens.admin)) {
      await h.test(`log: ${what} -> an answer with a clean request id`, async () => {
        const r = await sendBytes(srv.host, srv.port, request(spec));
        answers.push({ rid: checkAnswer(r, spec), status: r.status });
      });
    }
    await capCases(h, srv, answers);
    failed = await failingRequest(h, srv, setup, backend);
    await h.test('beyond libmicrohttpd\'s buffer: a 300 KB URI and 300 KB of headers are refused by it, and logged', async () => {
      const before = srv.stderr().length;
      const r1 = await sendBytes(srv.host, srv.port, request({ target: `/${'u'.repeat(300000)}` }));
      const r2 = await sendBytes(srv.host, srv.port, request({ headers: [['X-Filler', 'h'.repeat(300000)]] }));
      assert(r1.status === null || r1.status === 414, `URI: status ${r1.status}`);
      assert(r2.status === null || r2.status === 431, `headers: status ${r2.status}`);
      const deadline = Date.now() + 5000;
      let since = '';
      while (Date.now() < deadline) {
        since = srv.stderr().slice(before);
        if (/"http_library".*414/.test(since) && /"refused"/.test(since)) break;
        await new Promise((res) => setTimeout(res, 50));
      }
      assert(/"http_library".*414/.test(since), `no log line for libmicrohttpd's 414:\n${since.slice(0, 2000)}`);
      assert(/"refused".*"uriBytes":\d+/.test(since), `no "refused" line for the oversized headers:\n${since.slice(0, 2000)}`);
    });
  } finally {
    const info = await srv.stop();
    stopped = info.code === 0;
  }
  await h.test('log: SIGTERM -> exit 0', async () => assert(stopped, 'exit code'));
  await h.test('log: EVERY stderr line is valid UTF-8 and one JSON object with only known members', async () => {
    const objs = parseEveryLine(srv.stderrBytes());
    assert(objs.length > answers.length, `only ${objs.length} lines`);
    assert(!srv.stderr().includes('"forged":"1"'), 'a forged member text appears unescaped');
  });
  await h.test('log: one access line per answer, with the status sent and the (clean) request id', async () => {
    const objs = parseEveryLine(srv.stderrBytes());
    const access = objs.filter((o) => o.event === 'access');
    for (const a of answers) {
      const ls = access.filter((o) => o.requestId === a.rid);
      assertEq(ls.length, 1, `access lines for ${a.rid}`);
      assertEq(ls[0].status, a.status, `status of ${a.rid}`);
    }
    for (const o of access) {
      assert(ID_RE.test(o.requestId), `requestId ${o.requestId}`);
      assert(typeof o.method === 'string' && typeof o.status === 'number', `access line ${JSON.stringify(o)}`);
    }
    const forgedMethod = access.find((o) => o.method === 'X","status":200,"forged":"1');
    assert(forgedMethod, 'the hostile method is logged verbatim inside its string');
    assert(forgedMethod.status !== 200, 'the forged status won');
    if (failed) {
      const f = objs.filter((o) => o.event === 'request_failed' && o.requestId === failed.rid);
      assertEq(f.length, 1, `request_failed lines for ${failed.rid}`);
      assertEq([f[0].status, f[0].type, f[0].level], [502, 'BranchKeyCiphertextException', 'warn'], 'request_failed line');
      assert(typeof f[0].message === 'string' && f[0].message.length > 0, 'the log line has the message');
    }
    const long = access.find((o) => o.status === 414);
    assert(long && long.truncated === true && long.uri.length <= 512, `the 414 line keeps a cut URI: ${JSON.stringify(long).slice(0, 200)}`);
  });
}

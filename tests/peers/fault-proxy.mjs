#!/usr/bin/env node
// fault-proxy.mjs - a fault-injecting HTTP proxy between keystored and an awsJson peer (DynamoDB
// Local, or tests/peers/kms-server.mjs) on loopback, for the fault tests (tests/http/faults.mjs).
//
// Every request on the data port is forwarded unchanged (method, path, headers including Host,
// so a SigV4 signature still verifies at the peer; exact body) to --target, and the answer is
// passed back, unless a fault rule fires. Rules and counters are set over a separate admin port,
// so that the data port can be taken down (connections refused) and brought back.
//
// Usage: node tests/peers/fault-proxy.mjs --target http://127.0.0.1:PORT [--port N]
//          [--admin-port N]
// Prints "fault-proxy listening on 127.0.0.1:PORT admin 127.0.0.1:APORT". Listens on 127.0.0.1
// only. Stops on SIGTERM / SIGINT. Node built-ins only.
//
// Admin routes (JSON; see tests/peers/README.md):
//   GET    /__admin/health            {ok: true, up}
//   GET    /__admin/counts            {total, forwarded, faulted, operations: {Op: n}}
//   GET    /__admin/requests          {requests: [{operation, fault, status}]} (last 1000)
//   POST   /__admin/faults            a rule, a list, or {rules: [...]}: appended
//   GET    /__admin/faults, DELETE /__admin/faults
//   POST   /__admin/down              closes the data port: connections are refused
//   POST   /__admin/up                listens again on the same port
//   POST   /__admin/reset             clears counters, requests and faults (and comes up)
//
// A rule: {fault, operation?, after?, count?, ...}: skips the first `after` matching requests
// (default 0), then applies to the next `count` (default: all) whose X-Amz-Target operation is
// `operation` (default any). The first rule that fires wins. Kinds:
//   throttle     400 with the service's throttling type: DynamoDB (X-Amz-Target
//                DynamoDB_20120810.*) com.amazonaws.dynamodb.v20120810#
//                ProvisionedThroughputExceededException, else ThrottlingException (`type` overrides)
//   internal     500 InternalServerError (DynamoDB's shape id) / KMSInternalException
//   unavailable  503 ServiceUnavailable
//   error        `status`, `type`, `message` as given
//   garbage      200 with a body that is not JSON (`body` overrides; default a truncated object)
//   delay        waits `ms`, then forwards (if the client is still connected)
//   drop         destroys the client connection without an answer
//   forward-drop forwards the request (the peer acts on it), then destroys the client connection
//                without passing the answer back: an outcome the client cannot know
//   forward-error forwards the request, then answers `status` (default 500) / `type` instead of
//                the peer's answer

import http from 'node:http';
import crypto from 'node:crypto';

function parseArgs(argv) {
  const o = { port: 0, adminPort: 0, target: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--port' && i + 1 < argv.length) o.port = Number(argv[++i]);
    else if (a === '--admin-port' && i + 1 < argv.length) o.adminPort = Number(argv[++i]);
    else if (a === '--target' && i + 1 < argv.length) o.target = argv[++i];
    else {
      process.stderr.write(`fault-proxy: unknown argument ${a}\n`);
      process.exit(2);
    }
  }
  let url;
  try {
    url = new URL(o.target);
  } catch {
    process.stderr.write('fault-proxy: --target http://HOST:PORT is required\n');
    process.exit(2);
  }
  if (url.protocol !== 'http:') {
    process.stderr.write('fault-proxy: --target must be http://\n');
    process.exit(2);
  }
  for (const p of [o.port, o.adminPort]) {
    if (!Number.isInteger(p) || p < 0 || p > 65535) {
      process.stderr.write('fault-proxy: ports must be 0..65535\n');
      process.exit(2);
    }
  }
  o.targetHost = url.hostname;
  o.targetPort = Number(url.port || 80);
  return o;
}

const opts = parseArgs(process.argv.slice(2));
const KINDS = ['throttle', 'internal', 'unavailable', 'error', 'garbage', 'delay', 'drop',
  'forward-drop', 'forward-error'];
const LOG_MAX = 1000;
const BODY_MAX = 16 << 20;

let faults = [];
let counts = { total: 0, forwarded: 0, faulted: 0, operations: {} };
let requests = [];

class AdminError extends Error {}

function normalizeFault(r) {
  if (!r || !KINDS.includes(r.fault)) throw new AdminError(`fault must be one of ${KINDS}`);
  const f = {
    fault: r.fault,
    operation: r.operation || null,
    after: r.after === undefined ? 0 : Number(r.after),
    count: r.count === undefined || r.count === null ? Infinity : Number(r.count),
    ms: Number(r.ms || 0),
    status: Number(r.status || 0),
    type: r.type || '',
    message: r.message || '',
    body: r.body,
    seen: 0,
    fired: 0,
  };
  if (!(f.count >= 0) || !(f.after >= 0) || !(f.ms >= 0)) throw new AdminError('count, after and ms must be >= 0');
  if (f.fault === 'error' && (!f.status || !f.type)) throw new AdminError('an error fault needs status and type');
  if (f.body !== undefined && typeof f.body !== 'string') throw new AdminError('body must be a string');
  return f;
}

// The first rule that applies to operation and fires, consumed.
function takeFault(operation) {
  for (const f of faults) {
    if (f.operation && f.operation !== operation) continue;
    if (f.seen < f.after) {
      f.seen += 1;
      continue;
    }
    if (f.fired >= f.count) continue;
    f.fired += 1;
    return f;
  }
  return null;
}

function isDynamo(target) {
  return target.startsWith('DynamoDB_');
}

function errorAnswer(fault, target) {
  const ddb = isDynamo(target);
  const ns = 'com.amazonaws.dynamodb.v20120810#';
  switch (fault.fault) {
    case 'throttle':
      return [400, fault.type || (ddb ? `${ns}ProvisionedThroughputExceededException` : 'ThrottlingException'),
        'The level of configured provisioned throughput for the table was exceeded (fault-proxy)'];
    case 'internal':
      return [500, ddb ? `${ns}InternalServerError` : 'KMSInternalException', 'internal error (fault-proxy)'];
    case 'unavailable':
      return [503, ddb ? `${ns}ServiceUnavailable` : 'ServiceUnavailable', 'service unavailable (fault-proxy)'];
    default:
      return [fault.status || 500, fault.type || (ddb ? `${ns}InternalServerError` : 'KMSInternalException'),
        fault.message || 'injected (fault-proxy)'];
  }
}

function sendJson(res, status, type, obj, raw) {
  const text = raw !== undefined ? raw : JSON.stringify(obj);
  res.writeHead(status, {
    'Content-Type': type,
    'Content-Length': Buffer.byteLength(text),
    'x-amzn-RequestId': crypto.randomUUID(),
  });
  res.end(text);
}

function contentType(req) {
  return (req.headers['content-type'] || 'application/x-amz-json-1.0').split(';')[0];
}

// Forwards req (with body) to the target; resolves {status, headers, body} or rejects.
function forward(req, body) {
  return new Promise((resolve, reject) => {
    const headers = { ...req.headers };
    delete headers.connection;
    delete headers['keep-alive'];
    const up = http.request({
      host: opts.targetHost, port: opts.targetPort, method: req.method, path: req.url, headers,
      agent: upstreamAgent,
    }, (r) => {
      const chunks = [];
      r.on('data', (c) => chunks.push(c));
      r.on('end', () => resolve({ status: r.statusCode, headers: r.headers, body: Buffer.concat(chunks) }));
      r.on('error', reject);
    });
    up.on('error', reject);
    up.end(body);
  });
}

const upstreamAgent = new http.Agent({ keepAlive: true, maxSockets: 64 });

function passBack(res, r) {
  const headers = { ...r.headers };
  delete headers.connection;
  delete headers['keep-alive'];
  delete headers['transfer-encoding'];
  headers['content-length'] = r.body.length;
  res.writeHead(r.status, headers);
  res.end(r.body);
}

async function handleData(req, res, body) {
  const target = req.headers['x-amz-target'] || '';
  const dot = target.indexOf('.');
  const operation = dot >= 0 ? target.slice(dot + 1) : target;
  counts.total += 1;
  counts.operations[operation] = (counts.operations[operation] || 0) + 1;
  const entry = { operation, fault: null, status: 0 };
  requests.push(entry);
  if (requests.length > LOG_MAX) requests.shift();

  const fault = takeFault(operation);
  if (fault) {
    counts.faulted += 1;
    entry.fault = fault.fault;
    switch (fault.fault) {
      case 'throttle':
      case 'internal':
      case 'unavailable':
      case 'error': {
        const [status, type, message] = errorAnswer(fault, target);
        entry.status = status;
        return sendJson(res, status, contentType(req), { __type: type, message });
      }
      case 'garbage':
        entry.status = 200;
        return sendJson(res, 200, contentType(req), null,
          fault.body !== undefined ? fault.body : '{"Item": {"branch-key-id": {"S": "trunc');
      case 'drop':
        req.socket.destroy();
        return undefined;
      case 'delay':
        await new Promise((resolve) => setTimeout(resolve, fault.ms));
        if (req.socket.destroyed) {
          entry.status = -1; // the client gave up: never forwarded
          return undefined;
        }
        break;
      case 'forward-drop':
        await forward(req, body).catch(() => null);
        req.socket.destroy();
        return undefined;
      case 'forward-error': {
        await forward(req, body).catch(() => null);
        const [status, type, message] = errorAnswer(fault, target);
        entry.status = status;
        return sendJson(res, status, contentType(req), { __type: type, message });
      }
      default:
        break;
    }
  }
  let r;
  try {
    r = await forward(req, body);
  } catch (e) {
    entry.status = -2;
    req.socket.destroy(); // the target is gone: the client sees a broken connection
    return undefined;
  }
  counts.forwarded += 1;
  entry.status = r.status;
  return passBack(res, r);
}

function adminBody(body) {
  if (!body.length) return {};
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    throw new AdminError('body is not JSON');
  }
}

// ---- the data port: down and up ---------------------------------------------------------------

let dataPort = opts.port;
let dataServer = null;
const dataSockets = new Set();

function readBody(req, done) {
  const chunks = [];
  let size = 0;
  req.on('data', (c) => {
    size += c.length;
    if (size > BODY_MAX) {
      req.socket.destroy();
      return;
    }
    chunks.push(c);
  });
  req.on('end', () => done(Buffer.concat(chunks)));
}

function listenData() {
  return new Promise((resolve, reject) => {
    const s = http.createServer((req, res) => readBody(req, (body) => {
      handleData(req, res, body).catch((e) => {
        process.stderr.write(`fault-proxy: ${e.stack || e}\n`);
        req.socket.destroy();
      });
    }));
    s.keepAliveTimeout = 30000;
    s.on('connection', (sock) => {
      dataSockets.add(sock);
      sock.on('close', () => dataSockets.delete(sock));
    });
    s.once('error', reject);
    s.listen(dataPort, '127.0.0.1', () => {
      dataPort = s.address().port;
      dataServer = s;
      resolve();
    });
  });
}

async function down() {
  if (!dataServer) return;
  const s = dataServer;
  dataServer = null;
  const closed = new Promise((resolve) => s.close(resolve));
  for (const sock of dataSockets) sock.destroy();
  await closed;
}

async function up() {
  if (dataServer) return;
  await listenData();
}

async function handleAdmin(req, res, body) {
  const ok = (obj) => sendJson(res, 200, 'application/json', obj);
  const route = `${req.method} ${req.url.split('?')[0]}`;
  try {
    switch (route) {
      case 'GET /__admin/health':
        return ok({ ok: true, up: !!dataServer, port: dataPort });
      case 'GET /__admin/counts':
        return ok(counts);
      case 'GET /__admin/requests':
        return ok({ requests });
      case 'GET /__admin/faults':
        return ok({ faults });
      case 'POST /__admin/faults': {
        const b = adminBody(body);
        const rules = (Array.isArray(b) ? b : Array.isArray(b.rules) ? b.rules : [b]).map(normalizeFault);
        faults.push(...rules);
        return ok({ faults });
      }
      case 'DELETE /__admin/faults':
        faults = [];
        return ok({ faults });
      case 'POST /__admin/down':
        await down();
        return ok({ up: false });
      case 'POST /__admin/up':
        await up();
        return ok({ up: true, port: dataPort });
      case 'POST /__admin/reset':
        faults = [];
        counts = { total: 0, forwarded: 0, faulted: 0, operations: {} };
        requests = [];
        await up();
        return ok({ reset: true });
      default:
        return sendJson(res, 404, 'application/json', { error: `no admin route ${route}` });
    }
  } catch (e) {
    if (e instanceof AdminError) return sendJson(res, 400, 'application/json', { error: e.message });
    throw e;
  }
}

const adminServer = http.createServer((req, res) => readBody(req, (body) => {
  handleAdmin(req, res, body).catch((e) => {
    process.stderr.write(`fault-proxy admin: ${e.stack || e}\n`);
    if (!res.headersSent) sendJson(res, 500, 'application/json', { error: 'proxy bug' });
  });
}));

await listenData();
adminServer.listen(opts.adminPort, '127.0.0.1', () => {
  process.stdout.write(`fault-proxy listening on 127.0.0.1:${dataPort} admin 127.0.0.1:${adminServer.address().port}\n`);
});

function stop() {
  if (dataServer) dataServer.close();
  for (const sock of dataSockets) sock.destroy();
  adminServer.close();
  adminServer.closeAllConnections();
  upstreamAgent.destroy();
  process.exit(0);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

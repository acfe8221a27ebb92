// http.mjs - two HTTP clients for the suite.
//  - rawRequest: one request on its own connection (node:net), byte for byte what the case says:
//    a body on a GET, a Content-Length without the body, chunked uploads, any header.
//  - api(): fetch-based JSON calls for the programmatic tests (keep-alive, concurrency).
// Both record every response (request id, method, status) in a recorder, so that the access
// log can be checked against what the clients saw.

import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { noteSecrets } from './secrets.mjs';

export const REQUEST_TIMEOUT_MS = 30000;

let counter = 0;
export function newRequestId(tag = 't') {
  counter++;
  return `${tag}-${counter}-${randomBytes(4).toString('hex')}`;
}

export class Recorder {
  constructor() {
    this.responses = []; // {requestId, method, status}
    this.secrets = new Set(); // key material seen in responses (must never be logged)
  }
  record(method, res) {
    const rid = res.headers['x-request-id'];
    this.responses.push({ requestId: rid, method, status: res.status });
    if (res.json && typeof res.json === 'object') {
      for (const f of ['branchKey', 'beaconKey', 'dataKey'])
        if (typeof res.json[f] === 'string' && res.json[f]) this.secrets.add(res.json[f]);
    }
  }
}

function parseResponse(buf, ended = true) {
  const sep = buf.indexOf('\r\n\r\n');
  if (sep < 0) return null;
  const head = buf.subarray(0, sep).toString('latin1').split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(head[0]);
  if (!m) throw new Error(`bad status line: ${head[0]}`);
  const headers = {};
  for (const line of head.slice(1)) {
    const i = line.indexOf(':');
    if (i < 0) continue;
    const k = line.slice(0, i).trim().toLowerCase();
    const v = line.slice(i + 1).trim();
    headers[k] = headers[k] !== undefined ? `${headers[k]}, ${v}` : v;
  }
  let body = buf.subarray(sep + 4);
  if (headers['content-length'] !== undefined) {
    const n = Number(headers['content-length']);
    if (body.length < n) return null; // incomplete
    body = body.subarray(0, n);
  } else if (/chunked/i.test(headers['transfer-encoding'] || '')) {
    const parts = [];
    let p = 0;
    for (;;) {
      const e = body.indexOf('\r\n', p);
      if (e < 0) return null;
      const size = parseInt(body.subarray(p, e).toString('latin1'), 16);
      if (Number.isNaN(size)) throw new Error('bad chunk size');
      if (size === 0) break;
      if (body.length < e + 2 + size) return null;
      parts.push(body.subarray(e + 2, e + 2 + size));
      p = e + 2 + size + 2;
    }
    body = Buffer.concat(parts);
  } else if (!ended) {
    return null; // delimited by the end of the connection
  }
  return { status: Number(m[1]), headers, body };
}

/*
 * One request on a fresh connection (Connection: close). opts: {method, path, headers (object;
 * an undefined value removes a default), body (Buffer|string|undefined), chunked (send body
 * chunked), omitBody (send the headers only: for a Content-Length the server must refuse before
 * reading)}. Resolves {status, headers (lower-case names), text, json (parsed or undefined)}.
 */
export function rawRequest(host, port, opts) {
  return new Promise((resolve, reject) => {
    const body = opts.body === undefined ? null : Buffer.isBuffer(opts.body) ? opts.body : Buffer.from(opts.body);
    const headers = { Host: `${host}:${port}`, Connection: 'close', ...opts.headers };
    const lower = Object.fromEntries(Object.keys(headers).map((k) => [k.toLowerCase(), k]));
    if (body && !opts.chunked && !('content-length' in lower)) headers['Content-Length'] = String(body.length);
    if (body && opts.chunked) headers['Transfer-Encoding'] = 'chunked';
    let head = `${opts.method} ${opts.path} HTTP/1.1\r\n`;
    for (const [k, v] of Object.entries(headers)) if (v !== undefined && v !== null) head += `${k}: ${v}\r\n`;
    head += '\r\n';

    const sock = net.connect({ host, port });
    let buf = Buffer.alloc(0);
    let done = false;
    const finish = (err) => {
      if (done) return;
      let res = null;
      try {
        res = parseResponse(buf);
      } catch (e) {
        err = err || e;
      }
      if (!res) {
        done = true;
        clearTimeout(timer);
        sock.destroy();
        reject(err || new Error(`connection closed before a complete response (${buf.length} bytes read)`));
        return;
      }
      done = true;
      clearTimeout(timer);
      sock.destroy();
      const text = res.body.toString('utf8');
      let json;
      if (/json/.test(res.headers['content-type'] || '')) {
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
      }
      noteSecrets(json); // the secret grep (lib/secrets.mjs)
      resolve({ status: res.status, headers: res.headers, text, json, bytes: res.body });
    };
    const timer = setTimeout(() => {
      if (done) return;
      done = true;
      sock.destroy();
      reject(new Error(`no response within ${REQUEST_TIMEOUT_MS} ms`));
    }, REQUEST_TIMEOUT_MS);
    sock.on('connect', () => {
      sock.write(head);
      if (body && !opts.omitBody) {
        if (opts.chunked) {
          const CH = 8192;
          for (let i = 0; i < body.length; i += CH) {
            const c = body.subarray(i, i + CH);
            sock.write(`${c.length.toString(16)}\r\n`);
            sock.write(c);
            sock.write('\r\n');
          }
          sock.write('0\r\n\r\n');
        } else {
          sock.write(body);
        }
      }
    });
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      // A complete response is enough: the server may keep reading a refused body.
      try {
        if (parseResponse(buf, false)) finish();
      } catch (e) {
        finish(e);
      }
    });
    // The server may close (or reset) while we still write a body it refused; what was read
    // so far decides.
    sock.on('error', (e) => finish(e));
    sock.on('end', () => finish());
    sock.on('close', () => finish());
  });
}

/*
 * fetch-based JSON client bound to a server: api(method, path, {token, body, headers}) resolves
 * {status, headers (lower-case), text, json}. Records every response when a recorder is given.
 */
export function makeApi(base, recorder) {
  return async function api(method, p, opts = {}) {
    const headers = { 'X-Request-Id': newRequestId('p'), ...(opts.headers || {}) };
    if (opts.token) headers.Authorization = `Bearer ${opts.token}`;
    let body;
    if (opts.body !== undefined) {
      headers['Content-Type'] = 'application/json';
      body = typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body);
    }
    const r = await fetch(base + p, { method, headers, body, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
    const text = await r.text();
    const h = {};
    r.headers.forEach((v, k) => (h[k] = v));
    let json;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    const res = { status: r.status, headers: h, text, json };
    noteSecrets(json); // the secret grep (lib/secrets.mjs)
    if (recorder) recorder.record(method, res);
    return res;
  };
}

// GET /metrics's Prometheus text -> Map("name{labels}" -> number); HELP and TYPE lines skipped.
export function parseMetrics(text) {
  const m = new Map();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    m.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return m;
}

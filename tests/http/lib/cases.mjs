// cases.mjs - runs the declarative cases of tests/http/cases/*.json.
//
// A case file is {"description"?, "steps": [step...]} (or just the list of steps). A step:
//   {"name": "...",
//    "request": {"method", "path", "headers"?: {name: value|null}, "body"?: <JSON value>,
//                "rawBody"?: "text", "repeat"?: n (rawBody repeated n times), "chunked"?: bool,
//                "rawBodyLatin1"?: bool (each char of rawBody, U+0000..U+00FF, is one byte: a
//                body that is not UTF-8),
//                "omitBody"?: bool (send headers only), "token"?: "admin" (default) | "reader" |
//                "otheradmin" | "none" | "bogus"},
//    "expect": {"status": n, "headers"?: {name: matcher}, "absentHeaders"?: [name...],
//               "json"?: {"dotted.path": matcher}, "text"?: matcher},
//    "save"?: {"var": "dotted.path" | "header:<name>"}}
// "${var}" in paths, headers, bodies and expected values is replaced by a saved variable (or a
// built-in one: dir, readerToken, and the backend's (lib/backends.mjs caseVars): storageKind,
// keyStoreNameDefault / keyStoreNameOther, tableArnDefaultRe / tableArnOtherRe and kmsArnRe (regular
// expressions, for "matches")). A string that is exactly "${var}" takes the variable's value as is.
// A matcher is a literal (deep equality) or an object of operators: matches (regex), type,
// absent, present, base64Bytes (n), startsWith, contains, notContains, not, oneOf, keys, uuid.
// "body": {...} sends JSON with Content-Type: application/json unless headers name another
// (null: none). Every request gets a fresh X-Request-Id unless headers name one (null: none).

import { rawRequest, newRequestId } from './http.mjs';
import { deepEqual, show, base64Bytes } from './harness.mjs';

const OPERATORS = new Set([
  'matches', 'type', 'absent', 'present', 'base64Bytes', 'startsWith', 'contains', 'notContains',
  'not', 'oneOf', 'keys', 'uuid',
]);
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

export function substitute(value, vars) {
  if (typeof value === 'string') {
    const whole = /^\$\{([A-Za-z0-9_]+)\}$/.exec(value);
    if (whole) {
      if (!(whole[1] in vars)) throw new Error(`unknown variable \${${whole[1]}}`);
      return vars[whole[1]];
    }
    return value.replace(/\$\{([A-Za-z0-9_]+)\}/g, (_, name) => {
      if (!(name in vars)) throw new Error(`unknown variable \${${name}}`);
      const v = vars[name];
      return typeof v === 'string' ? v : JSON.stringify(v);
    });
  }
  if (Array.isArray(value)) return value.map((v) => substitute(v, vars));
  if (value && typeof value === 'object')
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [substitute(k, vars), substitute(v, vars)]));
  return value;
}

// {found, value} of a dotted path ("error.type", "items.0.id"); "" is the root.
export function getPath(obj, dotted) {
  if (dotted === '' || dotted === '$') return { found: obj !== undefined, value: obj };
  let cur = obj;
  for (const part of dotted.split('.')) {
    if (cur === null || typeof cur !== 'object' || !Object.prototype.hasOwnProperty.call(cur, part))
      return { found: false, value: undefined };
    cur = cur[part];
  }
  return { found: true, value: cur };
}

function typeOf(v) {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v;
}

function isOperatorObject(m) {
  return m && typeof m === 'object' && !Array.isArray(m) && Object.keys(m).length > 0 &&
    Object.keys(m).every((k) => OPERATORS.has(k));
}

// Throws when (found, value) does not satisfy matcher m; what names the thing checked.
export function checkMatcher(what, found, value, m) {
  if (!isOperatorObject(m)) {
    if (!found) throw new Error(`${what}: missing (expected ${show(m)})`);
    if (!deepEqual(value, m)) throw new Error(`${what}: expected ${show(m)}, got ${show(value)}`);
    return;
  }
  if (m.absent) {
    if (found) throw new Error(`${what}: expected absent, got ${show(value)}`);
    return;
  }
  if (!found) throw new Error(`${what}: missing (expected ${show(m)})`);
  for (const [op, arg] of Object.entries(m)) {
    const fail = () => {
      throw new Error(`${what}: expected ${op} ${show(arg)}, got ${show(value)}`);
    };
    switch (op) {
      case 'present':
        break;
      case 'type':
        if (typeOf(value) !== arg) fail();
        break;
      case 'matches':
        if (typeof value !== 'string' || !new RegExp(arg).test(value)) fail();
        break;
      case 'startsWith':
        if (typeof value !== 'string' || !value.startsWith(arg)) fail();
        break;
      case 'contains':
        if (typeof value !== 'string' || !value.includes(arg)) fail();
        break;
      case 'notContains':
        if (typeof value !== 'string' || (arg !== '' && value.includes(arg))) fail();
        break;
      case 'not':
        if (deepEqual(value, arg)) fail();
        break;
      case 'oneOf':
        if (!arg.some((a) => deepEqual(a, value))) fail();
        break;
      case 'keys':
        if (typeOf(value) !== 'object' || !deepEqual(Object.keys(value).sort(), [...arg].sort())) fail();
        break;
      case 'uuid':
        if (typeof value !== 'string' || !UUID_RE.test(value)) fail();
        break;
      case 'base64Bytes': {
        const b = base64Bytes(value);
        if (!b || b.length !== arg) fail();
        break;
      }
      default:
        throw new Error(`unknown matcher ${op}`);
    }
  }
}

/*
 * Runs every step of one case file as one test each. ctx: {harness, host, port, tokens, vars
 * (built-ins), recorder}. Steps after a failed one still run (their variables may be missing;
 * they then fail with "unknown variable").
 */
export async function runCaseFile(file, doc, ctx) {
  const steps = Array.isArray(doc) ? doc : doc.steps;
  const vars = { ...ctx.vars };
  if (!Array.isArray(steps)) {
    ctx.harness.fail(file, 'no steps');
    return;
  }
  for (const [i, step] of steps.entries()) {
    const name = `${file} #${i + 1} ${step.name || ''}`.trim();
    await ctx.harness.test(name, async () => {
      const res = await sendStep(step.request, vars, ctx);
      const exp = substitute(step.expect || {}, vars);
      checkResponse(res, exp);
      checkInvariants(res, substitute(step.request.path, vars));
      for (const [v, where] of Object.entries(step.save || {})) {
        if (where.startsWith('header:')) {
          const h = res.headers[where.slice(7).toLowerCase()];
          if (h === undefined) throw new Error(`save ${v}: no header ${where.slice(7)}`);
          vars[v] = h;
        } else {
          const r = getPath(res.json, where);
          if (!r.found) throw new Error(`save ${v}: no ${where} in ${show(res.json)}`);
          vars[v] = r.value;
        }
      }
    });
  }
}

async function sendStep(request, vars, ctx) {
  if (!request || !request.method || !request.path) throw new Error('step without request.method/path');
  const rq = substitute(request, vars);
  const headers = {};
  const given = Object.fromEntries(Object.keys(rq.headers || {}).map((k) => [k.toLowerCase(), k]));
  if (!('x-request-id' in given)) headers['X-Request-Id'] = newRequestId('c');
  if (!('authorization' in given)) {
    const token = rq.token || 'admin';
    if (token === 'bogus') headers.Authorization = 'Bearer ks_bogus_0123456789abcdef';
    else if (token !== 'none') {
      if (!ctx.tokens[token]) throw new Error(`unknown token ${token}`);
      headers.Authorization = `Bearer ${ctx.tokens[token]}`;
    }
  }
  let body;
  if (rq.body !== undefined) {
    body = JSON.stringify(rq.body);
    if (!('content-type' in given)) headers['Content-Type'] = 'application/json';
  } else if (rq.rawBody !== undefined) {
    body = rq.rawBody.repeat(rq.repeat || 1);
    if (rq.rawBodyLatin1) body = Buffer.from(body, 'latin1');
  }
  for (const [k, v] of Object.entries(rq.headers || {})) if (v !== null) headers[k] = v;
  const res = await rawRequest(ctx.host, ctx.port, {
    method: rq.method, path: rq.path, headers, body, chunked: rq.chunked, omitBody: rq.omitBody,
  });
  if (ctx.recorder) ctx.recorder.record(rq.method, res);
  return res;
}

export function checkResponse(res, exp) {
  if (exp.status !== undefined) {
    try {
      checkMatcher('status', true, res.status, exp.status);
    } catch (e) {
      throw new Error(`${e.message}; body: ${res.text.slice(0, 500)}`);
    }
  }
  for (const [h, m] of Object.entries(exp.headers || {})) {
    const v = res.headers[h.toLowerCase()];
    checkMatcher(`header ${h}`, v !== undefined, v, m);
  }
  for (const h of exp.absentHeaders || [])
    if (res.headers[h.toLowerCase()] !== undefined)
      throw new Error(`header ${h}: expected absent, got ${show(res.headers[h.toLowerCase()])}`);
  if (exp.json) {
    if (res.json === undefined)
      throw new Error(`expected a JSON body, got ${show(res.headers['content-type'])}: ${res.text.slice(0, 300)}`);
    for (const [p, m] of Object.entries(exp.json)) {
      const r = getPath(res.json, p);
      checkMatcher(`json ${p}`, r.found, r.value, m);
    }
  }
  if (exp.text !== undefined) checkMatcher('body', true, res.text, exp.text);
}

// What every response must satisfy (docs/architecture.md section 3), whatever the step expects: an
// X-Request-Id; no-store on /v1/keystores; errors as {"error": {type, message, requestId}} with
// the header's request id; a JSON body is well-formed UTF-8 (RFC 8259 section 8.1), whatever the
// request carried.
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

export function checkInvariants(res, reqPath) {
  if (res.bytes && /json/.test(res.headers['content-type'] || '')) {
    try {
      strictUtf8.decode(res.bytes);
    } catch {
      throw new Error(`invariant: JSON body is not valid UTF-8: ${res.bytes.toString('hex').slice(0, 300)}`);
    }
  }
  const rid = res.headers['x-request-id'];
  if (!rid || !/^[A-Za-z0-9._:-]{1,128}$/.test(rid)) throw new Error(`invariant: X-Request-Id ${show(rid)}`);
  if (reqPath.startsWith('/v1/keystores') && res.headers['cache-control'] !== 'no-store')
    throw new Error(`invariant: Cache-Control ${show(res.headers['cache-control'])} on ${reqPath}`);
  if (res.status >= 400) {
    const e = res.json && res.json.error;
    if (!e || Object.keys(res.json).length !== 1 || typeof e.type !== 'string' || typeof e.message !== 'string' ||
        !deepEqual(Object.keys(e).sort(), ['message', 'requestId', 'type']))
      throw new Error(`invariant: error body ${res.text.slice(0, 300)}`);
    if (e.requestId !== rid) throw new Error(`invariant: error.requestId ${e.requestId} != X-Request-Id ${rid}`);
  }
}

// secrets.mjs - the secret grep of issue 12 (docs/architecture.md section 12): every key and token
// the HTTP suites saw is searched for in every log and audit file they produced, as raw bytes,
// base64 (standard and URL-safe) and hex (lower and upper case). Zero hits is the only pass.
//
// What is registered: every token newToken() made (lib/server.mjs) and every branchKey,
// beaconKey and dataKey value in a JSON response of makeApi() or rawRequest() (lib/http.mjs),
// at any depth (unwrap-batch results included). What is searched: the stderr of every keystored
// the suites started (its service log) and every file under the suites' temp dirs whose name
// says it is a log (*.log, *.log.N, audit*).

import fs from 'node:fs';
import path from 'node:path';

export const seenTokens = new Set(); // token texts
export const seenKeys = new Set(); // base64 texts of key bytes

const KEY_MEMBERS = new Set(['branchKey', 'beaconKey', 'dataKey']);

export function noteToken(token) {
  seenTokens.add(token);
}

// Registers the key members of a parsed JSON response, at any depth.
export function noteSecrets(json, depth = 0) {
  if (!json || typeof json !== 'object' || depth > 8) return;
  for (const [k, v] of Object.entries(json)) {
    if (KEY_MEMBERS.has(k) && typeof v === 'string' && v) seenKeys.add(v);
    else if (v && typeof v === 'object') noteSecrets(v, depth + 1);
  }
}

// Every form a secret could take in a file: [label, Buffer].
export function secretForms(kind, value) {
  const raw = kind === 'key' ? Buffer.from(value, 'base64') : Buffer.from(value, 'utf8');
  const hex = raw.toString('hex');
  const forms = [
    ['raw', raw], ['base64', Buffer.from(raw.toString('base64'))],
    ['base64url', Buffer.from(raw.toString('base64url'))],
    ['hex', Buffer.from(hex)], ['HEX', Buffer.from(hex.toUpperCase())],
  ];
  // A key's base64 without its padding is what a truncated or re-encoded copy would show.
  return forms.filter(([, b], i, all) => b.length >= 8 &&
    all.findIndex(([, o]) => o.equals(b)) === i);
}

// Hits of every registered secret (or the given ones) in one buffer: [{kind, form}].
export function findSecrets(buf, secrets = allSecrets()) {
  const hits = [];
  for (const s of secrets)
    for (const [form, b] of s.forms)
      if (buf.indexOf(b) >= 0) hits.push({ kind: s.kind, form, sample: `${s.value.slice(0, 6)}...` });
  return hits;
}

export function allSecrets() {
  return [...[...seenTokens].map((v) => ({ kind: 'token', value: v })),
    ...[...seenKeys].map((v) => ({ kind: 'key', value: v }))]
    .map((s) => ({ ...s, forms: secretForms(s.kind, s.value) }));
}

const LOG_NAME = /(\.log(\.\d+)?$)|(^audit)/;

// The local KMS master keys in the suites' key files ("<uuid> <base64>" lines): key material too.
function noteKeyFiles(dirs) {
  const walk = (d, depth) => {
    let entries;
    try {
      entries = fs.readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = path.join(d, e.name);
      if (e.isDirectory() && depth < 2) walk(p, depth + 1);
      else if (e.isFile() && /\.keys$/.test(e.name))
        for (const m of fs.readFileSync(p, 'utf8').matchAll(/^[0-9a-f-]{36} ([A-Za-z0-9+/=]{40,})$/gm))
          seenKeys.add(m[1]);
    }
  };
  for (const d of dirs) walk(d, 0);
}

// The log and audit files under dirs (two levels deep).
export function logFiles(dirs) {
  const out = [];
  const walk = (d, depth) => {
    let entries;
    try {
      entries = fs.readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = path.join(d, e.name);
      if (e.isDirectory() && depth < 2) walk(p, depth + 1);
      else if (e.isFile() && LOG_NAME.test(e.name)) out.push(p);
    }
  };
  for (const d of dirs) walk(d, 0);
  return out;
}

// One test: the stderr of every process and every log file, against every secret seen.
export async function runSecretScan(h, outputs, dirs) {
  await h.test('secret grep: no log or audit file holds a key or token the suites saw (raw, base64, hex)', async () => {
    noteKeyFiles(dirs);
    const secrets = allSecrets();
    if (seenKeys.size < 10 || seenTokens.size < 4)
      throw new Error(`only ${seenKeys.size} keys and ${seenTokens.size} tokens registered`);
    const files = logFiles(dirs);
    const problems = [];
    for (const { label, out } of outputs) {
      const buf = out.raw && out.raw.length ? Buffer.concat(out.raw) : Buffer.from(out.text || '');
      for (const hit of findSecrets(buf, secrets)) problems.push(`stderr of ${label}: ${JSON.stringify(hit)}`);
    }
    for (const f of files)
      for (const hit of findSecrets(fs.readFileSync(f), secrets)) problems.push(`${f}: ${JSON.stringify(hit)}`);
    if (problems.length)
      throw new Error(`${problems.length} hits, e.g.\n${problems.slice(0, 10).join('\n')}`);
    console.log(`     ${secrets.length} secrets x ${outputs.length} process logs + ${files.length} files: 0 hits`);
  });
}

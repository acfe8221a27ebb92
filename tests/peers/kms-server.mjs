#!/usr/bin/env node
// kms-server.mjs - a KMS-compatible test server for keystored's AWS KMS backend (kms/aws_kms.c).
//
// Speaks awsJson 1.1 (docs/reference/aws-apis.md section 1) with X-Amz-Target TrentService.<Op> for
// GenerateDataKeyWithoutPlaintext, GenerateDataKey, Encrypt, Decrypt, ReEncrypt and DescribeKey
// (section 2). Every request's SigV4 signature is checked with AWS's own signer
// (@smithy/signature-v4 + @aws-crypto/sha256-js): the request is rebuilt from what arrived (the
// headers the client says it signed, the exact body bytes), signed again with the known
// credentials at the request's X-Amz-Date, and the Authorization headers compared.
//
// Keys are AES-256-GCM master keys made here. Single-region key ARNs are
// arn:aws:kms:<region>:<account>:key/<uuid>; multi-region keys are
// arn:aws:kms:<region>:<account>:key/mrk-<32 hex> and their replicas in other regions share the
// key material, so an MRK ARN of any region decrypts the ciphertexts of its related keys, as
// real MRKs do. The encryption context is bound as AAD in a canonical form (entries sorted by
// key), so Decrypt must get the exact same map.
//
// Ciphertext blob: 0x01 | u8 n | key id (n bytes, "<uuid>" or "mrk-<hex>") | 12-byte IV |
// AES-256-GCM ciphertext | 16-byte tag; AAD = the header (0x01 | n | key id) || canonical EC.
//
// Usage: node tests/peers/kms-server.mjs [PORT] [--port N] [--access-key-id ID]
//          [--secret-access-key S] [--session-token T] [--account N] [--region R] [--delay-ms MS]
// --delay-ms (or env KMS_PEER_DELAY_MS; default 0) delays every KMS request by MS before it is
// answered, as a remote KMS's round trip would (bench/mutations.mjs uses 20); fault rules still
// apply on top. POST /__admin/delay {ms} changes it at run time.
// Defaults (or env KMS_PEER_ACCESS_KEY_ID, KMS_PEER_SECRET_ACCESS_KEY, KMS_PEER_SESSION_TOKEN):
// AKIDTEST / kms-peer-test-secret / none. Listens on 127.0.0.1 only (port 0: any free port) and
// prints "kms-server listening on 127.0.0.1:PORT". Stops on SIGTERM or SIGINT.
//
// The admin side channel (unsigned; loopback clients only) lives under /__admin; see
// tests/peers/README.md for its routes.

import http from 'node:http';
import crypto from 'node:crypto';
import { SignatureV4 } from '@smithy/signature-v4';
import { Sha256 } from '@aws-crypto/sha256-js';

// ---- options ---------------------------------------------------------------------------------

function parseArgs(argv) {
  const opts = {
    port: 0,
    accessKeyId: process.env.KMS_PEER_ACCESS_KEY_ID || 'AKIDTEST',
    secretAccessKey: process.env.KMS_PEER_SECRET_ACCESS_KEY || 'kms-peer-test-secret',
    sessionToken: process.env.KMS_PEER_SESSION_TOKEN || undefined,
    account: '111122223333',
    region: 'us-west-2',
    delayMs: process.env.KMS_PEER_DELAY_MS || 0,
  };
  const names = {
    '--port': 'port', '--access-key-id': 'accessKeyId', '--secret-access-key': 'secretAccessKey',
    '--session-token': 'sessionToken', '--account': 'account', '--region': 'region',
    '--delay-ms': 'delayMs',
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (names[a] && i + 1 < argv.length) {
      opts[names[a]] = argv[++i];
    } else if (/^\d+$/.test(a)) {
      opts.port = Number(a);
    } else {
      process.stderr.write(`kms-server: unknown argument ${a}\n`);
      process.exit(2);
    }
  }
  opts.port = Number(opts.port);
  opts.delayMs = Number(opts.delayMs);
  if (!Number.isInteger(opts.delayMs) || opts.delayMs < 0 || opts.delayMs > 600000) {
    process.stderr.write('kms-server: --delay-ms must be 0..600000\n');
    process.exit(2);
  }
  if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) {
    process.stderr.write('kms-server: port must be 0..65535\n');
    process.exit(2);
  }
  return opts;
}

const opts = parseArgs(process.argv.slice(2));
let delayMs = opts.delayMs; // every KMS request waits this long first (--delay-ms, POST /__admin/delay)

// ---- state -----------------------------------------------------------------------------------

// accessKeyId -> {secretAccessKey, sessionToken?}
const credentials = new Map();
credentials.set(opts.accessKeyId, {
  secretAccessKey: opts.secretAccessKey,
  sessionToken: opts.sessionToken,
});

// arn -> {arn, region, account, keyId, material (shared by MRK replicas), state, denied,
//         multiRegion, created}
const keys = new Map();
const aliases = new Map(); // alias ARN -> key ARN
let counts = {};
let total = 0;
let requestLog = [];
let faults = []; // [{fault, count, percent, ms, operation, status, type, message, body}]

const OPERATIONS = new Set([
  'GenerateDataKeyWithoutPlaintext', 'GenerateDataKey', 'Encrypt', 'Decrypt', 'ReEncrypt',
  'DescribeKey',
]);
const KEY_STATES = new Set(['Enabled', 'Disabled', 'PendingDeletion']);
const LOG_MAX = 1000;

function keyArn(region, account, keyId) {
  return `arn:aws:kms:${region}:${account}:key/${keyId}`;
}

function createKey({ region, regions, multiRegion, arn, alias } = {}) {
  let list;
  let keyId;
  let account = opts.account;
  if (arn) {
    const m = /^arn:aws:kms:([a-z0-9-]+):(\d{12}):key\/([A-Za-z0-9-]+)$/.exec(arn);
    if (!m) throw new AdminError(`not a key ARN: ${arn}`);
    [, region, account, keyId] = m;
    multiRegion = keyId.startsWith('mrk-');
    list = [region, ...(regions || []).filter((r) => r !== region)];
  } else {
    multiRegion = !!multiRegion || (Array.isArray(regions) && regions.length > 1);
    keyId = multiRegion ? `mrk-${crypto.randomBytes(16).toString('hex')}` : crypto.randomUUID();
    list = regions && regions.length ? regions : [region || opts.region];
  }
  if (!multiRegion && list.length > 1) throw new AdminError('only multi-region keys have replicas');
  // Replicas share the material of an existing related key (an MRK made earlier).
  const existing = [...keys.values()].find((k) => k.keyId === keyId && k.account === account);
  const material = existing ? existing.material : crypto.randomBytes(32);
  const arns = [];
  for (const r of list) {
    if (!/^[a-z0-9-]+$/.test(r)) throw new AdminError(`bad region ${r}`);
    const a = keyArn(r, account, keyId);
    if (!keys.has(a)) {
      keys.set(a, {
        arn: a, region: r, account, keyId, material, state: 'Enabled', denied: false,
        multiRegion, created: Math.floor(Date.now() / 1000),
      });
    }
    arns.push(a);
  }
  if (alias) {
    if (!/^alias\/[A-Za-z0-9/_-]+$/.test(alias)) throw new AdminError(`bad alias ${alias}`);
    for (const a of arns) {
      const k = keys.get(a);
      aliases.set(`arn:aws:kms:${k.region}:${k.account}:${alias}`, a);
    }
  }
  return { keyId, arn: arns[0], arns };
}

class AdminError extends Error {}

// A KMS error: HTTP status + __type + message (section 2, "KMS error types").
class KmsError extends Error {
  constructor(status, type, message) {
    super(message);
    this.status = status;
    this.type = type;
  }
}
const E = {
  validation: (m) => new KmsError(400, 'ValidationException', m),
  serialization: (m) => new KmsError(400, 'SerializationException', m),
  notFound: (m) => new KmsError(404, 'NotFoundException', m),
  disabled: (m) => new KmsError(409, 'DisabledException', m),
  invalidState: (m) => new KmsError(409, 'KMSInvalidStateException', m),
  accessDenied: (m) => new KmsError(400, 'AccessDeniedException', m),
  invalidCiphertext: () => new KmsError(400, 'InvalidCiphertextException', ''),
  incorrectKey: () => new KmsError(400, 'IncorrectKeyException',
    'The key ID in the request does not identify a CMK that can perform this operation.'),
};

// ---- request members -------------------------------------------------------------------------

function memberString(body, name, { required = false, min = 1, max = 2048 } = {}) {
  const v = body[name];
  if (v === undefined || v === null) {
    if (required) {
      throw E.validation(`1 validation error detected: Value null at '${lcFirst(name)}' failed ` +
        'to satisfy constraint: Member must not be null');
    }
    return undefined;
  }
  if (typeof v !== 'string') throw E.serialization(`${name} must be a string`);
  if (v.length < min || v.length > max) {
    throw E.validation(`1 validation error detected: Value '${v}' at '${lcFirst(name)}' failed ` +
      `to satisfy constraint: Member must have length between ${min} and ${max}`);
  }
  return v;
}

function lcFirst(s) {
  return s[0].toLowerCase() + s.slice(1);
}

// Strict base64: Buffer.from is lenient, so re-encode and compare.
function memberBlob(body, name, { required = false, min = 1, max = 6144 } = {}) {
  const v = body[name];
  if (v === undefined || v === null) {
    if (required) {
      throw E.validation(`1 validation error detected: Value null at '${lcFirst(name)}' failed ` +
        'to satisfy constraint: Member must not be null');
    }
    return undefined;
  }
  if (typeof v !== 'string') throw E.serialization(`${name} must be a base64 string`);
  const buf = Buffer.from(v, 'base64');
  if (buf.toString('base64') !== v) throw E.serialization(`${name} is not valid base64`);
  if (buf.length < min || buf.length > max) {
    throw E.validation(`1 validation error detected: Value at '${lcFirst(name)}' failed to ` +
      `satisfy constraint: Member must have length between ${min} and ${max}`);
  }
  return buf;
}

function memberContext(body, name) {
  const v = body[name];
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) throw E.serialization(`${name} must be a map`);
  for (const [k, val] of Object.entries(v)) {
    if (typeof val !== 'string') throw E.serialization(`${name}.${k} must be a string`);
  }
  return v;
}

function memberGrantTokens(body) {
  const v = body.GrantTokens;
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || v.some((t) => typeof t !== 'string')) {
    throw E.serialization('GrantTokens must be a list of strings');
  }
  if (v.length > 10) {
    throw E.validation("1 validation error detected: Value at 'grantTokens' failed to satisfy " +
      'constraint: Member must have length less than or equal to 10');
  }
  for (const t of v) {
    if (t.length < 1 || t.length > 8192) {
      throw E.validation("1 validation error detected: Value at 'grantTokens' failed to " +
        'satisfy constraint: Member must have length between 1 and 8192');
    }
  }
  return v;
}

// Data key length from KeySpec / NumberOfBytes: exactly one of them (section 2).
function dataKeyLength(body) {
  const spec = body.KeySpec;
  const n = body.NumberOfBytes;
  if (spec !== undefined && n !== undefined) {
    throw E.validation('Please specify either number of bytes or key spec.');
  }
  if (spec !== undefined) {
    if (spec === 'AES_256') return 32;
    if (spec === 'AES_128') return 16;
    throw E.validation(`1 validation error detected: Value '${spec}' at 'keySpec' failed to ` +
      'satisfy constraint: Member must satisfy enum value set: [AES_256, AES_128]');
  }
  if (n === undefined) throw E.validation('Please specify either number of bytes or key spec.');
  if (!Number.isInteger(n)) throw E.serialization('NumberOfBytes must be an integer');
  if (n < 1 || n > 1024) {
    throw E.validation(`1 validation error detected: Value '${n}' at 'numberOfBytes' failed to ` +
      'satisfy constraint: Member must have value between 1 and 1024');
  }
  return n;
}

// ---- keys and blobs --------------------------------------------------------------------------

// A KeyId as AWS accepts it: key ARN, alias ARN, bare key id or alias name. Bare ids and alias
// names resolve in the region the request was signed for.
function resolveKey(keyId, region) {
  let arn = keyId;
  if (keyId.startsWith('alias/')) {
    arn = aliases.get(`arn:aws:kms:${region}:${opts.account}:${keyId}`);
  } else if (/^arn:aws:kms:[^:]*:[^:]*:alias\//.test(keyId)) {
    arn = aliases.get(keyId);
  } else if (!keyId.startsWith('arn:')) {
    arn = keyArn(region, opts.account, keyId);
  }
  const k = arn && keys.get(arn);
  if (!k) {
    if (keyId.startsWith('arn:') || keyId.startsWith('alias/')) {
      throw E.notFound(`Key '${keyId}' does not exist`);
    }
    throw E.notFound(`Invalid keyId ${keyId}`);
  }
  return k;
}

function checkUsable(k, operation, { describe = false } = {}) {
  if (k.denied) {
    throw E.accessDenied(`User: arn:aws:iam::${opts.account}:user/kms-peer-test is not ` +
      `authorized to perform: kms:${operation} on resource: ${k.arn} because no identity-based ` +
      `policy allows the kms:${operation} action`);
  }
  if (describe) return;
  if (k.state === 'Disabled') throw E.disabled(`${k.arn} is disabled.`);
  if (k.state === 'PendingDeletion') throw E.invalidState(`${k.arn} is pending deletion.`);
}

function canonicalContext(ec) {
  const entries = Object.entries(ec).sort(([a], [b]) => (Buffer.compare(Buffer.from(a),
    Buffer.from(b))));
  return Buffer.from(JSON.stringify(entries), 'utf8');
}

function blobHeader(k) {
  const id = Buffer.from(k.keyId, 'utf8');
  return Buffer.concat([Buffer.from([0x01, id.length]), id]);
}

function seal(k, plaintext, ec) {
  const header = blobHeader(k);
  const iv = crypto.randomBytes(12);
  const c = crypto.createCipheriv('aes-256-gcm', k.material, iv);
  c.setAAD(Buffer.concat([header, canonicalContext(ec)]));
  const body = Buffer.concat([c.update(plaintext), c.final()]);
  return Buffer.concat([header, iv, body, c.getAuthTag()]);
}

// The key id a blob names, or InvalidCiphertextException when it does not parse.
function blobKeyId(blob) {
  if (blob.length < 2 || blob[0] !== 0x01) throw E.invalidCiphertext();
  const n = blob[1];
  if (blob.length <= 2 + n + 12 + 16) throw E.invalidCiphertext();
  return blob.subarray(2, 2 + n).toString('utf8');
}

function open(k, blob, ec) {
  const n = blob[1];
  const header = blob.subarray(0, 2 + n);
  const iv = blob.subarray(2 + n, 2 + n + 12);
  const tag = blob.subarray(blob.length - 16);
  const body = blob.subarray(2 + n + 12, blob.length - 16);
  try {
    const d = crypto.createDecipheriv('aes-256-gcm', k.material, iv);
    d.setAAD(Buffer.concat([header, canonicalContext(ec)]));
    d.setAuthTag(tag);
    return Buffer.concat([d.update(body), d.final()]);
  } catch {
    throw E.invalidCiphertext();
  }
}

// The key that decrypts blob: the given KeyId's key (IncorrectKeyException when it is not the
// blob's key or a related MRK), else the blob's key in the request's region, else anywhere.
function decryptingKey(blob, keyIdMember, region) {
  const id = blobKeyId(blob);
  if (keyIdMember !== undefined) {
    const k = resolveKey(keyIdMember, region);
    if (k.keyId !== id) throw E.incorrectKey();
    return k;
  }
  const candidates = [...keys.values()].filter((k) => k.keyId === id);
  if (candidates.length === 0) throw E.invalidCiphertext();
  return candidates.find((k) => k.region === region) || candidates[0];
}

function keyMaterialId(k) {
  return crypto.createHash('sha256').update(k.material).update(k.keyId).digest('hex');
}

// ---- operations ------------------------------------------------------------------------------

const handlers = {
  GenerateDataKeyWithoutPlaintext(body, ctx) {
    const k = resolveKey(memberString(body, 'KeyId', { required: true }), ctx.region);
    const ec = memberContext(body, 'EncryptionContext');
    ctx.grantTokens = memberGrantTokens(body);
    const n = dataKeyLength(body);
    checkUsable(k, 'GenerateDataKeyWithoutPlaintext');
    const dataKey = crypto.randomBytes(n);
    return {
      CiphertextBlob: seal(k, dataKey, ec).toString('base64'),
      KeyId: k.arn,
      KeyMaterialId: keyMaterialId(k),
    };
  },
  GenerateDataKey(body, ctx) {
    const k = resolveKey(memberString(body, 'KeyId', { required: true }), ctx.region);
    const ec = memberContext(body, 'EncryptionContext');
    ctx.grantTokens = memberGrantTokens(body);
    const n = dataKeyLength(body);
    checkUsable(k, 'GenerateDataKey');
    const dataKey = crypto.randomBytes(n);
    return {
      CiphertextBlob: seal(k, dataKey, ec).toString('base64'),
      Plaintext: dataKey.toString('base64'),
      KeyId: k.arn,
      KeyMaterialId: keyMaterialId(k),
    };
  },
  Encrypt(body, ctx) {
    const k = resolveKey(memberString(body, 'KeyId', { required: true }), ctx.region);
    const pt = memberBlob(body, 'Plaintext', { required: true, max: 4096 });
    const ec = memberContext(body, 'EncryptionContext');
    ctx.grantTokens = memberGrantTokens(body);
    const alg = body.EncryptionAlgorithm;
    if (alg !== undefined && alg !== 'SYMMETRIC_DEFAULT') {
      throw new KmsError(400, 'InvalidKeyUsageException', `${alg} is not valid for ${k.arn}`);
    }
    checkUsable(k, 'Encrypt');
    return {
      CiphertextBlob: seal(k, pt, ec).toString('base64'),
      KeyId: k.arn,
      EncryptionAlgorithm: 'SYMMETRIC_DEFAULT',
    };
  },
  Decrypt(body, ctx) {
    const blob = memberBlob(body, 'CiphertextBlob', { required: true });
    const ec = memberContext(body, 'EncryptionContext');
    ctx.grantTokens = memberGrantTokens(body);
    const keyId = memberString(body, 'KeyId');
    const k = decryptingKey(blob, keyId, ctx.region);
    checkUsable(k, 'Decrypt');
    const pt = open(k, blob, ec);
    return {
      KeyId: k.arn,
      Plaintext: pt.toString('base64'),
      EncryptionAlgorithm: 'SYMMETRIC_DEFAULT',
      KeyMaterialId: keyMaterialId(k),
    };
  },
  ReEncrypt(body, ctx) {
    const blob = memberBlob(body, 'CiphertextBlob', { required: true });
    const srcEc = memberContext(body, 'SourceEncryptionContext');
    const dstEc = memberContext(body, 'DestinationEncryptionContext');
    ctx.grantTokens = memberGrantTokens(body);
    const dst = resolveKey(memberString(body, 'DestinationKeyId', { required: true }), ctx.region);
    const src = decryptingKey(blob, memberString(body, 'SourceKeyId'), ctx.region);
    checkUsable(src, 'ReEncryptFrom');
    checkUsable(dst, 'ReEncryptTo');
    const pt = open(src, blob, srcEc);
    const out = seal(dst, pt, dstEc);
    pt.fill(0);
    return {
      CiphertextBlob: out.toString('base64'),
      SourceKeyId: src.arn,
      KeyId: dst.arn,
      SourceEncryptionAlgorithm: 'SYMMETRIC_DEFAULT',
      DestinationEncryptionAlgorithm: 'SYMMETRIC_DEFAULT',
      SourceKeyMaterialId: keyMaterialId(src),
      DestinationKeyMaterialId: keyMaterialId(dst),
    };
  },
  DescribeKey(body, ctx) {
    const k = resolveKey(memberString(body, 'KeyId', { required: true }), ctx.region);
    ctx.grantTokens = memberGrantTokens(body);
    checkUsable(k, 'DescribeKey', { describe: true });
    const meta = {
      AWSAccountId: k.account,
      KeyId: k.keyId,
      Arn: k.arn,
      CreationDate: k.created,
      Enabled: k.state === 'Enabled',
      Description: '',
      KeyUsage: 'ENCRYPT_DECRYPT',
      KeyState: k.state,
      Origin: 'AWS_KMS',
      KeyManager: 'CUSTOMER',
      CustomerMasterKeySpec: 'SYMMETRIC_DEFAULT',
      KeySpec: 'SYMMETRIC_DEFAULT',
      EncryptionAlgorithms: ['SYMMETRIC_DEFAULT'],
      MultiRegion: k.multiRegion,
    };
    if (k.multiRegion) {
      const related = [...keys.values()].filter((r) => r.keyId === k.keyId);
      meta.MultiRegionConfiguration = {
        MultiRegionKeyType: related[0].arn === k.arn ? 'PRIMARY' : 'REPLICA',
        PrimaryKey: { Arn: related[0].arn, Region: related[0].region },
        ReplicaKeys: related.slice(1).map((r) => ({ Arn: r.arn, Region: r.region })),
      };
    }
    return { KeyMetadata: meta };
  },
};

// ---- SigV4 -----------------------------------------------------------------------------------

const AUTH_RE = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})$/;

function parseAmzDate(s) {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(s || '');
  if (!m) return null;
  return new Date(Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]));
}

// Returns {region, accessKeyId, sessionToken} of a correctly signed request, or throws KmsError.
async function verifySignature(req, body) {
  const auth = req.headers.authorization;
  if (!auth) {
    throw new KmsError(400, 'MissingAuthenticationTokenException',
      'Missing Authentication Token');
  }
  const m = AUTH_RE.exec(auth);
  if (!m) {
    throw new KmsError(400, 'IncompleteSignatureException',
      `Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters.`);
  }
  const [, akid, day, region, service, signedList] = m;
  const creds = credentials.get(akid);
  if (!creds) {
    throw new KmsError(400, 'UnrecognizedClientException',
      'The security token included in the request is invalid.');
  }
  const token = req.headers['x-amz-security-token'];
  if ((creds.sessionToken || token) && creds.sessionToken !== token) {
    throw new KmsError(400, 'UnrecognizedClientException',
      'The security token included in the request is invalid.');
  }
  const date = parseAmzDate(req.headers['x-amz-date']);
  if (!date) {
    throw new KmsError(400, 'IncompleteSignatureException', 'X-Amz-Date is missing or invalid');
  }
  const skewMs = Math.abs(Date.now() - date.getTime());
  if (skewMs > 15 * 60 * 1000) {
    throw new KmsError(400, 'InvalidSignatureException',
      `Signature expired: ${req.headers['x-amz-date']} is now earlier or later than 15 minutes ` +
      'from the current time.');
  }
  if (service !== 'kms' || req.headers['x-amz-date'].slice(0, 8) !== day) {
    throw new KmsError(400, 'InvalidSignatureException',
      `Credential should be scoped to a valid region and service 'kms' and today's date.`);
  }
  const signed = signedList.split(';');
  for (const required of ['content-type', 'host', 'x-amz-date', 'x-amz-target']) {
    if (!signed.includes(required)) {
      throw new KmsError(400, 'InvalidSignatureException',
        `The header '${required}' must be signed.`);
    }
  }
  if (token !== undefined && !signed.includes('x-amz-security-token')) {
    throw new KmsError(400, 'InvalidSignatureException',
      "The header 'x-amz-security-token' must be signed.");
  }
  // Rebuild the request as the client signed it: only the headers it lists, the exact body.
  const headers = {};
  for (const name of signed) {
    if (req.headers[name] === undefined) {
      throw new KmsError(400, 'InvalidSignatureException',
        `Signed header '${name}' is not in the request.`);
    }
    headers[name] = req.headers[name];
  }
  const signer = new SignatureV4({
    credentials: { accessKeyId: akid, secretAccessKey: creds.secretAccessKey, sessionToken: token },
    region,
    service: 'kms',
    sha256: Sha256,
    applyChecksum: false, // x-amz-content-sha256 is signed only if the client sent it
  });
  const [host, port] = (req.headers.host || '').split(':');
  const signedRequest = await signer.sign({
    method: req.method,
    protocol: 'http:',
    hostname: host,
    port: port ? Number(port) : undefined,
    path: req.url.split('?')[0],
    query: {},
    headers,
    body,
  }, { signingDate: date });
  if (signedRequest.headers.authorization !== auth) {
    throw new KmsError(400, 'InvalidSignatureException',
      'The request signature we calculated does not match the signature you provided. Check ' +
      'your AWS Secret Access Key and signing method. Consult the service documentation for ' +
      'details.');
  }
  return { region, accessKeyId: akid, sessionToken: token !== undefined };
}

// ---- faults ----------------------------------------------------------------------------------

// The first rule that applies to operation and fires (count left, percent drawn), consumed.
function takeFault(operation) {
  for (const f of faults) {
    if (f.count <= 0) continue;
    if (f.operation && f.operation !== operation) continue;
    if (f.percent < 100 && Math.random() * 100 >= f.percent) continue;
    f.count -= 1;
    f.fired += 1;
    return f;
  }
  return null;
}

function normalizeFault(r) {
  const kinds = ['throttle', 'internal', 'unavailable', 'error', 'delay', 'drop', 'respond',
    'garbage'];
  if (!r || !kinds.includes(r.fault)) throw new AdminError(`fault must be one of ${kinds}`);
  const f = {
    fault: r.fault,
    count: r.count === undefined || r.count === null ? Infinity : Number(r.count),
    percent: r.percent === undefined ? 100 : Number(r.percent),
    operation: r.operation || null,
    ms: Number(r.ms || 0),
    status: Number(r.status || 0),
    type: r.type || '',
    message: r.message || '',
    body: r.body,
    fired: 0,
  };
  if (!(f.count >= 0) || !(f.percent >= 0 && f.percent <= 100)) {
    throw new AdminError('count must be >= 0 and percent 0..100');
  }
  if (f.fault === 'error' && (!f.status || !f.type)) {
    throw new AdminError('an error fault needs status and type');
  }
  if (f.fault === 'respond' && typeof f.body !== 'string') {
    throw new AdminError('a respond fault needs body (raw text)');
  }
  return f;
}

// ---- HTTP ------------------------------------------------------------------------------------

function send(res, status, obj, type = 'application/x-amz-json-1.1', raw = undefined) {
  const text = raw !== undefined ? raw : JSON.stringify(obj);
  res.writeHead(status, {
    'Content-Type': type,
    'Content-Length': Buffer.byteLength(text),
    'x-amzn-RequestId': crypto.randomUUID(),
  });
  res.end(text);
}

function sendError(res, e) {
  send(res, e.status, { __type: e.type, message: e.message });
}

function isLoopback(addr) {
  return /^(127\.|::1$|::ffff:127\.)/.test(addr || '');
}

function log(entry) {
  requestLog.push(entry);
  if (requestLog.length > LOG_MAX) requestLog.shift();
}

async function handleKms(req, res, body) {
  const target = req.headers['x-amz-target'] || '';
  const operation = target.startsWith('TrentService.') ? target.slice(13) : target;
  total += 1;
  counts[operation] = (counts[operation] || 0) + 1;
  const entry = { operation, status: 0, type: null };
  log(entry);
  if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs));

  const fault = takeFault(operation);
  if (fault) {
    entry.fault = fault.fault;
    switch (fault.fault) {
      case 'throttle':
        entry.status = 400;
        entry.type = 'ThrottlingException';
        return sendError(res, new KmsError(400, 'ThrottlingException', 'Rate exceeded'));
      case 'internal':
        entry.status = 500;
        entry.type = 'KMSInternalException';
        return sendError(res, new KmsError(500, 'KMSInternalException',
          'An internal error occurred'));
      case 'unavailable':
        entry.status = 503;
        entry.type = 'ServiceUnavailable';
        return sendError(res, new KmsError(503, 'ServiceUnavailable', 'Service unavailable'));
      case 'error':
        entry.status = fault.status;
        entry.type = fault.type;
        return sendError(res, new KmsError(fault.status, fault.type, fault.message));
      case 'drop':
        req.socket.destroy();
        return undefined;
      case 'garbage':
        // 200 with a body that is not JSON: a truncated object (or the rule's body).
        entry.status = 200;
        return send(res, 200, null, 'application/x-amz-json-1.1',
          typeof fault.body === 'string' ? fault.body : '{"KeyId": "arn:aws:kms:us-west-2:1111');
      case 'respond':
        entry.status = fault.status || 200;
        return send(res, fault.status || 200, null, 'application/x-amz-json-1.1', fault.body);
      case 'delay':
        await new Promise((resolve) => setTimeout(resolve, fault.ms));
        if (req.socket.destroyed) return undefined;
        break;
      default:
        break;
    }
  }

  try {
    if (req.method !== 'POST' || req.url !== '/') {
      throw new KmsError(404, 'UnknownOperationException', '');
    }
    const ctx = await verifySignature(req, body);
    entry.region = ctx.region;
    entry.accessKeyId = ctx.accessKeyId;
    entry.sessionToken = ctx.sessionToken;
    if (!OPERATIONS.has(operation) || !target.startsWith('TrentService.')) {
      throw new KmsError(400, 'UnknownOperationException', '');
    }
    const ctype = (req.headers['content-type'] || '').split(';')[0].trim();
    if (ctype !== 'application/x-amz-json-1.1') {
      throw new KmsError(400, 'UnknownOperationException',
        `Content-Type ${ctype} is not application/x-amz-json-1.1`);
    }
    let parsed;
    try {
      parsed = JSON.parse(body.length ? body.toString('utf8') : '{}');
    } catch {
      throw E.serialization('Start of structure or map found where not expected.');
    }
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) {
      throw E.serialization('Start of structure or map found where not expected.');
    }
    entry.keyId = parsed.KeyId ?? parsed.DestinationKeyId;
    entry.sourceKeyId = parsed.SourceKeyId;
    entry.encryptionContext = parsed.EncryptionContext ?? parsed.DestinationEncryptionContext;
    entry.sourceEncryptionContext = parsed.SourceEncryptionContext;
    entry.numberOfBytes = parsed.NumberOfBytes;
    entry.keySpec = parsed.KeySpec;
    const out = handlers[operation](parsed, ctx);
    entry.grantTokens = ctx.grantTokens || [];
    entry.status = 200;
    entry.responseKeyId = out.KeyId ?? out.KeyMetadata?.Arn;
    return send(res, 200, out);
  } catch (e) {
    if (!(e instanceof KmsError)) throw e;
    entry.status = e.status;
    entry.type = e.type;
    return sendError(res, e);
  }
}

function adminBody(body) {
  if (!body.length) return {};
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    throw new AdminError('body is not JSON');
  }
}

function publicKey(k) {
  return {
    arn: k.arn, keyId: k.keyId, region: k.region, state: k.state, denied: k.denied,
    multiRegion: k.multiRegion,
  };
}

function handleAdmin(req, res, body) {
  if (!isLoopback(req.socket.remoteAddress)) {
    return send(res, 403, { error: 'admin is loopback only' }, 'application/json');
  }
  const path = req.url.split('?')[0];
  const route = `${req.method} ${path}`;
  const ok = (obj) => send(res, 200, obj, 'application/json');
  const keyOf = (b) => {
    const k = keys.get(b.arn);
    if (!k) throw new AdminError(`no key ${b.arn}`);
    return k;
  };
  try {
    switch (route) {
      case 'GET /__admin/health':
        return ok({ ok: true });
      case 'POST /__admin/keys':
        return ok(createKey(adminBody(body)));
      case 'GET /__admin/keys':
        return ok({ keys: [...keys.values()].map(publicKey) });
      case 'POST /__admin/keys/state': {
        const b = adminBody(body);
        if (!KEY_STATES.has(b.state)) throw new AdminError(`state must be one of ${[...KEY_STATES]}`);
        keyOf(b).state = b.state;
        return ok(publicKey(keyOf(b)));
      }
      case 'POST /__admin/keys/deny': {
        const b = adminBody(body);
        keyOf(b).denied = b.deny === undefined ? true : !!b.deny;
        return ok(publicKey(keyOf(b)));
      }
      case 'POST /__admin/credentials': {
        const b = adminBody(body);
        if (typeof b.accessKeyId !== 'string' || typeof b.secretAccessKey !== 'string') {
          throw new AdminError('accessKeyId and secretAccessKey are required');
        }
        credentials.set(b.accessKeyId, {
          secretAccessKey: b.secretAccessKey, sessionToken: b.sessionToken || undefined,
        });
        return ok({ accessKeyId: b.accessKeyId });
      }
      case 'POST /__admin/delay': {
        const ms = Number(adminBody(body).ms);
        if (!Number.isInteger(ms) || ms < 0 || ms > 600000) throw new AdminError('ms must be 0..600000');
        delayMs = ms;
        return ok({ delayMs });
      }
      case 'POST /__admin/down': {
        // Stops listening for ms (connections refused, admin included), then listens again on
        // the same port.
        const ms = Number(adminBody(body).ms);
        if (!Number.isInteger(ms) || ms < 1 || ms > 600000) throw new AdminError('ms must be 1..600000');
        res.once('finish', () => goDown(ms));
        return ok({ downMs: ms });
      }
      case 'GET /__admin/counts':
        return ok({ total, operations: counts });
      case 'POST /__admin/reset':
        counts = {};
        total = 0;
        requestLog = [];
        faults = [];
        return ok({ reset: true });
      case 'GET /__admin/requests':
        return ok({ requests: requestLog });
      case 'GET /__admin/faults':
        return ok({ faults });
      case 'POST /__admin/faults': {
        const b = adminBody(body);
        const rules = (Array.isArray(b) ? b : Array.isArray(b.rules) ? b.rules : [b]).map(
          normalizeFault);
        faults.push(...rules);
        return ok({ faults });
      }
      case 'DELETE /__admin/faults':
        faults = [];
        return ok({ faults });
      default:
        return send(res, 404, { error: `no admin route ${route}` }, 'application/json');
    }
  } catch (e) {
    if (e instanceof AdminError) return send(res, 400, { error: e.message }, 'application/json');
    throw e;
  }
}

const BODY_MAX = 1 << 20;

const server = http.createServer((req, res) => {
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
  req.on('end', () => {
    const body = Buffer.concat(chunks);
    const run = req.url.startsWith('/__admin')
      ? Promise.resolve().then(() => handleAdmin(req, res, body))
      : handleKms(req, res, body);
    run.catch((e) => {
      process.stderr.write(`kms-server: ${e.stack || e}\n`);
      if (!res.headersSent) {
        sendError(res, new KmsError(500, 'KMSInternalException', 'peer bug'));
      }
    });
  });
});
// Keep idle connections longer than the client's reuse window so curl does not hit a
// half-closed socket by accident (drops are injected explicitly).
server.keepAliveTimeout = 30000;

let listenPort = opts.port;
server.listen(opts.port, '127.0.0.1', () => {
  listenPort = server.address().port;
  process.stdout.write(`kms-server listening on 127.0.0.1:${listenPort}\n`);
});

// POST /__admin/down: close the port (every open connection too), reopen it after ms.
function goDown(ms) {
  server.close();
  server.closeAllConnections();
  setTimeout(() => server.listen(listenPort, '127.0.0.1'), ms);
}

function stop() {
  server.close();
  server.closeAllConnections();
  process.exit(0);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

// kms-server.test.mjs - checks the KMS test server (kms-server.mjs) against AWS's own KMS
// client (@aws-sdk/client-kms): if the SDK's signed requests are accepted and its parsed
// responses and error names are what the real service gives, the peer is a fair stand-in for
// AWS KMS in keystored's integration tests. Run: node --test tests/peers/
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import {
  KMSClient, GenerateDataKeyWithoutPlaintextCommand, GenerateDataKeyCommand, EncryptCommand,
  DecryptCommand, ReEncryptCommand, DescribeKeyCommand,
} from '@aws-sdk/client-kms';

const here = path.dirname(fileURLToPath(import.meta.url));
let peer;
let base;

function client(region = 'us-west-2', creds = {}) {
  return new KMSClient({
    region,
    endpoint: base,
    credentials: {
      accessKeyId: 'AKIDTEST', secretAccessKey: 'kms-peer-test-secret', ...creds,
    },
    maxAttempts: 1,
  });
}

async function admin(method, route, body) {
  const r = await fetch(`${base}/__admin${route}`, {
    method,
    headers: { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await r.json();
  assert.equal(r.status, 200, JSON.stringify(json));
  return json;
}

async function rejects(promise, name) {
  await assert.rejects(promise, (e) => {
    assert.equal(e.name, name, `${e.name}: ${e.message}`);
    return true;
  });
}

before(async () => {
  peer = spawn(process.execPath, [path.join(here, 'kms-server.mjs'), '0'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  base = await new Promise((resolve, reject) => {
    let out = '';
    peer.stdout.on('data', (d) => {
      out += d;
      const m = /listening on (127\.0\.0\.1:\d+)/.exec(out);
      if (m) resolve(`http://${m[1]}`);
    });
    peer.on('exit', (code) => reject(new Error(`peer exited ${code}`)));
  });
});

after(() => {
  peer.kill('SIGTERM');
});

test('all operations round trip through the AWS SDK', async () => {
  const kms = client();
  const { arn: a } = await admin('POST', '/keys', {});
  const { arn: b } = await admin('POST', '/keys', {});
  const ec = { 'branch-key-id': 'k1', tenant: 'ü' };

  const g = await kms.send(new GenerateDataKeyWithoutPlaintextCommand({
    KeyId: a, NumberOfBytes: 32, EncryptionContext: ec, GrantTokens: ['gt1'],
  }));
  assert.equal(g.KeyId, a);
  const d = await kms.send(new DecryptCommand({
    CiphertextBlob: g.CiphertextBlob, KeyId: a, EncryptionContext: ec,
  }));
  assert.equal(d.Plaintext.length, 32);
  assert.equal(d.KeyId, a);

  const gk = await kms.send(new GenerateDataKeyCommand({ KeyId: a, KeySpec: 'AES_256' }));
  const d2 = await kms.send(new DecryptCommand({ CiphertextBlob: gk.CiphertextBlob }));
  assert.deepEqual(Buffer.from(d2.Plaintext), Buffer.from(gk.Plaintext));

  const e = await kms.send(new EncryptCommand({
    KeyId: a, Plaintext: Buffer.from('hello'), EncryptionContext: ec,
  }));
  const r = await kms.send(new ReEncryptCommand({
    CiphertextBlob: e.CiphertextBlob, SourceEncryptionContext: ec, SourceKeyId: a,
    DestinationKeyId: b, DestinationEncryptionContext: { x: 'y' },
  }));
  assert.equal(r.SourceKeyId, a);
  assert.equal(r.KeyId, b);
  const d3 = await kms.send(new DecryptCommand({
    CiphertextBlob: r.CiphertextBlob, KeyId: b, EncryptionContext: { x: 'y' },
  }));
  assert.equal(Buffer.from(d3.Plaintext).toString(), 'hello');

  const desc = await kms.send(new DescribeKeyCommand({ KeyId: a }));
  assert.equal(desc.KeyMetadata.Arn, a);
  assert.equal(desc.KeyMetadata.KeyState, 'Enabled');

  const log = await admin('GET', '/requests');
  assert.deepEqual(log.requests[0].grantTokens, ['gt1']);
});

test('refusals carry the error names of AWS KMS', async () => {
  const kms = client();
  const { arn: a } = await admin('POST', '/keys', {});
  const { arn: b } = await admin('POST', '/keys', {});
  const e = await kms.send(new EncryptCommand({
    KeyId: a, Plaintext: Buffer.from('x'), EncryptionContext: { k: 'v' },
  }));
  await rejects(kms.send(new DecryptCommand({
    CiphertextBlob: e.CiphertextBlob, EncryptionContext: { k: 'w' },
  })), 'InvalidCiphertextException');
  await rejects(kms.send(new DecryptCommand({
    CiphertextBlob: e.CiphertextBlob, KeyId: b, EncryptionContext: { k: 'v' },
  })), 'IncorrectKeyException');
  const tampered = Buffer.from(e.CiphertextBlob);
  tampered[tampered.length - 1] ^= 1;
  await rejects(kms.send(new DecryptCommand({
    CiphertextBlob: tampered, EncryptionContext: { k: 'v' },
  })), 'InvalidCiphertextException');
  await rejects(kms.send(new GenerateDataKeyCommand({
    KeyId: 'arn:aws:kms:us-west-2:111122223333:key/00000000-0000-4000-8000-000000000000',
    NumberOfBytes: 32,
  })), 'NotFoundException');
  await admin('POST', '/keys/state', { arn: b, state: 'Disabled' });
  await rejects(kms.send(new GenerateDataKeyCommand({ KeyId: b, NumberOfBytes: 32 })),
    'DisabledException');
  await admin('POST', '/keys/deny', { arn: a });
  await rejects(kms.send(new GenerateDataKeyCommand({ KeyId: a, NumberOfBytes: 32 })),
    'AccessDeniedException');
});

test('the signature is checked: a wrong secret or token is refused', async () => {
  const { arn: a } = await admin('POST', '/keys', {});
  await rejects(client('us-west-2', { secretAccessKey: 'wrong' }).send(
    new DescribeKeyCommand({ KeyId: a })), 'InvalidSignatureException');
  await rejects(client('us-west-2', { accessKeyId: 'AKIDOTHER' }).send(
    new DescribeKeyCommand({ KeyId: a })), 'UnrecognizedClientException');
  await admin('POST', '/credentials', {
    accessKeyId: 'ASIATEST', secretAccessKey: 's2', sessionToken: 'tok',
  });
  const ok = await client('us-west-2', {
    accessKeyId: 'ASIATEST', secretAccessKey: 's2', sessionToken: 'tok',
  }).send(new DescribeKeyCommand({ KeyId: a }));
  assert.equal(ok.KeyMetadata.Arn, a);
  await rejects(client('us-west-2', {
    accessKeyId: 'ASIATEST', secretAccessKey: 's2', sessionToken: 'other',
  }).send(new DescribeKeyCommand({ KeyId: a })), 'UnrecognizedClientException');
});

test('multi-region keys decrypt across regions', async () => {
  const { arns } = await admin('POST', '/keys', { regions: ['us-west-2', 'eu-west-1'] });
  assert.match(arns[0], /^arn:aws:kms:us-west-2:111122223333:key\/mrk-[0-9a-f]{32}$/);
  const e = await client('us-west-2').send(new EncryptCommand({
    KeyId: arns[0], Plaintext: Buffer.from('mrk'),
  }));
  const d = await client('eu-west-1').send(new DecryptCommand({
    CiphertextBlob: e.CiphertextBlob, KeyId: arns[1],
  }));
  assert.equal(d.KeyId, arns[1]);
  assert.equal(Buffer.from(d.Plaintext).toString(), 'mrk');
});

test('faults: throttling, 500 and counts', async () => {
  const { arn: a } = await admin('POST', '/keys', {});
  await admin('POST', '/reset');
  await admin('POST', '/faults', { fault: 'throttle', count: 1 });
  await admin('POST', '/faults', { fault: 'internal', count: 1 });
  await rejects(client().send(new DescribeKeyCommand({ KeyId: a })), 'ThrottlingException');
  await rejects(client().send(new DescribeKeyCommand({ KeyId: a })), 'KMSInternalException');
  await client().send(new DescribeKeyCommand({ KeyId: a }));
  const c = await admin('GET', '/counts');
  assert.equal(c.operations.DescribeKey, 3);
});

test('delay: every KMS request waits the configured ms; 0 turns it off; bad values refused', async () => {
  const { arn: a } = await admin('POST', '/keys', {});
  const time = async () => {
    const t0 = Date.now();
    await client().send(new DescribeKeyCommand({ KeyId: a }));
    return Date.now() - t0;
  };
  assert.deepEqual(await admin('POST', '/delay', { ms: 150 }), { delayMs: 150 });
  try {
    const slow = await time();
    assert.ok(slow >= 150, `answered after ${slow} ms with a 150 ms delay`);
  } finally {
    await admin('POST', '/delay', { ms: 0 });
  }
  const fast = await time();
  assert.ok(fast < 150, `answered after ${fast} ms with no delay`);
  const r = await fetch(`${base}/__admin/delay`, { method: 'POST', body: JSON.stringify({ ms: -1 }) });
  assert.equal(r.status, 400);
});

test('faults: garbage is a 200 the SDK cannot parse; down refuses connections, then comes back', async () => {
  const { arn: a } = await admin('POST', '/keys', {});
  await admin('POST', '/reset');
  await admin('POST', '/faults', { fault: 'garbage', count: 1 });
  await assert.rejects(client().send(new DescribeKeyCommand({ KeyId: a })));
  await client().send(new DescribeKeyCommand({ KeyId: a }));
  assert.deepEqual(await admin('POST', '/down', { ms: 400 }), { downMs: 400 });
  await new Promise((r) => setTimeout(r, 50));
  await assert.rejects(fetch(`${base}/__admin/health`), (e) => {
    assert.equal(e.cause && e.cause.code, 'ECONNREFUSED');
    return true;
  });
  await new Promise((r) => setTimeout(r, 600));
  await client().send(new DescribeKeyCommand({ KeyId: a }));
  assert.equal((await admin('GET', '/counts')).operations.DescribeKey, 3);
});

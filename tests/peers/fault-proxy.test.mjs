// fault-proxy.test.mjs - checks tests/peers/fault-proxy.mjs against a small in-process awsJson
// target: requests pass through unchanged, every fault kind answers as documented, rules honour
// operation / after / count, counters count, and down refuses connections until up.
// Run: node --test tests/peers/
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { startFaultProxy } from './fault-proxy-start.mjs';

let target;
let targetHits = [];
let proxy;

before(async () => {
  target = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString();
      targetHits.push({ target: req.headers['x-amz-target'], host: req.headers.host, body });
      const text = JSON.stringify({ echo: body, target: req.headers['x-amz-target'] });
      res.writeHead(200, { 'Content-Type': 'application/x-amz-json-1.0', 'x-amz-crc32': '1' });
      res.end(text);
    });
  });
  await new Promise((r) => target.listen(0, '127.0.0.1', r));
  proxy = await startFaultProxy(`http://127.0.0.1:${target.address().port}`);
});

after(async () => {
  if (proxy) await proxy.stop();
  if (target) target.close();
});

async function call(op, body = '{"a":1}', service = 'DynamoDB_20120810') {
  const r = await fetch(proxy.endpoint, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-amz-json-1.0', 'X-Amz-Target': `${service}.${op}` },
    body,
    signal: AbortSignal.timeout(5000),
  });
  return { status: r.status, text: await r.text(), headers: r.headers };
}

async function fresh() {
  await proxy.admin('POST', '/__admin/reset');
  targetHits = [];
}

test('forwards requests and answers unchanged, Host kept', async () => {
  await fresh();
  const r = await call('GetItem', '{"x":"y"}');
  assert.equal(r.status, 200);
  assert.deepEqual(JSON.parse(r.text), { echo: '{"x":"y"}', target: 'DynamoDB_20120810.GetItem' });
  assert.equal(r.headers.get('x-amz-crc32'), '1');
  assert.equal(targetHits.length, 1);
  assert.equal(targetHits[0].host, `127.0.0.1:${proxy.port}`);
  const c = await proxy.admin('GET', '/__admin/counts');
  assert.deepEqual(c, { total: 1, forwarded: 1, faulted: 0, operations: { GetItem: 1 } });
});

test('throttle: DynamoDB shape id for DynamoDB, ThrottlingException for KMS', async () => {
  await fresh();
  await proxy.admin('POST', '/__admin/faults', { fault: 'throttle', count: 2 });
  let r = await call('GetItem');
  assert.equal(r.status, 400);
  assert.equal(JSON.parse(r.text).__type, 'com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException');
  r = await call('Decrypt', '{}', 'TrentService');
  assert.equal(JSON.parse(r.text).__type, 'ThrottlingException');
  r = await call('GetItem');
  assert.equal(r.status, 200, 'count 2: the third passes');
  assert.equal(targetHits.length, 1);
  const c = await proxy.admin('GET', '/__admin/counts');
  assert.equal(c.total, 3);
  assert.equal(c.faulted, 2);
});

test('internal, unavailable, error and garbage', async () => {
  await fresh();
  await proxy.admin('POST', '/__admin/faults', [
    { fault: 'internal', count: 1 }, { fault: 'unavailable', count: 1 },
    { fault: 'error', status: 400, type: 'ValidationException', count: 1 }, { fault: 'garbage', count: 1 },
  ]);
  let r = await call('Query');
  assert.equal(r.status, 500);
  assert.match(JSON.parse(r.text).__type, /#InternalServerError$/);
  r = await call('Query');
  assert.equal(r.status, 503);
  r = await call('Query');
  assert.equal(r.status, 400);
  assert.equal(JSON.parse(r.text).__type, 'ValidationException');
  r = await call('Query');
  assert.equal(r.status, 200);
  assert.throws(() => JSON.parse(r.text));
  assert.equal(targetHits.length, 0);
});

test('operation and after: only the second TransactWriteItems fails', async () => {
  await fresh();
  await proxy.admin('POST', '/__admin/faults', { fault: 'internal', operation: 'TransactWriteItems', after: 1, count: 1 });
  assert.equal((await call('TransactWriteItems')).status, 200);
  assert.equal((await call('GetItem')).status, 200);
  assert.equal((await call('TransactWriteItems')).status, 500);
  assert.equal((await call('TransactWriteItems')).status, 200);
  assert.equal(targetHits.length, 3);
});

test('delay forwards late; drop and forward-drop break the connection; forward-error reaches the target', async () => {
  await fresh();
  await proxy.admin('POST', '/__admin/faults', [{ fault: 'delay', ms: 300, count: 1 }]);
  const t0 = Date.now();
  assert.equal((await call('GetItem')).status, 200);
  assert.ok(Date.now() - t0 >= 290, `delayed ${Date.now() - t0} ms`);
  await proxy.admin('POST', '/__admin/faults', [{ fault: 'drop', count: 1 }]);
  await assert.rejects(call('GetItem'));
  assert.equal(targetHits.length, 1, 'drop: never forwarded');
  await proxy.admin('POST', '/__admin/faults', [{ fault: 'forward-drop', count: 1 }]);
  await assert.rejects(call('PutItem'));
  assert.equal(targetHits.length, 2, 'forward-drop: forwarded');
  await proxy.admin('POST', '/__admin/faults', [{ fault: 'forward-error', count: 1 }]);
  assert.equal((await call('PutItem')).status, 500);
  assert.equal(targetHits.length, 3, 'forward-error: forwarded');
});

test('down refuses connections; up serves again on the same port', async () => {
  await fresh();
  await proxy.admin('POST', '/__admin/down');
  const refused = await new Promise((resolve) => {
    const s = net.connect(proxy.port, '127.0.0.1');
    s.once('connect', () => { s.destroy(); resolve(null); });
    s.once('error', (e) => resolve(e.code));
  });
  assert.equal(refused, 'ECONNREFUSED');
  assert.equal((await proxy.admin('GET', '/__admin/health')).up, false);
  await proxy.admin('POST', '/__admin/up');
  assert.equal((await call('GetItem')).status, 200);
});

test('bad rules are refused', async () => {
  for (const rule of [{ fault: 'nope' }, { fault: 'error', status: 400 }, { fault: 'drop', count: -1 }]) {
    const r = await fetch(`${proxy.adminBase}/__admin/faults`, { method: 'POST', body: JSON.stringify(rule) });
    assert.equal(r.status, 400, JSON.stringify(rule));
  }
});

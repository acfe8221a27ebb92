// multi.mjs - two keystored instances on one DynamoDB table and one KMS (the dynamodb backend):
//   1. the VersionKey race of race.mjs with every client alternating between the instances:
//      only 201 / 409 VersionRaceException; every 201 version readable from both instances with
//      32 key bytes; version items in the table = 1 + #201; ACTIVE one of them, the same on both;
//   2. the same while the KMS peer throttles 20% of its calls: 429 ThrottlingException (with
//      Retry-After) is allowed too, and the invariants still hold (faults cleared before reading);
//   3. the KMS peer counted the calls (and the throttles), and the peers and both instances
//      listen on 127.0.0.1 only.

import { assert, assertEq } from './lib/harness.mjs';
import { makeApi } from './lib/http.mjs';
import { startServer } from './lib/server.mjs';
import { listeningAddresses } from './lib/backends.mjs';
import { runRace } from './race.mjs';
import { waitReadyz } from './limits.mjs';

export const THROTTLE_PERCENT = 20;

export async function runMultiInstance(h, backend) {
  // More workers than the default 4: a throttled KMS call sleeps in its worker (backoff).
  const setup = backend.makeSetup('multi', 'server:\n  threads: 16\n  readiness_interval_ms: 200');
  const store = backend.store(setup);
  const kms = backend.kms;
  const servers = [];
  let apis;

  const up = await h.test('multi-instance: two keystored processes, one config (same table, same KMS peer), two ports', async () => {
    for (const tag of ['a', 'b']) servers.push(await startServer(['--config', setup.configPath], `multi-${tag}`));
    assert(servers[0].port !== servers[1].port, 'distinct ports');
    apis = servers.map((s) => makeApi(s.base));
    const T = { token: setup.tokens.admin };
    // Both create (or find) the same tables.
    for (const ks of ['default', 'other']) {
      const arns = [];
      for (const api of apis) {
        const r = await api('PUT', `/v1/keystores/${ks}`, T);
        assertEq(r.status, 200, `PUT key store ${ks} (${r.text.slice(0, 200)})`);
        arns.push(r.json.tableArn);
      }
      assertEq(arns[1], arns[0], `tableArn of ${ks} on the second instance`);
    }
    for (const api of apis) {
      const r = await waitReadyz(api); // the tables exist: ready from the next probe round
      assertEq(r.status, 200, `readyz (${r.text.slice(0, 300)})`);
    }
    await kms.admin('POST', '/__admin/reset');
  });

  if (up) {
    const plain = await runRace(h, { apis, tokens: setup.tokens, store, label: 'multi-instance race' });

    await h.test('multi-instance: the KMS peer counted the calls of both instances', async () => {
      const c = await kms.admin('GET', '/__admin/counts');
      console.log(`     KMS calls: ${JSON.stringify(c)}`);
      assert(c.total > 0, 'no KMS call counted');
      assert(plain, 'the race did not run');
      // Each 201 needed at least one new data key and the ACTIVE's decryption.
      const ops = c.operations || {};
      const created = (ops.GenerateDataKeyWithoutPlaintext || 0) + (ops.GenerateDataKey || 0);
      assert(created >= plain.won.length, `${created} data keys generated for ${plain.won.length} new versions`);
      assert((ops.Decrypt || 0) > 0, 'no Decrypt counted');
      const { requests } = await kms.admin('GET', '/__admin/requests');
      assert(requests.every((r) => r.fault || r.status === 200),
        `KMS refused calls without a fault: ${JSON.stringify(requests.filter((r) => r.status !== 200).slice(0, 3))}`);
    });

    await kms.admin('POST', '/__admin/reset');
    let faults = null;
    const throttled = await runRace(h, {
      apis, tokens: setup.tokens, store, throttle: true,
      label: `multi-instance race, KMS throttling ${THROTTLE_PERCENT}%`,
      beforeLoad: () => kms.admin('POST', '/__admin/faults', { fault: 'throttle', percent: THROTTLE_PERCENT }),
      afterLoad: async () => {
        faults = await kms.admin('GET', '/__admin/faults');
        await kms.admin('DELETE', '/__admin/faults');
      },
    });

    await h.test('multi-instance: the KMS peer throttled calls during the throttled race', async () => {
      assert(throttled, 'the race did not run');
      const c = await kms.admin('GET', '/__admin/counts');
      const fired = JSON.stringify(faults);
      console.log(`     KMS calls: ${JSON.stringify(c)}; faults: ${fired}`);
      assert(c.total > 0, 'no KMS call counted');
      const rules = Array.isArray(faults) ? faults : faults && (faults.rules || faults.faults);
      assert(Array.isArray(rules) && rules.length === 1 && rules[0].fired > 0, `no throttle fired: ${fired}`);
    });
  }

  await h.test('multi-instance: both instances stop on SIGTERM with exit 0', async () => {
    const infos = await Promise.all(servers.map((s) => s.stop()));
    assert(servers.length === 2, `only ${servers.length} instance(s) started`);
    for (const [i, info] of infos.entries()) assertEq(info.code, 0, `exit code of instance ${i} (signal ${info.signal})`);
  });

  await h.test('peers: DynamoDB Local, the KMS peer and the instances listened on 127.0.0.1 only', async () => {
    const checks = [['DynamoDB Local', backend.ddb.port], ['KMS peer', kms.port]];
    for (const [what, port] of checks) {
      const a = listeningAddresses(port);
      assert(a.length > 0, `${what}: no listening socket on port ${port} found in /proc/net/tcp*`);
      const wide = a.filter((x) => x.address !== '127.0.0.1' && x.address !== '::ffff:127.0.0.1');
      assert(wide.length === 0, `${what} listens on ${JSON.stringify(wide)} (port ${port})`);
      console.log(`     ${what} port ${port}: ${a.map((x) => `tcp${x.family === 6 ? '6' : ''} ${x.address}`).join(', ')}`);
    }
    for (const s of servers) assertEq(s.host, '127.0.0.1', 'keystored listen address');
    // Nothing answers on a non-loopback address of this host.
    const os = await import('node:os');
    const external = Object.values(os.networkInterfaces()).flat()
      .filter((i) => i && i.family === 'IPv4' && !i.internal).map((i) => i.address);
    if (external.length) console.log(`     not reachable on ${external.slice(0, 2).join(', ')}`);
    for (const addr of external.slice(0, 2)) {
      for (const [what, port] of checks) {
        const reached = await fetch(`http://${addr}:${port}/`, { signal: AbortSignal.timeout(2000) })
          .then(() => true, () => false);
        assert(!reached, `${what} answers on ${addr}:${port}`);
      }
    }
  });
}

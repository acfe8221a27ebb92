// shutdown.mjs - SIGTERM while requests are in flight (docs/architecture.md section 6): the 16-client
// VersionKey load runs, SIGTERM arrives mid-way; the server finishes what it accepted and exits
// 0. A request that arrives after SIGTERM on a kept-alive connection was never accepted: it gets
// 503 ServiceUnavailableException with Connection: close (so a proxy retries it elsewhere).
// Timing-free checks only: the exit code, the answers seen are 201/409 (or that 503), and the
// access log has a line for every answer received.

import { assert, assertEq } from './lib/harness.mjs';
import { makeApi } from './lib/http.mjs';
import { accessLines, startServer } from './lib/server.mjs';

export async function runShutdown(h, backend) {
  const setup = backend.makeSetup('shutdown');
  const seen = []; // {requestId, status}
  let srv;

  await h.test('shutdown: SIGTERM during 16-client VersionKey load -> exit 0, every answer logged', async () => {
    srv = await startServer(['--config', setup.configPath], `shutdown (${backend.name})`);
    const api = makeApi(srv.base);
    const T = { token: setup.tokens.admin };
    const ks = await api('PUT', '/v1/keystores/default', T);
    assertEq(ks.status, 200, `create the key store (${ks.text.slice(0, 200)})`);
    const c = await api('POST', '/v1/keystores/default/branch-keys', T);
    assertEq(c.status, 201, 'create');
    const p = `/v1/keystores/default/branch-keys/${c.json.branchKeyIdentifier}/versions`;
    let stop = false;
    let signalled = null;
    const clients = Array.from({ length: 16 }, async () => {
      for (let i = 0; i < 50 && !stop; i++) {
        try {
          const r = await api('POST', p, T);
          seen.push({
            requestId: r.headers['x-request-id'], status: r.status,
            type: r.json && r.json.error && r.json.error.type, connection: r.headers.connection,
          });
          if (r.status === 503) stop = true; // draining: this client goes elsewhere
          if (seen.length === 64 && !signalled) signalled = srv.stop();
        } catch {
          stop = true; // refused or closed once the server stopped: not an answer
        }
      }
    });
    await Promise.all(clients);
    const info = await (signalled || srv.stop());
    assertEq(info.code, 0, `exit code (signal ${info.signal})`);
    const draining = (s) => s.status === 503 && s.type === 'ServiceUnavailableException' &&
      /close/i.test(s.connection || '');
    const bad = seen.filter((s) => s.status !== 201 && s.status !== 409 && !draining(s));
    assert(bad.length === 0, `unexpected answers ${bad.map((b) => `${b.status}/${b.type}/${b.connection}`).join(',')}`);
    const logged = new Set(accessLines(srv.stderr()).map((l) => l.requestId));
    const missing = seen.filter((s) => !logged.has(s.requestId));
    assert(missing.length === 0, `${missing.length} answers have no access log line, e.g. ${missing[0] && missing[0].requestId}`);
    assert(/SIGTERM/.test(srv.stderr()), 'no SIGTERM message in stderr');
    console.log(`     ${seen.length} answers, ${seen.filter(draining).length} of them 503 while draining`);
  });
}

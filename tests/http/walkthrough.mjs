// walkthrough.mjs - keeps the README's curl walkthrough true: the ```sh blocks between
// <!-- walkthrough:start --> and <!-- walkthrough:end --> run in order, in one bash -e script,
// against a fresh embedded-default server with TOKEN and KS set. One test per block.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { startServer, tempDir } from './lib/server.mjs';

export function walkthroughBlocks(readmeText) {
  const start = readmeText.indexOf('<!-- walkthrough:start -->');
  const end = readmeText.indexOf('<!-- walkthrough:end -->');
  if (start < 0 || end < start) throw new Error('README.md has no walkthrough markers');
  const section = readmeText.slice(start, end);
  return [...section.matchAll(/^```sh\n([\s\S]*?)^```$/gm)].map((m) => m[1]);
}

function bash(script, env, cwd) {
  return new Promise((resolve) => {
    const p = spawn('bash', ['-e', '-o', 'pipefail', '-c', script], { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const timer = setTimeout(() => p.kill('SIGKILL'), 120000);
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (out += d));
    p.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
}

export async function runWalkthrough(h, repoRoot) {
  let blocks;
  const ok = await h.test('walkthrough: README.md has ```sh blocks between the markers', async () => {
    blocks = walkthroughBlocks(fs.readFileSync(path.join(repoRoot, 'README.md'), 'utf8'));
    if (blocks.length === 0) throw new Error('no ```sh blocks in the walkthrough section');
  });
  if (!ok) return;
  await h.test('walkthrough: every curl uses --fail-with-body, except in the last block (the error example)', async () => {
    const bad = blocks.slice(0, -1).flatMap((b) => b.split('\n'))
      .filter((l) => /(^|[\s($])curl\s/.test(l) && !l.includes('--fail-with-body'));
    if (bad.length) throw new Error(`curl without --fail-with-body:\n${bad.join('\n')}`);
    if (blocks[blocks.length - 1].includes('--fail')) throw new Error('the error example must not use --fail');
  });

  const dir = tempDir('walkthrough');
  let srv;
  try {
    srv = await startServer(['--data-dir', path.join(dir, 'data'), '--listen', '127.0.0.1:0'], 'walkthrough');
  } catch (e) {
    h.fail('walkthrough: start the embedded default', e.message);
    return;
  }
  const m = /^admin token: (\S+)$/m.exec(srv.stderr());
  // Each block is preceded by a marker so that a failure is attributed to its block.
  const script = blocks.map((b, i) => `echo "@@walkthrough-block ${i + 1}@@"\n${b}`).join('\n') +
    `\necho "@@walkthrough-block ${blocks.length + 1}@@"\n`;
  const env = { ...process.env, TOKEN: m ? m[1] : '', KS: srv.base };
  const r = await bash(script, env, dir);
  const reached = Math.max(0, ...[...r.out.matchAll(/@@walkthrough-block (\d+)@@/g)].map((x) => Number(x[1])));
  for (const [i, b] of blocks.entries()) {
    const title = `walkthrough: block ${i + 1}: ${b.split('\n').find((l) => l.trim() && !l.startsWith('#')) || ''}`.slice(0, 110);
    await h.test(title, async () => {
      if (!m) throw new Error('the embedded default printed no admin token');
      if (i + 1 < reached) return;
      if (i + 1 === reached && r.code !== 0) {
        const part = r.out.split(`@@walkthrough-block ${i + 1}@@`)[1] || '';
        throw new Error(`bash -e failed (exit ${r.code}); output of this block:\n${part.slice(-1500)}`);
      }
      if (i + 1 >= reached) throw new Error('not reached (an earlier block failed)');
    });
  }
  const info = await srv.stop();
  await h.test('walkthrough: server exits 0', async () => {
    if (info.code !== 0) throw new Error(`exit code ${info.code}`);
  });
}

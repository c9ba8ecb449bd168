/**
 * SLOW (about 3 minutes: `./run.sh demo` boots three times, then one more boot): the
 * README's "First steps", word for word, as a newcomer types them (scripts/newcomer.sh reads
 * them from README.md). Runs on the machine's default paths (/var/lib/darch), like the user.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { REPO } from '../helpers/darch.js';

test("the README's first steps work word for word", async () => {
  await rm('/tmp/first.img', { force: true }); // what a fresh machine does not have
  // Its own process group, so a boot that hangs is stopped with everything it started.
  const child = spawn('bash', [path.join(REPO, 'scripts/newcomer.sh')], {
    cwd: REPO,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NO_COLOR: '1' },
    detached: true,
  });
  const timer = setTimeout(() => process.kill(-child.pid!, 'SIGKILL'), 20 * 60_000);
  let out = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr.on('data', (b: Buffer) => (out += b.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  clearTimeout(timer);
  try {
    assert.equal(code, 0, `scripts/newcomer.sh failed:\n${out.slice(-4000)}`);
    assert.match(out, /newcomer: all steps passed/);
    // What the README says each step shows.
    const after = (step: string) => out.slice(out.indexOf(`newcomer$ ${step}`));
    assert.match(after('darch images list'), /example\/bootable/);
    const trialBoot = after('darch vm run /tmp/first.img');
    assert.match(trialBoot, /darch demo: running "?darch example 2/, 'the trial boot runs version 2');
    assert.match(trialBoot, /darch demo: darch\.trial=1/);
    assert.match(after('darch boot rollback'), /example\/bootable:1/);
  } finally {
    await rm('/tmp/first.img', { force: true });
  }
});

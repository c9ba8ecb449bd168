/** src/lib/scratch.ts: owned scratch names the sweep finds, atomic writes, the gap-free directory swap. */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { acquireLock, bootId } from '../../src/lib/lock.js';
import { copyFileAtomic, makeWorkDir, swapDir, sweepDeadOwners, tempName, writeFileAtomic } from '../../src/lib/scratch.js';

describe('scratch', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'darch-scratch-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('names every temp file and work directory after its owner, and the sweep removes only dead owners', async () => {
    const tmp = path.join(dir, 'sweep');
    const mine = await makeWorkDir(tmp, 'disk');
    await writeFile(tempName(path.join(tmp, 'grub.cfg')), 'x');
    await mkdir(path.join(tmp, 'disk-999999999-abcdef')); // a pid that cannot exist
    await writeFile(path.join(tmp, '.tmp-999999999-abcdef.grub.cfg'), 'x');
    await writeFile(path.join(tmp, 'keep.txt'), 'x');
    assert.equal(await sweepDeadOwners(tmp), 2);
    const left = (await readdir(tmp)).sort();
    assert.ok(left.includes(path.basename(mine)));
    assert.ok(left.includes('keep.txt'));
    assert.equal(left.length, 3, left.join(' '));
  });

  it('treats names from another boot as dead even when their pid is alive now (pids repeat across boots)', async () => {
    const tmp = path.join(dir, 'boots');
    const boot = bootId();
    assert.match(boot, /^[0-9a-f]{32}$/, 'Linux gives every boot an id');
    const other = `${boot[0] === '0' ? '1' : '0'}${boot.slice(1, 8)}`;
    await mkdir(path.join(tmp, `stage-${process.pid}-${other}abcdefabcdef`), { recursive: true });
    await mkdir(path.join(tmp, `stage-${process.pid}-${boot.slice(0, 8)}abcdefabcdef`));
    assert.equal(await sweepDeadOwners(tmp), 1);
    assert.deepEqual(await readdir(tmp), [`stage-${process.pid}-${boot.slice(0, 8)}abcdefabcdef`]);
    // A lock a power cut left behind, whose pid is ours in this boot: taken over, not waited for.
    const lockFile = path.join(dir, 'boots.lock');
    await writeFile(
      lockFile,
      JSON.stringify({ pid: process.pid, host: os.hostname(), command: 'update run', since: new Date().toISOString(), boot: other.padEnd(32, '0') }),
    );
    const lock = await acquireLock(lockFile, 'the test store', 0);
    assert.equal(JSON.parse(await readFile(lockFile, 'utf8')).boot, boot, 'the lock now names this boot');
    await lock.release();
  });

  it('writes and copies atomically, leaving no temp file', async () => {
    const d = path.join(dir, 'atomic');
    await mkdir(d);
    await writeFileAtomic(path.join(d, 'a'), 'one');
    await writeFileAtomic(path.join(d, 'a'), 'two');
    await copyFileAtomic(path.join(d, 'a'), path.join(d, 'sub', 'b'));
    assert.equal(await readFile(path.join(d, 'sub', 'b'), 'utf8'), 'two');
    assert.deepEqual((await readdir(d)).sort(), ['a', 'sub']);
  });

  it('swaps a directory whole: the new content in place, nothing left beside it', async () => {
    const d = path.join(dir, 'swap');
    const final = path.join(d, 'os@1');
    const first = await makeWorkDir(d, 'hooks');
    await writeFile(path.join(first, 'f'), 'old');
    await swapDir(first, final);
    const next = await makeWorkDir(d, 'hooks');
    await writeFile(path.join(next, 'f'), 'new');
    await swapDir(next, final);
    assert.equal(await readFile(path.join(final, 'f'), 'utf8'), 'new');
    assert.deepEqual(await readdir(d), ['os@1']);
  });

  it('puts back a directory a crash left moved aside', async () => {
    const d = path.join(dir, 'heal');
    await mkdir(path.join(d, '.old.999999999.abcdef.os@1'), { recursive: true });
    await writeFile(path.join(d, '.old.999999999.abcdef.os@1', 'f'), 'old');
    assert.equal(await sweepDeadOwners(d), 0, 'the only copy is not scratch');
    const next = await makeWorkDir(d, 'hooks');
    await writeFile(path.join(next, 'f'), 'new');
    await swapDir(next, path.join(d, 'os@1'));
    assert.equal(await readFile(path.join(d, 'os@1', 'f'), 'utf8'), 'new');
    assert.deepEqual(await readdir(d), ['os@1']);
  });
});

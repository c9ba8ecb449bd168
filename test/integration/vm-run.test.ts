/**
 * `darch vm run` without booting anything: an argument that names a path is a file (and a
 * missing one says so), and a VM killed with its darch leaves only work files the
 * dead-owner sweep of `darch stage clean` and `darch images prune` removes. The VM here is
 * OVMF on a disk with nothing to boot: it never gets past the firmware, and is killed as soon
 * as its OVMF_VARS copy exists.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import { DARCH_BIN, darch, darchOk, tempDir } from '../helpers/darch.js';
import { fakeStaged } from '../helpers/fakestage.js';

test('vm run takes an argument that names a path as a file, and says when it does not exist', async (t) => {
  const root = await tempDir(t);
  for (const arg of ['vm/nosuch.img', './nosuch', 'nosuch.qcow2', '/nonexistent/disk.raw']) {
    const r = await darch(['vm', 'run', arg], { root, cwd: root });
    assert.equal(r.code, 1, arg);
    assert.match(
      r.stderr,
      new RegExp(
        `^error: ${arg.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} does not exist\\nhint: give a disk image made by \`darch disk create\`, or a staged NAME:TAG`,
      ),
      arg,
    );
    assert.doesNotMatch(r.stderr, /throw-away|is not staged/, arg);
  }
  // dir/name may be either: neither a file nor a staged image says both.
  await fakeStaged(root, ['demo/a:1']);
  const r = await darch(['vm', 'run', 'demo/nope'], { root, cwd: root });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^error: demo\/nope is neither a file nor a staged image\nhint: .*staged: demo\/a:1/);
  // A directory is not a disk.
  const d = await darch(['vm', 'run', root], { root });
  assert.match(d.stderr, /is not a disk image file or a block device/);
});

test('a killed vm run leaves its OVMF_VARS copy only to the dead-owner sweep (stage clean, images prune)', async (t) => {
  const root = await tempDir(t);
  const disk = path.join(root, 'nothing.img');
  await writeFile(disk, Buffer.alloc(1 << 20));
  const tmp = path.join(root, 'var/lib/darch/tmp');
  const vmDirs = async () => (await readdir(tmp).catch(() => [] as string[])).filter((n) => n.startsWith('vm-'));

  const killedVm = async (): Promise<string> => {
    // Its own process group, so the kill takes qemu with it, as a lost terminal would.
    const child = spawn(DARCH_BIN, ['--root', root, 'vm', 'run', disk, '--accel', 'tcg', '--no-reboot', '-m', '128'], {
      stdio: 'ignore',
      detached: true,
    });
    let dir: string | undefined;
    for (let i = 0; i < 400 && !dir; i++) {
      await sleep(50);
      for (const d of await vmDirs()) if (await stat(path.join(tmp, d, 'OVMF_VARS.fd')).catch(() => undefined)) dir = d;
    }
    process.kill(-child.pid!, 'SIGKILL');
    await new Promise((r) => child.once('close', r));
    assert.ok(dir, 'vm run copied OVMF_VARS into its work directory');
    assert.match(dir, /^vm-\d+-[0-9a-f]+$/, 'named after its owner');
    assert.ok((await vmDirs()).includes(dir), 'the kill left it behind');
    return dir;
  };

  const first = await killedVm();
  const clean = (await darchOk(['--json', 'stage', 'clean'], { root })).json();
  assert.ok(clean.tempRemoved >= 1, JSON.stringify(clean));
  assert.ok(!(await vmDirs()).includes(first), 'stage clean removed it');

  const second = await killedVm();
  const pruned = (await darchOk(['--json', 'images', 'prune'], { root })).json();
  assert.ok(pruned.tempFilesRemoved >= 1, JSON.stringify(pruned));
  assert.ok(!(await vmDirs()).includes(second), 'images prune removed it');
});

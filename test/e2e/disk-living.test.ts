/**
 * A disk that lives on, as the README tells a user to run it: made with version 1, version 2
 * added with `darch disk add`, tried with `darch boot try --disk` (no other settings), booted
 * (the trial commits itself), version 1 removed with `darch disk remove`, booted again:
 * version 2 is the default and boots, with kernel arguments changed by `darch disk kernel-args`.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { run } from '../../src/lib/proc.js';
import { busyboxBootRoot, debianKernel } from '../helpers/bootimage.js';
import { darchOk, tempDir } from '../helpers/darch.js';
import { Vm } from '../helpers/qemu.js';

// One shell, on the serial console; the example image's health check commits a trial.
const INITTAB = `::sysinit:/etc/init.d/rcS
::once:/usr/lib/darch/darch-health --commit
ttyS0::respawn:-/bin/sh
::ctrlaltdel:/sbin/reboot
`;

describe('a darch disk that lives on: disk add, trial, commit, disk remove', () => {
  let root: string;
  let disk: string;
  const ids: Record<string, string> = {};
  const cleanups: (() => Promise<void>)[] = [];

  before(async () => {
    const work = await tempDir({ after: (fn) => void cleanups.push(async () => fn()) }, 'darch-living-');
    root = path.join(work, 'root');
    const kernel = await debianKernel();
    for (const v of ['1', '2']) {
      const tree = await busyboxBootRoot(path.join(work, `tree${v}`), { kernel, version: v, hostname: `living-${v}`, extraFiles: { 'etc/inittab': INITTAB } });
      const tar = path.join(work, `v${v}.tar`);
      await run('tar', ['-C', tree, '--owner=0', '--group=0', '-cf', tar, '.']);
      await darchOk(['images', 'import', tar, `living/os:${v}`], { root });
      ids[v] = (await darchOk(['--json', 'stage', 'upload', `living/os:${v}`], { root })).json<{ id: string }>().id;
    }
    disk = path.join(work, 'disk.img');
    await darchOk(['disk', 'create', disk, 'living/os:1'], { root });
  });
  after(async () => {
    for (const c of cleanups) await c();
  });

  it('boots an added image as a trial that commits, and the committed image once the old one is removed, with new kernel arguments', async () => {
    await darchOk(['disk', 'add', disk, 'living/os:2'], { root });
    await darchOk(['boot', 'try', 'living/os:2', '--disk', disk], { root });

    let vm = Vm.disk({ name: 'disk-living-trial', disk, root });
    try {
      await vm.waitFor(/darch example: booted "?darch example 2/, 240_000);
      await vm.waitFor(`darch-commit: ${ids['2']} is good: it is now the default`, 120_000);
      const cmdline = await vm.ok('cat /proc/cmdline');
      assert.match(cmdline, new RegExp(`darch_stageid=${ids['2']}\\b`));
      assert.match(cmdline, /darch\.trial=1/);
      await vm.ok('sync');
    } finally {
      await vm.saveLog();
      await vm.stop();
    }
    const status = (await darchOk(['--json', 'boot', 'status', '--disk', disk], { root })).json();
    assert.equal(status.default.stage, ids['2']);
    assert.equal(status.previous.stage, ids['1']);

    await darchOk(['disk', 'remove', disk, 'living/os:1'], { root });
    const list = (await darchOk(['--json', 'disk', 'list', disk], { root })).json<{ images: Array<{ id: string; roles: string[] }> }>();
    assert.deepEqual(
      list.images.map((i) => [i.id, i.roles]),
      [[ids['2'], ['default']]],
    );

    // New kernel arguments without recreating the disk: GRUB's menu sets them.
    await darchOk(['disk', 'kernel-args', disk, 'console=tty0 console=ttyS0,115200 darch.living=yes'], { root });

    vm = Vm.disk({ name: 'disk-living-after-remove', disk, root });
    try {
      await vm.waitFor(/darch example: booted "?darch example 2/, 240_000);
      const cmdline = await vm.ok('cat /proc/cmdline');
      assert.match(cmdline, new RegExp(`darch_stageid=${ids['2']}\\b`));
      assert.match(cmdline, /console=ttyS0,115200 darch\.living=yes/);
      assert.doesNotMatch(cmdline, /darch\.trial=1|darch\.fell_back=1/);
    } finally {
      await vm.saveLog();
      await vm.stop();
    }
  });
});

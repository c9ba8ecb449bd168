/**
 * The whole pipeline as a user runs it: a root file system tarball (busybox + Debian's
 * kernel and modules) imported into the image store, `darch stage upload` (which adds
 * darch's universal initramfs and the hook output), `darch disk create`, and a real boot.
 */
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { run } from '../../src/lib/proc.js';
import { darchOk, tempDir } from '../helpers/darch.js';
import { debianKernel } from '../helpers/bootimage.js';
import { BOOTED, testImageTree } from '../helpers/bootfixture.js';
import { Vm } from '../helpers/qemu.js';

describe('darch stage upload → disk create → boot', () => {
  let root: string;
  let disk: string;
  let id: string;
  const cleanups: (() => Promise<void>)[] = [];

  before(async () => {
    const work = await tempDir({ after: (fn) => void cleanups.push(async () => fn()) }, 'darch-pipeline-');
    root = path.join(work, 'root');
    const tree = await testImageTree(path.join(work, 'tree'), await debianKernel(), 'S', 'staged-image');
    const tar = path.join(work, 'root.tar');
    await run('tar', ['-C', tree, '--owner=0', '--group=0', '-cf', tar, '.']);
    await darchOk(['images', 'import', tar, 'pipeline/busybox:1'], { root });
    const hooks = path.join(root, 'etc/darch/hooks');
    await mkdir(hooks, { recursive: true });
    await writeFile(path.join(hooks, 'hostname.config'), 'pipeline/*=from-stage-hook\n');
    id = (await darchOk(['--json', 'stage', 'upload', 'pipeline/busybox:1'], { root })).json<{ id: string }>().id;
    disk = path.join(work, 'disk.img');
    await darchOk(['disk', 'create', disk, '--kernel-args', 'console=ttyS0,115200 loglevel=3', '--timeout', '1'], { root });
  });
  after(async () => {
    for (const c of cleanups) await c();
  });

  it("boots what stage upload produced, with darch's initramfs and the hooks it installed", async () => {
    const vm = Vm.disk({ name: 'boot-stage-upload', disk, root });
    try {
      await vm.waitFor('darch: darch initramfs', 120_000);
      await vm.waitFor(`${BOOTED} version=S`, 120_000);
      assert.match(await vm.ok('cat /proc/cmdline'), new RegExp(`darch_stageid=${id}\\b`));
      assert.equal((await vm.ok('hostname')).trim(), 'from-stage-hook');
      assert.match(await vm.ok(`awk '$2=="/"{print $1}' /proc/mounts`), /^overlay$/m);
    } finally {
      await vm.stop();
    }
  });
});

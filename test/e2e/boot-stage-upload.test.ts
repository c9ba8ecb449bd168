/**
 * The whole pipeline as a user runs it: a root file system tarball (busybox + Debian's
 * kernel and modules) imported into the image store, `darch stage upload` (which adds
 * darch's universal initramfs and the hook output), `darch disk create`, and a real boot.
 *
 * The same image staged again with `--verity` (dm-verity, docs/TRUST.md) boots as a trial
 * through its hash tree; with one bit of its squashfs flipped on the disk, the initramfs
 * refuses it, the trial falls back to the first image, and `darch boot status` says why.
 */
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { run } from '../../src/lib/proc.js';
import { darchOk, tempDir } from '../helpers/darch.js';
import { debianKernel } from '../helpers/bootimage.js';
import { BOOTED, testImageTree } from '../helpers/bootfixture.js';
import { Vm } from '../helpers/qemu.js';
import { flipBitInDarchPartition } from '../helpers/trialimages.js';

describe('darch stage upload → disk create → boot', () => {
  let root: string;
  let disk: string;
  let id: string;
  let verityId: string;
  let roothash: string;
  let work: string;
  const cleanups: (() => Promise<void>)[] = [];

  before(async () => {
    work = await tempDir({ after: (fn) => void cleanups.push(async () => fn()) }, 'darch-pipeline-');
    root = path.join(work, 'root');
    const tree = await testImageTree(path.join(work, 'tree'), await debianKernel(), 'S', 'staged-image');
    const tar = path.join(work, 'root.tar');
    await run('tar', ['-C', tree, '--owner=0', '--group=0', '-cf', tar, '.']);
    await darchOk(['images', 'import', tar, 'pipeline/busybox:1'], { root });
    const hooks = path.join(root, 'etc/darch/hooks');
    await mkdir(hooks, { recursive: true });
    await writeFile(path.join(hooks, 'hostname.config'), 'pipeline/*=from-stage-hook\n');
    id = (await darchOk(['--json', 'stage', 'upload', 'pipeline/busybox:1'], { root })).json<{ id: string }>().id;
    const v = (await darchOk(['--json', 'stage', 'upload', 'pipeline/busybox:1', '--verity', '-t', 'pipeline/verity:1'], { root })).json<{
      id: string;
      dir: string;
    }>();
    verityId = v.id;
    roothash = JSON.parse(await readFile(path.join(v.dir, 'image.json'), 'utf8')).verity.roothash;
    disk = path.join(work, 'disk.img');
    // The first tag is the disk's default.
    await darchOk(['disk', 'create', disk, 'pipeline/busybox:1', 'pipeline/verity:1', '--kernel-args', 'console=ttyS0,115200 loglevel=3', '--timeout', '1'], {
      root,
    });
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

  async function diskCopy(name: string): Promise<string> {
    const d = path.join(work, `${name}.img`);
    await run('cp', ['--sparse=always', disk, d]);
    return d;
  }

  it('boots an image staged with --verity through dm-verity (as a trial)', async () => {
    const d = await diskCopy('verity-good');
    await darchOk(['boot', 'try', 'pipeline/verity:1', '--disk', d], { root });
    const vm = Vm.disk({ name: 'boot-stage-upload-verity', disk: d, root });
    try {
      await vm.waitFor(`darch: dm-verity: rootfs.squash is checked against root hash ${roothash}`, 180_000);
      await vm.waitFor(`${BOOTED} version=S`, 120_000);
      const cmdline = await vm.ok('cat /proc/cmdline');
      assert.match(cmdline, new RegExp(`darch_stageid=${verityId}\\b`));
      assert.match(cmdline, /darch\.trial=1/);
      // The lower layer of the root is the verity device, not a loop device on the file.
      assert.match(await vm.ok(`awk '$2=="/run/darch/lower"{print $1, $3}' /proc/mounts`), /^\/dev\/mapper\/darch-root squashfs$/m);
      assert.equal((await vm.ok('cat /sys/block/dm-0/dm/name')).trim(), 'darch-root');
    } finally {
      await vm.stop();
    }
  });

  it('a flipped bit in the verity image stops its trial boot; the machine falls back and boot status says why', async () => {
    const d = await diskCopy('verity-flipped');
    await darchOk(['boot', 'try', 'pipeline/verity:1', '--tries', '1', '--disk', d], { root });
    // Byte 8 is the squashfs superblock's creation time: without dm-verity nothing would notice.
    await flipBitInDarchPartition(d, `/stage/live/${verityId}/rootfs.squash`, 8);
    const vm = Vm.disk({ name: 'boot-stage-upload-verity-flipped', disk: d, root, failOn: null });
    try {
      await vm.waitFor(/rootfs\.squash failed its dm-verity check[^]*trial boot failed: rebooting/, 180_000);
      await vm.waitFor(`${BOOTED} version=S`, 240_000);
      const cmdline = await vm.ok('cat /proc/cmdline');
      assert.match(cmdline, new RegExp(`darch_stageid=${id}\\b`), 'the first image came back');
      assert.doesNotMatch(cmdline, /darch\.trial=1/);
    } finally {
      await vm.stop();
    }
    const s = (await darchOk(['boot', 'status', '--disk', d, '--json'])).json<any>();
    assert.equal(s.fellBack, true);
    assert.equal(s.fellBackFrom, verityId);
    assert.equal(s.failure?.where, 'initramfs');
    assert.match(s.failure?.reason ?? '', /failed its dm-verity check/);
    assert.deepEqual(s.bad, [verityId]);
  });
});

/**
 * Real boots in qemu: a busybox image with Debian's kernel and modules, staged, put on a
 * darch disk, booted through OVMF and GRUB with darch's universal initramfs. Everything is
 * proven from the serial console of the running guest.
 */
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { darchOk, tempDir } from '../helpers/darch.js';
import { debianKernel, type TestKernel } from '../helpers/bootimage.js';
import { BOOTED, testImageTree } from '../helpers/bootfixture.js';
import { Vm } from '../helpers/qemu.js';
import { stageTree } from '../helpers/staged.js';

// Quiet kernel so its messages do not interleave with what the guest shell prints.
const KARGS = 'console=ttyS0,115200 loglevel=3';

describe('booting staged images from a darch disk (OVMF → GRUB → darch initramfs)', () => {
  let root: string;
  let work: string;
  let disk: string;
  let kernel: TestKernel;
  let idA: string;
  let idB: string;
  const cleanups: (() => Promise<void>)[] = [];

  before(async () => {
    work = await tempDir({ after: (fn) => void cleanups.push(async () => fn()) }, 'darch-boot-');
    root = path.join(work, 'root');
    kernel = await debianKernel();
    idA = await stageTree(root, await testImageTree(path.join(work, 'a'), kernel, 'A', 'image-a'), ['test/a:1']);
    idB = await stageTree(root, await testImageTree(path.join(work, 'b'), kernel, 'B', 'image-b'), ['test/b:1']);
    // Hooks as a machine owner configures them: a hostname for every image, an fstab for test/a only.
    const hooks = path.join(root, 'etc/darch/hooks');
    await mkdir(hooks, { recursive: true });
    await writeFile(path.join(hooks, 'hostname.config'), '*=hooked-host\n');
    await writeFile(path.join(hooks, 'fstab.config'), 'test/a:*=a_fstab\n');
    await writeFile(path.join(hooks, 'a_fstab'), 'hooked /mnt tmpfs size=1m 0 0\n');
    await darchOk(['hooks', 'apply', '--no-sync'], { root });
    disk = path.join(work, 'disk.img');
    await darchOk(['disk', 'create', disk, 'test/a:1', 'test/b:1', '--kernel-args', KARGS, '--timeout', '1'], { root });
  });
  after(async () => {
    for (const c of cleanups) await c();
  });

  it('boots the default image: its id on the command line, / an overlay on tmpfs, hooks applied, writes gone after a reboot', async () => {
    const vm = Vm.disk({ name: 'boot-busybox-default', disk, root });
    try {
      await vm.waitFor(`${BOOTED} version=A`, 120_000);
      const cmdline = await vm.ok('cat /proc/cmdline');
      assert.match(cmdline, new RegExp(`darch_stageid=${idA}\\b`));
      assert.match(cmdline, /darch_dir=UUID=[0-9a-f-]{36}:\/stage\/live\//);

      const rootLine = await vm.ok(`awk '$2=="/"' /proc/mounts`);
      assert.match(rootLine, /^overlay \/ overlay .*upperdir=\/run\/darch\/rw\/upper/m);
      assert.equal((await vm.ok(`awk '$2=="/run/darch/rw"{print $3}' /proc/mounts`)).trim(), 'tmpfs');
      assert.equal((await vm.ok(`awk '$2=="/run/darch/lower"{print $3}' /proc/mounts`)).trim(), 'squashfs');

      // hostname hook (the image itself says image-a), fstab hook (mounted by `mount -a`).
      assert.equal((await vm.ok('hostname')).trim(), 'hooked-host');
      assert.equal((await vm.ok('cat /etc/fstab')).trim(), 'hooked /mnt tmpfs size=1m 0 0');
      assert.match(await vm.ok(`awk '$2=="/mnt"' /proc/mounts`), /^hooked \/mnt tmpfs/);
      const savedId = (await readFile(path.join(root, 'etc/darch/machine-id'), 'utf8')).trim();
      assert.equal((await vm.ok('cat /etc/machine-id')).trim(), savedId);

      await vm.ok('echo precious > /root/written-in-first-boot && sync && cat /root/written-in-first-boot');
      const mark = vm.log.length;
      vm.send('reboot -f\n');
      await vm.waitFor(`${BOOTED} version=A`, 120_000, mark);
      const again = await vm.sh('cat /root/written-in-first-boot');
      assert.notEqual(again.code, 0, 'a file written in the previous boot must be gone');
      assert.match(await vm.ok('cat /proc/cmdline'), new RegExp(`darch_stageid=${idA}\\b`));
    } finally {
      await vm.stop();
    }
  });

  it('boots the second image once it is made the default, with its own hooks; the first still boots with `darch vm run`', async () => {
    await darchOk(['disk', 'set-default', disk, 'test/b:1'], { root });
    const vm = Vm.disk({ name: 'boot-busybox-second', disk, root });
    try {
      await vm.waitFor(`${BOOTED} version=B`, 120_000);
      assert.match(await vm.ok('cat /proc/cmdline'), new RegExp(`darch_stageid=${idB}\\b`));
      assert.equal((await vm.ok('hostname')).trim(), 'hooked-host');
      // fstab.config matches only test/a: test/b keeps its own fstab.
      assert.match(await vm.ok('cat /etc/fstab'), /the image's own fstab/);
    } finally {
      await vm.stop();
    }
    // The first image still boots, also the way a newcomer tries one: `darch vm run NAME:TAG`.
    const vm2 = Vm.staged({ name: 'boot-busybox-vm-run-staged', staged: 'test/a:1', root, kernelArgs: KARGS });
    try {
      await vm2.waitFor(`${BOOTED} version=A`, 120_000);
      assert.match(await vm2.ok('cat /proc/cmdline'), new RegExp(`darch_stageid=${idA}\\b`));
    } finally {
      await vm2.stop();
    }
  });
});

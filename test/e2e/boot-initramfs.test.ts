/**
 * darch's universal initramfs on its own: the kernel and initramfs of a staged image booted
 * directly by qemu (no firmware, no GRUB, so each boot is quick), against a darch disk.
 * Covers what GRUB boots do not: darch_ram=1, Darch's break points, and the failure paths
 * (a clear message, a rescue shell, or a reboot when panic= asks for one).
 */
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { darchOk, tempDir } from '../helpers/darch.js';
import { debianKernel } from '../helpers/bootimage.js';
import { BOOTED, testImageTree } from '../helpers/bootfixture.js';
import { Vm } from '../helpers/qemu.js';
import { stageTree } from '../helpers/staged.js';

describe('the universal initramfs (kernel booted directly)', () => {
  let disk: string;
  let kernel: string;
  let initrd: string;
  let base: string;
  const cleanups: (() => Promise<void>)[] = [];

  before(async () => {
    const work = await tempDir({ after: (fn) => void cleanups.push(async () => fn()) }, 'darch-initramfs-');
    const root = path.join(work, 'root');
    const k = await debianKernel();
    const id = await stageTree(root, await testImageTree(path.join(work, 'img'), k, 'R', 'ram-test'), ['test/r:1']);
    // A hook whose run phase fails: reported on the console, and the boot goes on.
    const broken = path.join(root, 'etc/darch/hooks/broken');
    await mkdir(broken, { recursive: true });
    await writeFile(
      path.join(broken, 'hook'),
      'install() { echo x > "$DARCH_HOOK_DEST_DIR/x"; }\nrun() { echo "broken hook ran"; return 3; }\nhelp() { :; }\n',
    );
    await darchOk(['hooks', 'apply', '--no-sync'], { root });
    disk = path.join(work, 'disk.img');
    const created = (await darchOk(['--json', 'disk', 'create', disk], { root })).json<{ darchUuid: string }>();
    const dir = path.join(root, 'var/lib/darch/stage/live', id);
    kernel = path.join(dir, 'vmlinuz');
    initrd = path.join(dir, 'initrd.img');
    base = `console=ttyS0,115200 loglevel=3 darch_rootfs=rootfs.squash darch_dir=UUID=${created.darchUuid}:/stage/live/${id} darch_stageid=${id} darch_hooks=hooks/test+r@1`;
  });
  after(async () => {
    for (const c of cleanups) await c();
  });

  it('darch_ram=1 copies the squashfs to RAM and lets go of the stage partition; a failing hook is reported and the boot goes on', async () => {
    const vm = Vm.kernel({ name: 'initramfs-ram', kernel, initrd, disk, append: `${base} darch_ram=1` });
    try {
      await vm.waitFor('copying rootfs.squash to RAM', 60_000);
      await vm.waitFor('broken hook ran', 60_000);
      await vm.waitFor('darch: hook broken: FAILED (exit 3), continuing', 10_000);
      await vm.waitFor(`${BOOTED} version=R`, 60_000);
      assert.equal((await vm.ok(`awk '$2=="/run/darch/source"' /proc/mounts | wc -l`)).trim(), '0');
      assert.match(await vm.ok(`awk '$2=="/run/darch/ram"{print $3}' /proc/mounts`), /tmpfs/);
      assert.match(await vm.ok('cat /run/darch/boot.env'), /ram=1/);
    } finally {
      await vm.stop();
    }
  });

  it('stops at a Darch break point with a shell and boots on when it exits', async () => {
    const vm = Vm.kernel({ name: 'initramfs-break', kernel, initrd, disk, append: `${base} break=darch-prehooks` });
    try {
      await vm.waitFor('break point darch-prehooks', 60_000);
      // The overlay is up but hooks have not run: the image's own hostname is still there.
      assert.equal((await vm.ok('cat /newroot/etc/hostname')).trim(), 'ram-test');
      vm.send('exit\n');
      await vm.waitFor(`${BOOTED} version=R`, 60_000);
    } finally {
      await vm.stop();
    }
  });

  it('a missing stage device: a clear message and a rescue shell', async () => {
    const bad = base.replace(/darch_dir=UUID=[0-9a-f-]+:/, 'darch_dir=UUID=00000000-0000-4000-8000-000000000000:');
    const vm = Vm.kernel({ failOn: null, name: 'initramfs-missing-device', kernel, initrd, disk, append: `${bad} darch_timeout=2` });
    try {
      await vm.waitFor('darch: ERROR: stage device UUID=00000000-0000-4000-8000-000000000000 did not appear within 2s', 60_000);
      await vm.waitFor('darch: hint:', 5_000);
      await vm.waitFor('rescue shell', 5_000);
      assert.equal((await vm.ok('echo rescue-$((2+3))')).trim(), 'rescue-5');
    } finally {
      await vm.stop();
    }
  });

  it('a missing squashfs with panic=1 reboots instead of waiting at a shell', async () => {
    const vm = Vm.kernel({
      failOn: null,
      name: 'initramfs-panic',
      kernel,
      initrd,
      disk,
      append: `${base.replace('darch_rootfs=rootfs.squash', 'darch_rootfs=gone.squash')} panic=1`,
    });
    try {
      await vm.waitFor('darch: ERROR: gone.squash not found', 60_000);
      await vm.waitFor('rebooting in 1s', 5_000);
      // qemu runs with -no-reboot: the guest's reboot ends the VM.
      assert.equal(typeof (await vm.waitExit(30_000)), 'number');
    } finally {
      await vm.stop();
    }
  });
});

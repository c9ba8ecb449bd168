/**
 * SLOW (about 8.5 minutes under TCG, 3 boots; the first run also debootstraps into /var/cache/darch-test):
 * a Debian bookworm image whose initramfs is made by dracut (059) instead of initramfs-tools,
 * made bootable by darch's dracut module (`darch initramfs dracut-install`: 90darch, selected
 * by boot=darch), staged with its own initramfs and put on a darch disk. The first boot is
 * the layout of docs/BOOT.md's encrypted stage partition: systemd-boot and the kernels on the
 * ESP, the darch partition inside LUKS2; dracut's own crypt module asks for the passphrase on
 * the serial console (rd.luks.uuid=), the test types it, and darch's module mounts the
 * squashfs from the unlocked partition; systemd says the system is running, on an overlay
 * root with the hooks applied. Then on a GRUB disk: a break point (break=darch-prelocal) stops
 * in dracut's emergency shell and exiting it goes on; a missing squashfs stops there too,
 * and on a trial is recorded and rebooted, so GRUB falls back to the default, which boots
 * to a running system too.
 */
import assert from 'node:assert/strict';
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { run } from '../../src/lib/proc.js';
import { darchOk, tempDir } from '../helpers/darch.js';
import { addTestConsole, debianDracutTree } from '../helpers/bootimage.js';
import { Vm } from '../helpers/qemu.js';
import { stageTree, stageVariant } from '../helpers/staged.js';
import { removeFromDarchPartition } from '../helpers/trialimages.js';
import { encryptDarchPartition, LUKS_PASSPHRASE } from '../helpers/luks.js';

const LUKS_UUID = '5d1e2c3b-6a7f-4e80-9b1c-2d3e4f506172';

/** dracut in a chroot needs /proc (/proc/mounts, /dev/fd), /sys and /dev. */
async function dracutIn(tree: string, kver: string): Promise<void> {
  const mounted: string[] = [];
  try {
    for (const d of ['proc', 'sys', 'dev']) {
      await run('mount', ['--bind', `/${d}`, path.join(tree, d)]);
      mounted.unshift(path.join(tree, d));
    }
    await run('nice', ['-n', '10', 'chroot', tree, 'dracut', '--force', '--kver', kver]);
  } finally {
    for (const m of mounted) await run('umount', ['-l', m], { allowFailure: true });
  }
}

describe("a Debian image with systemd boots through its own dracut initramfs and darch's module", () => {
  let root: string;
  let disk: string;
  let luksDisk: string;
  let id: string;
  let nosquash: string;
  let lsinitrd: string;
  const cleanups: (() => Promise<void>)[] = [];

  before(async () => {
    const work = await tempDir({ after: (fn) => void cleanups.push(async () => fn()) }, 'darch-dracut-');
    root = path.join(work, 'root');
    const cached = await debianDracutTree();
    const tree = path.join(work, 'tree');
    await run('cp', ['-a', cached, tree]);
    // What a recipe for such an image does: put darch's module in, rebuild the initramfs.
    await darchOk(['initramfs', 'dracut-install', tree]);
    // Debian's dracut is generic (hostonly=no), but name what a qemu virtio machine needs.
    await writeFile(path.join(tree, 'etc/dracut.conf.d/91-darch-test.conf'), 'add_drivers+=" virtio_pci virtio_blk ext4 squashfs overlay loop vfat "\n');
    const kver = (await readdir(path.join(tree, 'lib/modules')))[0]!;
    await dracutIn(tree, kver);
    lsinitrd = (await run('chroot', [tree, 'lsinitrd', `/boot/initrd.img-${kver}`])).stdout;
    await writeFile(path.join(tree, 'etc/hostname'), 'debian-image\n');
    // A root shell on the serial console, and one line telling the test what systemd thinks.
    await addTestConsole(tree);
    const hooks = path.join(root, 'etc/darch/hooks');
    await mkdir(hooks, { recursive: true });
    await writeFile(path.join(hooks, 'hostname.config'), 'debian/*=debian-hooked\n');
    id = await stageTree(root, tree, ['debian/dracut:1'], {
      initramfs: 'image',
      kernelparams: 'boot=darch',
      exclude: ['var/cache/apt/archives'],
    });
    // The same image, for a trial whose squashfs is gone from the disk.
    nosquash = await stageVariant(root, id, 'nosquash', 'debian/dracut:nosquash', 'boot=darch');
    await darchOk(['hooks', 'apply', '--no-sync'], { root });
    disk = path.join(work, 'disk.img');
    await darchOk(['disk', 'create', disk, 'debian/dracut:1', 'debian/dracut:nosquash', '--kernel-args', 'console=ttyS0,115200', '--timeout', '1'], { root });
    // docs/BOOT.md's encrypted layout, as a user makes it: systemd-boot, dracut told which LUKS device to unlock.
    luksDisk = path.join(work, 'luks.img');
    await darchOk(
      [
        'disk',
        'create',
        luksDisk,
        'debian/dracut:1',
        '--bootloader',
        'systemd-boot',
        '--kernel-args',
        `console=ttyS0,115200 rd.luks.uuid=${LUKS_UUID}`,
        '--timeout',
        '0',
      ],
      { root },
    );
    await encryptDarchPartition(luksDisk, { uuid: LUKS_UUID, passphrase: LUKS_PASSPHRASE, work });
  });
  after(async () => {
    for (const c of cleanups) await c();
  });

  it('dracut carries the module: its hooks, darch-lib.sh and the drivers', () => {
    assert.match(lsinitrd, /^darch$/m, 'lsinitrd lists the darch dracut module');
    assert.match(lsinitrd, /hooks\/cmdline\/90-parse-darch\.sh/);
    assert.match(lsinitrd, /hooks\/mount\/90-mount-darch\.sh/);
    // Under systemd-boot, systemd's gpt-auto generator would look for a root partition of its own.
    assert.match(lsinitrd, /etc\/systemd\/system-generators\/systemd-gpt-auto-generator/);
    assert.match(lsinitrd, /lib\/darch\/darch-lib\.sh/);
    assert.match(lsinitrd, /lib\/darch\/darch-record\.sh/);
    assert.match(lsinitrd, /fs\/squashfs\/squashfs\.ko/);
    assert.match(lsinitrd, /fs\/overlayfs\/overlay\.ko/);
  });

  it('unlocks a LUKS stage partition at the passphrase prompt, then reaches a running (or degraded) system on an overlay root, with the hooks applied', async () => {
    assert.match(lsinitrd, /^crypt$/m, "dracut's crypt module is in the initramfs");
    const vm = Vm.disk({ name: 'boot-dracut-luks', disk: luksDisk, root, memoryMiB: 1024 });
    try {
      // systemd-cryptsetup, through the password agent on the console; nothing of darch's before it.
      const prompt = await vm.waitFor(/Please enter passphrase for disk [^\n]*:/, 420_000);
      assert.doesNotMatch(vm.log.slice(0, prompt.end), /darch: ERROR/);
      await new Promise((r) => setTimeout(r, 1000));
      vm.send(`${LUKS_PASSPHRASE}\n`);
      const state = await vm.waitFor(/DARCH-SYSTEM-STATE: (\w+)/, 420_000, prompt.end);
      assert.match(state.match[1]!, /^(running|degraded)$/);
      await vm.waitFor(/debian-hooked login: root \(automatic login\)|root@debian-hooked/, 60_000);
      await new Promise((r) => setTimeout(r, 2000));
      assert.match(await vm.ok('cat /proc/cmdline'), new RegExp(`boot=darch .*darch_stageid=${id}\\b`));
      assert.match(await vm.ok(`awk '$2=="/"{print $1, $3}' /proc/mounts`), /^overlay overlay$/m);
      assert.match(await vm.ok(`awk '$2=="/run/darch/lower"{print $3}' /proc/mounts`), /^squashfs$/m);
      const env = await vm.ok('cat /run/darch/boot.env');
      assert.match(env, new RegExp(`^stageid=${id}$`, 'm'));
      // The squashfs came from the unlocked mapping: device-mapper says it is that LUKS2 device.
      const dev = /^device=(.+)$/m.exec(env)?.[1];
      assert.ok(dev, `boot.env names the stage device: ${env}`);
      assert.match(
        await vm.ok(`cat /sys/class/block/$(basename $(readlink -f ${dev}))/dm/uuid`),
        new RegExp(`^CRYPT-LUKS2-${LUKS_UUID.replace(/-/g, '')}-`, 'm'),
      );
      // On the console, from dracut's mount hook (darch_log writes to /dev/console).
      assert.match(vm.text, /darch: hook hostname: ok/);
      assert.equal((await vm.ok('hostname')).trim(), 'debian-hooked');
      assert.match(await vm.ok('systemctl is-system-running'), /running|degraded/);
    } finally {
      await vm.stop();
    }
  });

  it("not a trial: a break point stops in dracut's emergency shell and exiting it goes on; a missing squashfs stops there too, never a reboot", async () => {
    const d = `${disk}.rescue`;
    await run('cp', ['--sparse=always', disk, d]);
    await darchOk(['disk', 'set-default', d, 'debian/dracut:nosquash']);
    await darchOk(['disk', 'kernel-args', d, 'console=ttyS0,115200 break=darch-prelocal']);
    await removeFromDarchPartition(d, `/stage/live/${nosquash}/rootfs.squash`);
    const vm = await Vm.qemu({ name: 'boot-dracut-rescue', disk: d, memoryMiB: 1024, noReboot: true });
    try {
      // break=darch-prelocal: before darch touches the stage device, in dracut's emergency shell
      // (sulogin: the initramfs has no root password, so Enter gives the shell).
      const stop = await vm.waitFor(
        /darch: break point darch-prelocal: exit the shell to continue booting[^]*Entering emergency mode[^]*Press Enter for maintenance/,
        300_000,
      );
      assert.doesNotMatch(vm.log.slice(0, stop.end), /darch: ERROR/);
      await new Promise((r) => setTimeout(r, 1000));
      vm.send('\n');
      await new Promise((r) => setTimeout(r, 3000));
      vm.send('echo "DARCH-SHELL-$((6 * 7))"\n');
      const shell = await vm.waitFor(/^DARCH-SHELL-42/m, 60_000, stop.end);
      vm.send('exit\n');
      const failed = await vm.waitFor(/darch: ERROR: rootfs\.squash not found[^]*darch: starting a rescue shell/, 300_000, shell.end);
      // dracut's emergency service owns the console again (sulogin).
      await vm.waitFor(/Entering emergency mode/, 60_000, failed.end);
      assert.doesNotMatch(vm.text, /trial boot failed|rebooting/);
    } finally {
      await vm.stop();
      await rm(d, { force: true });
    }
  });

  it('a trial whose squashfs is gone: the module records why and reboots (no rescue shell), and the default boots', async () => {
    await darchOk(['boot', 'try', 'debian/dracut:nosquash', '--tries', '1', '--disk', disk], { root });
    await removeFromDarchPartition(disk, `/stage/live/${nosquash}/rootfs.squash`);
    const vm = await Vm.qemu({ name: 'boot-dracut-trial-nosquash', disk, memoryMiB: 1024 });
    try {
      const failed = await vm.waitFor(/darch: ERROR: rootfs\.squash not found[^]*trial boot failed: rebooting in \d+s/, 300_000);
      const state = await vm.waitFor(/DARCH-SYSTEM-STATE: (\w+)/, 420_000, failed.end);
      assert.match(state.match[1]!, /^(running|degraded)$/);
      assert.doesNotMatch(vm.text, /starting a rescue shell|Entering emergency mode/);
    } finally {
      await vm.stop();
    }
    const s = (await darchOk(['boot', 'status', '--disk', disk, '--json'])).json() as {
      default: { stage: string };
      trial: unknown;
      fellBack: boolean;
      failure: { stage: string; where: string; reason: string } | null;
    };
    assert.equal(s.default.stage, id);
    assert.equal(s.trial, null);
    assert.equal(s.fellBack, true);
    assert.equal(s.failure?.stage, nosquash);
    assert.equal(s.failure?.where, 'initramfs');
    assert.match(s.failure?.reason ?? '', /rootfs\.squash not found/);
  });
});

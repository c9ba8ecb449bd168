/**
 * SLOW (about 3 minutes; the first run also debootstraps into /var/cache/darch-test): a
 * Debian bookworm image with systemd and its own initramfs-tools initramfs, made bootable
 * by darch's initramfs-tools hook (boot=darch), staged, put on a darch disk and booted
 * through OVMF and GRUB until systemd says the system is running.
 */
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { run } from '../../src/lib/proc.js';
import { darchOk, tempDir } from '../helpers/darch.js';
import { debianSystemdTree } from '../helpers/bootimage.js';
import { Vm } from '../helpers/qemu.js';
import { stageTree } from '../helpers/staged.js';

describe('a Debian image with systemd boots through initramfs-tools and darch\'s hook', () => {
  let root: string;
  let disk: string;
  let id: string;
  const cleanups: (() => Promise<void>)[] = [];

  before(async () => {
    const work = await tempDir({ after: (fn) => void cleanups.push(async () => fn()) }, 'darch-debian-');
    root = path.join(work, 'root');
    const cached = await debianSystemdTree();
    const tree = path.join(work, 'tree');
    await run('cp', ['-a', cached, tree]);
    // What a recipe for such an image does: add darch's hook, rebuild the initramfs.
    await darchOk(['initramfs', 'tools-install', tree], { root });
    await run('chroot', [tree, 'update-initramfs', '-u', '-k', 'all']);
    await writeFile(path.join(tree, 'etc/hostname'), 'debian-image\n');
    // A root shell on the serial console, and one line telling the test what systemd thinks.
    const getty = path.join(tree, 'etc/systemd/system/serial-getty@ttyS0.service.d');
    await mkdir(getty, { recursive: true });
    await writeFile(path.join(getty, 'autologin.conf'), '[Service]\nExecStart=\nExecStart=-/sbin/agetty --autologin root --noclear %I 115200 linux\n');
    await writeFile(
      path.join(tree, 'etc/systemd/system/darch-test-report.service'),
      '[Unit]\nDescription=report the system state on the console\n[Service]\nType=simple\nExecStart=/bin/sh -c \'echo "DARCH-SYSTEM-STATE: $(systemctl is-system-running --wait)" >/dev/ttyS0\'\n[Install]\nWantedBy=multi-user.target\n',
    );
    await run('chroot', [tree, 'systemctl', 'enable', 'darch-test-report.service']);
    const hooks = path.join(root, 'etc/darch/hooks');
    await mkdir(hooks, { recursive: true });
    await writeFile(path.join(hooks, 'hostname.config'), 'debian/*=debian-hooked\n');
    id = await stageTree(root, tree, ['debian/systemd:1'], { initramfs: 'image', kernelparams: 'boot=darch', exclude: ['var/cache/apt/archives'] });
    await darchOk(['hooks', 'apply', '--no-sync'], { root });
    disk = path.join(work, 'disk.img');
    await darchOk(['disk', 'create', disk, '--kernel-args', 'console=ttyS0,115200', '--timeout', '1'], { root });
  });
  after(async () => {
    for (const c of cleanups) await c();
  });

  it('reaches a running (or degraded) system, on an overlay root, with the hooks applied', async () => {
    const vm = Vm.disk({ name: 'boot-debian-systemd', disk, root, memoryMiB: 1024 });
    try {
      await vm.waitFor(/Reached target .*Multi-User System/, 300_000);
      const state = await vm.waitFor(/DARCH-SYSTEM-STATE: (\w+)/, 180_000);
      assert.match(state.match[1]!, /^(running|degraded)$/);
      await vm.waitFor(/debian-hooked login: root \(automatic login\)|root@debian-hooked/, 60_000);
      await new Promise((r) => setTimeout(r, 2000));
      assert.match(await vm.ok('cat /proc/cmdline'), new RegExp(`boot=darch .*darch_stageid=${id}\\b`));
      assert.match(await vm.ok(`awk '$2=="/"{print $1, $3}' /proc/mounts`), /^overlay overlay$/m);
      assert.equal((await vm.ok('hostname')).trim(), 'debian-hooked');
      assert.match(await vm.ok('systemctl is-system-running'), /running|degraded/);
    } finally {
      await vm.stop();
    }
  });
});

/** `darch doctor`: which external tools and kernel features this machine has, and what each enables. */
import { access, readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { emit, table } from '../output.js';
import { run, which } from '../../lib/proc.js';
import { ui } from '../ui.js';
import { probeBuilders } from '../../build/select.js';
import { rootlessChecks } from '../../build/rootless.js';
import type { ContextFactory } from '../globals.js';

interface Check {
  name: string;
  ok: boolean;
  detail: string;
  needed: string;
}

const TOOLS: Array<[string, string, string[]]> = [
  ['buildah', 'building recipes (default builder)', ['--version']],
  ['podman', 'building recipes (alternative builder)', ['--version']],
  ['docker', 'building recipes (alternative builder)', ['--version']],
  ['skopeo', 'interop checks with other container tools', ['--version']],
  ['umoci', 'interop checks with other container tools', ['--version']],
  ['tar2sqfs', 'staging images as squashfs', ['--version']],
  ['mksquashfs', 'staging images as squashfs (fallback)', ['-version']],
  ['busybox', 'the example image and the universal initramfs', ['--help']],
  ['zstd', 'deltas (`darch delta`) and zstd-compressed kernel modules (.ko.zst) in the universal initramfs', ['--version']],
  ['sqfs2tar', 'applying deltas: reading back the staged base (`darch delta apply`)', ['--version']],
  ['qemu-system-x86_64', '`darch vm run` and boot tests', ['--version']],
  ['grub-mkstandalone', 'bootable disks (UEFI GRUB)', ['--version']],
  ['grub-editenv', 'boot state (trial boots, fallback)', ['--version']],
  ['mformat', 'bootable disks without loop devices (ESP)', ['--version']],
  ['mkfs.ext4', 'bootable disks without loop devices (stage partition)', ['-V']],
  ['sfdisk', 'bootable disks (GPT)', ['--version']],
  ['debugfs', '`darch disk add|remove` and the boot state of disks (darch partition)', ['-V']],
  ['e2fsck', 'repairing a disk after an interrupted `darch disk add|remove`', ['-V']],
  ['veritysetup', 'staging with dm-verity (`stage upload --verity`, stage.verity)', ['--version']],
  ['dmsetup', "opening dm-verity roots in darch's initramfs", ['--version']],
  ['docker-registry', 'registry tests on 127.0.0.1', ['--version']],
];

export function registerDoctor(doctor: Command, ctx: ContextFactory): void {
  doctor.action(async (_o: unknown, cmd: Command) => {
    const c = await ctx(cmd);
    const checks: Check[] = [];
    for (const [tool, needed, args] of TOOLS) {
      const p = await which(tool);
      let detail = 'not installed';
      if (p) {
        const v = await run(tool, args, { allowFailure: true });
        detail = ((v.stdout || v.stderr).split('\n').find((l) => l.trim()) ?? p).trim().slice(0, 60);
      }
      checks.push({ name: tool, ok: Boolean(p), detail, needed });
    }
    // Installed is not usable: docker needs its daemon, podman its runtime.
    for (const p of await probeBuilders(c.paths)) {
      checks.push({ name: `builder: ${p.kind}`, ok: p.usable, detail: p.detail.slice(0, 60), needed: '`darch build --builder ' + p.kind + '`' });
    }
    const fs = await readFile('/proc/filesystems', 'utf8').catch(() => '');
    for (const f of ['squashfs', 'overlay']) {
      checks.push({
        name: `kernel: ${f}`,
        ok: fs.includes(`\t${f}\n`),
        detail: fs.includes(`\t${f}\n`) ? 'available' : 'not loaded (modprobe it)',
        needed: 'booting staged images on this machine',
      });
    }
    const kvm = await access('/dev/kvm').then(
      () => true,
      () => false,
    );
    checks.push({ name: 'kvm', ok: kvm, detail: kvm ? '/dev/kvm present (probed at use)' : 'absent: VMs use TCG', needed: 'fast `darch vm run`' });
    // Building as a normal user: what buildah's user namespace needs.
    const user = process.getuid?.() !== 0;
    for (const r of await rootlessChecks()) {
      checks.push({
        name: `rootless: ${r.name}`,
        ok: r.ok || !user,
        detail: !user && !r.ok ? 'not needed as root' : r.ok ? r.detail : `${r.detail}; fix (as root): ${r.fix}`,
        needed: 'building as a normal user',
      });
    }
    checks.push({ name: 'mode', ok: true, detail: `${c.paths.mode} (state in ${c.paths.stateDir})`, needed: 'where darch keeps things' });
    await emit({ checks }, ({ checks: l }) =>
      table(
        ['CHECK', 'OK', 'DETAIL', 'NEEDED FOR'],
        l.map((x) => [x.name, x.ok ? ui.colors.green('yes') : ui.colors.yellow('no'), x.detail, x.needed]),
      ),
    );
  });
}

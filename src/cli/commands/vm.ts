/** `darch vm run`: try a staged image or a darch disk in qemu before it touches hardware. */
import { mkdir, rm, stat } from 'node:fs/promises';
import { makeWorkDir } from '../../lib/scratch.js';
import path from 'node:path';
import type { Command } from 'commander';
import { Option } from 'commander';
import { DarchError } from '../../lib/errors.js';
import { ui } from '../../lib/ui.js';
import { createDisk } from '../../disk/create.js';
import { runVm } from '../../vm/qemu.js';
import type { ContextFactory } from '../globals.js';

async function isDisk(p: string): Promise<boolean> {
  if (!p.includes('/') && !p.endsWith('.img') && !p.endsWith('.raw')) return false;
  return stat(p).then((s) => s.isFile() || s.isBlockDevice(), () => false);
}

export function registerVm(vm: Command, ctx: ContextFactory): void {
  vm.command('run')
    .description('boot a staged image (on a throw-away disk) or a darch disk in qemu, serial console on this terminal')
    .argument('<what>', 'a staged NAME:TAG or id, or a disk image made by `darch disk create`')
    .option('-m, --memory <MiB>', 'guest memory', '1024')
    .option('--cpus <n>', 'virtual CPUs', '1')
    .addOption(new Option('--accel <kind>', 'KVM or TCG; auto uses KVM when it actually works').choices(['auto', 'kvm', 'tcg']).default('auto'))
    .option('--snapshot', 'discard writes to the disk when the VM stops')
    .option('--net', 'give the guest user-mode networking')
    .option('--no-reboot', 'exit when the guest reboots')
    .option('--kernel-args <args>', 'kernel arguments when a staged image is booted', 'console=ttyS0,115200')
    .action(async (what: string, opts: { memory: string; cpus: string; accel: 'auto' | 'kvm' | 'tcg'; snapshot?: boolean; net?: boolean; reboot: boolean; kernelArgs: string }, cmd: Command) => {
      const c = await ctx(cmd);
      const work = await makeWorkDir(c.paths.tmpDir, 'vm');
      try {
        let disk = what;
        if (!(await isDisk(what))) {
          disk = path.join(work, 'disk.img');
          ui.step(`making a throw-away disk with ${what}`);
          await createDisk(c.paths, { target: disk, images: [what], kernelArgs: opts.kernelArgs, timeout: 1, report: c.report });
        }
        const code = await runVm(
          {
            disk,
            workDir: work,
            memoryMiB: Number(opts.memory),
            cpus: Number(opts.cpus),
            accel: opts.accel,
            snapshot: opts.snapshot,
            network: opts.net,
            noReboot: !opts.reboot,
            report: c.report,
          },
          c.signal,
        );
        if (code !== 0 && !c.signal.aborted) throw new DarchError('E_VM_FAILED', `qemu exited with status ${code}`, { exitCode: code });
      } finally {
        await rm(work, { recursive: true, force: true });
      }
    });
}

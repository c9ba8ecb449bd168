/** `darch vm run`: try a staged image or a darch disk in qemu before it touches hardware. */
import { rm, stat } from 'node:fs/promises';
import { makeWorkDir } from '../../lib/scratch.js';
import path from 'node:path';
import type { Command } from 'commander';
import { Option } from 'commander';
import { DarchError } from '../../lib/errors.js';
import { ui } from '../ui.js';
import { createDisk } from '../../disk/create.js';
import { listStaged } from '../../boot/shared/staged.js';
import { matchStaged } from '../../stage/store.js';
import { runVm } from '../../vm/qemu.js';
import { netbootNic } from '../../vm/netboot.js';
import type { ContextFactory } from '../globals.js';

/** Names a file rather than a staged image: an explicit path, or a disk image's extension. */
function namesPath(p: string): boolean {
  return /^(\/|\.\.?\/|~)/.test(p) || /\.(img|raw|qcow2|iso)$/i.test(p);
}

/**
 * The disk `vm run WHAT` boots: WHAT itself when it is a file or a device, or undefined when it
 * is a staged image. An argument that names a path (see namesPath) and does not exist is an
 * error saying so, never looked up as an image name; `dir/name` that is neither a file nor a
 * staged image names both possibilities.
 */
async function diskArgument(what: string, stageDir: string): Promise<string | undefined> {
  const st = await stat(what).catch(() => undefined);
  if (st?.isFile() || st?.isBlockDevice()) return what;
  const notFound = () =>
    new DarchError('E_FS_ENOENT', st ? `${what} is not a disk image file or a block device` : `${what} does not exist`, {
      hint: 'give a disk image made by `darch disk create`, or a staged NAME:TAG (`darch stage list`)',
    });
  if (st || namesPath(what)) throw notFound();
  if (what.includes('/')) {
    try {
      matchStaged(await listStaged(stageDir), what);
    } catch (err) {
      if (err instanceof DarchError && err.code === 'E_NOT_STAGED') {
        throw new DarchError('E_NOT_STAGED', `${what} is neither a file nor a staged image`, {
          hint: `a disk image: check the path; a staged image: ${err.hint ?? '`darch stage list`'}`,
        });
      }
      throw err;
    }
  }
  return undefined;
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
    .action(
      async (
        what: string,
        opts: { memory: string; cpus: string; accel: 'auto' | 'kvm' | 'tcg'; snapshot?: boolean; net?: boolean; reboot: boolean; kernelArgs: string },
        cmd: Command,
      ) => {
        const c = await ctx(cmd);
        const given = await diskArgument(what, c.paths.stageDir);
        const work = await makeWorkDir(c.paths.tmpDir, 'vm');
        try {
          let disk = given ?? what;
          if (!given) {
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
      },
    );

  vm.command('netboot')
    .description('boot a diskless machine in qemu from darch serve, over the network only (UEFI PXE, then HTTP)')
    .argument('[server]', 'darch serve as this host reaches it', 'http://127.0.0.1:8080')
    .option('-m, --memory <MiB>', 'guest memory (the squashfs is held in it)', '1024')
    .option('--cpus <n>', 'virtual CPUs', '1')
    .addOption(new Option('--accel <kind>', 'KVM or TCG; auto uses KVM when it actually works').choices(['auto', 'kvm', 'tcg']).default('auto'))
    .option('--no-reboot', 'exit when the guest reboots')
    .action(async (server: string, opts: { memory: string; cpus: string; accel: 'auto' | 'kvm' | 'tcg'; reboot: boolean }, cmd: Command) => {
      const c = await ctx(cmd);
      const work = await makeWorkDir(c.paths.tmpDir, 'vm');
      try {
        const net = await netbootNic(server, work);
        ui.step(`network boot from ${server} (the guest reaches it as ${net.clientUrl}; no other network)`);
        const code = await runVm(
          {
            workDir: work,
            memoryMiB: Number(opts.memory),
            cpus: Number(opts.cpus),
            accel: opts.accel,
            nic: net.nic,
            noReboot: !opts.reboot,
            extraArgs: net.extraArgs,
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

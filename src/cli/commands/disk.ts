/** `darch disk …`: bootable UEFI disks (image files or devices) holding staged images. */
import type { Command } from 'commander';
import { usageError } from '../../lib/errors.js';
import { emit } from '../../lib/output.js';
import { formatBytes, ui } from '../../lib/ui.js';
import { createDisk, parseSize } from '../../disk/create.js';
import { readDiskInfo, setDiskDefault } from '../../disk/defaults.js';
import { lockTimeout } from '../context.js';
import type { ContextFactory } from '../globals.js';

export function registerDisk(disk: Command, ctx: ContextFactory): void {

  disk
    .command('create')
    .description('make a bootable UEFI disk holding staged images (all of them when none are named; the first is the default)')
    .argument('<target>', 'an image file to create, or a block device (/dev/…, needs --force)')
    .argument('[staged...]', 'staged images by NAME:TAG or id')
    .option('--size <size>', 'size of an image file, e.g. 4G (default: the images plus room for as much again)')
    .option('--kernel-args <args>', 'kernel arguments for every entry on this disk', 'console=tty0 console=ttyS0,115200')
    .option('--timeout <seconds>', 'boot menu timeout', '3')
    .option('--bootloader <name>', 'grub or systemd-boot (copies each kernel and initramfs onto the ESP, one BLS entry per image)', 'grub')
    .option('--esp-size <size>', 'size of the ESP, e.g. 256M (default: 64M, or room for the kernels twice over with systemd-boot)')
    .option('--force', 'erase a block device, or replace an existing file (and what it holds)')
    .action(async (target: string, staged: string[], opts: { size?: string; kernelArgs: string; timeout: string; bootloader: string; espSize?: string; force?: boolean }, cmd: Command) => {
      const c = await ctx(cmd);
      if (opts.bootloader !== 'grub' && opts.bootloader !== 'systemd-boot') {
        throw usageError(`--bootloader must be grub or systemd-boot, not "${opts.bootloader}"`, 'darch disk create disk.img --bootloader systemd-boot');
      }
      if (!/^\d+$/.test(opts.timeout)) throw usageError(`--timeout must be a whole number of seconds, not "${opts.timeout}"`);
      const res = await createDisk(c.paths, {
        target,
        images: staged,
        size: opts.size ? parseSize(opts.size) : undefined,
        kernelArgs: opts.kernelArgs,
        timeout: Number(opts.timeout),
        force: opts.force,
        bootloader: opts.bootloader,
        espSize: opts.espSize ? parseSize(opts.espSize) : undefined,
        report: c.report,
      });
      ui.success(`${target}: ${formatBytes(res.size)}, ${res.images.length} image(s): ${res.images.flatMap((i) => i.tags).join(', ')}`);
      ui.info(`boot it: darch vm run ${target}`);
      await emit(res, () => undefined);
    });

  disk
    .command('info')
    .description('show what a darch disk holds')
    .argument('<disk>', 'image file or device')
    .action(async (d: string, _o: unknown, cmd: Command) => {
      await ctx(cmd);
      const info = await readDiskInfo(d);
      await emit(info, (i) =>
        [`darch partition  UUID ${i.darchUuid ?? '-'}, ${i.darchSize === undefined ? '-' : formatBytes(i.darchSize)}`, `ESP              serial ${i.espSerial ?? '-'}${i.espSize ? `, ${formatBytes(i.espSize)}` : ''}`, `boot loader      ${i.bootloader ?? 'grub'}`, `kernel args      ${i.kernelArgs ?? '-'}`, ...i.images.map((im) => `image            ${im.tags.join(', ')} (${im.id})`)].join('\n'),
      );
    });

  disk
    .command('set-default')
    .description('make a disk boot another of its images by default (the boot state on its ESP: grubenv, or systemd-boot entry versions)')
    .argument('<disk>', 'image file or device')
    .argument('<staged>', 'NAME:TAG or id of an image on the disk')
    .action(async (d: string, what: string, _o: unknown, cmd: Command) => {
      const c = await ctx(cmd);
      const { warnings, changed: _changed, ...res } = await setDiskDefault(d, what, lockTimeout(c.config));
      for (const w of warnings) ui.warn(w);
      ui.success(`${d} now boots ${res.tag} (${res.id}) by default`);
      await emit(res, () => undefined);
    });
}

/** `darch disk …`: bootable UEFI disks (image files or devices) holding staged images. */
import type { Command } from 'commander';
import { usageError } from '../../lib/errors.js';
import { emit } from '../output.js';
import { formatBytes } from '../../lib/format.js';
import { ui } from '../ui.js';
import { createDisk, DEFAULT_KERNEL_ARGS, parseSize } from '../../disk/create.js';
import { readDiskInfo, setDiskDefault } from '../../disk/defaults.js';
import { addToDisk, listDisk, removeFromDisk, setDiskKernelArgs } from '../../disk/edit.js';
import { StageStore } from '../../stage/store.js';
import { table } from '../output.js';
import { lockTimeout } from '../context.js';
import type { ContextFactory } from '../globals.js';

export function registerDisk(disk: Command, ctx: ContextFactory): void {
  disk
    .command('create')
    .description('make a bootable UEFI disk holding staged images (all of them when none are named; the first is the default)')
    .argument('<target>', 'an image file to create, or a block device (/dev/…, needs --force)')
    .argument('[staged...]', 'staged images by NAME:TAG or id')
    .option('--size <size>', 'size of an image file, e.g. 4G (default: the images plus room for as much again)')
    .option('--kernel-args <args>', 'kernel arguments for every entry on this disk (change them later with darch disk kernel-args)', DEFAULT_KERNEL_ARGS)
    .option('--timeout <seconds>', 'boot menu timeout', '3')
    .option('--bootloader <name>', 'grub or systemd-boot (copies each kernel and initramfs onto the ESP, one BLS entry per image)', 'grub')
    .option('--esp-size <size>', 'size of the ESP, e.g. 256M (default: 64M, or room for the kernels twice over with systemd-boot)')
    .option('--force', 'erase a block device, or replace an existing file (and what it holds)')
    .action(
      async (
        target: string,
        staged: string[],
        opts: { size?: string; kernelArgs: string; timeout: string; bootloader: string; espSize?: string; force?: boolean },
        cmd: Command,
      ) => {
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
      },
    );

  disk
    .command('info')
    .description('show what a darch disk holds')
    .argument('<disk>', 'image file or device')
    .action(async (d: string, _o: unknown, cmd: Command) => {
      await ctx(cmd);
      const info = await readDiskInfo(d);
      await emit(info, (i) =>
        [
          `darch partition  UUID ${i.darchUuid ?? '-'}, ${i.darchSize === undefined ? '-' : formatBytes(i.darchSize)}`,
          `ESP              serial ${i.espSerial ?? '-'}${i.espSize ? `, ${formatBytes(i.espSize)}` : ''}`,
          `boot loader      ${i.bootloader ?? 'grub'}`,
          `kernel args      ${i.kernelArgs ?? '-'}`,
          ...i.images.map((im) => `image            ${im.tags.join(', ')} (${im.id})`),
        ].join('\n'),
      );
    });

  disk
    .command('set-default')
    .description('make a disk boot another of its images by default (the boot state on its ESP: grubenv, or systemd-boot entry versions)')
    .argument('<disk>', 'image file or device')
    .argument('<staged>', 'NAME:TAG or id of an image on the disk')
    .action(async (d: string, what: string, _o: unknown, cmd: Command) => {
      const c = await ctx(cmd);
      const local = await new StageStore(c.paths.stageDir, 0).list().catch(() => []);
      const { warnings, changed: _changed, ...res } = await setDiskDefault(d, what, lockTimeout(c.config), local);
      for (const w of warnings) ui.warn(w);
      ui.success(`${d} now boots ${res.tag} (${res.id}) by default`);
      await emit(res, () => undefined);
    });

  disk
    .command('list')
    .description('the images on a darch disk, what its boot state says of each, and the room left on both partitions')
    .argument('<disk>', 'image file or device')
    .action(async (d: string, _o: unknown, cmd: Command) => {
      const c = await ctx(cmd);
      const l = await listDisk(d, lockTimeout(c.config));
      await emit(l, (x) =>
        [
          table(
            ['TAGS', 'ID', 'STATE', 'SIZE'],
            x.images.map((i) => [
              i.tags.join(', ') || '-',
              i.id,
              i.roles
                .map((r) => (r === 'trial' && x.trialTries !== undefined ? `trial (${x.trialTries} ${x.trialTries === 1 ? 'try' : 'tries'} left)` : r))
                .join(', ') || '-',
              formatBytes(i.bytes),
            ]),
          ),
          '',
          `free: ${formatBytes(x.free.darch)} in the darch partition, ${formatBytes(x.free.esp)} on the ESP (${x.bootloader})`,
        ].join('\n'),
      );
    });

  disk
    .command('add')
    .description('copy staged images onto a darch disk, keeping its boot state (then: darch boot try NAME:TAG --disk DISK)')
    .argument('<disk>', 'image file or device')
    .argument('<staged...>', 'staged images by NAME:TAG or id')
    .action(async (d: string, staged: string[], _o: unknown, cmd: Command) => {
      const c = await ctx(cmd);
      const res = await addToDisk(c.paths, d, staged, { lockTimeoutSec: lockTimeout(c.config), report: c.report });
      for (const i of res.added) ui.success(`${d}: added ${i.tags.join(', ') || i.id} (${i.id})`);
      for (const i of res.tagged) ui.success(`${d}: ${i.id} is now also tagged ${i.tags.join(', ')}`);
      if (!res.added.length && !res.tagged.length) ui.info(`${d} already holds ${staged.join(', ')}`);
      ui.info(`${formatBytes(res.free)} left in the darch partition`);
      if (res.added[0]?.tags[0]) ui.info(`try it: darch boot try ${res.added[0].tags[0]} --disk ${d}`);
      await emit(res, () => undefined);
    });

  disk
    .command('remove')
    .description('remove images from a darch disk (never its default or pending trial), keeping its boot state')
    .argument('<disk>', 'image file or device')
    .argument('<staged...>', 'NAME:TAG or id of images on the disk (an image goes with all its tags)')
    .action(async (d: string, staged: string[], _o: unknown, cmd: Command) => {
      const c = await ctx(cmd);
      const res = await removeFromDisk(d, staged, { lockTimeoutSec: lockTimeout(c.config), report: c.report });
      for (const i of res.removed) ui.success(`${d}: removed ${i.tags.join(', ') || i.id} (${i.id})`);
      ui.info(`${formatBytes(res.free)} free in the darch partition`);
      await emit(res, () => undefined);
    });

  disk
    .command('kernel-args')
    .description("show or change the kernel arguments every entry of a darch disk boots with (disk create's --kernel-args)")
    .argument('<disk>', 'image file or device')
    .argument('[args]', 'the new arguments, as one quoted word ("" for none)')
    .action(async (d: string, args: string | undefined, _o: unknown, cmd: Command) => {
      const c = await ctx(cmd);
      if (args === undefined) {
        const info = await readDiskInfo(d);
        await emit({ disk: d, kernelArgs: info.kernelArgs ?? DEFAULT_KERNEL_ARGS }, (x) => x.kernelArgs);
        return;
      }
      const res = await setDiskKernelArgs(d, args, { lockTimeoutSec: lockTimeout(c.config), report: c.report });
      if (res.changed) ui.success(`${d} boots with: ${res.kernelArgs || '(no extra arguments)'} (was: ${res.previous})`);
      else ui.info(`${d} already boots with: ${res.kernelArgs}`);
      await emit(res, () => undefined);
    });
}

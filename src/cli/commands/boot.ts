/** `darch boot …`: darch's GRUB menu file and its hook into the distribution's GRUB. */
import { access, chmod, constants as fsConstants, mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import { writeFileAtomic } from '../../lib/scratch.js';
import { assetPath } from '../../lib/assets.js';
import { DarchError } from '../../lib/errors.js';
import { emit, table } from '../output.js';
import { run, which } from '../../lib/proc.js';
import { ui } from '../ui.js';
import { detectStageLocation } from '../../boot/shared/location.js';
import { bootMenu, syncBootConfig } from '../../boot/grub/sync.js';
import { syncBoot } from '../../boot/reconcile.js';
import { GRUB_CFG } from '../../stage/layout.js';
import { listSdbootEntries, localBootloader } from '../../boot/sdboot/sdboot-sync.js';
import { formatBytes } from '../../lib/format.js';
import { recordBootOrder } from '../../boot/trace.js';
import { bootedId } from '../../stage/protect.js';
import { openStageStore } from './stage.js';
import { lockTimeout } from '../context.js';
import type { ContextFactory } from '../globals.js';

export function registerBoot(boot: Command, ctx: ContextFactory): void {
  boot
    .command('sync')
    .description(
      'regenerate the boot entries of staged images: the GRUB menu (<stage>/grub.cfg, /etc/darch/grub.cfg), or with systemd-boot its entries and kernels on the ESP',
    )
    .action(async (_o: unknown, cmd: Command) => {
      const c = await ctx(cmd);
      const res = await syncBoot(c.paths, c.config, lockTimeout(c.config), c.report);
      if (res.grub) {
        ui.success(`${res.grub.entries.length} menu entr${res.grub.entries.length === 1 ? 'y' : 'ies'} written to ${res.grub.written.join(' and ')}`);
        await emit({ bootloader: 'grub', ...res.grub }, () => undefined);
      } else if (res.sdboot) {
        const r = res.sdboot;
        ui.success(
          `${r.entries.length} systemd-boot entr${r.entries.length === 1 ? 'y' : 'ies'} in ${r.esp}: ${r.written.length} written, ${r.removed.length} removed, ${formatBytes(r.copiedBytes)} of kernels copied`,
        );
        await emit({ bootloader: 'systemd-boot', ...r }, () => undefined);
      }
    });

  boot
    .command('trace')
    .description(
      'keep the order in which this boot first read the files of its image (the initramfs records it while no trace of the image is kept); the next version is staged in that order',
    )
    .option('--output <file>', 'also write the files, one per line, to FILE')
    .option('--no-save', 'stop tracing and print, but keep nothing beside the staged image')
    .action(async (opts: { output?: string; save: boolean }, cmd: Command) => {
      const c = await ctx(cmd);
      const id = await bootedId();
      if (!id) throw new DarchError('E_NOT_BOOTED', 'this system was not booted from a staged image: there is no boot to trace');
      const store = openStageStore(c);
      const image = (await store.get(id).catch(() => undefined))?.meta?.source?.name;
      const res = await recordBootOrder({
        stageId: id,
        ...(image ? { image } : {}),
        stageDir: store.dir,
        keep: opts.save,
        prepareWrite: () => store.init(),
      });
      if (opts.output) await writeFileAtomic(opts.output, res.order.files.map((f) => `${f}\n`).join(''));
      const o = res.order;
      ui.success(
        `this boot of ${id} first read ${o.files.length} files of its image (${o.events} page-cache events${o.uptime ? ` in ${Math.round(o.uptime)} s` : ''}` +
          `${o.partial?.length ? `; ${o.partial.length} of them read little of` : ''})` +
          (res.file ? `: kept in ${res.file}` : ''),
      );
      if (o.full) ui.warn("the trace buffer filled up: the order holds the boot's first reads only");
      await emit(
        {
          stage: id,
          ...(image ? { image } : {}),
          files: o.files.length,
          events: o.events,
          full: o.full ?? false,
          uptime: o.uptime,
          kept: res.file ?? null,
          first: o.files.slice(0, 20),
          partial: o.partial ?? [],
        },
        (r) => r.first.join('\n'),
      );
    });

  boot
    .command('entries')
    .description("show the boot entries of staged images: the GRUB menu darch generates, or darch's systemd-boot entries on the ESP")
    .action(async (_o: unknown, cmd: Command) => {
      const c = await ctx(cmd);
      if ((await localBootloader(c.paths, c.config)) === 'systemd-boot') {
        // Read-only: the names are the trial state, so listing them must not rewrite them.
        const res = await listSdbootEntries(c.paths, c.config);
        await emit({ bootloader: 'systemd-boot', ...res }, (r) =>
          table(
            ['ENTRY', 'TAGS', 'STAGED ID', 'ROLE', 'TRIES LEFT'],
            r.entries.map((e) => [e.file, e.tags.join(', ') || '-', e.stage, e.role, e.triesLeft === undefined ? '-' : String(e.triesLeft)]),
          ),
        );
        return;
      }
      // Read-only too: a listing never rewrites the menu (`darch boot sync` does).
      const res = await bootMenu(c.paths, { config: c.config });
      await emit({ bootloader: 'grub', location: res.location, entries: res.entries }, (r) =>
        table(
          ['ENTRY', 'TAG', 'STAGED ID', 'KERNEL'],
          r.entries.map((e) => [e.id, e.tag, e.stageId, e.kernelPath]),
        ),
      );
    });

  boot
    .command('install')
    .description("install /etc/grub.d/60_darch so the distribution's GRUB menu sources darch's (run once)")
    .option('--mkconfig', "also run grub-mkconfig -o /boot/grub/grub.cfg now (with --root: that system's own, chrooted)")
    .action(async (opts: { mkconfig?: boolean }, cmd: Command) => {
      const c = await ctx(cmd);
      await mkdir(c.paths.stageDir, { recursive: true });
      const loc = await detectStageLocation(c.paths.stageDir, { uuid: c.config.boot.stage_fs_uuid, path: c.config.boot.stage_fs_path });
      const script = (await readFile(assetPath('grub', '60_darch'), 'utf8'))
        .replace('@UUID@', loc.uuid)
        .replace('@PATH@', `${loc.path.replace(/\/+$/, '')}/${GRUB_CFG}`);
      const target = path.join(c.paths.root, 'etc/grub.d/60_darch');
      await mkdir(path.dirname(target), { recursive: true });
      await writeFileAtomic(target, script, 0o755);
      await chmod(target, 0o755);
      const sync = await syncBootConfig(c.paths, { config: c.config });
      ui.success(`installed ${target} (stage file system ${loc.uuid}, ${loc.path})`);
      if (opts.mkconfig) await mkconfig(c.paths.root);
      else ui.info('now run `grub-mkconfig -o /boot/grub/grub.cfg` once (or `update-grub`); darch keeps its own menu current from then on');
      await emit({ installed: target, location: loc, entries: sync.entries.length }, () => undefined);
    });
}

/**
 * The distribution's grub-mkconfig, run once so its menu sources darch's. With --root (a
 * system mounted from outside, as an installer has it) it must be that system's own
 * grub-mkconfig, its /etc/grub.d and /etc/default/grub, so it runs chrooted; the host's
 * would write the host's kernels into the other system's menu.
 */
async function mkconfig(root: string): Promise<void> {
  const chrooted = path.resolve(root) !== '/';
  const tools = ['grub-mkconfig', 'grub2-mkconfig'];
  let tool: string | undefined;
  if (chrooted) {
    for (const t of tools) {
      for (const dir of ['usr/sbin', 'usr/bin', 'sbin', 'bin']) {
        if (
          !tool &&
          (await access(path.join(root, dir, t), fsConstants.X_OK).then(
            () => true,
            () => false,
          ))
        )
          tool = t;
      }
    }
  } else {
    for (const t of tools) tool ??= (await which(t)) ? t : undefined;
  }
  if (!tool) {
    ui.warn(`grub-mkconfig is not installed${chrooted ? ` in ${root}` : ''}: run your distribution's equivalent`);
    return;
  }
  // Fedora's grub2-mkconfig writes /boot/grub2/grub.cfg; Debian's grub-mkconfig /boot/grub/grub.cfg.
  const out = tool === 'grub2-mkconfig' ? '/boot/grub2/grub.cfg' : '/boot/grub/grub.cfg';
  const res = chrooted ? await run('chroot', [root, tool, '-o', out], { allowFailure: true }) : await run(tool, ['-o', out], { allowFailure: true });
  if (res.code !== 0) {
    throw new DarchError('E_BOOT_MKCONFIG', `${tool} failed${chrooted ? ` in ${root}` : ''}: ${res.stderr.trim().split('\n').slice(-2).join(' | ')}`, {
      hint: chrooted
        ? `grub-mkconfig needs /dev, /proc and /sys in the chroot: mount --bind /dev ${root}/dev; mount -t proc proc ${root}/proc; mount -t sysfs sysfs ${root}/sys`
        : `run ${tool} -o ${out} yourself to see why`,
    });
  }
  ui.success(`${tool} done${chrooted ? ` in ${root}` : ''}: the darch entries are in the GRUB menu (${out})`);
}

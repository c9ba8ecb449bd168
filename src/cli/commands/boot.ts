/** `darch boot …`: darch's GRUB menu file and its hook into the distribution's GRUB. */
import { chmod, mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import { writeFileAtomic } from '../../lib/atomic.js';
import { assetPath } from '../../lib/assets.js';
import { emit, table } from '../../lib/output.js';
import { run, which } from '../../lib/proc.js';
import { ui } from '../../lib/ui.js';
import { detectStageLocation } from '../../boot/location.js';
import { syncBootConfig } from '../../boot/sync.js';
import { syncBoot } from '../../boot/reconcile.js';
import { listSdbootEntries, localBootloader } from '../../boot/sdboot-sync.js';
import { formatBytes } from '../../lib/ui.js';
import { lockTimeout } from '../context.js';
import type { ContextFactory } from '../main.js';

export function registerBoot(program: Command, ctx: ContextFactory): void {
  const boot = program.command('boot').description("boot menu and boot state: GRUB entries, trial boots with fallback, rollback");

  boot
    .command('sync')
    .description('regenerate the boot entries of staged images: the GRUB menu (<stage>/grub.cfg, /etc/darch/grub.cfg), or with systemd-boot its entries and kernels on the ESP')
    .action(async (_o: unknown, cmd: Command) => {
      const c = await ctx(cmd);
      const res = await syncBoot(c.paths, c.config, lockTimeout(c.config));
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
    .command('entries')
    .description('show the boot entries of staged images: the GRUB menu darch generates, or darch\'s systemd-boot entries on the ESP')
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
      const res = await syncBootConfig(c.paths, { config: c.config });
      await emit({ bootloader: 'grub', ...res }, (r) => table(['ENTRY', 'TAG', 'STAGED ID', 'KERNEL'], r.entries.map((e) => [e.id, e.tag, e.stageId, e.kernelPath])));
    });

  boot
    .command('install')
    .description('install /etc/grub.d/60_darch so the distribution\'s GRUB menu sources darch\'s (run once)')
    .option('--mkconfig', 'also run grub-mkconfig -o /boot/grub/grub.cfg now')
    .action(async (opts: { mkconfig?: boolean }, cmd: Command) => {
      const c = await ctx(cmd);
      await mkdir(c.paths.stageDir, { recursive: true });
      const loc = await detectStageLocation(c.paths.stageDir, { uuid: c.config.boot.stage_fs_uuid, path: c.config.boot.stage_fs_path });
      const script = (await readFile(assetPath('grub', '60_darch'), 'utf8'))
        .replace('@UUID@', loc.uuid)
        .replace('@PATH@', `${loc.path.replace(/\/+$/, '')}/grub.cfg`);
      const target = path.join(c.paths.root, 'etc/grub.d/60_darch');
      await mkdir(path.dirname(target), { recursive: true });
      await writeFileAtomic(target, script, 0o755);
      await chmod(target, 0o755);
      const sync = await syncBootConfig(c.paths, { config: c.config });
      ui.success(`installed ${target} (stage file system ${loc.uuid}, ${loc.path})`);
      if (opts.mkconfig) {
        const tool = (await which('grub-mkconfig')) ?? (await which('grub2-mkconfig'));
        if (!tool) ui.warn('grub-mkconfig is not installed: run your distribution\'s equivalent');
        else {
          await run(tool, ['-o', path.join(c.paths.root, 'boot/grub/grub.cfg')]);
          ui.success('grub-mkconfig done: the darch entries are in the GRUB menu');
        }
      } else ui.info('now run `grub-mkconfig -o /boot/grub/grub.cfg` once (or `update-grub`); darch keeps its own menu current from then on');
      await emit({ installed: target, location: loc, entries: sync.entries.length }, () => undefined);
    });
}

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
import type { ContextFactory } from '../main.js';

export function registerBoot(program: Command, ctx: ContextFactory): void {
  const boot = program.command('boot').description("boot menu and boot state: GRUB entries, trial boots with fallback, rollback");

  boot
    .command('sync')
    .description('regenerate the GRUB menu of staged images (<stage>/grub.cfg and /etc/darch/grub.cfg), atomically')
    .action(async (_o: unknown, cmd: Command) => {
      const c = await ctx(cmd);
      const res = await syncBootConfig(c.paths, { config: c.config });
      ui.success(`${res.entries.length} menu entr${res.entries.length === 1 ? 'y' : 'ies'} written to ${res.written.join(' and ')}`);
      await emit(res, () => undefined);
    });

  boot
    .command('entries')
    .description('show the GRUB menu entries darch generates')
    .action(async (_o: unknown, cmd: Command) => {
      const c = await ctx(cmd);
      const res = await syncBootConfig(c.paths, { config: c.config });
      await emit(res, (r) => table(['ENTRY', 'TAG', 'STAGED ID', 'KERNEL'], r.entries.map((e) => [e.id, e.tag, e.stageId, e.kernelPath])));
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

/** `darch status`: one screen of what booted, the boot state, what is staged and the room left (src/boot/overview.ts). */
import type { Command } from 'commander';
import { diskOverview, localOverview, type Overview } from '../../boot/overview.js';
import { formatAge, formatBytes } from '../../lib/format.js';
import { usageError } from '../../lib/errors.js';
import { lockTimeout } from '../context.js';
import type { ContextFactory } from '../globals.js';
import { emit, table } from '../output.js';
import { registryDefaults } from '../services.js';
import { StageStore } from '../../stage/store.js';

function name(tags: string[], id: string): string {
  return tags.length ? `${tags.join(', ')} (${id})` : id;
}

function render(o: Overview): string {
  const lines: string[] = [];
  const b = o.boot;
  const tagsOf = (id: string) => o.staged.find((s) => s.id === id)?.tags ?? [];
  if (o.target === 'this machine') {
    lines.push(
      `booted     ${
        o.booted
          ? `${name(o.booted.tags, o.booted.stage)}${o.booted.trial ? ` as a trial${b?.trial?.stage === o.booted.stage ? `, ${b.triesLeft} ${b.triesLeft === 1 ? 'try' : 'tries'} left` : ''}` : ''}${o.booted.fellBack ? ', after a fallback' : ''}`
          : 'not a darch image'
      }`,
    );
  } else lines.push(`disk       ${o.target}`);
  if (b) {
    lines.push(`default    ${b.default ? name(b.default.tags, b.default.stage) : '-'}`);
    if (b.trial) lines.push(`trial      ${name(b.trial.tags, b.trial.stage)}, ${b.triesLeft} ${b.triesLeft === 1 ? 'try' : 'tries'} left`);
    if (b.fellBack && b.fellBackFrom) {
      lines.push(`fell back  from ${name(b.fellBackFromTags, b.fellBackFrom)}${b.failure ? `: ${b.failure.reason}` : ''}`);
    }
    if (b.bad.length) lines.push(`bad        ${b.bad.map((id) => name(tagsOf(id), id)).join('; ')}`);
  } else lines.push(`boot state ${o.bootStateError ?? '-'}`);
  lines.push('');
  if (o.staged.length) {
    lines.push(
      table(
        ['TAGS', 'ID', 'SIZE', 'STAGED', 'STATE'],
        o.staged.map((s) => [
          s.tags.join(',') || '<none>',
          s.id,
          formatBytes(s.size),
          formatAge(s.created ? new Date(s.created) : undefined),
          s.roles.join(', ') || '-',
        ]),
      ),
    );
  } else lines.push('nothing staged');
  lines.push('');
  const sp = (label: string, v: Overview['space']['stage']) =>
    v ? `${label}${formatBytes(v.free)} free${v.size ? ` of ${formatBytes(v.size)}` : ''} (${v.path})` : `${label}-`;
  lines.push(sp('stage      ', o.space.stage), sp('boot       ', o.space.boot));
  return lines.join('\n');
}

// The boot loader's side and disk images load only when status gets that far (an ESP found,
// --disk given): a status on a machine with nothing staged starts without them.
const localTarget = async (...a: Parameters<typeof import('../../boot/target.js').localTarget>) => (await import('../../boot/target.js')).localTarget(...a);

export function registerStatus(status: Command, ctx: ContextFactory): void {
  status.option('--disk <file|device>', 'a disk made by `darch disk create` instead of this machine').action(async (opts: { disk?: string }, cmd: Command) => {
    const c = await ctx(cmd);
    let o: Overview;
    if (opts.disk !== undefined) {
      if (!opts.disk) throw usageError('--disk needs a file or device', 'darch status --disk disk.img');
      const [{ diskTarget }, { listDisk }] = await Promise.all([import('../../disk/target.js'), import('../../disk/edit.js')]);
      const t = await diskTarget(opts.disk, lockTimeout(c.config));
      o = await diskOverview(opts.disk, t, await listDisk(opts.disk, lockTimeout(c.config)), c.report);
    } else {
      o = await localOverview(
        c.paths,
        () => localTarget(c.paths, c.config.boot.esp, lockTimeout(c.config), c.config.boot.bootloader),
        c.config.boot.esp,
        c.report,
      );
    }
    // What the update agent has to tell (the update waiting for a reboot, a fallback): only
    // loaded when there can be something, so a plain status stays quick.
    let update: { image: string | null; lines: string[] } | null = null;
    if (opts.disk === undefined && (c.config.update.image || o.boot?.trial || o.boot?.fellBack)) {
      const { updateStatus } = await import('../../update/run.js');
      const u = await updateStatus({
        paths: c.paths,
        config: c.config,
        imageStore: await c.imageStore(),
        stageStore: new StageStore(c.paths.stageDir, lockTimeout(c.config), c.protection),
        steps: [],
        registry: registryDefaults(c),
        jobs: 1,
        target: () => localTarget(c.paths, c.config.boot.esp, lockTimeout(c.config), c.config.boot.bootloader),
        lockTimeoutSec: lockTimeout(c.config),
        report: c.report,
      }).catch((err: unknown) => {
        c.report.verbose(`update status: ${(err as Error).message}`);
        return undefined;
      });
      if (u) update = { image: u.image, lines: u.lines };
    }
    await emit({ ...o, update }, (v) => {
      const extra = v.update?.lines.map((l) => `update     ${l}`) ?? [];
      return [render(v), ...(extra.length ? ['', ...extra] : [])].join('\n');
    });
  });
}

/**
 * `darch boot status|try|mark-good|mark-bad|set-default|rollback`: trial boots and rollback,
 * thin over the boot-state API (src/boot/bootstate.ts), which hides whether GRUB or
 * systemd-boot keeps the state; every command also works on a disk made by `darch disk
 * create` through --disk, so a trial can be armed before a machine's first boot.
 */
import type { Command } from 'commander';
import { disarmWatchdog, markCommitted } from '../../boot/trial/watchdog.js';
import { usageError } from '../../lib/errors.js';
import { emit, table } from '../output.js';
import { ui } from '../ui.js';
import { readCmdline } from '../../stage/protect.js';
import { MAX_TRIES, armTrial, markBad, markGood, rollback, setDefault, trialKernelArgs, type ImageRef } from '../../boot/trial/state.js';
import { changeState, type ChangeResult, type StateChange } from '../../boot/bootstate.js';
import { localTarget, resolveImage, type BootTarget, type KnownImage } from '../../boot/target.js';
import { diskTarget } from '../../disk/target.js';
import { resolveOnDisk } from '../../disk/defaults.js';
import { StageStore } from '../../stage/store.js';
import { lockTimeout, type Context } from '../context.js';
import { statusOf, type ImageView, type StatusView } from '../../boot/status.js';
import type { ContextFactory } from '../globals.js';

interface DiskOpt {
  disk?: string;
}

/**
 * STAGED → the image on the target. On a disk, an image staged here but not on the disk
 * gets a hint to add it (`darch disk add`) rather than to stage it.
 */
async function resolverFor(c: Context, t: BootTarget): Promise<(images: KnownImage[], what: string) => ImageRef & { tag: string }> {
  if (t.kind !== 'disk') return resolveImage;
  const local = await new StageStore(c.paths.stageDir, 0).list().catch(() => []);
  return (images, what) => resolveOnDisk(images, what, t.label, local);
}

async function targetFor(c: Context, opts: DiskOpt): Promise<BootTarget> {
  if (opts.disk !== undefined) {
    if (!opts.disk) throw usageError('--disk needs a file or device', 'darch boot status --disk disk.img');
    return diskTarget(opts.disk, lockTimeout(c.config));
  }
  return localTarget(c.paths, c.config.boot.esp, lockTimeout(c.config), c.config.boot.bootloader);
}

function renderStatus(s: StatusView): string {
  const tags = (v: ImageView | null) => (v?.tags.length ? v.tags.join(',') : '-');
  const rows: string[][] = [];
  rows.push([
    'default',
    s.default?.stage ?? '-',
    tags(s.default),
    s.defaultIsFirstEntry ? (s.default ? 'first menu entry (no state yet)' : 'the first menu entry') : 'last good image',
  ]);
  const why = s.failure ? `${s.failure.where}: ${s.failure.reason}` : undefined;
  const trialNote = `${s.triesLeft} ${s.triesLeft === 1 ? 'try' : 'tries'} left${s.trialTries ? ` of ${s.trialTries}` : ''}`;
  rows.push(['trial', s.trial?.stage ?? '-', tags(s.trial), s.trial ? trialNote : 'none pending']);
  if (s.trial && why) rows.push(['', '', '', `last attempt failed: ${why}`]);
  rows.push(['previous', s.previous?.stage ?? '-', tags(s.previous), s.previous ? '`darch boot rollback` returns here' : '']);
  if (s.fellBack) {
    const used = s.trialTries ? ` after ${s.trialTries} ${s.trialTries === 1 ? 'try' : 'tries'}` : '';
    rows.push(['fell back', s.fellBackFrom ?? '-', s.fellBackFromTags.join(',') || '-', `the last trial failed${used}`]);
    rows.push(['', '', '', why ? `why: ${why}` : 'why: not recorded (a kernel panic, a hang or a reset leaves no record)']);
  }
  if (s.badImages.length === 0) rows.push(['bad', '-', '-', '']);
  // One row per bad image, so each one's tags stand next to it.
  for (const [i, b] of s.badImages.entries())
    rows.push([i === 0 ? 'bad' : '', b.stage, b.tags.join(',') || '-', i === 0 ? 'not tried again without --force' : '']);
  if (s.booted) {
    const how = s.booted.trial ? 'trial boot' : s.booted.fellBack ? 'fell back from a trial' : 'normal boot';
    rows.push(['booted', s.booted.stage ?? '-', s.booted.tags.join(',') || '-', s.booted.stage ? how : 'not a darch image']);
  }
  if (s.watchdog) {
    const secs = s.watchdog.seconds ? `${s.watchdog.seconds} s` : 'its default timeout';
    rows.push(['watchdog', s.watchdog.device, s.watchdog.driver ?? '-', `armed (${secs}): reset unless \`darch boot mark-good\` runs`]);
  }
  let out = table(['', 'STAGED', 'TAGS', 'NOTE'], rows);
  out +=
    s.backend === 'grub'
      ? `state: ${s.env.where}: grubenv ${s.env.primary}, grubenv.bak ${s.env.backup}${s.env.source === 'backup' ? ' (using the backup)' : ''}\n`
      : `state: systemd-boot entries in ${s.env.where}\n`;
  return out;
}

async function change(t: BootTarget, fn: StateChange): Promise<ChangeResult> {
  const res = await changeState(t, fn);
  for (const w of res.warnings) ui.warn(w);
  return res;
}

async function report(t: BootTarget, res: ChangeResult, extra: Record<string, unknown> = {}): Promise<void> {
  const { transition: tr } = res;
  if (tr.changed) ui.success(tr.message);
  else ui.info(tr.message);
  await emit({ changed: tr.changed, message: tr.message, ...extra, status: await statusOf(t) }, () => undefined);
}

function parseTries(v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || n < 1 || n > MAX_TRIES) throw usageError(`--tries must be a whole number from 1 to ${MAX_TRIES}, not "${v}"`);
  return n;
}

/** Adds the trial-boot commands to `darch boot` (whose menu commands live in boot.ts). */
export function registerBootTrial(boot: Command, ctx: ContextFactory): void {
  const diskOption = (c: Command) => c.option('--disk <file|device>', 'act on a disk made by `darch disk create` instead of this machine');

  diskOption(boot.command('status').description('the default image, the pending trial, tries left, fallbacks and bad images')).action(
    async (opts: DiskOpt, cmd: Command) => {
      const c = await ctx(cmd);
      const t = await targetFor(c, opts);
      const s = await statusOf(t);
      for (const p of s.env.problems) ui.warn(p);
      await emit(s, renderStatus);
    },
  );

  diskOption(
    boot
      .command('try')
      .description('boot STAGED on the next boots, up to N times, until it is marked good; then fall back by itself')
      .argument('<staged>', 'a staged tag (NAME[:TAG]) or id')
      .option('--tries <n>', `boots to try before falling back (1-${MAX_TRIES}; default boot.tries)`)
      .option('-f, --force', 'try an image even if it is marked bad'),
  ).action(async (what: string, opts: DiskOpt & { tries?: string; force?: boolean }, cmd: Command) => {
    const c = await ctx(cmd);
    const t = await targetFor(c, opts);
    const tries = opts.tries === undefined ? c.config.boot.tries : parseTries(opts.tries);
    const args = trialKernelArgs(c.config.boot);
    const resolve = await resolverFor(c, t);
    const res = await change(t, (s, images) => armTrial(s, resolve(images, what), tries, { force: opts.force, args }));
    // An earlier trial of the same image may have left a reason; this trial starts clean.
    if (res.transition.state.trial)
      await t.clearFailure(res.transition.state.trial.stage).catch((err: unknown) => ui.debug(`cannot clear the failure record: ${(err as Error).message}`));
    await report(t, res);
  });

  diskOption(
    boot.command('mark-good').description('commit the running trial boot: it becomes the default (a boot that is not a trial changes nothing)'),
  ).action(async (opts: DiskOpt, cmd: Command) => {
    const c = await ctx(cmd);
    const t = await targetFor(c, opts);
    const booted = t.kind === 'disk' ? 'outside' : await t.booted();
    const res = await change(t, (s) => markGood(s, booted ?? { trial: false, fellBack: false }));
    // The boot proved itself (or was picked by hand during a trial): its watchdog, if the
    // initramfs armed one, must not reset it now.
    if (t.kind !== 'disk') await markCommitted(c.paths.root);
    const wd = t.kind === 'disk' ? undefined : await disarmWatchdog(c.paths.root, await readCmdline());
    if (wd?.stopped) ui.info(`the trial's watchdog (${wd.stopped.device}) is stopped`);
    if (wd?.error) ui.warn(`${wd.error}: the machine will be reset`);
    await report(t, res, wd ? { watchdog: wd.stopped ? { stopped: true, ...wd.stopped } : { stopped: false, error: wd.error } } : {});
  });

  diskOption(
    boot
      .command('mark-bad')
      .description('give up on the trial (or STAGED): it is not tried again; the next boot is the default')
      .argument('[staged]', 'a staged tag or id (default: the pending trial)'),
  ).action(async (what: string | undefined, opts: DiskOpt, cmd: Command) => {
    const c = await ctx(cmd);
    const t = await targetFor(c, opts);
    const resolve = await resolverFor(c, t);
    await report(t, await change(t, (s, images) => markBad(s, what === undefined ? undefined : resolve(images, what).stage)));
  });

  diskOption(
    boot.command('set-default').description('make STAGED the image that boots when no trial is pending').argument('<staged>', 'a staged tag or id'),
  ).action(async (what: string, opts: DiskOpt, cmd: Command) => {
    const c = await ctx(cmd);
    const t = await targetFor(c, opts);
    const resolve = await resolverFor(c, t);
    await report(t, await change(t, (s, images) => setDefault(s, resolve(images, what))));
  });

  diskOption(boot.command('rollback').description('cancel the pending trial; with none, go back to the previous default')).action(
    async (opts: DiskOpt, cmd: Command) => {
      const c = await ctx(cmd);
      const t = await targetFor(c, opts);
      await report(t, await change(t, (s) => rollback(s)));
    },
  );
}

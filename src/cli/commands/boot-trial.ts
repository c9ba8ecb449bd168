/**
 * `darch boot status|try|mark-good|mark-bad|set-default|rollback`: trial boots and rollback. The state lives in the grubenv copies on the
 * ESP (src/boot/state.ts); every command also works on a disk made by `darch disk create`
 * through --disk, so a trial can be armed before a machine's first boot.
 */
import type { Command } from 'commander';
import { disarmWatchdog, type ArmedWatchdog } from '../../boot/watchdog.js';
import { usageError } from '../../lib/errors.js';
import { emit, table } from '../../lib/output.js';
import { ui } from '../../lib/ui.js';
import { readCmdline } from '../../stage/protect.js';
import { MAX_TRIES } from '../../boot/grubscript.js';
import {
  armTrial, loadState, markBad, markGood, rollback, saveState, setDefault, trialKernelArgs,
  type BootState, type BootedInfo, type ImageRef, type Transition,
} from '../../boot/state.js';
import { backendOf, diskTarget, entryIdForTag, localTarget, resolveImage, tagsOf, type BootTarget, type KnownImage } from '../../boot/target.js';
import { localEnvStorage, localEspDir } from '../../boot/esp.js';
import path from 'node:path';
import { readEnvPair, type EnvPair } from '../../boot/grubenv.js';
import { applyState, DirEntryFiles, ENTRIES_DIR, readEntries, requireEntry, stateFromEntries, type BlsEntry } from '../../boot/sdboot.js';
import { stateFromVars } from '../../boot/state.js';
import { lockTimeout, type Context } from '../context.js';
import type { TrialFailure } from '../../stage/failures.js';
import { readFile } from 'node:fs/promises';
import { grubCfgPaths, syncBootConfig } from '../../boot/sync.js';
import type { ContextFactory } from '../globals.js';
import { reorderDiskMenu } from '../../disk/menu.js';

interface DiskOpt {
  disk?: string;
}

/**
 * Keep the default also first in darch's grub.cfg (this machine's, or the disk's): it is what GRUB boots
 * when the state is lost. Best effort: the state already decides what boots.
 */
async function reorderMenu(c: Context, t: BootTarget, before: BootState, after: BootState, images: KnownImage[]): Promise<void> {
  if (!after.default || before.default?.entry === after.default.entry) return;
  if (t.kind === 'disk') {
    // The disk's own grub.cfg, inside its ext4 partition.
    try {
      await reorderDiskMenu(t.label, after.default.entry);
    } catch (err) {
      ui.warn(`the boot state is saved, but the grub.cfg of ${t.label} was not reordered: ${(err as Error).message}`);
    }
    return;
  }
  const { primary } = grubCfgPaths(c.paths);
  const current = await readFile(primary, 'utf8').catch(() => undefined);
  if (current === undefined) return;
  const tag = images.flatMap((i) => i.tags).find((tg) => entryIdForTag(tg) === after.default?.entry);
  // Where the stage is, as GRUB saw it when the menu was last written (no re-detection needed).
  const uuid = /--set=darch_fs (\S+)/.exec(current)?.[1];
  const dir = /darch_dir=UUID=[^:\s]+:(\S+)\/live\//.exec(current)?.[1];
  try {
    await syncBootConfig(c.paths, { defaultTag: tag, ...(uuid && dir ? { location: { uuid, path: dir } } : {}) });
  } catch (err) {
    ui.warn(`the boot state is saved, but ${primary} was not reordered: ${(err as Error).message}`);
  }
}

async function targetFor(c: Context, opts: DiskOpt): Promise<BootTarget> {
  if (opts.disk !== undefined) {
    if (!opts.disk) throw usageError('--disk needs a file or device', 'darch boot status --disk disk.img');
    return diskTarget(opts.disk, lockTimeout(c.config));
  }
  return localTarget(c.paths, c.config.boot.esp, lockTimeout(c.config), c.config.boot.bootloader);
}

interface ImageView {
  stage: string;
  entry: string;
  tags: string[];
}

function view(r: ImageRef | undefined, images: KnownImage[]): ImageView | null {
  return r ? { stage: r.stage, entry: r.entry, tags: tagsOf(images, r.stage) } : null;
}

export interface StatusView {
  target: string;
  default: ImageView | null;
  /** True when the state names no default and GRUB boots the first menu entry. */
  defaultIsFirstEntry: boolean;
  trial: ImageView | null;
  triesLeft: number;
  previous: ImageView | null;
  fellBack: boolean;
  fellBackFrom: string | null;
  /** The tries the trial was armed with (on a fallback: how many it used), when known. */
  trialTries: number | null;
  /**
   * Why the last attempt of the trial (pending, or the one that fell back) failed, when its
   * boot could record it: the initramfs, a health check or a systemd emergency. A kernel
   * panic, a hang or a reset leaves no record.
   */
  failure: TrialFailure | null;
  bad: string[];
  booted: (BootedInfo & { tags: string[] }) | null;
  /** The watchdog this trial boot runs under until it commits (darch.watchdog=). */
  watchdog: ArmedWatchdog | null;
  backend: 'grub' | 'systemd-boot';
  env: { where: string; source: string; primary: string; backup: string; problems: string[] };
}

/** The state as the target's bootloader keeps it: grubenv copies, or systemd-boot entry names. */
async function readBootState(t: BootTarget): Promise<{ state: BootState; pair: EnvPair; backend: 'grub' | 'systemd-boot'; entries?: BlsEntry[] }> {
  if ((await backendOf(t)) === 'systemd-boot') {
    const entries = await readEntries(t.entries);
    const pair: EnvPair = { vars: new Map(), source: 'none', status: { primary: 'missing', backup: 'missing' }, problems: [] };
    return { state: stateFromEntries(entries), pair, backend: 'systemd-boot', entries };
  }
  return { ...(await loadState(t.storage)), backend: 'grub' };
}

async function statusOf(t: BootTarget): Promise<StatusView> {
  const { state, pair, backend } = await readBootState(t);
  const images = await t.images().catch((err: unknown) => {
    ui.debug(`cannot list images: ${(err as Error).message}`);
    return [] as KnownImage[];
  });
  const first = state.default ? undefined : await t.firstEntry().catch(() => undefined);
  const booted = await t.booted();
  const tried = state.fellBack ? state.fellBackFrom : state.trial?.stage;
  const failure = tried
    ? await t.failure(tried).catch((err: unknown) => {
        ui.debug(`cannot read the failure record of ${tried}: ${(err as Error).message}`);
        return undefined;
      })
    : undefined;
  return {
    target: t.label,
    default: view(state.default ?? first, images),
    defaultIsFirstEntry: !state.default,
    trial: view(state.trial, images),
    triesLeft: state.trial ? state.tries : 0,
    previous: view(state.previous, images),
    fellBack: state.fellBack,
    fellBackFrom: state.fellBackFrom ?? null,
    trialTries: state.trial || state.fellBack ? (state.trialTries ?? null) : null,
    failure: failure ?? null,
    bad: state.bad,
    booted: booted ? { ...booted, tags: tagsOf(images, booted.stage) } : null,
    watchdog: (await t.watchdog()) ?? null,
    backend,
    env:
      backend === 'grub'
        ? { where: t.storage.where, source: pair.source, primary: pair.status.primary, backup: pair.status.backup, problems: pair.problems }
        : { where: t.entries.where, source: 'entry names', primary: 'n/a', backup: 'n/a', problems: [] },
  };
}

function renderStatus(s: StatusView): string {
  const tags = (v: ImageView | null) => (v && v.tags.length ? v.tags.join(',') : '-');
  const rows: string[][] = [];
  rows.push(['default', s.default?.stage ?? '-', tags(s.default), s.defaultIsFirstEntry ? (s.default ? 'first menu entry (no state yet)' : 'the first menu entry') : 'last good image']);
  const why = s.failure ? `${s.failure.where}: ${s.failure.reason}` : undefined;
  const trialNote = `${s.triesLeft} ${s.triesLeft === 1 ? 'try' : 'tries'} left${s.trialTries ? ` of ${s.trialTries}` : ''}`;
  rows.push(['trial', s.trial?.stage ?? '-', tags(s.trial), s.trial ? trialNote : 'none pending']);
  if (s.trial && why) rows.push(['', '', '', `last attempt failed: ${why}`]);
  rows.push(['previous', s.previous?.stage ?? '-', tags(s.previous), s.previous ? '`darch boot rollback` returns here' : '']);
  if (s.fellBack) {
    const used = s.trialTries ? ` after ${s.trialTries} ${s.trialTries === 1 ? 'try' : 'tries'}` : '';
    rows.push(['fell back', s.fellBackFrom ?? '-', '-', `the last trial failed${used}`]);
    rows.push(['', '', '', why ? `why: ${why}` : 'why: not recorded (a kernel panic, a hang or a reset leaves no record)']);
  }
  rows.push(['bad', s.bad.join(' ') || '-', '-', s.bad.length ? 'not tried again without --force' : '']);
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

/** Load, apply, save under the lock; the save rewrites both copies (which also repairs a damaged one). */
async function change(c: Context, t: BootTarget, fn: (s: BootState, images: KnownImage[]) => Promise<Transition> | Transition): Promise<{ transition: Transition; images: KnownImage[] }> {
  return t.withLock(async () => {
    const { state, backend, entries } = await readBootState(t);
    const images = await t.images();
    if (backend === 'systemd-boot' && entries) {
      const transition = await fn(state, images);
      for (const r of [transition.state.trial, transition.state.default]) if (r) requireEntry(entries, r.stage);
      // Also when nothing changed: that normalizes versions and drops a stale darch.trial=1
      // from an entry systemd-bless-boot committed by renaming it.
      await applyState(t.entries, entries, transition.state);
      return { transition, images };
    }
    // A state written before any darch command has no default: GRUB boots the first entry.
    const first = state.default ? undefined : await t.firstEntry();
    const transition = await fn(first ? { ...state, default: first } : state, images);
    // Also write when the default had to be filled in: that repairs missing or damaged copies.
    if (transition.changed || first) await saveState(t.storage, transition.state);
    await reorderMenu(c, t, state, transition.state, images);
    return { transition, images };
  });
}

async function report(t: BootTarget, res: { transition: Transition; images: KnownImage[] }, extra: Record<string, unknown> = {}): Promise<void> {
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
    const res = await change(c, t, (s, images) => armTrial(s, resolveImage(images, what), tries, { force: opts.force, args }));
    // An earlier trial of the same image may have left a reason; this trial starts clean.
    if (res.transition.state.trial) await t.clearFailure(res.transition.state.trial.stage).catch((err: unknown) => ui.debug(`cannot clear the failure record: ${(err as Error).message}`));
    await report(t, res);
  });

  diskOption(
    boot
      .command('mark-good')
      .description('commit the running trial boot: it becomes the default (a boot that is not a trial changes nothing)'),
  ).action(async (opts: DiskOpt, cmd: Command) => {
    const c = await ctx(cmd);
    const t = await targetFor(c, opts);
    const booted = t.kind === 'disk' ? 'outside' : await t.booted();
    const res = await change(c, t, (s) => markGood(s, booted ?? { trial: false, fellBack: false }));
    // The boot proved itself (or was picked by hand during a trial): its watchdog, if the
    // initramfs armed one, must not reset it now.
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
    await report(t, await change(c, t, (s, images) => markBad(s, what === undefined ? undefined : resolveImage(images, what).stage)));
  });

  diskOption(
    boot
      .command('set-default')
      .description('make STAGED the image that boots when no trial is pending')
      .argument('<staged>', 'a staged tag or id'),
  ).action(async (what: string, opts: DiskOpt, cmd: Command) => {
    const c = await ctx(cmd);
    const t = await targetFor(c, opts);
    await report(t, await change(c, t, (s, images) => setDefault(s, resolveImage(images, what))));
  });

  diskOption(boot.command('rollback').description('cancel the pending trial; with none, go back to the previous default')).action(
    async (opts: DiskOpt, cmd: Command) => {
      const c = await ctx(cmd);
    const t = await targetFor(c, opts);
      await report(t, await change(c, t, (s) => rollback(s)));
    },
  );
}


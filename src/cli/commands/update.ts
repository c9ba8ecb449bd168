/** `darch update check|download|stage|apply|status|run|rollout`: thin over src/update. */
import type { Command } from 'commander';
import { localTarget } from '../../boot/target.js';
import { formatBytes } from '../../lib/format.js';
import { annotateRemote } from '../../registry/annotate.js';
import { loadRegistriesConf } from '../../registry/registries-conf.js';
import {
  type ApplyResult,
  type StagedUpdate,
  PENDING,
  armUpdate,
  checkUpdate,
  downloadUpdate,
  followedImage,
  labelOf,
  withUpdateLock,
  type UpdateDeps,
} from '../../update/agent.js';
import type { DeltaUse } from '../../update/delta.js';
import { obtainUpdate } from '../../update/obtain.js';
import { ROLLOUT_ANNOTATION } from '../../update/rollout.js';
import type { Notice } from '../../update/notify.js';
import { armedNotice, noticeOnce, rebootMachine, runUpdate, someoneLoggedIn, updateStatus } from '../../update/run.js';
import { ExitCode } from '../../lib/errors.js';
import { lockTimeout, type Context } from '../context.js';
import type { ContextFactory } from '../globals.js';
import { emit, setResultCode, table } from '../output.js';
import { ui } from '../ui.js';
import { openStageStore } from './stage.js';
import { connectOptions, parsePercent, settings, type ConnectFlags } from './registry.js';

async function deps(c: Context, flags: ConnectFlags): Promise<UpdateDeps> {
  return {
    paths: c.paths,
    config: c.config,
    imageStore: await c.imageStore(),
    stageStore: openStageStore(c),
    steps: c.stageSteps,
    registry: settings(c, flags),
    registries: await loadRegistriesConf(c.paths),
    trust: await c.trust(),
    jobs: c.config.registry.jobs,
    target: () => localTarget(c.paths, c.config.boot.esp, lockTimeout(c.config), c.config.boot.bootloader),
    lockTimeoutSec: lockTimeout(c.config),
    report: c.report,
    signal: c.signal,
  };
}

async function notifyUsers(c: Context, n: Notice): Promise<number> {
  const { notifyUsers: send } = await import('../../update/notify.js');
  const results = await send(n, { root: c.paths.root, report: c.report, signal: c.signal });
  for (const r of results) if (!r.ok) c.report.verbose(`notification to uid ${r.uid} failed: ${r.error}`);
  return results.filter((r) => r.ok).length;
}

const imageArg = (cmd: Command) => cmd.argument('[image]', 'REGISTRY/NAME:TAG to follow (default: [update] image in config.toml)');

export function registerUpdate(update: Command, ctx: ContextFactory): void {
  connectOptions(
    imageArg(
      update.command('check').description('is there an update? exit 0: up to date (or not yet for this machine), 100: an update is available, 1: error'),
    ),
  ).action(async (image: string | undefined, flags: ConnectFlags, cmd: Command) => {
    const c = await ctx(cmd);
    const { remoteImage: _r, ...res } = await checkUpdate(await deps(c, flags), followedImage(c.config, image));
    if (PENDING.has(res.status)) setResultCode(ExitCode.updateAvailable);
    ui.info(res.message);
    await emit(res, (r) => r.status);
  });

  connectOptions(imageArg(update.command('download').description('download the update into the image store (only what is not here yet; resumes)'))).action(
    async (image: string | undefined, flags: ConnectFlags, cmd: Command) => {
      const c = await ctx(cmd);
      const d = await deps(c, flags);
      const followed = followedImage(c.config, image);
      const res = await withUpdateLock(d, () => downloadUpdate(d, followed));
      ui.success(`downloaded ${res.name}: ${formatBytes(res.bytesDownloaded)} new, ${formatBytes(res.bytesSkipped)} already here`);
      await emit(res, (r) => r.digest);
    },
  );

  connectOptions(imageArg(update.command('stage').description('download and stage the update under its own tag; nothing boots it yet'))).action(
    async (image: string | undefined, flags: ConnectFlags, cmd: Command) => {
      const c = await ctx(cmd);
      const d = await deps(c, flags);
      const followed = followedImage(c.config, image);
      const got = await withUpdateLock(d, () => obtainUpdate(d, followed));
      const { staged } = got;
      const how = got.delta ? `, from a delta of ${formatBytes(got.delta.bytesDownloaded + got.delta.bytesResumed)}` : '';
      ui.success(`${labelOf(followed, staged)} is staged as ${staged.tag} (${staged.id})${staged.fresh ? how : ', as it was already'}`);
      await emit({ ...staged, how: got.how, ...(got.delta ? { delta: got.delta } : {}), ...(got.download ? { download: got.download } : {}) }, (s) => s.id);
    },
  );

  connectOptions(
    imageArg(
      update
        .command('apply')
        .description('download, stage and arm the update as the next boot’s trial (falls back by itself if it does not start)')
        .option('--disk <file|device>', 'arm it on a disk made by `darch disk create` instead of this machine')
        .option('--from <file|dir>', 'take it from a stage bundle, an OCI layout or an OCI archive instead of the registry (offline)')
        .option('--source-ref <ref>', 'with --from: which image of a layout or archive that holds several')
        .option('-f, --force', 'try an image whose trial failed before'),
    ),
  ).action(async (image: string | undefined, flags: ConnectFlags & { disk?: string; from?: string; sourceRef?: string; force?: boolean }, cmd: Command) => {
    const c = await ctx(cmd);
    const d = await deps(c, flags);
    const followed = followedImage(c.config, image);
    const res = await withUpdateLock(d, async () => {
      let r: { staged: StagedUpdate | null; applied: ApplyResult | null; check?: { message: string }; delta?: DeltaUse };
      if (flags.from !== undefined) {
        const { applyFrom } = await import('../../update/offline.js');
        r = await applyFrom(d, followed, flags.from, { disk: flags.disk, sourceRef: flags.sourceRef, force: flags.force });
      } else {
        const { staged, delta } = await obtainUpdate(d, followed);
        r = { staged, applied: await armUpdate(d, staged, { disk: flags.disk, force: flags.force }), ...(delta ? { delta } : {}) };
      }
      // Armed here: tell the users once (the timer's next run will not tell them again).
      const told =
        r.applied?.changed && r.staged && !flags.disk
          ? await noticeOnce(c.paths.stateDir, `armed:${r.staged.id}`, armedNotice(followed, r.staged, null), (n) => notifyUsers(c, n))
          : undefined;
      return { ...r, told: told ?? 0 };
    });
    if (res.applied?.changed) ui.success(res.applied.message);
    else ui.info(res.applied?.message ?? res.check?.message ?? 'nothing to do');
    if (res.told) ui.info(`told ${res.told} logged-in user${res.told === 1 ? '' : 's'}`);
    await emit(res, (r) => r.staged?.id);
  });

  connectOptions(
    update
      .command('run')
      .description('what the timer runs: whatever [update] policy allows (check, download, stage, apply), then tell people')
      .option('--scheduled', 'only when [update] schedule says a check is due (darch-update.service passes it)'),
  ).action(async (flags: ConnectFlags & { scheduled?: boolean }, cmd: Command) => {
    const c = await ctx(cmd);
    const res = await runUpdate(
      { ...(await deps(c, flags)), notify: (n) => notifyUsers(c, n), someoneLoggedIn, reboot: rebootMachine },
      { scheduled: flags.scheduled },
    );
    ui.info(`${res.outcome}: ${res.message}`);
    for (const n of res.notices) ui.info(`told the users: ${n.summary}`);
    if (res.reboot && res.outcome !== 'disabled') ui.verbose(`reboot: ${res.reboot.reason}`);
    await emit(res, (r) => r.outcome);
  });

  update
    .command('status')
    .description('the followed image, the last check, the update waiting for a reboot, a fallback (no network)')
    .option('--motd', 'only the lines for people to read at login (nothing when there is nothing to tell)')
    .action(async (opts: { motd?: boolean }, cmd: Command) => {
      const c = await ctx(cmd);
      const s = await updateStatus(await deps(c, {}));
      if (opts.motd) {
        await emit(s, (v) => (v.lines.length ? v.lines.map((l) => `darch: ${l}`).join('\n') : undefined));
        return;
      }
      await emit(s, (v) =>
        table(
          ['', ''],
          [
            ['image', v.image ?? '- (set [update] image)'],
            ['policy', `${v.policy}, reboot ${v.reboot}, checks ${v.schedule}`],
            ['last check', v.lastCheck ? `${v.lastCheck.at}: ${v.lastCheck.outcome}${v.lastCheck.error ? ` (${v.lastCheck.error})` : ''}` : 'never'],
            ['next check', v.nextCheck ?? '-'],
            ['pending', v.pending ? `${v.pending.tags.join(',') || v.pending.id}: the next boot tries it (${v.pending.tries} tries)` : '-'],
            ...v.lines.map((l) => ['notice', l]),
          ],
        ),
      );
    });

  connectOptions(
    update
      .command('rollout')
      .description('offer IMAGE (a tag in a registry) to PERCENT of the machines that follow it; raising it widens the rollout')
      .argument('<image>', 'REGISTRY/NAME:TAG')
      .argument('<percent>', '0-100; 100 removes the limit'),
  ).action(async (image: string, percent: string, flags: ConnectFlags, cmd: Command) => {
    const c = await ctx(cmd);
    const p = parsePercent(percent);
    const res = await annotateRemote(image, { [ROLLOUT_ANNOTATION]: p >= 100 ? null : String(p) }, settings(c, flags));
    ui.success(`${res.reference} is offered to ${p >= 100 ? 'every machine' : `${p} % of machines`} (manifest ${res.digest.slice(7, 19)})`);
    await emit(res, (r) => r.digest);
  });
}

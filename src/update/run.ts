/**
 * `darch update run` (what darch-update.service runs) and `darch update status`: the policy
 * applied once, and what people are told. Notices are given once each (keyed in
 * update/state.json); the fallback notice comes from the boot state, which the boot loader
 * wrote when the trial failed.
 */
import { readState } from '../boot/bootstate.js';
import { reconcileBoot } from '../boot/reconcile.js';
import { localBootloader, sdbootTrialProblems } from '../boot/sdboot/sdboot-sync.js';
import type { BootTarget } from '../boot/target.js';
import type { BootState } from '../boot/trial/state.js';
import { DarchError } from '../lib/errors.js';
import { run as runProgram } from '../lib/proc.js';
import { formatBytes } from '../lib/format.js';
import { bootedId } from '../stage/protect.js';
import {
  PENDING,
  armUpdate,
  checkUpdate,
  followedImage,
  labelOf,
  withUpdateLock,
  type ApplyResult,
  type CheckResult,
  type StagedUpdate,
  type UpdateDeps,
} from './agent.js';
import type { DeltaUse } from './delta.js';
import { type DownloadSummary, downloadLayers, obtainUpdate } from './obtain.js';
import { readMachineId } from './rollout.js';
import type { Notice } from './notify.js';
import { inWindow, isDue, nextCheckAt, parseReboot } from './schedule.js';
import { readUpdateState, writeUpdateState, type UpdateState } from './state-json.js';

export interface RunDeps extends UpdateDeps {
  /** Tell the logged-in users; returns how many were told. */
  notify: (n: Notice) => Promise<number>;
  /** Whether anyone is logged in (a window reboot waits for nobody). */
  someoneLoggedIn: () => Promise<boolean>;
  /** Restart the machine (systemctl reboot); never called when darch runs under --root. */
  reboot: () => Promise<void>;
  now?: () => Date;
}

const POLICY_ORDER = ['none', 'check', 'download', 'stage', 'apply'] as const;
type Policy = (typeof POLICY_ORDER)[number];
const allows = (policy: Policy, step: Policy) => POLICY_ORDER.indexOf(policy) >= POLICY_ORDER.indexOf(step);

export interface RunResult {
  image: string | null;
  policy: Policy;
  /** disabled, not-due, or the furthest step taken: checked, downloaded, staged, armed, up-to-date… */
  outcome: string;
  message: string;
  check?: Omit<CheckResult, never>;
  download?: DownloadSummary;
  /** The update was staged from a delta in the registry (docs/DELTAS.md). */
  delta?: DeltaUse;
  staged?: StagedUpdate;
  applied?: ApplyResult;
  notices: Notice[];
  reboot?: { due: boolean; reason: string };
  nextCheck?: string;
}

/** The boot state where there is one to read (none on a build host without an ESP). */
async function stateOf(t: BootTarget | undefined): Promise<BootState | undefined> {
  return t
    ? readState(t).then(
        (r) => r.state,
        () => undefined,
      )
    : undefined;
}

/** The notice after a fallback, if the boot state records one: the failed image and the one running now. */
export function fallbackNotice(
  image: string,
  state: BootState | undefined,
  staged: { id: string; meta?: { source?: { version?: string; digest?: string } } }[],
): Notice | undefined {
  if (!state?.fellBack || !state.fellBackFrom) return undefined;
  const meta = (id: string | undefined) => staged.find((s) => s.id === id)?.meta?.source;
  const bad = labelOf(image, meta(state.fellBackFrom) ?? { digest: state.fellBackFrom });
  const good = labelOf(image, meta(state.default?.stage) ?? (state.default ? { digest: state.default.stage } : null));
  return {
    summary: `The update to ${bad} failed to start; you are back on ${good}`,
    body: `${bad} did not start, so this machine went back to ${good} by itself. It will take the next update when there is one.`,
    urgency: 'normal',
  };
}

export function armedNotice(image: string, next: { version?: string; digest?: string }, current: { version?: string; digest?: string } | null): Notice {
  const n = labelOf(image, next);
  return {
    summary: `Restart to use ${n}`,
    body: `${n} is ready and starts on the next boot.${current ? ` If it does not start, ${labelOf(image, current)} comes back by itself.` : ''}`,
    urgency: 'normal',
  };
}

/** Tell people once (a command's own notice; the timer's run keeps its state in memory and uses giveOnce). */
export async function noticeOnce(stateDir: string, key: string, n: Notice, notify: (n: Notice) => Promise<number>): Promise<number | undefined> {
  const st = await readUpdateState(stateDir);
  if (st.notified[key]) return undefined;
  const told = await notify(n);
  st.notified[key] = new Date().toISOString();
  await writeUpdateState(stateDir, st);
  return told;
}

async function giveOnce(d: RunDeps, st: UpdateState, key: string, n: Notice, given: Notice[]): Promise<void> {
  if (st.notified[key]) return;
  await d.notify(n).catch((err: unknown) => d.report?.warn(`could not notify the logged-in users: ${(err as Error).message}`));
  st.notified[key] = (d.now?.() ?? new Date()).toISOString();
  given.push(n);
}

/** What the policy allows, once. `scheduled`: the timer's run, which checks only when the schedule says so. */
export async function runUpdate(d: RunDeps, opts: { scheduled?: boolean; image?: string } = {}): Promise<RunResult> {
  const policy = d.config.update.policy;
  const now = d.now?.() ?? new Date();
  if (policy === 'none' && !opts.image)
    return { image: d.config.update.image || null, policy, outcome: 'disabled', message: 'updates are off (update.policy = "none")', notices: [] };
  // The timer runs on every machine the package is on; one that follows nothing is not an error.
  if (!opts.image && !d.config.update.image.trim())
    return { image: null, policy, outcome: 'disabled', message: 'no image to follow: set image under [update] in config.toml', notices: [] };
  const image = followedImage(d.config, opts.image);
  return withUpdateLock(d, async () => {
    const st = await readUpdateState(d.paths.stateDir);
    const notices: Notice[] = [];
    const save = async (r: RunResult): Promise<RunResult> => {
      st.lastRun = { at: now.toISOString(), policy, outcome: r.outcome };
      await writeUpdateState(d.paths.stateDir, st);
      return r;
    };
    // A fallback is told first: it happened on this boot, whatever this run finds.
    const t = await d.target().catch(() => undefined);
    const state = await stateOf(t);
    const fb = fallbackNotice(image, state, await d.stageStore.list());
    if (fb && state?.fellBackFrom) await giveOnce(d, st, `fallback:${state.fellBackFrom}`, fb, notices);

    // A trial boot that has not committed yet decides first: arming another trial now would
    // replace the one running, and its commit would then have nothing to commit.
    const booted = t ? await t.booted().catch(() => undefined) : undefined;
    if (booted?.trial && booted.stage && state?.trial?.stage === booted.stage) {
      return save({ image, policy, outcome: 'trial-running', message: 'this boot is a trial that has not committed yet: updates wait for it', notices });
    }
    const machineId = await readMachineId(d.paths.root);
    const last = st.lastCheck?.at ? new Date(st.lastCheck.at) : undefined;
    const next = nextCheckAt(last, d.config.update.schedule, d.config.update.random_delay, machineId);
    if (opts.scheduled && !isDue(now, next)) {
      const res: RunResult = { image, policy, outcome: 'not-due', message: `next check at ${next?.toISOString()}`, notices, nextCheck: next?.toISOString() };
      res.reboot = await maybeReboot(d, state, now, state?.trial ? await trialBootProblems(d, false) : []);
      return save(res);
    }
    let check: CheckResult;
    try {
      check = await checkUpdate(d, image);
    } catch (err) {
      st.lastCheck = { at: now.toISOString(), image, outcome: 'error', error: (err as Error).message };
      st.lastRun = { at: now.toISOString(), policy, outcome: 'error', error: (err as Error).message };
      await writeUpdateState(d.paths.stateDir, st);
      throw err;
    }
    const { remoteImage: _r, ...checkOut } = check as CheckResult & { remoteImage?: unknown };
    st.lastCheck = {
      at: now.toISOString(),
      image,
      outcome: check.status,
      digest: check.remote.digest,
      ...(check.remote.version ? { version: check.remote.version } : {}),
    };
    const res: RunResult = { image, policy, outcome: check.status, message: check.message, check: checkOut, notices };
    if (PENDING.has(check.status) && allows(policy, 'download')) {
      if (allows(policy, 'stage')) {
        // Staging is allowed: the cheapest way there, a delta from what is staged where the registry has one.
        const got = await obtainUpdate(d, image, check.remote);
        if (got.download) res.download = got.download;
        if (got.delta) res.delta = got.delta;
        res.staged = got.staged;
        res.outcome = 'staged';
        res.message = `${labelOf(image, res.staged)} is staged as ${res.staged.tag}${got.delta ? ` (from a delta of ${formatBytes(got.delta.bytesDownloaded + got.delta.bytesResumed)})` : ''}`;
        if (allows(policy, 'apply')) {
          res.applied = await armUpdate(d, res.staged);
          res.outcome = 'armed';
          res.message = `${labelOf(image, res.staged)} is armed: the next boot tries it (${res.applied.tries} tries)`;
        }
      } else {
        if (check.status === 'available') res.download = await downloadLayers(d, image, check.remote.digest);
        res.outcome = 'downloaded';
        res.message = `${labelOf(image, check.remote)} is downloaded`;
      }
    }
    // Armed by this run or an earlier one: tell the users once per image.
    const armedNow = res.applied ? res.staged : check.status === 'armed' ? check.staged : undefined;
    if (armedNow) await giveOnce(d, st, `armed:${armedNow.id}`, armedNotice(image, armedNow, check.current), notices);
    const after = res.applied ? ((await stateOf(t)) ?? state) : state;
    // A trial whose boot files a power cut left incomplete would fail its boot (and, rebooted
    // into by the window, again and again): every run writes the boot side again, which
    // repairs them, and says what still keeps the trial from booting.
    const problems = after?.trial ? await trialBootProblems(d, res.staged !== undefined) : [];
    res.reboot = await maybeReboot(d, after, now, problems);
    res.nextCheck = nextCheckAt(now, d.config.update.schedule, d.config.update.random_delay, machineId)?.toISOString();
    return save(res);
  });
}

/**
 * What keeps the armed trial from booting once the boot side is written again ([] for GRUB,
 * whose files are the stage's), said as a warning. `synced`: this run's staging step wrote it
 * already (stageUpdate always does), so it is not written twice.
 */
async function trialBootProblems(d: RunDeps, synced: boolean): Promise<string[]> {
  if (!synced) await reconcileBoot(d.paths, d.config, d.lockTimeoutSec, d.report);
  if ((await localBootloader(d.paths, d.config).catch(() => 'grub')) !== 'systemd-boot') return [];
  const problems = await sdbootTrialProblems(d.paths, d.config).catch((err: unknown) => [(err as Error).message]);
  if (problems.length) d.report?.warn(`the armed trial cannot boot yet: ${problems.join('; ')}; darch boot sync shows why`);
  return problems;
}

/** A window reboot: only with a trial armed, inside the window, with nobody logged in, and never under --root. */
async function maybeReboot(d: RunDeps, state: BootState | undefined, now: Date, problems: string[]): Promise<{ due: boolean; reason: string }> {
  const policy = parseReboot(d.config.update.reboot);
  if (!state?.trial) return { due: false, reason: 'no update waits for a reboot' };
  if (policy.kind !== 'window')
    return { due: false, reason: policy.kind === 'never' ? 'update.reboot = "never"' : 'update.reboot = "prompt": the users were told' };
  if (!inWindow(now, policy)) return { due: false, reason: `outside the reboot window ${policy.text}` };
  if (await d.someoneLoggedIn()) return { due: false, reason: 'someone is logged in' };
  if (problems.length) return { due: false, reason: `the armed trial cannot boot yet (${problems.join('; ')}); see darch boot sync` };
  if (d.paths.root !== '/') return { due: false, reason: `would reboot now (window ${policy.text}), but darch runs under --root ${d.paths.root}` };
  d.report?.step(`rebooting into the update (window ${policy.text}, nobody logged in)`);
  await d.reboot();
  return { due: true, reason: `inside the reboot window ${policy.text}, nobody logged in` };
}

export interface UpdateStatusView {
  image: string | null;
  policy: Policy;
  reboot: string;
  schedule: string;
  lastCheck: UpdateState['lastCheck'] | null;
  lastRun: UpdateState['lastRun'] | null;
  nextCheck: string | null;
  /** The armed update waiting for a reboot, if any. */
  pending: { id: string; tags: string[]; version?: string; tries: number } | null;
  fellBack: { from: string; fromTags: string[]; summary: string } | null;
  /** What the motd and `darch status` show: one line each, empty when there is nothing to tell. */
  lines: string[];
}

/** What the agent knows, without asking the registry. */
export async function updateStatus(d: UpdateDeps): Promise<UpdateStatusView> {
  const st = await readUpdateState(d.paths.stateDir);
  const image = d.config.update.image ? followedImage(d.config) : null;
  const staged = await d.stageStore.list();
  const state = await stateOf(await d.target().catch(() => undefined));
  const machineId = await readMachineId(d.paths.root);
  const last = st.lastCheck?.at ? new Date(st.lastCheck.at) : undefined;
  const next = d.config.update.policy === 'none' ? undefined : nextCheckAt(last, d.config.update.schedule, d.config.update.random_delay, machineId);
  const lines: string[] = [];
  let pending: UpdateStatusView['pending'] = null;
  const booted = await bootedId();
  if (state?.trial && state.trial.stage !== booted) {
    const img = staged.find((s) => s.id === state.trial?.stage);
    const version = img?.meta?.source?.version;
    pending = { id: state.trial.stage, tags: img?.tags ?? [], ...(version ? { version } : {}), tries: state.tries };
    lines.push(`${armedNotice(image ?? img?.tags[0] ?? state.trial.stage, img?.meta?.source ?? { digest: state.trial.stage }, null).summary}.`);
  }
  let fellBack: UpdateStatusView['fellBack'] = null;
  const fb = fallbackNotice(image ?? staged.find((s) => s.id === state?.fellBackFrom)?.tags[0] ?? 'darch', state, staged);
  if (fb && state?.fellBackFrom) {
    fellBack = { from: state.fellBackFrom, fromTags: staged.find((s) => s.id === state.fellBackFrom)?.tags ?? [], summary: fb.summary };
    lines.push(`${fb.summary}.`);
  }
  return {
    image,
    policy: d.config.update.policy,
    reboot: d.config.update.reboot,
    schedule: d.config.update.schedule,
    lastCheck: st.lastCheck ?? null,
    lastRun: st.lastRun ?? null,
    nextCheck: next?.toISOString() ?? (image && d.config.update.policy !== 'none' ? 'at the next timer run' : null),
    pending,
    fellBack,
    lines,
  };
}

/** Anyone with a session (loginctl), else anyone `who` lists. */
export async function someoneLoggedIn(): Promise<boolean> {
  const sessions = await runProgram('loginctl', ['list-sessions', '--no-legend']).then(
    (r) => r.stdout.trim(),
    () => undefined,
  );
  if (sessions !== undefined) return sessions.length > 0;
  const who = await runProgram('who', []).then(
    (r) => r.stdout.trim(),
    () => '',
  );
  return who.length > 0;
}

/** systemd's reboot, else init's own (`reboot`: busybox or sysvinit images have no systemctl). */
export async function rebootMachine(): Promise<void> {
  const viaSystemd = await runProgram('systemctl', ['reboot']).then(
    () => true,
    (e: unknown) => {
      if (e instanceof DarchError && e.code === 'E_TOOL_MISSING') return false;
      throw e;
    },
  );
  // init may stop every process, this one and `reboot` with it, before `reboot` returns.
  if (!viaSystemd) await runProgram('reboot', [], { allowFailure: true });
}

/**
 * The boot state of a target as people and scripts read it (`darch boot status`, `darch
 * status`): default, trial and tries, previous, fallback and why the trial failed, bad images
 * with their tags, what this machine booted and the watchdog it runs under.
 */
import type { ArmedWatchdog } from './trial/watchdog.js';
import type { BootedInfo, ImageRef } from './trial/state.js';
import type { BootTarget, KnownImage } from './target.js';
import type { TrialFailure } from '../stage/failures.js';
import { silentReporter, type Reporter } from '../lib/report.js';

export interface ImageView {
  stage: string;
  entry: string;
  tags: string[];
}

function view(r: ImageRef | undefined, images: KnownImage[], tagsOf: (images: KnownImage[], stage: string) => string[]): ImageView | null {
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
  /** The tags of the image that fell back (it is still staged and tagged). */
  fellBackFromTags: string[];
  /** The tries the trial was armed with (on a fallback: how many it used), when known. */
  trialTries: number | null;
  /**
   * Why the last attempt of the trial (pending, or the one that fell back) failed, when its
   * boot could record it: the initramfs, a health check or a systemd emergency. A kernel
   * panic, a hang or a reset leaves no record.
   */
  failure: TrialFailure | null;
  bad: string[];
  /** The bad images with their tags (still staged and tagged; `[]` once removed). */
  badImages: { stage: string; tags: string[] }[];
  booted: (BootedInfo & { tags: string[] }) | null;
  /** The watchdog this trial boot runs under until it commits (darch.watchdog=). */
  watchdog: ArmedWatchdog | null;
  backend: 'grub' | 'systemd-boot';
  env: { where: string; source: string; primary: string; backup: string; problems: string[] };
}

export async function statusOf(t: BootTarget, report: Reporter = silentReporter): Promise<StatusView> {
  // The boot loaders' readers load here, not with this module: `darch status` on a machine
  // without an ESP never needs them (bench/startup.ts).
  const [{ readState }, { tagsOf }] = await Promise.all([import('./bootstate.js'), import('./target.js')]);
  const { state, env, backend, where } = await readState(t);
  const images = await t.images().catch((err: unknown) => {
    report.debug(`cannot list images: ${(err as Error).message}`);
    return [] as KnownImage[];
  });
  const first = state.default ? undefined : await t.firstEntry().catch(() => undefined);
  const booted = await t.booted();
  const tried = state.fellBack ? state.fellBackFrom : state.trial?.stage;
  const failure = tried
    ? await t.failure(tried).catch((err: unknown) => {
        report.debug(`cannot read the failure record of ${tried}: ${(err as Error).message}`);
        return undefined;
      })
    : undefined;
  return {
    target: t.label,
    default: view(state.default ?? first, images, tagsOf),
    defaultIsFirstEntry: !state.default,
    trial: view(state.trial, images, tagsOf),
    triesLeft: state.trial ? state.tries : 0,
    previous: view(state.previous, images, tagsOf),
    fellBack: state.fellBack,
    fellBackFrom: state.fellBackFrom ?? null,
    fellBackFromTags: state.fellBackFrom ? tagsOf(images, state.fellBackFrom) : [],
    trialTries: state.trial || state.fellBack ? (state.trialTries ?? null) : null,
    failure: failure ?? null,
    bad: state.bad,
    badImages: state.bad.map((stage) => ({ stage, tags: tagsOf(images, stage) })),
    booted: booted ? { ...booted, tags: tagsOf(images, booted.stage) } : null,
    watchdog: (await t.watchdog()) ?? null,
    backend,
    env: env
      ? { where, source: env.source, primary: env.status.primary, backup: env.status.backup, problems: env.problems }
      : { where, source: 'entry names', primary: 'n/a', backup: 'n/a', problems: [] },
  };
}

/** What the boot state says of one image; serves BootState and StatusView alike. */
export type StateRole = 'default' | 'trial' | 'previous' | 'bad';
type Ref = { stage: string } | null | undefined;
export function rolesIn(s: { default?: Ref; trial?: Ref; previous?: Ref; bad: readonly string[] }, id: string): StateRole[] {
  const roles: StateRole[] = [];
  if (s.default?.stage === id) roles.push('default');
  if (s.trial?.stage === id) roles.push('trial');
  if (s.previous?.stage === id) roles.push('previous');
  if (s.bad.includes(id)) roles.push('bad');
  return roles;
}

/**
 * The boot state of trial boots and its transitions, whichever boot loader keeps it: GRUB
 * in the two grubenv copies on the ESP (grub/envstate.ts), so GRUB can read and lower the
 * counter on its own; systemd-boot in the names of darch's BLS entries (sdboot/sdboot.ts).
 * Everything here is pure.
 *
 *   default   the last good image: what GRUB boots when no trial is pending
 *   trial     an image to try, with `tries` boots left; GRUB lowers the count before
 *             each attempt and, when it is 0, boots the default, sets `fellBack` and adds
 *             the trial to `bad`
 *   previous  the default before the last commit (for `rollback`)
 *
 * Images are named twice: the GRUB menu entry id (what GRUB boots) and the staged id (what
 * the kernel command line carries as darch_stageid=, and what retention protects).
 */
import { DarchError, usageError } from '../../lib/errors.js';

/** The most tries `darch boot try --tries N` accepts (GRUB's script has one comparison per value, grub/grubscript.ts). */
export const MAX_TRIES = 20;

export interface ImageRef {
  /** GRUB menu entry id, e.g. darch-example+busybox@latest. */
  entry: string;
  /** Staged id (25 base-36 characters). */
  stage: string;
}

export interface BootState {
  default?: ImageRef;
  previous?: ImageRef;
  trial?: ImageRef;
  tries: number;
  /**
   * Kernel arguments the trial's boots get and no other boot does (`panic=10
   * darch.watchdog=300` by default: a failure reboots, a hang is reset), decided when it was
   * armed. The user's own arguments win: GRUB puts these first, systemd-boot adds only
   * those the entry lacks.
   */
  trialArgs?: string;
  /** The tries the trial was armed with (kept after a fallback: how many it used). */
  trialTries?: number;
  fellBack: boolean;
  fellBackFrom?: string;
  /** Staged ids that failed as trials or were marked bad, oldest first. */
  bad: string[];
}

export function emptyState(): BootState {
  return { tries: 0, fellBack: false, bad: [] };
}

// ---------------------------------------------------------------------------------------
// Transitions. Each returns the new state and what happened, for the command to print.

export interface Transition {
  state: BootState;
  changed: boolean;
  message: string;
}

const without = (list: string[], id: string) => list.filter((x) => x !== id);

/** What `[boot] trial_panic` and `trial_watchdog` ask every trial boot to carry (0 = leave it out). */
export function trialKernelArgs(boot: { trial_panic: number; trial_watchdog: number }): string {
  return [boot.trial_panic > 0 ? `panic=${boot.trial_panic}` : '', boot.trial_watchdog > 0 ? `darch.watchdog=${boot.trial_watchdog}` : '']
    .filter(Boolean)
    .join(' ');
}

export function armTrial(s: BootState, target: ImageRef, tries: number, opts: { force?: boolean; args?: string } = {}): Transition {
  if (!Number.isInteger(tries) || tries < 1 || tries > MAX_TRIES) {
    throw usageError(
      `--tries must be a whole number from 1 to ${MAX_TRIES}, not ${tries}`,
      'GRUB counts down with one comparison per value; 3 is a good choice',
    );
  }
  if (s.default && s.default.stage === target.stage) {
    throw new DarchError('E_TRIAL_IS_DEFAULT', `${target.stage} is already the default image: nothing to try`, {
      hint: 'stage a new image and try that one',
    });
  }
  if (s.bad.includes(target.stage) && !opts.force) {
    throw new DarchError('E_TRIAL_BAD', `${target.stage} failed before (it is marked bad)`, {
      hint: 'stage a fixed image, or add --force to try this one again',
    });
  }
  return {
    state: {
      ...s,
      trial: target,
      tries,
      trialArgs: opts.args?.trim() || undefined,
      trialTries: tries,
      fellBack: false,
      fellBackFrom: undefined,
      bad: without(s.bad, target.stage),
    },
    changed: true,
    message: `the next boot tries ${target.stage} (${tries} ${tries === 1 ? 'try' : 'tries'}); ${s.default ? `it falls back to ${s.default.stage}` : 'it falls back to the first menu entry'} unless it is marked good`,
  };
}

export interface BootedInfo {
  /** darch_stageid= of the running kernel, if it booted a darch image. */
  stage?: string;
  trial: boolean;
  fellBack: boolean;
}

/**
 * Commit the trial. Inside a booted system only the trial boot itself commits (the kernel
 * command line says darch.trial=1 and darch_stageid= is the trial): any other boot changes
 * nothing. From outside (`--disk`, `outside: true`) the armed trial is committed as is.
 */
export function markGood(s: BootState, booted: BootedInfo | 'outside'): Transition {
  if (!s.trial) return { state: s, changed: false, message: 'no trial is pending: nothing to commit' };
  if (booted !== 'outside') {
    if (!booted.trial || booted.stage !== s.trial.stage) {
      return { state: s, changed: false, message: `this boot (${booted.stage ?? 'not a darch image'}) is not the trial of ${s.trial.stage}: nothing changed` };
    }
  }
  const t = s.trial;
  const previous = s.default && s.default.stage !== t.stage ? s.default : s.previous;
  return {
    state: {
      ...s,
      default: t,
      previous,
      trial: undefined,
      tries: 0,
      trialArgs: undefined,
      trialTries: undefined,
      fellBack: false,
      fellBackFrom: undefined,
      bad: without(s.bad, t.stage),
    },
    changed: true,
    message: `${t.stage} is good: it is now the default`,
  };
}

/** Mark the trial (or the named image) bad: it is not tried again unless forced. */
export function markBad(s: BootState, stage?: string): Transition {
  const target = stage ?? s.trial?.stage;
  if (!target) throw new DarchError('E_NO_TRIAL', 'no trial is pending and no image was named', { hint: 'darch boot mark-bad STAGED' });
  if (s.default?.stage === target) {
    throw new DarchError('E_BAD_DEFAULT', `${target} is the default image; it cannot be marked bad`, {
      hint: 'make another image the default first (darch boot set-default or rollback)',
    });
  }
  const isTrial = s.trial?.stage === target;
  return {
    state: { ...s, trial: isTrial ? undefined : s.trial, tries: isTrial ? 0 : s.tries, bad: [...without(s.bad, target), target] },
    changed: true,
    message: isTrial ? `${target} is marked bad: the trial is cancelled and the next boot is the default` : `${target} is marked bad`,
  };
}

export function setDefault(s: BootState, target: ImageRef): Transition {
  if (s.default?.stage === target.stage && s.default.entry === target.entry) {
    return { state: s, changed: false, message: `${target.stage} is already the default` };
  }
  const cancels = s.trial?.stage === target.stage;
  return {
    state: {
      ...s,
      default: target,
      previous: s.default && s.default.stage !== target.stage ? s.default : s.previous,
      trial: cancels ? undefined : s.trial,
      tries: cancels ? 0 : s.tries,
      bad: without(s.bad, target.stage),
    },
    changed: true,
    message: `${target.stage} is the default${cancels ? ' (its trial is over)' : ''}`,
  };
}

/**
 * An image leaves the target (`darch disk remove`): never the default or the pending trial,
 * which the next boot needs; as the previous default or a bad image it is forgotten.
 */
export function forgetImage(s: BootState, stage: string, name = stage): Transition {
  if (s.default?.stage === stage) {
    throw new DarchError('E_IMAGE_IN_USE', `${name} is the default image: the next boot needs it`, {
      hint: 'make another image the default first (set-default), then remove it',
    });
  }
  if (s.trial?.stage === stage) {
    throw new DarchError('E_IMAGE_IN_USE', `${name} is the pending trial: the next boot needs it`, {
      hint: 'cancel the trial first (darch boot rollback), then remove it',
    });
  }
  const previous = s.previous?.stage === stage ? undefined : s.previous;
  const bad = without(s.bad, stage);
  const changed = previous !== s.previous || bad.length !== s.bad.length;
  return { state: { ...s, previous, bad }, changed, message: changed ? `${name} is forgotten by the boot state` : `${name} is not in the boot state` };
}

/** Cancel a pending trial; with none, go back to the previous default. */
export function rollback(s: BootState): Transition {
  if (s.trial) {
    return {
      state: { ...s, trial: undefined, tries: 0 },
      changed: true,
      message: `the trial of ${s.trial.stage} is cancelled: the next boot is ${s.default?.stage ?? 'the first menu entry'}`,
    };
  }
  if (!s.previous) {
    throw new DarchError('E_NOTHING_TO_ROLL_BACK', 'there is no pending trial and no previous default to go back to', {
      hint: 'darch boot set-default STAGED picks any staged image',
    });
  }
  return {
    state: { ...s, default: s.previous, previous: s.default },
    changed: true,
    message: `rolled back: ${s.previous.stage} is the default again`,
  };
}

/** Parse the kernel command line of the running system. */
export function bootedFrom(cmdline: string): BootedInfo {
  const toks = cmdline.trim().split(/\s+/);
  let stage: string | undefined;
  for (const t of toks) if (t.startsWith('darch_stageid=')) stage = t.slice('darch_stageid='.length);
  return { stage: stage || undefined, trial: toks.includes('darch.trial=1'), fellBack: toks.includes('darch.fell_back=1') };
}

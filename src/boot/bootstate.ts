/**
 * The one boot-state API: what a target (this machine or a darch disk) boots by default,
 * tries next and gave up on, whichever boot loader keeps it. GRUB keeps it in the two
 * grubenv copies (grub/envstate.ts ⇄ grub/grubenv.ts); systemd-boot in the names and versions of
 * darch's BLS entries (sdboot/sdboot.ts). Every command that reads or changes the state (`darch
 * boot status|try|mark-good|mark-bad|set-default|rollback`, `darch disk set-default`, the
 * retention guard) goes through here, so the two back ends cannot drift apart again.
 */
import type { Config } from '../lib/config.js';
import { DarchError } from '../lib/errors.js';
import type { DarchPaths } from '../lib/paths.js';
import type { EnvPair } from './grub/grubenv.js';
import { applyState, readEntries, requireEntry, stateFromEntries, type BlsEntry } from './sdboot/sdboot.js';
import type { BootState, Transition } from './trial/state.js';
import { loadState, saveState } from './grub/envstate.js';
import { backendOf, localTarget, type BootTarget, type KnownImage } from './target.js';

export type Backend = 'grub' | 'systemd-boot';

export interface ReadState {
  state: BootState;
  backend: Backend;
  /** Where the state lives, for messages. */
  where: string;
  /** GRUB: the health of both copies (which one was used, what was wrong with the other). */
  env?: EnvPair;
  /** systemd-boot: the entries the state was read from. */
  entries?: BlsEntry[];
}

/** The target's state as its boot loader keeps it. Reads only: listing never rewrites anything. */
export async function readState(t: BootTarget): Promise<ReadState> {
  if ((await backendOf(t)) === 'systemd-boot') {
    const entries = await readEntries(t.entries);
    return { state: stateFromEntries(entries), backend: 'systemd-boot', where: t.entries.where, entries };
  }
  const { state, pair } = await loadState(t.storage);
  return { state, backend: 'grub', where: t.storage.where, env: pair };
}

export interface ChangeResult {
  transition: Transition;
  images: KnownImage[];
  backend: Backend;
  /** What went wrong after the state was saved (the menu order, best effort), for the caller to report. */
  warnings: string[];
}

export type StateChange = (s: BootState, images: KnownImage[]) => Promise<Transition> | Transition;

/**
 * Read, apply `fn`, write back, under the target's lock. The write also repairs: GRUB's
 * rewrites both copies (a damaged one is made whole again) whenever the state was missing
 * its default; systemd-boot's entries are rewritten even when nothing changed, which
 * normalizes versions and drops a stale `darch.trial=1` from an entry systemd-bless-boot
 * committed by renaming it.
 */
export async function changeState(t: BootTarget, fn: StateChange): Promise<ChangeResult> {
  return t.withLock(async () => {
    const { state, backend, entries } = await readState(t);
    const images = await t.images();
    if (backend === 'systemd-boot' && entries) {
      const transition = await fn(state, images);
      for (const r of [transition.state.trial, transition.state.default]) if (r) requireEntry(entries, r.stage);
      await applyState(t.entries, entries, transition.state);
      return { transition, images, backend, warnings: [] };
    }
    // A state written before any darch command has no default: GRUB boots the first entry.
    const first = state.default ? undefined : await t.firstEntry();
    const transition = await fn(first ? { ...state, default: first } : state, images);
    const trial = transition.state.trial;
    if (transition.changed && trial && trial.entry !== state.trial?.entry) {
      await t.ensureInMenu(trial.entry, transition.state.default?.entry, images).catch((err: unknown) => {
        throw new DarchError(
          'E_NO_MENU_ENTRY',
          `the GRUB menu of ${t.label} has no entry ${trial.entry} and could not be rewritten: ${(err as Error).message}`,
          {
            hint: 'run darch boot sync, then try again; nothing was armed',
            cause: err,
          },
        );
      });
    }
    if (transition.changed || first) await saveState(t.storage, transition.state);
    const warnings: string[] = [];
    const next = transition.state.default;
    if (next && state.default?.entry !== next.entry) {
      // The state already decides what boots; the menu order only matters once the state is lost.
      await t.followDefault(next.entry, images).catch((err: unknown) => {
        warnings.push(`the boot state is saved, but the grub.cfg of ${t.label} was not reordered: ${(err as Error).message}`);
      });
    }
    return { transition, images, backend, warnings };
  });
}

/** Staged ids the boot state of this machine still needs (default, previous, trial): retention never removes them. */
export async function bootStateIds(paths: DarchPaths, config: Config): Promise<string[]> {
  try {
    const t = await localTarget(paths, config.boot.esp, 0, config.boot.bootloader);
    const { state: s } = await readState(t);
    return [s.default?.stage, s.previous?.stage, s.trial?.stage].filter((x): x is string => Boolean(x));
  } catch {
    return []; // no ESP here: nothing to protect beyond the booted image
  }
}

/**
 * The boot state (trial/state.ts) as GRUB keeps it: the `darch_*` variables of the two
 * grubenv copies on the ESP (grubenv.ts), named by `V` in grubscript.ts, the script that
 * reads and lowers them at boot.
 */
import { readEnvPair, writeEnvPair, type EnvPair, type EnvStorage, type EnvVars } from './grubenv.js';
import { V } from './grubscript.js';
import type { BootState, ImageRef } from '../trial/state.js';

/** Bad ids kept: enough to refuse re-trying recent failures, small enough for the 1 KiB block. */
export const MAX_BAD = 6;

function ref(vars: EnvVars, entry: string, stage: string): ImageRef | undefined {
  const e = vars.get(entry)?.trim();
  const s = vars.get(stage)?.trim();
  return e && s ? { entry: e, stage: s } : undefined;
}

export function stateFromVars(vars: EnvVars): BootState {
  const tries = Number.parseInt(vars.get(V.tries) ?? '0', 10);
  const armed = Number.parseInt(vars.get(V.trialTries) ?? '', 10);
  const trial = ref(vars, V.trial, V.trialStage);
  const args = vars.get(V.trialArgs)?.trim();
  return {
    default: ref(vars, V.default, V.defaultStage),
    previous: ref(vars, V.previous, V.previousStage),
    trial,
    tries: trial && Number.isSafeInteger(tries) && tries > 0 ? tries : 0,
    trialArgs: trial && args ? args : undefined,
    trialTries: Number.isSafeInteger(armed) && armed > 0 ? armed : undefined,
    fellBack: vars.get(V.fellBack) === '1',
    fellBackFrom: vars.get(V.fellBackFrom)?.trim() || undefined,
    bad: [...new Set((vars.get(V.bad) ?? '').split(/\s+/).filter(Boolean))],
  };
}

/** Every variable is always written, in a fixed order, so GRUB's in-place edits never move them. */
export function stateToVars(s: BootState): EnvVars {
  return new Map<string, string>([
    [V.default, s.default?.entry ?? ''],
    [V.defaultStage, s.default?.stage ?? ''],
    [V.previous, s.previous?.entry ?? ''],
    [V.previousStage, s.previous?.stage ?? ''],
    [V.trial, s.trial?.entry ?? ''],
    [V.trialStage, s.trial?.stage ?? ''],
    [V.tries, String(s.trial ? s.tries : 0)],
    [V.trialArgs, s.trial ? (s.trialArgs ?? '') : ''],
    // Kept after the fallback, so status can say how many tries the failed trial used.
    [V.trialTries, (s.trial || s.fellBack) && s.trialTries ? String(s.trialTries) : ''],
    [V.fellBack, s.fellBack ? '1' : ''],
    [V.fellBackFrom, s.fellBackFrom ?? ''],
    [V.bad, s.bad.slice(-MAX_BAD).join(' ')],
  ]);
}

export interface LoadedState {
  state: BootState;
  pair: EnvPair;
}

export async function loadState(storage: EnvStorage): Promise<LoadedState> {
  const pair = await readEnvPair(storage);
  return { state: stateFromVars(pair.vars), pair };
}

export async function saveState(storage: EnvStorage, s: BootState): Promise<void> {
  await writeEnvPair(storage, stateToVars(s));
}

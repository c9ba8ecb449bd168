/**
 * The default image of this machine's trial-boot state, for the GRUB menu generator: darch's
 * grub.cfg lists the default first, because the first entry is what GRUB boots when the
 * state on the ESP is missing or damaged. Without a readable state: undefined (newest first).
 */
import type { DarchPaths } from '../../lib/paths.js';
import { localEnvStorage } from './grubenv.js';
import { loadState } from './envstate.js';

export async function localDefaultEntry(paths: DarchPaths, espConfigured: string | undefined): Promise<string | undefined> {
  try {
    return (await loadState(await localEnvStorage(paths, espConfigured))).state.default?.entry;
  } catch {
    return undefined; // no ESP mounted here: nothing to follow
  }
}

/**
 * External base images come from darch's local store. `--pull` fetches them through a
 * `Puller` the caller passes (the CLI's is the registry client, src/registry); without one,
 * asking for a pull says so plainly.
 */
import { DarchError } from '../lib/errors.js';
import type { ImageStore } from '../oci/store.js';

export type Puller = (store: ImageStore, ref: string, signal: AbortSignal) => Promise<void>;

export async function pullExternal(puller: Puller | undefined, store: ImageStore, ref: string, signal: AbortSignal): Promise<void> {
  if (!puller) {
    throw new DarchError('E_PULL_UNAVAILABLE', `cannot pull ${ref}: no registry client was given to this build`, {
      hint: `import the base instead: \`darch images import <rootfs.tar> ${ref}\``,
    });
  }
  await puller(store, ref, signal);
}

export function externalMissing(ref: string, recipe: string): DarchError {
  return new DarchError('E_EXTERNAL_MISSING', `recipe ${recipe} needs the external image ${ref}, which is not in the local store`, {
    hint: `import it (\`darch images import <rootfs.tar> ${ref}\`) or pull it (\`darch images pull ${ref}\`, or build with --pull)`,
    details: { image: ref, recipe },
  });
}

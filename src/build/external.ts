/**
 * External base images come from darch's local store. `--pull` is the seam for registry
 * pulls (src/registry, issue 4): when that lands, `pullExternal` calls its pull function;
 * until then asking for a pull says so plainly.
 */
import { DarchError } from '../lib/errors.js';
import type { ImageStore } from '../oci/store.js';

export type Puller = (store: ImageStore, ref: string, signal: AbortSignal) => Promise<void>;

let puller: Puller | undefined;

/** Called by the registry module (or a test) to make `darch build --pull` work. */
export function setExternalPuller(fn: Puller | undefined): void {
  puller = fn;
}

export async function pullExternal(store: ImageStore, ref: string, signal: AbortSignal): Promise<void> {
  if (!puller) {
    throw new DarchError('E_PULL_UNAVAILABLE', `cannot pull ${ref}: this darch has no registry client yet`, {
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

/**
 * Getting the followed image staged, the cheapest way there is: already staged (nothing to
 * do), already downloaded (stage the layers here), a delta in the registry from an image
 * staged here (delta.ts), or the layers from the registry. `update stage`, `update apply`
 * and the timer's run all come through here.
 */
import { hostPlatform } from '../oci/mediatypes.js';
import { inspectRemote } from '../registry/inspect.js';
import { parsePlatform } from '../registry/manifest.js';
import { downloadUpdate, holds, type StagedUpdate, stageUpdate, type UpdateDeps } from './agent.js';
import { type DeltaUse, stageFromRegistryDelta } from './delta.js';

export interface DownloadSummary {
  blobsDownloaded: number;
  blobsSkipped: number;
  bytesDownloaded: number;
  bytesSkipped: number;
  bytesResumed: number;
}

export interface Obtained {
  staged: StagedUpdate;
  /** How it got here: it was staged, its layers were here, a delta, or its layers were downloaded. */
  how: 'staged' | 'store' | 'delta' | 'layers';
  download?: DownloadSummary;
  delta?: DeltaUse;
}

/** Stage what `image` points at now (`remote`, from a check; else asked of the registry). */
export async function obtainUpdate(d: UpdateDeps, image: string, remote?: { digest: string; config: string; version?: string }): Promise<Obtained> {
  const want =
    remote ??
    (await inspectRemote(image, {
      ...d.registry,
      platform: d.config.update.platform ? parsePlatform(d.config.update.platform) : hostPlatform(),
      registries: d.registries,
    }));
  const have = (await d.stageStore.list()).find((s) => holds(s, want));
  if (have?.tags.length) return { staged: await stageUpdate(d, image, image, want), how: 'staged' };
  const inStore = await d.imageStore
    .resolveImage(image)
    .then((r) => r.manifestDigest === want.digest)
    .catch(() => false);
  if (inStore) return { staged: await stageUpdate(d, image), how: 'store' };
  const byDelta = await stageFromRegistryDelta(d, image, want);
  if (byDelta) return { ...byDelta, how: 'delta' };
  const download = await downloadLayers(d, image, want.digest);
  return { staged: await stageUpdate(d, image), how: 'layers', download };
}

/** Download what `image` points at (`digest`) into the image store, and say how much came. */
export async function downloadLayers(d: UpdateDeps, image: string, digest: string): Promise<DownloadSummary> {
  const p = await downloadUpdate(d, image, digest);
  d.report?.info(`downloaded ${p.blobsDownloaded} blob${p.blobsDownloaded === 1 ? '' : 's'} (${p.blobsSkipped} already here)`);
  return {
    blobsDownloaded: p.blobsDownloaded,
    blobsSkipped: p.blobsSkipped,
    bytesDownloaded: p.bytesDownloaded,
    bytesSkipped: p.bytesSkipped,
    bytesResumed: p.bytesResumed,
  };
}

/**
 * Builders re-compress the parent's layers when they export an image (buildah's gzip is not
 * Node's), so a child would carry byte-different copies of layers darch already stores.
 * Before import, the exported manifest is pointed back at the parent's own layer blobs
 * wherever the uncompressed content (diff_id) is the same, and the OCI base-image
 * annotations are set to the parent as darch knows it. Children then share their parents'
 * layers in the store and in registries.
 */
import { copyFile, link, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { isErrno } from '../lib/errors.js';
import { writeFileAtomic } from '../lib/scratch.js';
import { sha256 } from '../oci/digest.js';
import type { ImageConfig, ImageIndex, ImageManifest } from '../oci/mediatypes.js';
import type { ImageStore } from '../oci/store.js';
import { OUTPUT_REF } from './builder.js';

const BASE_NAME = 'org.opencontainers.image.base.name';
const BASE_DIGEST = 'org.opencontainers.image.base.digest';

/** Returns how many layers now point at the parent's blobs. */
export async function adoptParentLayers(layoutDir: string, store: ImageStore, parentRef: string | undefined): Promise<number> {
  const blob = (d: string) => path.join(layoutDir, 'blobs', 'sha256', d.slice('sha256:'.length));
  const indexPath = path.join(layoutDir, 'index.json');
  const index = JSON.parse(await readFile(indexPath, 'utf8')) as ImageIndex;
  const entry = index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === OUTPUT_REF) ?? index.manifests[0];
  if (!entry) return 0;
  const manifest = JSON.parse(await readFile(blob(entry.digest), 'utf8')) as ImageManifest;
  const config = JSON.parse(await readFile(blob(manifest.config.digest), 'utf8')) as ImageConfig;
  const annotations = { ...(manifest.annotations ?? {}) };
  delete annotations[BASE_NAME];
  delete annotations[BASE_DIGEST];
  let adopted = 0;
  if (parentRef) {
    const parent = await store.resolveImage(parentRef);
    annotations[BASE_NAME] = parentRef;
    annotations[BASE_DIGEST] = parent.manifestDigest;
    const ours = config.rootfs?.diff_ids ?? [];
    const theirs = parent.config.rootfs?.diff_ids ?? [];
    for (let i = 0; i < Math.min(theirs.length, manifest.layers.length); i++) {
      const pl = parent.manifest.layers[i];
      if (!pl || ours[i] !== theirs[i]) break;
      if (manifest.layers[i]?.digest !== pl.digest) {
        await linkOrCopy(store.blobPath(pl.digest), blob(pl.digest));
        manifest.layers[i] = { mediaType: pl.mediaType, digest: pl.digest, size: pl.size };
      }
      adopted++;
    }
  }
  if (Object.keys(annotations).length) manifest.annotations = annotations;
  else delete manifest.annotations;
  const bytes = Buffer.from(JSON.stringify(manifest));
  const digest = sha256(bytes);
  await writeFileAtomic(blob(digest), bytes);
  const rest = index.manifests.filter((m) => m !== entry);
  await writeFileAtomic(indexPath, JSON.stringify({ ...index, manifests: [...rest, { ...entry, digest, size: bytes.length }] }));
  return adopted;
}

async function linkOrCopy(from: string, to: string): Promise<void> {
  await rm(to, { force: true });
  try {
    await link(from, to);
  } catch (err) {
    if (!isErrno(err, 'EXDEV') && !isErrno(err, 'EPERM')) throw err;
    await copyFile(from, to);
  }
}

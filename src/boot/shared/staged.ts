/**
 * The staged store as the boot side needs it: which images, which tags, and the files their
 * image.json names, read through the stage's contract modules (images.json, image.json,
 * meta.json) over any SmallFiles: this machine's stage directory, or a disk's `/stage`
 * through debugfs.
 */
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { DirFiles, type SmallFiles } from '../../lib/smallfs.js';
import { readImageJson, requireInitramfs, type BootImageJson } from '../../stage/image-json.js';
import { readImagesFile } from '../../stage/images-json.js';
import { liveRel } from '../../stage/layout.js';
import { readMeta } from '../../stage/meta-json.js';
import type { StagedImage } from '../../stage/store.js';

/** A staged image with what a boot entry needs: the files it boots and when it was staged. */
export interface BootableImage extends StagedImage {
  image: BootImageJson;
  /** Staging time (meta.json `created`, else `fallbackTime`). */
  created: Date;
}

export interface StagedSource {
  files: SmallFiles;
  /** The image directory as the caller names it (a local path, or a path inside the disk). */
  dirOf(id: string): string;
  /** When meta.json says nothing (images staged by the original Darch). */
  fallbackTime(id: string): Promise<Date>;
}

/** The images images.json names (the tagged ones: an untagged staged image has no entry), newest first. */
export async function listBootable(src: StagedSource): Promise<BootableImage[]> {
  const { images } = await readImagesFile(src.files);
  const list = await Promise.all(
    Object.entries(images).map(async ([id, v]): Promise<BootableImage> => {
      const image = requireInitramfs(await readImageJson(src.files, id), id);
      // meta.json is optional for images staged by the original Darch.
      const meta = await readMeta(src.files, id).catch(() => undefined);
      const created = meta?.created ? new Date(meta.created) : await src.fallbackTime(id);
      return { id, tags: [...v.tags].sort(), dir: src.dirOf(id), ...(meta ? { meta } : {}), image, created };
    }),
  );
  return list.sort((a, b) => b.created.getTime() - a.created.getTime() || a.id.localeCompare(b.id));
}

/** Every staged image of this machine's stage directory, newest first. */
export function listStaged(stageDir: string): Promise<BootableImage[]> {
  const dirOf = (id: string) => path.join(stageDir, liveRel(id));
  return listBootable({ files: new DirFiles(stageDir), dirOf, fallbackTime: async (id) => (await stat(dirOf(id))).mtime });
}

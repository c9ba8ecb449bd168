/**
 * The staged store as the boot side needs it: which images, which tags, and the files their
 * image.json names. images.json and meta.json are read through src/stage's StageStore, the
 * one reader and writer of that contract.
 */
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { DarchError } from '../lib/errors.js';
import { StageStore } from '../stage/store.js';

export interface StagedImageJson {
  kernel: string;
  initramfs: string;
  rootfs: string;
  kernelparams?: string;
}

export interface StagedImage {
  id: string;
  tags: string[];
  dir: string;
  image: StagedImageJson;
  /** Staging time (meta.json `created`, else the directory's mtime). */
  created: Date;
}

/** The directory name for a tag's hook output: reversible, and safe in paths and on a kernel command line. */
export function tagKey(tag: string): string {
  return tag.replace(/\//g, '+').replace(/:/g, '@');
}

async function readStagedImage(store: StageStore, id: string, tags: string[]): Promise<StagedImage> {
  const dir = store.imageDir(id);
  const imageFile = path.join(dir, 'image.json');
  let image: StagedImageJson;
  try {
    image = JSON.parse(await readFile(imageFile, 'utf8')) as StagedImageJson;
  } catch (err) {
    throw new DarchError('E_STAGE_CORRUPT', `staged image ${id}: cannot read ${imageFile}: ${(err as Error).message}`, {
      hint: 'stage the image again',
    });
  }
  for (const k of ['kernel', 'initramfs', 'rootfs'] as const) {
    if (typeof image[k] !== 'string' || !image[k] || image[k].includes('/')) {
      throw new DarchError('E_STAGE_CORRUPT', `staged image ${id}: image.json has no valid "${k}"`, { hint: 'stage the image again' });
    }
  }
  // meta.json is optional for images staged by the original Darch: then the directory's time.
  const meta = await store.readMeta(id).catch(() => undefined);
  const created = meta?.created ? new Date(meta.created) : (await stat(dir)).mtime;
  return { id, tags: [...tags].sort(), dir, image, created };
}

/** Every staged image, newest first. */
export async function listStaged(stageDir: string): Promise<StagedImage[]> {
  // The images images.json names (the tagged ones): an untagged staged image has no entry.
  const store = new StageStore(stageDir);
  const { images } = await store.readImages();
  const list = await Promise.all(Object.entries(images).map(([id, v]) => readStagedImage(store, id, v.tags ?? [])));
  return list.sort((a, b) => b.created.getTime() - a.created.getTime() || a.id.localeCompare(b.id));
}

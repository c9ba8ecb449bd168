/**
 * A read-only view of the staged store (<state>/stage, the contract in docs/ARCHITECTURE.md)
 * as the boot side needs it: which images, which tags, which files. Staging itself
 * (writing this store) belongs to src/stage.
 */
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { DarchError, isErrno } from '../lib/errors.js';

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

interface ImagesJson {
  version?: number;
  images?: Record<string, { tags?: string[] }>;
}

/** The directory name for a tag's hook output: reversible, and safe in paths and on a kernel command line. */
export function tagKey(tag: string): string {
  return tag.replace(/\//g, '+').replace(/:/g, '@');
}

export async function readImagesJson(stageDir: string): Promise<Record<string, string[]>> {
  const file = path.join(stageDir, 'images.json');
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return {};
    throw new DarchError('E_STAGE_READ', `cannot read ${file}: ${(err as Error).message}`);
  }
  let doc: ImagesJson;
  try {
    doc = JSON.parse(text) as ImagesJson;
  } catch {
    throw new DarchError('E_STAGE_CORRUPT', `${file} is not valid JSON`, { hint: 'restore it from the live/ directories with `darch stage` or remove it' });
  }
  const out: Record<string, string[]> = {};
  for (const [id, v] of Object.entries(doc.images ?? {})) out[id] = [...(v.tags ?? [])];
  return out;
}

export async function readStagedImage(stageDir: string, id: string, tags: string[]): Promise<StagedImage> {
  const dir = path.join(stageDir, 'live', id);
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
  let created: Date | undefined;
  try {
    const meta = JSON.parse(await readFile(path.join(dir, 'meta.json'), 'utf8')) as { created?: string };
    if (meta.created) created = new Date(meta.created);
  } catch {
    /* meta.json is optional for images staged by the original Darch */
  }
  created ??= (await stat(dir)).mtime;
  return { id, tags: [...tags].sort(), dir, image, created };
}

/** Every staged image, newest first. */
export async function listStaged(stageDir: string): Promise<StagedImage[]> {
  const map = await readImagesJson(stageDir);
  const list = await Promise.all(Object.entries(map).map(([id, tags]) => readStagedImage(stageDir, id, tags)));
  return list.sort((a, b) => b.created.getTime() - a.created.getTime() || a.id.localeCompare(b.id));
}

/** Find a staged image by tag (NAME[:TAG], :latest implied) or id (or a unique id prefix). */
export function findStaged(list: StagedImage[], what: string): { image: StagedImage; tag?: string } {
  const tag = what.includes(':') ? what : `${what}:latest`;
  for (const img of list) if (img.tags.includes(tag)) return { image: img, tag };
  const byId = list.filter((i) => i.id === what || (what.length >= 4 && i.id.startsWith(what)));
  if (byId.length === 1 && byId[0]) return { image: byId[0] };
  throw new DarchError('E_NOT_STAGED', `${what} is not staged`, {
    hint: list.length ? `staged: ${list.flatMap((i) => i.tags).join(', ')}` : 'stage an image first: darch stage upload NAME:TAG',
  });
}

/** Refuse before writing when a file system cannot hold what we are about to write. */
import { mkdir, statfs } from 'node:fs/promises';
import { DarchError, fsError } from '../lib/errors.js';
import { formatBytes } from '../lib/format.js';

export async function freeBytes(dir: string): Promise<number> {
  await mkdir(dir, { recursive: true });
  const s = await statfs(dir);
  return s.bavail * s.bsize;
}

export async function ensureFreeSpace(dir: string, needed: number, what: string): Promise<void> {
  let free: number;
  try {
    free = await freeBytes(dir);
  } catch (err) {
    throw fsError(err, `cannot check free space in ${dir}`);
  }
  if (free < needed) {
    throw new DarchError('E_NO_SPACE', `not enough space for ${what}: about ${formatBytes(needed)} needed, ${formatBytes(free)} free in ${dir}`, {
      hint: 'free space (`darch stage clean`, `darch stage remove IMAGE`, or a lower stage.keep) and retry; nothing was written',
      details: { needed, free, dir },
    });
  }
}

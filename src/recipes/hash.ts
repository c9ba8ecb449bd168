/**
 * A content hash of a recipe directory: names, types, permission bits, file contents and
 * symlink targets, walked in sorted order. Timestamps are left out so a fresh checkout of
 * the same recipe hits the cache.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import path from 'node:path';
import { fsError } from '../lib/errors.js';

export async function hashDirectory(dir: string): Promise<string> {
  const h = createHash('sha256');
  const walk = async (rel: string): Promise<void> => {
    const abs = path.join(dir, rel);
    let entries;
    try {
      entries = await readdir(abs, { withFileTypes: true });
    } catch (err) {
      throw fsError(err, `cannot read ${abs}`);
    }
    for (const name of entries.map((e) => e.name).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      const p = path.join(dir, r);
      const s = await lstat(p);
      const mode = (s.mode & 0o7777).toString(8);
      if (s.isDirectory()) {
        h.update(`d ${r} ${mode}\n`);
        await walk(r);
      } else if (s.isSymbolicLink()) {
        h.update(`l ${r} ${await readlink(p)}\n`);
      } else if (s.isFile()) {
        const fh = createHash('sha256');
        try {
          for await (const chunk of createReadStream(p)) fh.update(chunk as Buffer);
        } catch (err) {
          throw fsError(err, `cannot read ${p}`);
        }
        h.update(`f ${r} ${mode} ${fh.digest('hex')}\n`);
      } else {
        h.update(`o ${r} ${mode}\n`);
      }
    }
  };
  await walk('');
  return `sha256:${h.digest('hex')}`;
}

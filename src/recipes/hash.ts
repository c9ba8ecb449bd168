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

export async function hashDirectory(dir: string, filter: (name: string) => boolean = () => true): Promise<string> {
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
      if (!rel && !filter(name)) continue;
      const r = rel ? `${rel}/${name}` : name;
      const p = path.join(dir, r);
      let s;
      try {
        s = await lstat(p);
      } catch (err) {
        throw fsError(err, `cannot read ${p}`);
      }
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

/**
 * What a recipe's build can read, hashed: its own directory, every `inputs` path of its
 * recipe.toml, and for Darch-format recipes (which see the whole tree at /recipes) the
 * shared, non-recipe parts of the recipes directory: hidden directories and plain files.
 */
export async function hashRecipeInputs(recipeDir: string, inputs: string[], darchFormat: boolean): Promise<Record<string, string>> {
  const out: Record<string, string> = { '.': await hashDirectory(recipeDir) };
  for (const i of inputs) {
    const p = path.resolve(recipeDir, i);
    const s = await lstat(p).catch((err: unknown) => {
      throw fsError(err, `input ${i} of ${recipeDir}`);
    });
    out[i] = s.isDirectory() ? await hashDirectory(p) : await hashDirectory(path.dirname(p), (n) => n === path.basename(p));
  }
  if (darchFormat) {
    const root = path.dirname(recipeDir);
    out['(shared)'] = await hashDirectory(root, (n) => {
      if (n.startsWith('.')) return true;
      return false;
    });
    const files = await readdir(root, { withFileTypes: true });
    const plain = new Set(files.filter((f) => f.isFile()).map((f) => f.name));
    out['(shared files)'] = await hashDirectory(root, (n) => plain.has(n));
  }
  return out;
}

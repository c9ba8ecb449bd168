/**
 * Files darch ships next to its code (assets/: initramfs scripts, grub snippets, hooks).
 * Found relative to the running module, so it works from src/ (tsx), from the executable in
 * dist/ (also through the /usr/local/bin/darch symlink: Node resolves it to the real path),
 * and from the Debian package's /usr/bin/darch (/usr/share/darch/assets).
 */
import { existsSync } from 'node:fs';
import { chmod, copyFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DarchError } from './errors.js';

let cached: string | undefined;

export function assetsDir(): string {
  if (cached) return cached;
  const env = process.env.DARCH_ASSETS;
  if (env && existsSync(env)) return (cached = env);
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    for (const candidate of [path.join(dir, 'assets'), path.join(dir, 'share/darch/assets')]) {
      if (existsSync(path.join(candidate, 'initramfs'))) return (cached = candidate);
    }
    dir = path.dirname(dir);
  }
  // The package's place, for when the executable cannot learn its own path (a chroot
  // without /proc: a SEA finds itself through /proc/self/exe).
  if (existsSync('/usr/share/darch/assets/initramfs')) return (cached = '/usr/share/darch/assets');
  throw new DarchError('E_ASSETS_MISSING', 'darch cannot find its assets/ directory', {
    hint: 'install darch with its package (/usr/share/darch/assets), run it from its source tree, or set DARCH_ASSETS to the assets directory',
  });
}

export function assetPath(...parts: string[]): string {
  return path.join(assetsDir(), ...parts);
}

/** An asset and where it goes in a root tree, with its mode. */
export interface AssetFile {
  asset: string[];
  dest: string;
  mode: number;
}

/** Copy assets into a root tree (directories made as needed); returns what was written, relative to root. */
export async function installAssets(root: string, files: readonly AssetFile[]): Promise<string[]> {
  for (const f of files) {
    const dest = path.join(root, f.dest);
    await mkdir(path.dirname(dest), { recursive: true });
    await copyFile(assetPath(...f.asset), dest);
    // copyFile keeps the source's mode; chmod sets the one the tree must have whatever the umask.
    await chmod(dest, f.mode);
  }
  return files.map((f) => f.dest);
}

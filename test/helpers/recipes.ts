/** Recipe trees, busybox bases and buildah-storage checks for the build tests. */
import { execFileSync } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { writeBusyboxRootfs } from '../../src/examples/busybox-rootfs.js';
import { darchOk } from './darch.js';

export type Tree = Record<string, Record<string, string | { content: string; mode: number }>>;

/** Write recipes: { name: { file: content } }; files called `script` are made executable. */
export async function writeTree(dir: string, tree: Tree): Promise<void> {
  for (const [name, files] of Object.entries(tree)) {
    await mkdir(path.join(dir, name), { recursive: true });
    for (const [f, v] of Object.entries(files)) {
      const p = path.join(dir, name, f);
      const { content, mode } = typeof v === 'string' ? { content: v, mode: f === 'script' ? 0o755 : 0o644 } : v;
      await mkdir(path.dirname(p), { recursive: true });
      await writeFile(p, content);
      await chmod(p, mode);
    }
  }
}

/** A busybox root file system tarball, imported into the store under `ref`. */
export async function importBusybox(root: string, work: string, ref: string, extraFiles?: Record<string, { content: string; mode: number }>): Promise<void> {
  const tar = path.join(work, 'busybox-rootfs.tar');
  await writeBusyboxRootfs(createWriteStream(tar), { extraFiles });
  await darchOk(['images', 'import', tar, ref], { root });
}

export function buildahArgs(root: string): string[] {
  const s = path.join(root, 'var/cache/darch/buildah');
  return ['--root', path.join(s, 'storage'), '--runroot', path.join(s, 'run')];
}

/** Working containers left in darch's buildah storage. */
export function buildahContainers(root: string): string[] {
  return execFileSync('buildah', [...buildahArgs(root), 'containers', '--all', '--quiet'], { encoding: 'utf8' })
    .split('\n')
    .filter(Boolean);
}

export function storeDir(root: string): string {
  return path.join(root, 'var/lib/darch/images');
}

export async function refNames(root: string): Promise<string[]> {
  const idx = JSON.parse(await readFile(path.join(storeDir(root), 'index.json'), 'utf8')) as { manifests: Array<{ annotations?: Record<string, string> }> };
  return idx.manifests.map((m) => m.annotations?.['org.opencontainers.image.ref.name'] ?? '').sort();
}

/** Paths in a layer blob (gzip or plain tar), as tar lists them. */
export function layerEntries(root: string, digest: string): string[] {
  const blob = path.join(storeDir(root), 'blobs/sha256', digest.slice(7));
  return execFileSync('tar', ['-tf', blob], { encoding: 'utf8' })
    .split('\n')
    .filter(Boolean)
    .map((p) => p.replace(/^\.\//, '').replace(/\/$/, ''));
}

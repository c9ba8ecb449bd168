/**
 * Stage a root directory the way `darch stage upload` lays it out (the "Staged images"
 * contract in docs/ARCHITECTURE.md), for boot tests that need staged images without
 * going through the image store. The initramfs is darch's own (`darch initramfs build`).
 */
import { randomInt } from 'node:crypto';
import { copyFile, mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { run } from '../../src/lib/proc.js';
import { darchOk } from './darch.js';
import { registerStaged } from './fakestage.js';

function newId(): string {
  let s = '';
  for (let i = 0; i < 25; i++) s += '0123456789abcdefghijklmnopqrstuvwxyz'[randomInt(36)];
  return s;
}

export interface StageOptions {
  kernelparams?: string;
  /** 'image': use the image's own /boot/initrd.img-* (e.g. initramfs-tools); default: darch's. */
  initramfs?: 'darch' | 'image';
  /** Paths (relative to the tree) left out of the squashfs. */
  exclude?: string[];
}

export async function stageTree(root: string, tree: string, tags: string[], opts: StageOptions = {}): Promise<string> {
  const stage = path.join(root, 'var/lib/darch/stage');
  const id = newId();
  const dir = path.join(stage, 'live', id);
  await mkdir(dir, { recursive: true });
  const excl = (opts.exclude ?? []).flatMap((e) => ['-e', e]);
  await run('nice', [
    'mksquashfs',
    tree,
    path.join(dir, 'rootfs.squash'),
    '-comp',
    'zstd',
    '-Xcompression-level',
    '3',
    '-noappend',
    '-quiet',
    '-no-progress',
    ...excl,
  ]);
  const boot = await readdir(path.join(tree, 'boot'));
  const kernel = boot.find((f) => f.startsWith('vmlinuz'));
  if (!kernel) throw new Error(`${tree} has no /boot/vmlinuz*`);
  await copyFile(path.join(tree, 'boot', kernel), path.join(dir, 'vmlinuz'));
  if (opts.initramfs === 'image') {
    const initrd = boot.find((f) => f.startsWith('initrd.img'));
    if (!initrd) throw new Error(`${tree} has no /boot/initrd.img*`);
    await copyFile(path.join(tree, 'boot', initrd), path.join(dir, 'initrd.img'));
  } else {
    await darchOk(['initramfs', 'build', path.join(dir, 'rootfs.squash'), '--kernel', path.join(dir, 'vmlinuz'), '-o', path.join(dir, 'initrd.img')], { root });
  }
  const image = { kernel: 'vmlinuz', initramfs: 'initrd.img', rootfs: 'rootfs.squash', ...(opts.kernelparams ? { kernelparams: opts.kernelparams } : {}) };
  await writeFile(path.join(dir, 'image.json'), JSON.stringify(image));
  await writeFile(path.join(dir, 'meta.json'), JSON.stringify({ id, source: { name: tags[0] }, created: new Date().toISOString() }));
  await registerStaged(stage, id, tags);
  return id;
}

/**
 * Another staged image made of the same files (hard links) with its own kernel
 * parameters: a cheap variant for boot tests (a bad trial, a panic, a missing init).
 */
export async function stageVariant(root: string, baseId: string, name: string, tag: string, kernelparams: string): Promise<string> {
  const stage = path.join(root, 'var/lib/darch/stage');
  const id = `${name}${'0'.repeat(25 - name.length)}`;
  const dir = path.join(stage, 'live', id);
  await run('cp', ['-al', path.join(stage, 'live', baseId), dir]);
  const img = JSON.parse(await readFile(path.join(dir, 'image.json'), 'utf8'));
  // Unlink before writing: the files are hard links shared with the base image.
  await run('rm', [path.join(dir, 'image.json'), path.join(dir, 'meta.json')]);
  await writeFile(path.join(dir, 'image.json'), JSON.stringify({ ...img, kernelparams }));
  await writeFile(path.join(dir, 'meta.json'), JSON.stringify({ id, created: new Date().toISOString() }));
  await registerStaged(stage, id, [tag]);
  return id;
}

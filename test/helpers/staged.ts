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

function newId(): string {
  let s = '';
  for (let i = 0; i < 25; i++) s += '0123456789abcdefghijklmnopqrstuvwxyz'[randomInt(36)];
  return s;
}

export interface StageOptions {
  kernelparams?: string;
}

export async function stageTree(root: string, tree: string, tags: string[], opts: StageOptions = {}): Promise<string> {
  const stage = path.join(root, 'var/lib/darch/stage');
  const id = newId();
  const dir = path.join(stage, 'live', id);
  await mkdir(dir, { recursive: true });
  await run('nice', ['mksquashfs', tree, path.join(dir, 'rootfs.squash'), '-comp', 'zstd', '-noappend', '-all-root', '-quiet', '-no-progress']);
  const kernel = (await readdir(path.join(tree, 'boot'))).find((f) => f.startsWith('vmlinuz'));
  if (!kernel) throw new Error(`${tree} has no /boot/vmlinuz*`);
  await copyFile(path.join(tree, 'boot', kernel), path.join(dir, 'vmlinuz'));
  await darchOk(['initramfs', 'build', path.join(dir, 'rootfs.squash'), '--kernel', path.join(dir, 'vmlinuz'), '-o', path.join(dir, 'initrd.img')], { root });
  const image = { kernel: 'vmlinuz', initramfs: 'initrd.img', rootfs: 'rootfs.squash', ...(opts.kernelparams ? { kernelparams: opts.kernelparams } : {}) };
  await writeFile(path.join(dir, 'image.json'), JSON.stringify(image));
  await writeFile(path.join(dir, 'meta.json'), JSON.stringify({ id, source: { name: tags[0] }, created: new Date().toISOString() }));
  const file = path.join(stage, 'images.json');
  let doc: { version: number; images: Record<string, { tags: string[] }> } = { version: 1, images: {} };
  try {
    doc = JSON.parse(await readFile(file, 'utf8'));
  } catch {
    /* first */
  }
  doc.images[id] = { tags };
  await writeFile(file, JSON.stringify(doc, null, 2));
  return id;
}

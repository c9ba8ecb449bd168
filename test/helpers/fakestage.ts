/**
 * Staged images made of small placeholder files, for tests of what darch does around a
 * staged image (menus, disks, hooks) that never boot it. Boot tests use staged.ts.
 */
import { randomInt } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { run } from '../../src/lib/proc.js';

export function stageDirOf(root: string): string {
  return path.join(root, 'var/lib/darch/stage');
}

export async function fakeStaged(root: string, tags: string[], opts: { kernelparams?: string; created?: Date } = {}): Promise<string> {
  let id = '';
  for (let i = 0; i < 25; i++) id += '0123456789abcdefghijklmnopqrstuvwxyz'[randomInt(36)];
  const stage = stageDirOf(root);
  const dir = path.join(stage, 'live', id);
  await mkdir(path.join(dir, 'src/etc'), { recursive: true });
  await writeFile(path.join(dir, 'src/etc/hostname'), `${tags[0]}\n`);
  await run('mksquashfs', [path.join(dir, 'src'), path.join(dir, 'rootfs.squash'), '-quiet', '-no-progress', '-noappend']);
  await run('rm', ['-rf', path.join(dir, 'src')]);
  await writeFile(path.join(dir, 'vmlinuz'), 'not a kernel\n');
  await writeFile(path.join(dir, 'initrd.img'), 'not an initramfs\n');
  await writeFile(
    path.join(dir, 'image.json'),
    JSON.stringify({ kernel: 'vmlinuz', initramfs: 'initrd.img', rootfs: 'rootfs.squash', ...(opts.kernelparams ? { kernelparams: opts.kernelparams } : {}) }),
  );
  await writeFile(path.join(dir, 'meta.json'), JSON.stringify({ id, created: (opts.created ?? new Date()).toISOString() }));
  await registerStaged(stage, id, tags);
  return id;
}

/** Add a staged id and its tags to images.json, as `darch stage upload` records it. */
export async function registerStaged(stage: string, id: string, tags: string[]): Promise<void> {
  const file = path.join(stage, 'images.json');
  let doc: { version: number; images: Record<string, { tags: string[] }> } = { version: 1, images: {} };
  try {
    doc = JSON.parse(await readFile(file, 'utf8'));
  } catch {
    /* first */
  }
  doc.images[id] = { tags };
  await writeFile(file, JSON.stringify(doc, null, 2));
}

/**
 * Stage a root directory the way `darch stage upload` lays it out (the "Staged images"
 * contract in docs/ARCHITECTURE.md), for boot tests that need staged images without
 * going through the image store. The initramfs is darch's own (`darch initramfs build`).
 */
import { copyFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { run } from '../../src/lib/proc.js';
import { DirFiles } from '../../src/lib/smallfs.js';
import { IMAGE_JSON, INITRD_FILE, KERNEL_FILE, readImageJsonIn, ROOTFS_FILE } from '../../src/stage/image-json.js';
import { META_JSON } from '../../src/stage/meta-json.js';
import { darchOk } from './darch.js';
import { sha256 } from '../../src/oci/digest.js';
import { formatVerity, verityFileOf } from '../../src/stage/verity.js';
import { putStaged, stageDirOf, stagedImageJson } from './fakestage.js';

export interface StageOptions {
  kernelparams?: string;
  /** 'image': use the image's own /boot/initrd.img-* (e.g. initramfs-tools); default: darch's. */
  initramfs?: 'darch' | 'image';
  /** Paths (relative to the tree) left out of the squashfs. */
  exclude?: string[];
  /** Add a dm-verity hash tree as `darch stage upload --verity` does (src/stage/verity.ts). */
  verity?: boolean;
}

export async function stageTree(root: string, tree: string, tags: string[], opts: StageOptions = {}): Promise<string> {
  const boot = await readdir(path.join(tree, 'boot'));
  const kernel = boot.find((f) => f.startsWith('vmlinuz'));
  if (!kernel) throw new Error(`${tree} has no /boot/vmlinuz*`);
  const initrd = boot.find((f) => f.startsWith('initrd.img'));
  if (opts.initramfs === 'image' && !initrd) throw new Error(`${tree} has no /boot/initrd.img*`);
  const image = stagedImageJson(opts.kernelparams);
  return putStaged(
    root,
    tags,
    async (dir) => {
      if (!opts.verity) return image;
      const rootfs = path.join(dir, ROOTFS_FILE);
      return { ...image, verity: await formatVerity(rootfs, verityFileOf(rootfs), sha256(tags.join(' '))) };
    },
    async (dir) => {
      const excl = (opts.exclude ?? []).flatMap((e) => ['-e', e]);
      await run('nice', [
        'mksquashfs',
        tree,
        path.join(dir, ROOTFS_FILE),
        '-comp',
        'zstd',
        '-Xcompression-level',
        '3',
        '-noappend',
        '-quiet',
        '-no-progress',
        ...excl,
      ]);
      await copyFile(path.join(tree, 'boot', kernel), path.join(dir, KERNEL_FILE));
      if (opts.initramfs === 'image') await copyFile(path.join(tree, 'boot', initrd!), path.join(dir, INITRD_FILE));
      else
        await darchOk(
          [
            'initramfs',
            'build',
            path.join(dir, ROOTFS_FILE),
            '--kernel',
            path.join(dir, KERNEL_FILE),
            '-o',
            path.join(dir, INITRD_FILE),
            ...(opts.verity ? ['--verity'] : []),
          ],
          {
            root,
          },
        );
    },
    { source: { name: tags[0] } },
  );
}

/**
 * Another staged image made of the same files (hard links) with its own kernel
 * parameters: a cheap variant for boot tests (a bad trial, a panic, a missing init).
 */
export async function stageVariant(root: string, baseId: string, name: string, tag: string, kernelparams: string): Promise<string> {
  const base = path.join(stageDirOf(root), 'live', baseId);
  const img = await readImageJsonIn(new DirFiles(base));
  return putStaged(
    root,
    [tag],
    { ...img, kernelparams },
    async (dir) => {
      // The big files as hard links; image.json and meta.json are written anew (never through a link).
      for (const f of await readdir(base)) if (f !== IMAGE_JSON && f !== META_JSON) await run('cp', ['-al', path.join(base, f), path.join(dir, f)]);
    },
    { id: `${name}${'0'.repeat(25 - name.length)}` },
  );
}

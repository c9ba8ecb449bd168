/**
 * Staged images for tests, written by darch's own stage writer: a work directory of the
 * stage store, image.json and meta.json through their contract modules, `commit` into live/
 * and `setTags` in images.json (src/stage/store.ts), so a test's staged image is exactly what
 * `darch stage upload` would leave, whatever the files inside. `fakeStaged` makes one of small
 * placeholder files, for what darch does around a staged image (menus, disks, hooks) that
 * never boots it; boot tests use staged.ts, which puts a real kernel and initramfs in.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { run } from '../../src/lib/proc.js';
import { DirFiles } from '../../src/lib/smallfs.js';
import { INITRD_FILE, KERNEL_FILE, ROOTFS_FILE, writeImageJsonIn, type ImageJson } from '../../src/stage/image-json.js';
import { writeMetaIn } from '../../src/stage/meta-json.js';
import { newStageId, StageStore } from '../../src/stage/store.js';

export function stageDirOf(root: string): string {
  return path.join(root, 'var/lib/darch/stage');
}

export interface PutStagedOptions {
  /** A fixed id (variants name themselves); a new random one by default. */
  id?: string;
  created?: Date;
  source?: { name?: string };
}

/**
 * Stage an image whose files `fill` writes into the work directory, described by `image`,
 * under `tags`. Returns the staged id.
 */
export async function putStaged(
  root: string,
  tags: string[],
  /** image.json, or made from the filled directory (e.g. a dm-verity root hash). */
  image: ImageJson | ((dir: string) => Promise<ImageJson>),
  fill: (dir: string) => Promise<void>,
  opts: PutStagedOptions = {},
): Promise<string> {
  const store = new StageStore(stageDirOf(root), 0);
  const id = opts.id ?? newStageId();
  const work = await store.makeWorkDir('test');
  await fill(work);
  const files = new DirFiles(work);
  await writeImageJsonIn(files, typeof image === 'function' ? await image(work) : image);
  await writeMetaIn(files, { id, created: (opts.created ?? new Date()).toISOString(), ...(opts.source ? { source: opts.source } : {}) });
  await store.withLock(async () => {
    await store.commit(work, id);
    await store.setTags(id, tags);
  });
  return id;
}

/** image.json of a staged image with darch's file names, as `darch stage upload` writes it. */
export function stagedImageJson(kernelparams?: string): ImageJson {
  return { kernel: KERNEL_FILE, initramfs: INITRD_FILE, rootfs: ROOTFS_FILE, ...(kernelparams ? { kernelparams } : {}) };
}

export async function fakeStaged(root: string, tags: string[], opts: { kernelparams?: string; created?: Date } = {}): Promise<string> {
  return putStaged(
    root,
    tags,
    stagedImageJson(opts.kernelparams),
    async (dir) => {
      const src = path.join(dir, 'src');
      await mkdir(path.join(src, 'etc'), { recursive: true });
      await writeFile(path.join(src, 'etc/hostname'), `${tags[0]}\n`);
      await run('mksquashfs', [src, path.join(dir, ROOTFS_FILE), '-quiet', '-no-progress', '-noappend']);
      await run('rm', ['-rf', src]);
      await writeFile(path.join(dir, KERNEL_FILE), 'not a kernel\n');
      await writeFile(path.join(dir, INITRD_FILE), 'not an initramfs\n');
    },
    { created: opts.created },
  );
}

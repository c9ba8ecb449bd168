/**
 * dm-verity for staged squashfs images: a hash tree beside the squashfs
 * (`rootfs.squash.verity`), made by veritysetup (cryptsetup-bin), whose root hash goes on the
 * entry's kernel command line. The initramfs maps the squashfs through dm-verity, so every
 * block the kernel reads is checked against that root hash: a flipped bit is an I/O error,
 * not a silently different root.
 *
 * No superblock in the hash file (`--no-superblock`): everything dm-verity needs comes from
 * the command line, so the initramfs needs only dmsetup, never parses on-disk metadata, and
 * the hash file holds nothing random. The salt is the image's config digest: the same image
 * staged twice gives the same hash tree and root hash (deltas rebuild byte-identical files).
 */
import { open, stat } from 'node:fs/promises';
import { DarchError, fsError } from '../lib/errors.js';
import { run } from '../lib/proc.js';
import type { Reporter } from '../lib/report.js';
import type { VerityParams } from './image-json.js';

/** dm-verity's data and hash block size: the page size, what every kernel supports. */
export const VERITY_BLOCK = 4096;
export const VERITY_ALGORITHM = 'sha256';

/** The hash file of a squashfs: `<rootfs>.verity`, what the initramfs looks for beside it. */
export function verityFileOf(rootfs: string): string {
  return `${rootfs}.verity`;
}

/**
 * Pad `file` with zeros to a whole number of 4 KiB blocks (dm-verity maps whole blocks;
 * squashfs ignores what follows its last byte). Returns the number of blocks.
 */
export async function padToBlocks(file: string): Promise<number> {
  const { size } = await stat(file);
  const rest = size % VERITY_BLOCK;
  if (rest !== 0) {
    const fh = await open(file, 'r+');
    try {
      await fh.truncate(size + VERITY_BLOCK - rest);
      await fh.sync();
    } finally {
      await fh.close();
    }
  }
  return Math.ceil(size / VERITY_BLOCK);
}

/** `sha256:<hex>` → the 64 hex digits veritysetup takes as a salt. */
function saltOf(digest: string): string {
  const hex = digest.replace(/^sha256:/, '');
  if (!/^[0-9a-f]{64}$/.test(hex)) throw new DarchError('E_INTERNAL', `not a sha256 digest: ${digest}`);
  return hex;
}

/**
 * Write the hash tree of `rootfs` to `hashFile` (fsynced) and return what the command line
 * carries. `saltFrom` is the image's config digest.
 */
export async function formatVerity(rootfs: string, hashFile: string, saltFrom: string, report?: Reporter): Promise<VerityParams> {
  const blocks = await padToBlocks(rootfs).catch((err: unknown) => {
    throw fsError(err, `cannot prepare ${rootfs} for dm-verity`);
  });
  const salt = saltOf(saltFrom);
  report?.step(`dm-verity hash tree over ${blocks} blocks`);
  const res = await run('veritysetup', [
    'format',
    '--no-superblock',
    `--hash=${VERITY_ALGORITHM}`,
    `--data-block-size=${VERITY_BLOCK}`,
    `--hash-block-size=${VERITY_BLOCK}`,
    `--salt=${salt}`,
    rootfs,
    hashFile,
  ]);
  const root = /^Root hash:\s*([0-9a-f]{64})\s*$/m.exec(res.stdout)?.[1];
  if (!root) throw new DarchError('E_COMMAND_FAILED', `veritysetup format printed no root hash for ${rootfs}`, { details: { stdout: res.stdout.slice(-400) } });
  // veritysetup writes the hash file without fsync (and for its owner only); it must be on
  // disk before the staged directory is renamed into place (the store's crash-safety
  // invariant), readable like the squashfs it describes.
  const fh = await open(hashFile, 'r+');
  try {
    await fh.chmod(0o644);
    await fh.sync();
  } finally {
    await fh.close();
  }
  return { roothash: root, salt, blocks, algorithm: VERITY_ALGORITHM };
}

/**
 * Check a squashfs against its hash tree and root hash in user space (no device mapper, no
 * root): true when every block matches.
 */
export async function checkVerity(rootfs: string, hashFile: string, v: VerityParams): Promise<{ ok: boolean; message: string }> {
  const res = await run(
    'veritysetup',
    [
      'verify',
      '--no-superblock',
      `--hash=${v.algorithm}`,
      `--data-block-size=${VERITY_BLOCK}`,
      `--hash-block-size=${VERITY_BLOCK}`,
      `--data-blocks=${v.blocks}`,
      `--salt=${v.salt}`,
      rootfs,
      hashFile,
      v.roothash,
    ],
    { allowFailure: true },
  );
  const message = (res.stderr || res.stdout).trim().split('\n').slice(-2).join(' ');
  return { ok: res.code === 0, message };
}

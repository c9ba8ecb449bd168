/**
 * Pipe a tar stream into tar2sqfs (squashfs-tools-ng). tar2sqfs keeps tar member order for
 * file data, honours SCHILY.xattr.* records (file capabilities) and needs no root: owners
 * come from the tar headers, not from chown.
 */
import os from 'node:os';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { DarchError } from '../lib/errors.js';
import { commandFailed, spawnChild, waitChild } from '../lib/proc.js';

export const SQUASHFS_COMPRESSORS = ['zstd', 'xz', 'gzip', 'lz4', 'lzo', 'lzma'] as const;
export type SquashfsCompressor = (typeof SQUASHFS_COMPRESSORS)[number];

export interface SquashfsOptions {
  compressor: SquashfsCompressor;
  blockSize: number;
  jobs?: number;
  signal?: AbortSignal;
}

export function tar2sqfsArgs(out: string, opts: SquashfsOptions): string[] {
  return ['--quiet', '--no-skip', '--force', '-c', opts.compressor, '-b', String(opts.blockSize), '-j', String(opts.jobs ?? os.availableParallelism()), out];
}

export async function writeSquashfs(tar: Readable, out: string, opts: SquashfsOptions): Promise<void> {
  const args = tar2sqfsArgs(out, opts);
  const child = spawnChild('tar2sqfs', args, { stdio: ['pipe', 'ignore', 'pipe'], signal: opts.signal });
  let stderr = '';
  child.stderr!.on('data', (b: Buffer) => {
    stderr = (stderr + b.toString()).slice(-8192);
  });
  const exited = waitChild(child, 'tar2sqfs');
  const fed = pipeline(tar, child.stdin!);
  // A dying tar2sqfs shows up as EPIPE on our side; its exit status and stderr say why.
  const [feed, exit] = await Promise.allSettled([fed, exited]);
  if (exit.status === 'rejected') throw exit.reason;
  const res = exit.value;
  if (res.code !== 0 || res.signal) {
    if (/No space left on device/i.test(stderr)) {
      throw new DarchError('E_NO_SPACE', `the stage file system filled up while writing ${out}`, {
        hint: 'free space (`darch stage clean`, `darch stage remove`) or lower stage.keep, then retry; nothing was staged',
      });
    }
    if (feed.status === 'rejected' && feed.reason instanceof DarchError) throw feed.reason;
    if (opts.signal?.aborted) throw new DarchError('E_ABORTED', 'interrupted', { exitCode: 130 });
    throw commandFailed('tar2sqfs', args, { ...res, stderr });
  }
  if (feed.status === 'rejected') throw feed.reason;
}

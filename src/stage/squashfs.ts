/**
 * Pipe a tar stream into a squashfs writer: tar2sqfs (squashfs-tools-ng) by default, or
 * sqfstar (squashfs-tools 4.5+, mksquashfs's multi-threaded engine). Both keep tar
 * member order for file data, honour SCHILY.xattr.* records (file capabilities) and need
 * no root: owners come from the tar headers, not from chown. Both are given fixed
 * timestamps for the file system itself, so the same image gives the same bytes.
 */
import { open } from 'node:fs/promises';
import os from 'node:os';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { DarchError } from '../lib/errors.js';
import { commandFailed, run, spawnChild, waitChild, which } from '../lib/proc.js';

export const SQUASHFS_COMPRESSORS = ['zstd', 'xz', 'gzip', 'lz4', 'lzo', 'lzma'] as const;
export type SquashfsCompressor = (typeof SQUASHFS_COMPRESSORS)[number];

export type SquashfsWriter = 'sqfstar' | 'tar2sqfs';

export interface RootAttributes {
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
}

export interface SquashfsOptions {
  writer: SquashfsWriter;
  compressor: SquashfsCompressor;
  /** Root directory attributes, for sqfstar (which ignores a './' member). */
  root?: RootAttributes;
  /** sqfstar's cache memory; mksquashfs defaults to a quarter of RAM. */
  memory?: string;
  blockSize: number;
  jobs?: number;
  signal?: AbortSignal;
}

export function tar2sqfsArgs(out: string, opts: SquashfsOptions): string[] {
  return ['--quiet', '--no-skip', '--force', '-c', opts.compressor, '-b', String(opts.blockSize), '-j', String(opts.jobs ?? os.availableParallelism()), out];
}

export function sqfstarArgs(out: string, opts: SquashfsOptions): string[] {
  const r = opts.root ?? { mode: 0o755, uid: 0, gid: 0, mtime: 0 };
  return [
    '-quiet',
    '-no-progress',
    '-comp',
    opts.compressor,
    '-b',
    String(opts.blockSize),
    '-processors',
    String(opts.jobs ?? os.availableParallelism()),
    '-mem',
    opts.memory ?? '128M',
    '-mkfs-time',
    '0',
    '-root-time',
    String(r.mtime),
    '-root-mode',
    (r.mode & 0o7777).toString(8),
    '-root-uid',
    String(r.uid),
    '-root-gid',
    String(r.gid),
    out,
  ];
}

let detected: SquashfsWriter | undefined;

/**
 * tar2sqfs if installed, else sqfstar. sqfstar fed through a pipe is not reproducible: the
 * same tar arriving with different timing gives different bytes (seen with sqfstar 4.5.1 and
 * a stream written in uneven chunks), while tar2sqfs gives identical output however its
 * input arrives, and inside darch it was no slower (docs/STAGE.md, bench).
 */
export async function defaultWriter(): Promise<SquashfsWriter> {
  detected ??= (await which('tar2sqfs')) ? 'tar2sqfs' : 'sqfstar';
  return detected;
}

export async function writeSquashfs(tar: Readable, out: string, opts: SquashfsOptions): Promise<void> {
  const cmd = opts.writer;
  const args = cmd === 'sqfstar' ? sqfstarArgs(out, opts) : tar2sqfsArgs(out, opts);
  const child = spawnChild(cmd, args, { stdio: ['pipe', 'ignore', 'pipe'], signal: opts.signal });
  let stderr = '';
  child.stderr!.on('data', (b: Buffer) => {
    stderr = (stderr + b.toString()).slice(-8192);
  });
  const exited = waitChild(child, cmd);
  const fed = pipeline(tar, child.stdin!);
  // A dying writer shows up as EPIPE on our side; its exit status and stderr say why.
  const [feed, exit] = await Promise.allSettled([fed, exited]);
  if (exit.status === 'rejected') throw exit.reason;
  const res = exit.value;
  if (res.code !== 0 || res.signal) {
    if (filledUp(stderr)) throw filledUpError(`writing ${out}`);
    if (feed.status === 'rejected' && feed.reason instanceof DarchError) throw feed.reason;
    if (opts.signal?.aborted) throw new DarchError('E_ABORTED', 'interrupted');
    throw commandFailed(cmd, args, { ...res, stderr });
  }
  if (feed.status === 'rejected') throw feed.reason;
}

/** The squashfs tools report a full disk only in their messages. */
function filledUp(stderr: string): boolean {
  return /No space left on device/i.test(stderr);
}

function filledUpError(doing: string): DarchError {
  return new DarchError('E_NO_SPACE', `the stage file system filled up while ${doing}`, {
    hint: 'free space (`darch stage clean`, `darch stage remove`) or lower stage.keep, then retry; nothing was staged',
  });
}

/**
 * Copy a regular file out of a squashfs into `out` (created; fsynced). rdsquashfs comes
 * with tar2sqfs (squashfs-tools-ng), so it is there whenever the one-pass stage ran.
 */
export async function copyFromSquashfs(image: string, inner: string, out: string, signal?: AbortSignal): Promise<void> {
  const fh = await open(out, 'wx', 0o644);
  try {
    const args = ['-c', `/${inner}`, image];
    const child = spawnChild('rdsquashfs', args, { stdio: ['ignore', fh.fd, 'pipe'], signal });
    let stderr = '';
    child.stderr!.on('data', (b: Buffer) => {
      stderr = (stderr + b.toString()).slice(-4096);
    });
    const res = await waitChild(child, 'rdsquashfs');
    if (res.code !== 0 || res.signal)
      throw filledUp(stderr) ? filledUpError(`copying /${inner} to ${out}`) : commandFailed('rdsquashfs', args, { ...res, stderr });
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** A small text file of a squashfs (image.json). */
export async function readFromSquashfs(image: string, inner: string): Promise<Buffer> {
  return Buffer.from((await run('rdsquashfs', ['-c', `/${inner}`, image])).stdout, 'utf8');
}

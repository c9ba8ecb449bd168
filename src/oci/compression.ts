/**
 * Compression by magic number. gzip and zstd run in-process (node:zlib; zstd since Node 24,
 * with the same 128 MiB window limit as the zstd tool's default); xz and bzip2, which
 * node:zlib lacks, through their command-line tools.
 */
import { createGunzip, createZstdDecompress } from 'node:zlib';
import { Duplex, PassThrough, Readable } from 'node:stream';
import { DarchError, type ErrorCode } from '../lib/errors.js';
import { commandFailed, spawnChild, waitChild } from '../lib/proc.js';

export type Magic = 'gzip' | 'zstd' | 'xz' | 'bzip2' | 'none';

export function sniff(head: Buffer): Magic {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.length >= 4 && head.readUInt32LE(0) === 0xfd2fb528) return 'zstd';
  if (head.length >= 6 && head.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) return 'xz';
  if (head.length >= 3 && head.subarray(0, 3).toString('latin1') === 'BZh') return 'bzip2';
  return 'none';
}

/** A Duplex that pipes through an external tool; the tool's failure becomes the stream's error. */
export function toolTransform(
  cmd: string,
  args: string[],
  failureCode: ErrorCode = 'E_CORRUPT_INPUT',
  failureHint = 'the input is truncated or corrupt',
): Duplex {
  const child = spawnChild(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  const input = new PassThrough();
  const out = new PassThrough();
  let stderr = '';
  child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
  child.stdin!.on('error', () => undefined);
  input.pipe(child.stdin!);
  child.stdout!.pipe(out, { end: false });
  waitChild(child, cmd).then(
    (res) => {
      if (res.code === 0) out.end();
      else out.destroy(new DarchError(failureCode, commandFailed(cmd, args, { ...res, stderr }).message, { hint: failureHint }));
    },
    (err: unknown) => out.destroy(err as Error),
  );
  const duplex = Duplex.from({ writable: input, readable: out });
  duplex.on('close', () => {
    if (child.exitCode === null) child.kill('SIGTERM');
  });
  return duplex;
}

export function decompressor(kind: Magic): Duplex | undefined {
  switch (kind) {
    case 'gzip':
      return createGunzip({ chunkSize: 256 * 1024 });
    case 'zstd':
      return createZstdDecompress({ chunkSize: 256 * 1024 });
    case 'xz':
      return toolTransform('xz', ['-dc']);
    case 'bzip2':
      return toolTransform('bzip2', ['-dc']);
    default:
      return undefined;
  }
}

/** Read the first bytes of a stream and give back a stream that still yields them. */
export async function peek(src: Readable, n = 512): Promise<{ head: Buffer; stream: Readable }> {
  const it = src[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  const chunks: Buffer[] = [];
  let len = 0;
  let ended = false;
  while (len < n) {
    const r = await it.next();
    if (r.done) {
      ended = true;
      break;
    }
    chunks.push(r.value);
    len += r.value.length;
  }
  const head = Buffer.concat(chunks);
  async function* rest(): AsyncGenerator<Buffer> {
    if (head.length) yield head;
    if (ended) return;
    for (;;) {
      const r = await it.next();
      if (r.done) return;
      yield r.value;
    }
  }
  return { head, stream: Readable.from(rest(), { objectMode: false }) };
}

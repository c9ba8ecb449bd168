/** Content digests and a pass-through stream that hashes and counts what flows through it. */
import type { Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { Transform, type TransformCallback } from 'node:stream';
import { DarchError } from '../lib/errors.js';

// node:crypto on first use: commands that hash nothing (status, --help) start without it.
const newSha256 = (): Hash => process.getBuiltinModule('node:crypto').createHash('sha256');

const DIGEST_RE = /^sha256:[a-f0-9]{64}$/;

export type Digest = `sha256:${string}`;

export function isDigest(s: string): s is Digest {
  return DIGEST_RE.test(s);
}

export function parseDigest(s: string): Digest {
  if (!isDigest(s)) {
    if (/^sha(384|512):/.test(s)) {
      throw new DarchError('E_DIGEST_UNSUPPORTED', `unsupported digest algorithm in ${s}`, { hint: 'darch stores sha256 content only' });
    }
    throw new DarchError('E_DIGEST_INVALID', `not a valid digest: ${s}`);
  }
  return s;
}

export function sha256(data: string | Uint8Array): Digest {
  return `sha256:${newSha256().update(data).digest('hex')}`;
}

export function digestHex(d: Digest): string {
  return d.slice('sha256:'.length);
}

/** Hashes bytes on their way through; read `digest()` and `size` after the stream ends. */
export class HashStream extends Transform {
  private readonly hash: Hash = newSha256();
  size = 0;
  private final?: Digest;

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.hash.update(chunk);
    this.size += chunk.length;
    cb(null, chunk);
  }

  digest(): Digest {
    this.final ??= `sha256:${this.hash.digest('hex')}`;
    return this.final;
  }
}

/** Counts and hashes without passing data on (a terminal sink). */
export class HashSink extends Transform {
  private readonly hash: Hash = newSha256();
  size = 0;
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.hash.update(chunk);
    this.size += chunk.length;
    cb();
  }
  digest(): Digest {
    return `sha256:${this.hash.digest('hex')}`;
  }
}

/** The digest and size of a file, streamed through the hash. */
export async function digestFile(file: string): Promise<{ digest: Digest; size: number }> {
  const sink = new HashSink();
  await pipeline(createReadStream(file), sink);
  return { digest: sink.digest(), size: sink.size };
}

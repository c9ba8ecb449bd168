/**
 * One blob from a registry into the store, verified and resumable.
 *
 * The partial download lives at `<store tmp>/pull-sha256-<hex>.partial`, a name derived from
 * the digest so a later process (after a crash or Ctrl-C) finds it. On resume the partial
 * file is hashed again (hash state cannot be saved) and the rest is asked for with
 * `Range: bytes=N-`; only a 206 whose Content-Range starts at N is appended, a 200 means
 * the server ignored the range and the file starts over. The finished file is checked
 * against the digest and size, fsynced, and renamed into the store; a mismatch deletes it.
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { stat, truncate, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { DarchError, isErrno } from '../lib/errors.js';
import { type Digest, digestHex, parseDigest } from '../oci/digest.js';
import type { Descriptor } from '../oci/mediatypes.js';
import type { ImageStore } from '../oci/store.js';
import { streamedBytes } from './memory.js';
import { type RegistryClient, backoffMs, describe, headerValue, isRetryableNetworkError } from './client.js';

export interface BlobTransfer {
  digest: Digest;
  size: number;
  /** Bytes that came over the network for this blob. */
  downloaded: number;
  /** Bytes of an earlier partial download that were reused. */
  resumed: number;
  /** Already in the store: nothing fetched. */
  skipped: boolean;
}

/** Lets chunks queue up so they reach the disk in few large writev calls, not one per socket read. */
const WRITE_BUFFER = 1024 * 1024;

export function partialPath(store: ImageStore, digest: Digest): string {
  return path.join(store.tmpDir, `pull-sha256-${digestHex(digest)}.partial`);
}

async function fileSize(p: string): Promise<number> {
  try {
    return (await stat(p)).size;
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return 0;
    throw err;
  }
}

async function hashFile(p: string, hash: Hash): Promise<void> {
  for await (const chunk of createReadStream(p) as AsyncIterable<Buffer>) hash.update(chunk);
}

/** `bytes START-END/TOTAL` → START, or undefined if it does not parse. */
export function contentRangeStart(v: string | undefined): { start: number; total?: number } | undefined {
  const m = /^bytes\s+(\d+)-(\d+)\/(\d+|\*)$/.exec((v ?? '').trim());
  if (!m) return undefined;
  return { start: Number(m[1]), total: m[3] === '*' ? undefined : Number(m[3]) };
}

class Meter extends Transform {
  written = 0;
  constructor(
    private readonly hash: Hash,
    private readonly limit: number,
    private readonly onBytes: (n: number) => void,
  ) {
    super();
  }
  override _transform(chunk: Buffer, _e: BufferEncoding, cb: TransformCallback): void {
    this.written += chunk.length;
    if (this.written > this.limit) {
      cb(
        new DarchError('E_SIZE_MISMATCH', `the registry sent more bytes than the blob's size`, {
          hint: 'the registry or a proxy is serving the wrong content',
        }),
      );
      return;
    }
    this.hash.update(chunk);
    this.onBytes(chunk.length);
    streamedBytes(chunk.length);
    cb(null, chunk);
  }
}

export interface DownloadOptions {
  repo: string;
  retries: number;
  onBytes: (n: number) => void;
  /** Bytes an earlier partial download left, reused; called before they are counted by onBytes. */
  onResume?: (n: number) => void;
  signal?: AbortSignal;
}

export async function downloadBlob(client: RegistryClient, store: ImageStore, desc: Descriptor, opts: DownloadOptions): Promise<BlobTransfer> {
  const digest = parseDigest(desc.digest);
  const short = digestHex(digest).slice(0, 12);
  const result: BlobTransfer = { digest, size: desc.size, downloaded: 0, resumed: 0, skipped: false };
  if (await store.hasBlob(digest)) return { ...result, skipped: true };
  const partial = partialPath(store, digest);
  let failures = 0;
  let restartedAfterMismatch = false;
  let first = true;
  for (;;) {
    let offset = await fileSize(partial);
    const hash = createHash('sha256');
    if (offset > desc.size) {
      await truncate(partial, 0);
      offset = 0;
    }
    if (offset > 0) {
      await hashFile(partial, hash);
      if (first) {
        result.resumed = offset;
        opts.onResume?.(offset);
        opts.onBytes(offset);
        client.report.info(`resuming ${short} at ${offset} of ${desc.size} bytes`);
      }
    }
    first = false;
    if (offset < desc.size) {
      try {
        const res = await client.send({
          url: `/v2/${opts.repo}/blobs/${digest}`,
          headers: offset > 0 ? { range: `bytes=${offset}-` } : {},
          scopes: [`repository:${opts.repo}:pull`],
        });
        let append = offset > 0;
        if (res.status === 206) {
          const cr = contentRangeStart(headerValue(res.headers, 'content-range'));
          if (!cr || cr.start !== offset || (cr.total !== undefined && cr.total !== desc.size)) {
            // A range we did not ask for: do not guess, start over.
            await res.body.dump().catch(() => undefined);
            await truncate(partial, 0);
            client.report.warn(`${short}: the registry answered a different range (${headerValue(res.headers, 'content-range') ?? 'none'}); starting over`);
            continue;
          }
        } else if (res.status === 200) {
          if (append) client.report.verbose(`${short}: the registry ignored the range request; starting over`);
          append = false;
        } else if (res.status === 416) {
          await res.body.dump().catch(() => undefined);
          await truncate(partial, 0);
          continue;
        } else {
          await res.body.dump().catch(() => undefined);
          throw blobStatusError(res.status, client.host, opts.repo, digest);
        }
        const h = append ? hash : createHash('sha256');
        const before = append ? offset : 0;
        const meter = new Meter(h, desc.size - before, (n) => {
          result.downloaded += n;
          opts.onBytes(n);
        });
        // A connection that breaks mid-body ends the stream instead of failing it: failing
        // would destroy the file stream and drop the bytes still in its buffer (up to
        // WRITE_BUFFER), which the resume would then fetch again. Every byte received is
        // kept; the break is thrown once they are on disk.
        let broke: unknown;
        const body = res.body;
        async function* received(): AsyncGenerator<Buffer> {
          try {
            for await (const c of body) yield c as Buffer;
          } catch (err) {
            if (opts.signal?.aborted) throw err;
            broke = err;
          }
        }
        try {
          await pipeline(received(), meter, createWriteStream(partial, { flags: append ? 'a' : 'w', flush: true, highWaterMark: WRITE_BUFFER }), {
            signal: opts.signal,
          });
          if (broke !== undefined) throw broke;
        } catch (err) {
          if (err instanceof DarchError && err.code === 'E_SIZE_MISMATCH') await unlink(partial).catch(() => undefined);
          throw err;
        }
        if (before + meter.written < desc.size) {
          throw new DarchError('E_REGISTRY_INTERRUPTED', `the transfer ended after ${before + meter.written} of ${desc.size} bytes`);
        }
        await finish(h);
        return result;
      } catch (err) {
        if (opts.signal?.aborted) throw opts.signal.reason ?? err;
        if (err instanceof DarchError && err.code === 'E_DIGEST_MISMATCH') {
          if (restartedAfterMismatch) throw err;
          restartedAfterMismatch = true;
          client.report.warn(`${short}: ${err.message}; downloading it again`);
          continue;
        }
        if (!isRetryableNetworkError(err) || failures >= opts.retries) throw wrapDownloadError(err, client, short);
        const wait = backoffMs(failures++);
        client.report.warn(`${short}: download interrupted (${describe(err)}); resuming in ${(wait / 1000).toFixed(1)} s`);
        await sleep(wait, undefined, { signal: opts.signal });
        continue;
      }
    }
    // The partial file already holds every byte (a previous run died before renaming it),
    // or the blob is empty and there was nothing to fetch.
    try {
      if (desc.size === 0) await writeFile(partial, '');
      await finish(hash);
      return result;
    } catch (err) {
      if (err instanceof DarchError && err.code === 'E_DIGEST_MISMATCH' && !restartedAfterMismatch) {
        restartedAfterMismatch = true;
        continue;
      }
      throw err;
    }
  }

  async function finish(h: Hash): Promise<void> {
    const actual = `sha256:${h.digest('hex')}`;
    if (actual !== digest) {
      await unlink(partial).catch(() => undefined);
      throw new DarchError('E_DIGEST_MISMATCH', `blob ${digest} from ${client.host} does not match its digest (got ${actual})`, {
        hint: 'the registry, a proxy or the network corrupted the data; nothing was stored. Try again; if it persists, the image in the registry is damaged',
        details: { expected: digest, actual },
      });
    }
    await store.commitTempBlob(partial, digest);
  }
}

function wrapDownloadError(err: unknown, client: RegistryClient, short: string): DarchError {
  if (err instanceof DarchError && err.code !== 'E_REGISTRY_INTERRUPTED') return err;
  const e = client.networkError(err);
  return new DarchError(e.code, `download of ${short} failed: ${e.message.replace(/^cannot reach [^:]+: /, '')}`, {
    hint: 'run the same command again: the download resumes where it stopped',
    cause: err,
  });
}

export function blobStatusError(status: number, host: string, repo: string, digest: string): DarchError {
  if (status === 404) {
    return new DarchError('E_NOT_FOUND', `${host}/${repo} has no blob ${digest}`, { hint: 'the image in the registry is incomplete; push it again' });
  }
  if (status === 403) {
    return new DarchError('E_AUTH_DENIED', `${host} denied access to ${repo}`, { hint: `check that your account may pull it: darch login ${host}` });
  }
  return new DarchError('E_REGISTRY', `${host} answered ${status} for blob ${digest}`, { hint: 'try again later' });
}

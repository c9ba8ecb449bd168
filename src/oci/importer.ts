/**
 * `darch images import`: root file system tarballs, OCI archives, docker-save archives
 * and OCI layout directories become images in the store. Everything streams; nothing
 * the import wrote survives a failure except as unreferenced blobs of a killed process,
 * which `darch images prune` removes and `verify` does not mind.
 */
import { createReadStream } from 'node:fs';
import { open, readFile, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { PassThrough, Transform, type Readable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import tar from 'tar-stream';
import { DarchError, fsError, isErrno } from '../lib/errors.js';
import { silentReporter, type Reporter } from '../lib/report.js';
import { decompressor, peek, sniff } from './compression.js';
import { type Digest, HashStream, isDigest, sha256 } from './digest.js';
import {
  type Descriptor,
  type ImageConfig,
  type ImageIndex,
  type ImageManifest,
  MediaType,
  REF_NAME_ANNOTATION,
  hostPlatform,
  isIndexType,
} from './mediatypes.js';
import { normalizeRef } from './reference.js';
import { parseConfig, parseDockerArchiveManifest, parseIndex, parseJsonText, type DockerArchiveEntry } from './manifest-json.js';
import type { ImageStore } from './store.js';

export type ImportFormat = 'rootfs' | 'oci-archive' | 'docker-archive' | 'oci-dir';

export interface ImportOptions {
  /** Force a format instead of detecting it. */
  format?: ImportFormat;
  /** For archives or layouts that hold several images: which one (ref name or RepoTag). */
  sourceRef?: string;
  /** Compression for the layer made from a root file system tarball. */
  compression?: 'gzip' | 'none';
  /** Extra image config for rootfs imports. */
  architecture?: string;
  /** Creation time recorded in the image config; fixed values make imports reproducible. */
  created?: Date;
  /** The history line recorded in the image config. */
  createdBy?: string;
  signal?: AbortSignal;
  /** Where the import's byte progress goes. */
  report?: Reporter;
}

export interface ImportResult {
  name: string;
  digest: string;
  format: ImportFormat;
  layers: number;
  blobsWritten: number;
  bytesWritten: number;
}

const SMALL_FILE = 8 * 1024 * 1024;

/** Parse `oci:<dir>[:<ref>]`. */
export function parseOciDirSource(src: string): { dir: string; ref?: string } | undefined {
  if (!src.startsWith('oci:')) return undefined;
  const rest = src.slice(4);
  const colon = rest.indexOf(':');
  if (colon < 0) return { dir: rest };
  return { dir: rest.slice(0, colon), ref: rest.slice(colon + 1) || undefined };
}

export async function importImage(store: ImageStore, source: string, target: string, opts: ImportOptions = {}): Promise<ImportResult> {
  const name = normalizeRef(target);
  const ociDir = parseOciDirSource(source);
  return store.withLock(async () => {
    // Space held by a killed import's partial blob is better given to this one.
    await store.sweepTemp();
    const tx = new BlobTransaction(store);
    try {
      let res: Omit<ImportResult, 'name' | 'blobsWritten' | 'bytesWritten'>;
      if (ociDir || opts.format === 'oci-dir') {
        const src = ociDir ?? { dir: source, ref: opts.sourceRef };
        res = await importOciDir(store, tx, src.dir, src.ref ?? opts.sourceRef, name);
      } else {
        const format = opts.format ?? (source === '-' ? 'rootfs' : await detectFormat(source));
        if (format === 'rootfs') res = await importRootfs(store, tx, source, name, opts);
        else if (format === 'oci-archive') res = await importOciArchive(store, tx, source, name, opts.sourceRef, opts.report);
        else res = await importDockerArchive(store, tx, source, name, opts.sourceRef, opts.report);
      }
      await tx.dropUnreachable();
      return { name, ...res, blobsWritten: tx.added.size, bytesWritten: tx.bytes };
    } catch (err) {
      await tx.rollback();
      throw err;
    }
  });
}

/** Tracks blobs an import added, so a failed import leaves the store as it found it. */
class BlobTransaction {
  readonly added = new Map<string, number>();
  bytes = 0;
  constructor(private readonly store: ImageStore) {}

  async put(src: Readable, expect: { digest?: string; size?: number } = {}, onBytes?: (n: number) => void): Promise<{ digest: Digest; size: number }> {
    if (expect.digest && isDigest(expect.digest) && (await this.store.hasBlob(expect.digest))) {
      src.resume();
      await new Promise<void>((res, rej) => {
        src.once('end', res);
        src.once('error', rej);
      });
      return { digest: expect.digest, size: expect.size ?? (await this.store.blobSize(expect.digest)) ?? 0 };
    }
    const r = await this.store.putBlob(src, expect, onBytes);
    if (r.created) this.record(r.digest, r.size);
    return r;
  }

  async putBytes(bytes: Buffer, mediaType: string): Promise<Descriptor> {
    const digest = sha256(bytes);
    const had = await this.store.hasBlob(digest);
    const d = await this.store.putBytes(bytes, mediaType);
    if (!had) this.record(digest, bytes.length);
    return d;
  }

  private record(digest: string, size: number): void {
    if (!this.added.has(digest)) {
      this.added.set(digest, size);
      this.bytes += size;
    }
  }

  async rollback(): Promise<void> {
    if (this.added.size === 0) return;
    const reachable = (await this.store.reachable()).blobs;
    for (const d of this.added.keys()) {
      if (!reachable.has(d)) await unlink(this.store.blobPath(d)).catch(() => undefined);
    }
  }

  /** After success: remove blobs this import added that the new image does not use (other images in an archive). */
  async dropUnreachable(): Promise<void> {
    if (this.added.size === 0) return;
    const reachable = (await this.store.reachable()).blobs;
    for (const [d, size] of this.added) {
      if (!reachable.has(d)) {
        await unlink(this.store.blobPath(d)).catch(() => undefined);
        this.added.delete(d);
        this.bytes -= size;
      }
    }
  }
}

// ---- format detection ------------------------------------------------------

async function openSource(source: string): Promise<{ stream: Readable; size?: number }> {
  if (source === '-') return { stream: process.stdin };
  try {
    const s = await stat(source);
    if (s.isDirectory()) {
      throw new DarchError('E_BAD_INPUT', `${source} is a directory`, { hint: `to import an OCI layout directory use oci:${source}[:<ref>]` });
    }
    return { stream: createReadStream(source), size: s.size };
  } catch (err) {
    if (isErrno(err, 'ENOENT')) throw new DarchError('E_NOT_FOUND', `${source} does not exist`);
    throw fsError(err, `cannot read ${source}`);
  }
}

/** A decompressed view of a (possibly compressed) tar source; onBytes counts the raw bytes read. */
async function openTar(source: string, onBytes?: (n: number) => void): Promise<{ stream: Readable; size?: number }> {
  const { stream: raw, size } = await openSource(source);
  const { head, stream } = await peek(raw);
  const counted = onBytes
    ? stream.pipe(
        new Transform({
          transform(chunk: Buffer, _e, cb) {
            onBytes(chunk.length);
            cb(null, chunk);
          },
        }),
      )
    : stream;
  stream.on('error', (e) => counted.destroy(e));
  const d = decompressor(sniff(head));
  if (!d) return { stream: counted, size };
  counted.on('error', (e) => d.destroy(e));
  return { stream: counted.pipe(d) as unknown as Readable, size };
}

const WRITE_ERRNOS = new Set(['ENOSPC', 'EDQUOT', 'EROFS', 'EACCES', 'EPERM', 'EIO']);

function badTar(source: string, err: unknown): DarchError {
  if (err instanceof DarchError) return err;
  if (isErrno(err) && WRITE_ERRNOS.has(err.code ?? '')) return fsError(err, 'cannot import into the image store');
  const msg = err instanceof Error ? err.message : String(err);
  if (/Unexpected end|premature|truncat/i.test(msg)) {
    return new DarchError('E_TRUNCATED', `${source} is truncated (${msg})`, { hint: 'the file was cut short; copy or download it again' });
  }
  if (/Invalid tar header|invalid|incorrect header check|unknown compression/i.test(msg)) {
    return new DarchError('E_NOT_A_TARBALL', `${source} is not a tar archive (${msg})`, {
      hint: 'darch imports root file system tarballs (.tar, .tar.gz, .tar.zst, .tar.xz), OCI archives and docker-save archives',
    });
  }
  return new DarchError('E_BAD_INPUT', `cannot read ${source}: ${msg}`);
}

const ARCHIVE_MARKERS = new Set(['oci-layout', 'index.json', 'manifest.json', 'repositories']);

function cleanName(n: string): string {
  return n.replace(/^\.\//, '').replace(/^\/+/, '');
}

function archiveish(name: string): boolean {
  return ARCHIVE_MARKERS.has(name) || name === 'blobs' || name === 'blobs/' || name.startsWith('blobs/') || /^[a-f0-9]{64}(\/|\.json$|\.tar$|$)/.test(name);
}

/** Look at entry names: an OCI or docker archive has only archive-shaped entries. */
export async function detectFormat(source: string): Promise<ImportFormat> {
  const { stream } = await openTar(source);
  const extract = tar.extract();
  const seen = new Set<string>();
  let decided: ImportFormat | undefined;
  let entries = 0;
  try {
    await new Promise<void>((resolve, reject) => {
      extract.on('entry', (header, body, next) => {
        entries++;
        const n = cleanName(header.name);
        if (n !== '' && n !== '.') {
          if (!archiveish(n)) {
            decided = 'rootfs';
            extract.destroy();
            stream.destroy();
            resolve();
            return;
          }
          seen.add(n.replace(/\/$/, ''));
        }
        body.on('end', next);
        body.on('error', () => undefined);
        body.resume();
      });
      extract.on('finish', resolve);
      extract.on('close', resolve);
      extract.on('error', reject);
      stream.on('error', reject);
      stream.pipe(extract);
    });
  } catch (err) {
    throw badTar(source, err);
  }
  if (decided) return decided;
  if (entries === 0) throw new DarchError('E_NOT_A_TARBALL', `${source} is empty or not a tar archive`);
  if (seen.has('oci-layout') && seen.has('index.json')) return 'oci-archive';
  if (seen.has('manifest.json')) return 'docker-archive';
  return 'rootfs';
}

// ---- rootfs ------------------------------------------------------------------

/** Passes bytes through while a tar parser checks every header, so junk never becomes a layer. */
export class TarValidator extends Transform {
  private readonly extract = tar.extract();
  private failed?: Error;
  entries = 0;
  constructor() {
    super();
    this.extract.on('entry', (_h, body, next) => {
      this.entries++;
      body.on('end', next);
      body.on('error', () => undefined); // the extract's own error carries the cause
      body.resume();
    });
    this.extract.on('error', (e: Error) => (this.failed = e));
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (this.failed) {
      cb(this.failed);
      return;
    }
    const ok = this.extract.write(chunk);
    const go = () => cb(this.failed ?? null, chunk);
    if (ok) go();
    else this.extract.once('drain', go);
  }
  override _flush(cb: TransformCallback): void {
    if (this.failed) {
      cb(this.failed);
      return;
    }
    this.extract.once('finish', () => cb(this.failed ?? (this.entries === 0 ? new Error('Invalid tar header: no entries') : null)));
    this.extract.once('error', (e: Error) => cb(e));
    (this.extract as unknown as NodeJS.WritableStream).end();
  }
}

async function importRootfs(store: ImageStore, tx: BlobTransaction, source: string, name: string, opts: ImportOptions) {
  const progress = (opts.report ?? silentReporter).progress(`importing ${path.basename(source === '-' ? 'stdin' : source)}`);
  const { stream, size } = await openTar(source, (n) => progress.tick(n));
  if (size) progress.setTotal(size);
  const compression = opts.compression ?? 'gzip';
  const diff = new HashStream();
  const validator = new TarValidator();
  const stages: NodeJS.ReadWriteStream[] = [validator, diff];
  if (compression === 'gzip') stages.push(createGzip({ level: 6 }));
  const out = new PassThrough();
  let layer: { digest: Digest; size: number };
  try {
    const [piped, put] = await Promise.allSettled([
      pipeline([stream, ...stages, out] as unknown as [Readable, ...NodeJS.ReadWriteStream[]], { signal: opts.signal }),
      tx.put(out),
    ]);
    // The store's error (disk full, digest) says more than the broken pipe it causes upstream.
    if (put.status === 'rejected' && put.reason instanceof DarchError) throw put.reason;
    if (piped.status === 'rejected') throw piped.reason;
    if (put.status === 'rejected') throw put.reason;
    layer = put.value;
  } catch (err) {
    progress.done();
    throw badTar(source, err);
  }
  progress.done();
  const epoch = process.env.SOURCE_DATE_EPOCH;
  const created = (opts.created ?? (epoch && /^\d+$/.test(epoch) ? new Date(Number(epoch) * 1000) : new Date())).toISOString();
  const config: ImageConfig = {
    created,
    architecture: opts.architecture ?? hostPlatform().architecture,
    os: 'linux',
    config: { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], Cmd: ['/bin/sh'] },
    rootfs: { type: 'layers', diff_ids: [diff.digest()] },
    history: [{ created, created_by: opts.createdBy ?? `darch images import ${source === '-' ? '-' : path.basename(source)}` }],
  };
  const configDesc = await tx.putBytes(Buffer.from(JSON.stringify(config)), MediaType.ociConfig);
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    config: configDesc,
    layers: [{ mediaType: compression === 'gzip' ? MediaType.ociLayerGzip : MediaType.ociLayer, digest: layer.digest, size: layer.size }],
  };
  const mdesc = await tx.putBytes(Buffer.from(JSON.stringify(manifest)), MediaType.ociManifest);
  await store.setRef(name, mdesc);
  return { digest: mdesc.digest, format: 'rootfs' as const, layers: 1 };
}

// ---- OCI archive / layout ------------------------------------------------------

interface Collected {
  small: Map<string, Buffer>;
  blobs: Map<string, { digest: Digest; size: number }>;
}

/** Stream every entry of an archive: small metadata is buffered, everything else goes straight into the store. */
async function collectArchive(
  source: string,
  tx: BlobTransaction,
  isBlob: (name: string, size: number) => boolean,
  report: Reporter = silentReporter,
): Promise<Collected> {
  const links = new Map<string, string>();
  const progress = report.progress(`importing ${path.basename(source)}`);
  const { stream, size } = await openTar(source, (n) => progress.tick(n));
  if (size) progress.setTotal(size);
  const small = new Map<string, Buffer>();
  const blobs = new Map<string, { digest: Digest; size: number }>();
  const extract = tar.extract();
  try {
    await new Promise<void>((resolve, reject) => {
      extract.on('entry', (header, body, next) => {
        const n = cleanName(header.name);
        const entrySize = header.size ?? 0;
        body.on('error', () => undefined);
        if ((header.type === 'symlink' || header.type === 'link') && header.linkname) {
          // docker/skopeo archives link <id>/layer.tar to the real file.
          const target = header.type === 'symlink' ? path.posix.normalize(path.posix.join(path.posix.dirname(n), header.linkname)) : cleanName(header.linkname);
          links.set(n, target);
        }
        if (header.type !== 'file' && header.type !== 'contiguous-file') {
          body.on('end', next);
          body.resume();
          return;
        }
        const m = /^blobs\/sha256\/([a-f0-9]{64})$/.exec(n);
        const expect = m ? { digest: `sha256:${m[1]}`, size: entrySize } : { size: entrySize };
        if (isBlob(n, entrySize)) {
          tx.put(body as unknown as Readable, expect).then((r) => {
            blobs.set(n, r);
            next();
          }, reject);
        } else {
          const chunks: Buffer[] = [];
          body.on('data', (c: unknown) => chunks.push(c as Buffer));
          body.on('end', () => {
            small.set(n, Buffer.concat(chunks));
            next();
          });
          body.on('error', reject);
        }
      });
      extract.on('finish', resolve);
      extract.on('error', reject);
      stream.on('error', reject);
      stream.pipe(extract);
    });
  } catch (err) {
    progress.done();
    throw badTar(source, err);
  } finally {
    progress.done();
  }
  for (const [from, to] of links) {
    const b = blobs.get(to);
    if (b) blobs.set(from, b);
    const sm = small.get(to);
    if (sm) small.set(from, sm);
  }
  return { small, blobs };
}

const BAD_ARCHIVE = { code: 'E_BAD_ARCHIVE', hint: 'the archive is broken or not an image archive; nothing was imported' } as const;

function jsonIn(buf: Buffer | undefined, what: string, source: string): unknown {
  if (!buf) throw new DarchError('E_BAD_ARCHIVE', `${source} has no ${what}`, { hint: 'the archive is incomplete or not an image archive' });
  return parseJsonText(buf, `${source}: ${what}`, BAD_ARCHIVE);
}

function pickFromIndex(index: ImageIndex, sourceRef: string | undefined, source: string): Descriptor {
  const named = (d: Descriptor) => d.annotations?.[REF_NAME_ANNOTATION];
  if (sourceRef) {
    const want = [sourceRef];
    try {
      want.push(normalizeRef(sourceRef));
    } catch {
      /* not a full reference: match the raw name only */
    }
    const hit = index.manifests.find((d) => want.includes(named(d) ?? ''));
    if (!hit) {
      throw new DarchError('E_IMAGE_NOT_FOUND', `${source} has no image named ${sourceRef}`, {
        hint: `it has: ${index.manifests.map((d) => named(d) ?? d.digest).join(', ') || 'nothing'}`,
      });
    }
    return hit;
  }
  if (index.manifests.length === 1 && index.manifests[0]) return index.manifests[0];
  if (index.manifests.length === 0) throw new DarchError('E_BAD_ARCHIVE', `${source} holds no images`);
  throw new DarchError('E_AMBIGUOUS', `${source} holds ${index.manifests.length} images`, {
    hint: `choose one with --source-ref: ${index.manifests.map((d) => named(d) ?? d.digest).join(', ')}`,
  });
}

/** Check that every blob the image needs is present, reading manifests from the store. */
async function checkClosure(store: ImageStore, root: Descriptor, source: string): Promise<number> {
  let layers = 0;
  const need = async (d: Descriptor): Promise<void> => {
    if (!(await store.hasBlob(d.digest))) {
      throw new DarchError('E_BAD_ARCHIVE', `${source} is incomplete: blob ${d.digest} (${d.mediaType}) is missing`, {
        hint: 'the archive was cut short or built wrongly; nothing was imported',
      });
    }
  };
  const walk = async (d: Descriptor): Promise<void> => {
    await need(d);
    if (isIndexType(d.mediaType)) {
      const idx = await store.readIndexBlob(d.digest);
      for (const m of idx.manifests) await walk(m);
      return;
    }
    const m = await store.readManifest(d.digest);
    if (!m.config || !Array.isArray(m.layers)) throw new DarchError('E_BAD_ARCHIVE', `${source}: ${d.digest} is not an image manifest`);
    await need(m.config);
    for (const l of m.layers) await need(l);
    layers = Math.max(layers, m.layers.length);
  };
  await walk(root);
  return layers;
}

async function importOciArchive(store: ImageStore, tx: BlobTransaction, source: string, name: string, sourceRef?: string, report?: Reporter) {
  const { small } = await collectArchive(source, tx, (n) => n.startsWith('blobs/'), report);
  const index = parseIndex(jsonIn(small.get('index.json'), 'index.json', source), `${source}: index.json`, BAD_ARCHIVE);
  const pick = pickFromIndex(index, sourceRef, source);
  const layers = await checkClosure(store, pick, source);
  const { annotations: _a, ...desc } = pick;
  await store.setRef(name, desc);
  return { digest: pick.digest, format: 'oci-archive' as const, layers };
}

async function importOciDir(store: ImageStore, tx: BlobTransaction, dir: string, sourceRef: string | undefined, name: string) {
  let text: string;
  try {
    text = await readFile(path.join(dir, 'index.json'), 'utf8');
  } catch (err) {
    if (isErrno(err, 'ENOENT')) throw new DarchError('E_NOT_FOUND', `${dir} is not an OCI layout (no index.json)`);
    throw fsError(err, `cannot read ${dir}/index.json`);
  }
  const index = parseIndex(parseJsonText(text, `${dir}/index.json`, BAD_ARCHIVE), `${dir}/index.json`, BAD_ARCHIVE);
  const pick = pickFromIndex(index, sourceRef, `oci:${dir}`);
  const blobFile = (d: string) => path.join(dir, 'blobs', 'sha256', d.slice(7));
  let layers = 0;
  const copy = async (d: Descriptor): Promise<void> => {
    if (!isDigest(d.digest)) throw new DarchError('E_BAD_ARCHIVE', `oci:${dir}: unsupported digest ${d.digest}`);
    let src: Readable;
    try {
      await stat(blobFile(d.digest));
      src = createReadStream(blobFile(d.digest));
    } catch {
      throw new DarchError('E_BAD_ARCHIVE', `oci:${dir} is incomplete: blob ${d.digest} is missing`);
    }
    await tx.put(src, { digest: d.digest, size: d.size });
    if (isIndexType(d.mediaType)) {
      for (const m of (await store.readIndexBlob(d.digest)).manifests) await copy(m);
    } else if (d.mediaType === MediaType.ociManifest || d.mediaType === MediaType.dockerManifest) {
      const m = await store.readManifest(d.digest);
      await copy(m.config);
      for (const l of m.layers) await copy(l);
      layers = Math.max(layers, m.layers.length);
    }
  };
  await copy(pick);
  const { annotations: _a, ...desc } = pick;
  await store.setRef(name, desc);
  return { digest: pick.digest, format: 'oci-dir' as const, layers };
}

// ---- docker-save archive ---------------------------------------------------------

async function importDockerArchive(store: ImageStore, tx: BlobTransaction, source: string, name: string, sourceRef?: string, report?: Reporter) {
  const { small, blobs } = await collectArchive(source, tx, (n, size) => n.startsWith('blobs/') || n.endsWith('.tar') || size > SMALL_FILE, report);
  const entries = parseDockerArchiveManifest(jsonIn(small.get('manifest.json'), 'manifest.json', source), `${source}: manifest.json`, BAD_ARCHIVE);
  if (entries.length === 0) throw new DarchError('E_BAD_ARCHIVE', `${source}: manifest.json lists no images`);
  let entry: DockerArchiveEntry | undefined;
  if (sourceRef) {
    entry = entries.find((e) => (e.RepoTags ?? []).some((t) => t === sourceRef || t.endsWith(`/${sourceRef}`)));
    if (!entry)
      throw new DarchError('E_IMAGE_NOT_FOUND', `${source} has no image tagged ${sourceRef}`, {
        hint: `it has: ${entries.flatMap((e) => e.RepoTags ?? []).join(', ')}`,
      });
  } else if (entries.length === 1) entry = entries[0];
  else
    throw new DarchError('E_AMBIGUOUS', `${source} holds ${entries.length} images`, {
      hint: `choose one with --source-ref: ${entries.flatMap((e) => e.RepoTags ?? []).join(', ')}`,
    });
  if (!entry) throw new DarchError('E_BAD_ARCHIVE', `${source}: empty manifest entry`);

  const configBytes = small.get(entry.Config) ?? (blobs.has(entry.Config) ? await store.readBlob(blobs.get(entry.Config)!.digest) : undefined);
  const config = parseConfig(jsonIn(configBytes, entry.Config, source), `${source}: ${entry.Config}`, BAD_ARCHIVE);
  const diffIds = config.rootfs.diff_ids;
  if (diffIds.length !== entry.Layers.length) {
    throw new DarchError('E_BAD_ARCHIVE', `${source}: the config lists ${diffIds.length} layers but the archive has ${entry.Layers.length}`);
  }
  const layers: Descriptor[] = [];
  for (const [i, layerPath] of entry.Layers.entries()) {
    const b = blobs.get(cleanName(layerPath));
    if (!b)
      throw new DarchError('E_BAD_ARCHIVE', `${source} is incomplete: layer ${layerPath} is missing`, {
        hint: 'the archive was cut short; nothing was imported',
      });
    const head = await readHead(store, b.digest);
    const kind = sniff(head);
    const mediaType = kind === 'gzip' ? MediaType.ociLayerGzip : kind === 'zstd' ? MediaType.ociLayerZstd : MediaType.ociLayer;
    if (kind === 'none' && b.digest !== diffIds[i]) {
      throw new DarchError('E_DIGEST_MISMATCH', `${source}: layer ${layerPath} hashes to ${b.digest} but the config says ${diffIds[i]}`, {
        hint: 'the archive is corrupt; nothing was imported',
      });
    }
    layers.push({ mediaType, digest: b.digest, size: b.size });
  }
  const configDesc = await tx.putBytes(configBytes!, MediaType.ociConfig);
  const manifest: ImageManifest = { schemaVersion: 2, mediaType: MediaType.ociManifest, config: configDesc, layers };
  const mdesc = await tx.putBytes(Buffer.from(JSON.stringify(manifest)), MediaType.ociManifest);
  await store.setRef(name, mdesc);
  return { digest: mdesc.digest, format: 'docker-archive' as const, layers: layers.length };
}

async function readHead(store: ImageStore, digest: string): Promise<Buffer> {
  const fh = await open(store.blobPath(digest), 'r');
  try {
    const buf = Buffer.alloc(8);
    const { bytesRead } = await fh.read(buf, 0, 8, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

/**
 * The local image store: a standard OCI image layout (oci-layout, index.json,
 * blobs/sha256/…) that skopeo, umoci and oras read as they are.
 *
 * Invariants:
 * - a blob file exists only with its full, verified content (temp file in tmpDir,
 *   hashed while streaming, fsynced, renamed, directory fsynced);
 * - index.json is replaced atomically, so readers never lock;
 * - writers hold the store lock for the whole operation, so prune never races an import.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { mkdir, readFile, readdir, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { commitFile, fsyncDir, ownedTempName, sweepDeadOwners, writeFileAtomic, writeFileDurable, writeJsonAtomic } from '../lib/scratch.js';
import { DarchError, fsError, isErrno } from '../lib/errors.js';
import { withLock } from '../lib/lock.js';
import { type Digest, HashStream, digestHex, isDigest, parseDigest, sha256 } from './digest.js';
import {
  type Descriptor,
  type ImageConfig,
  type ImageIndex,
  type ImageManifest,
  type Platform,
  MediaType,
  REF_NAME_ANNOTATION,
  hostPlatform,
  isIndexType,
  isManifestType,
} from './mediatypes.js';
import { normalizeRef } from './reference.js';
import { declaredMediaType, looksLikeIndex, parseConfig, parseIndex, parseJsonText, parseManifest } from './manifest-json.js';

const STORE_CORRUPT = { code: 'E_STORE_CORRUPT', hint: 'run `darch images verify`, then re-import or re-pull the image' } as const;

/** Manifests, indexes and configs are small; refuse to buffer anything claiming more. */
const MAX_JSON_BLOB = 8 * 1024 * 1024;

export interface BlobExpectation {
  digest?: string;
  size?: number;
}

export interface StoredRef {
  name: string;
  descriptor: Descriptor;
}

export interface ResolvedImage {
  name?: string;
  /** What the ref points at (a manifest, or an index for multi-platform images). */
  descriptor: Descriptor;
  manifestDigest: Digest;
  manifest: ImageManifest;
  configDigest: Digest;
  config: ImageConfig;
}

export interface VerifyProblem {
  digest: string;
  problem: 'corrupt' | 'missing' | 'unreadable';
  detail: string;
  /** Refs whose images need this blob. */
  refs: string[];
}

export interface VerifyReport {
  blobsChecked: number;
  bytesChecked: number;
  problems: VerifyProblem[];
}

export interface PruneReport {
  removed: Array<{ digest: string; size: number }>;
  bytesFreed: number;
  tempFilesRemoved: number;
}

export class ImageStore {
  readonly lockFile: string;

  constructor(
    readonly dir: string,
    readonly tmpDir: string,
    readonly lockTimeoutSec = 10,
    /** Runs before the first write (a booted machine remounts its read-only stage file system). */
    private readonly beforeWrite?: () => Promise<unknown>,
  ) {
    this.lockFile = `${dir.replace(/\/+$/, '')}.lock`;
  }

  get indexPath(): string {
    return path.join(this.dir, 'index.json');
  }

  blobPath(digest: string): string {
    return path.join(this.dir, 'blobs', 'sha256', digestHex(parseDigest(digest)));
  }

  /** Create the layout if it does not exist; leave an existing one alone. */
  async init(): Promise<void> {
    await this.beforeWrite?.();
    try {
      await mkdir(path.join(this.dir, 'blobs', 'sha256'), { recursive: true });
      await mkdir(this.tmpDir, { recursive: true });
      const layoutFile = path.join(this.dir, 'oci-layout');
      try {
        const layout = JSON.parse(await readFile(layoutFile, 'utf8')) as { imageLayoutVersion?: string };
        if (!layout.imageLayoutVersion) throw new Error('no imageLayoutVersion');
      } catch (err) {
        if (!isErrno(err, 'ENOENT')) {
          throw new DarchError('E_STORE_CORRUPT', `${layoutFile} is not a valid OCI layout file`, {
            hint: 'the image store is damaged; move it aside and re-import your images',
          });
        }
        await writeJsonAtomic(layoutFile, { imageLayoutVersion: '1.0.0' });
      }
      try {
        await stat(this.indexPath);
      } catch (err) {
        if (!isErrno(err, 'ENOENT')) throw err;
        await writeJsonAtomic(this.indexPath, { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [] });
      }
    } catch (err) {
      throw fsError(err, `cannot initialise the image store at ${this.dir}`);
    }
  }

  /** Run fn holding the store's write lock. */
  async withLock<T>(fn: () => Promise<T>): Promise<T> {
    await this.init();
    return withLock(this.lockFile, `the image store ${this.dir}`, this.lockTimeoutSec, fn);
  }

  // ---- blobs ----------------------------------------------------------------

  async hasBlob(digest: string): Promise<boolean> {
    try {
      await stat(this.blobPath(digest));
      return true;
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return false;
      throw err;
    }
  }

  async blobSize(digest: string): Promise<number | undefined> {
    try {
      return (await stat(this.blobPath(digest))).size;
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return undefined;
      throw err;
    }
  }

  /** A temp path in the store's scratch directory, named so a sweep can tell if its owner died. */
  tempPath(kind: string): string {
    return path.join(this.tmpDir, ownedTempName(kind));
  }

  /**
   * Stream bytes into the store. The content is hashed on the way; if an expected digest
   * or size is given and does not match, nothing enters the store.
   */
  async putBlob(src: Readable, expect: BlobExpectation = {}, onBytes?: (n: number) => void): Promise<{ digest: Digest; size: number; created: boolean }> {
    await mkdir(this.tmpDir, { recursive: true });
    const tmp = this.tempPath('blob');
    const hasher = new HashStream();
    if (onBytes) hasher.on('data', (b: Buffer) => onBytes(b.length));
    try {
      // flush: fsync before close, so a renamed blob is on disk even after a power cut.
      const out = createWriteStream(tmp, { flags: 'wx', mode: 0o644, flush: true });
      await pipeline(src, hasher, out);
      if (!out.closed) await once(out, 'close');
    } catch (err) {
      await unlink(tmp).catch(() => undefined);
      // Errors of the source (a truncated archive, a cut download) pass through for the caller to explain.
      throw isErrno(err) && !isSourceError(err, src) ? fsError(err, 'cannot write a blob into the image store') : err;
    }
    const digest = hasher.digest();
    try {
      if (expect.digest && expect.digest !== digest) {
        throw new DarchError('E_DIGEST_MISMATCH', `content does not match its digest: expected ${expect.digest}, got ${digest}`, {
          hint: 'the source is corrupt or was changed while reading; nothing was stored',
          details: { expected: expect.digest, actual: digest },
        });
      }
      if (expect.size !== undefined && expect.size !== hasher.size) {
        throw new DarchError('E_SIZE_MISMATCH', `blob ${digest} is ${hasher.size} bytes, expected ${expect.size}`, {
          hint: 'the source is truncated or corrupt; nothing was stored',
        });
      }
      if (await this.hasBlob(digest)) {
        await unlink(tmp);
        return { digest, size: hasher.size, created: false };
      }
      await this.commitTempBlob(tmp, digest);
    } catch (err) {
      await unlink(tmp).catch(() => undefined);
      throw err;
    }
    return { digest, size: hasher.size, created: true };
  }

  /**
   * Move a fully written, already verified and fsynced temp file (from tempPath) into place.
   * Used by downloads that verify while streaming and may have resumed across restarts.
   */
  async commitTempBlob(tmp: string, digest: Digest): Promise<void> {
    const dest = this.blobPath(digest);
    try {
      await commitFile(tmp, dest);
    } catch (err) {
      throw fsError(err, `cannot store blob ${digest}`);
    }
  }

  /** Store a small JSON document (manifest, config, index) exactly as serialised here. */
  async putJson(value: unknown, mediaType: string): Promise<Descriptor> {
    const bytes = Buffer.from(JSON.stringify(value));
    return this.putBytes(bytes, mediaType);
  }

  async putBytes(bytes: Buffer, mediaType: string): Promise<Descriptor> {
    const digest = sha256(bytes);
    if (!(await this.hasBlob(digest))) {
      await mkdir(this.tmpDir, { recursive: true });
      const tmp = this.tempPath('blob');
      try {
        await writeFileDurable(tmp, bytes);
        await this.commitTempBlob(tmp, digest);
      } catch (err) {
        await unlink(tmp).catch(() => undefined);
        throw fsError(err, 'cannot write into the image store');
      }
    }
    return { mediaType, digest, size: bytes.length };
  }

  openBlob(digest: string): Readable {
    return createReadStream(this.blobPath(digest));
  }

  async readBlob(digest: string): Promise<Buffer> {
    const p = this.blobPath(digest);
    let size: number;
    try {
      size = (await stat(p)).size;
    } catch (err) {
      if (isErrno(err, 'ENOENT')) {
        throw new DarchError('E_BLOB_MISSING', `blob ${digest} is missing from the image store`, {
          hint: 'run `darch images verify`; re-import or re-pull the image',
        });
      }
      throw err;
    }
    if (size > MAX_JSON_BLOB) throw new DarchError('E_BLOB_TOO_LARGE', `blob ${digest} is ${size} bytes, too large for a manifest or config`);
    const buf = await readFile(p);
    if (sha256(buf) !== digest) {
      throw new DarchError('E_STORE_CORRUPT', `blob ${digest} does not match its digest`, {
        hint: 'run `darch images verify`, then re-import or re-pull the image',
      });
    }
    return buf;
  }

  /** A manifest, index or config blob as JSON (not yet checked against a schema). */
  async readJson(digest: string): Promise<unknown> {
    return parseJsonText(await this.readBlob(digest), `blob ${digest}`, STORE_CORRUPT);
  }

  async readManifest(digest: string): Promise<ImageManifest> {
    return parseManifest(await this.readJson(digest), `the manifest ${digest}`, STORE_CORRUPT);
  }

  /** An index blob (a multi-platform image), not the store's own index.json (`readIndex`). */
  async readIndexBlob(digest: string): Promise<ImageIndex> {
    return parseIndex(await this.readJson(digest), `the index ${digest}`, STORE_CORRUPT);
  }

  async readConfig(digest: string): Promise<ImageConfig> {
    return parseConfig(await this.readJson(digest), `the image config ${digest}`, STORE_CORRUPT);
  }

  // ---- index and refs -------------------------------------------------------

  async readIndex(): Promise<ImageIndex> {
    let text: string;
    try {
      text = await readFile(this.indexPath, 'utf8');
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [] };
      throw fsError(err, `cannot read ${this.indexPath}`);
    }
    try {
      return parseIndex(parseJsonText(text, this.indexPath, STORE_CORRUPT), this.indexPath, STORE_CORRUPT);
    } catch (err) {
      throw new DarchError('E_STORE_CORRUPT', `${this.indexPath} is corrupt: ${(err as Error).message}`, {
        hint: 'restore it from a backup, or move the store aside and re-import your images',
      });
    }
  }

  private async writeIndex(idx: ImageIndex): Promise<void> {
    try {
      await writeFileAtomic(this.indexPath, JSON.stringify(idx));
    } catch (err) {
      throw fsError(err, `cannot write ${this.indexPath}`);
    }
  }

  async refs(): Promise<StoredRef[]> {
    const idx = await this.readIndex();
    const out: StoredRef[] = [];
    for (const d of idx.manifests) {
      const name = d.annotations?.[REF_NAME_ANNOTATION];
      if (name) out.push({ name, descriptor: d });
    }
    return out.sort((a, b) => a.name.localeCompare(b.name));
  }

  /** Find a ref by name (normalised: a missing tag means :latest), by digest, or by a unique digest prefix. */
  async resolve(refOrDigest: string): Promise<StoredRef> {
    const refs = await this.refs();
    const byDigest = refOrDigest.startsWith('sha256:') ? refOrDigest : /^[a-f0-9]{6,64}$/.test(refOrDigest) ? `sha256:${refOrDigest}` : undefined;
    if (byDigest) {
      const hits = refs.filter((r) => r.descriptor.digest.startsWith(byDigest));
      const unique = new Set(hits.map((h) => h.descriptor.digest));
      if (unique.size === 1 && hits[0]) return hits[0];
      if (unique.size > 1) throw new DarchError('E_AMBIGUOUS', `${refOrDigest} matches more than one image`, { hint: 'give more digits' });
      if (isDigest(byDigest) && (await this.hasBlob(byDigest))) {
        const size = (await this.blobSize(byDigest)) ?? 0;
        return { name: byDigest, descriptor: { mediaType: MediaType.ociManifest, digest: byDigest, size } };
      }
    }
    let name: string;
    try {
      name = normalizeRef(refOrDigest);
    } catch (err) {
      if (byDigest) throw notFound(refOrDigest);
      throw err;
    }
    const hit = refs.find((r) => r.name === name) ?? refs.find((r) => r.name === refOrDigest);
    if (!hit) throw notFound(name);
    return hit;
  }

  /** Resolve a ref down to one image manifest and its config, choosing the platform from an index. */
  async resolveImage(refOrDigest: string, platform: Platform = hostPlatform()): Promise<ResolvedImage> {
    const ref = await this.resolve(refOrDigest);
    let desc = ref.descriptor;
    const raw = await this.readJson(desc.digest);
    const mt = declaredMediaType(raw) ?? desc.mediaType;
    let manifest: ImageManifest;
    if (isIndexType(mt) || looksLikeIndex(raw)) {
      const index = parseIndex(raw, `the index ${desc.digest}`, STORE_CORRUPT);
      const pick =
        index.manifests.find((m) => m.platform?.architecture === platform.architecture && m.platform?.os === platform.os) ??
        (index.manifests.length === 1 ? index.manifests[0] : undefined);
      if (!pick) {
        throw new DarchError('E_PLATFORM', `${ref.name} has no image for ${platform.os}/${platform.architecture}`, {
          details: { available: index.manifests.map((m) => m.platform) },
        });
      }
      desc = pick;
      manifest = await this.readManifest(pick.digest);
    } else {
      if (!isManifestType(mt) && !(raw !== null && typeof raw === 'object' && 'config' in raw)) {
        throw new DarchError('E_UNSUPPORTED', `${ref.name} is a ${desc.mediaType}, not an image`);
      }
      manifest = parseManifest(raw, `the manifest ${desc.digest}`, STORE_CORRUPT);
    }
    const config = await this.readConfig(manifest.config.digest);
    return {
      name: ref.name,
      descriptor: ref.descriptor,
      manifestDigest: desc.digest as Digest,
      manifest,
      configDigest: manifest.config.digest as Digest,
      config,
    };
  }

  /** Point name:tag at a descriptor, replacing any previous target. Caller holds the lock. */
  async setRef(refName: string, desc: Descriptor): Promise<void> {
    const name = normalizeRef(refName);
    const idx = await this.readIndex();
    const manifests = idx.manifests.filter((m) => m.annotations?.[REF_NAME_ANNOTATION] !== name);
    const { annotations, ...rest } = desc;
    manifests.push({ ...rest, annotations: { ...(annotations ?? {}), [REF_NAME_ANNOTATION]: name } });
    await this.writeIndex({ ...idx, schemaVersion: 2, mediaType: MediaType.ociIndex, manifests });
  }

  /** Remove a name; returns false if it did not exist. Caller holds the lock. */
  async removeRef(refName: string): Promise<boolean> {
    const idx = await this.readIndex();
    const before = idx.manifests.length;
    const manifests = idx.manifests.filter((m) => m.annotations?.[REF_NAME_ANNOTATION] !== refName);
    if (manifests.length === before) return false;
    await this.writeIndex({ ...idx, manifests });
    return true;
  }

  // ---- reachability, prune, verify -----------------------------------------

  /** Every blob reachable from index.json, with the refs that reach it. Missing JSON blobs are reported, not thrown. */
  async reachable(): Promise<{ blobs: Map<string, Set<string>>; missing: Map<string, Set<string>> }> {
    const idx = await this.readIndex();
    const blobs = new Map<string, Set<string>>();
    const missing = new Map<string, Set<string>>();
    const add = (m: Map<string, Set<string>>, d: string, ref: string) => {
      let s = m.get(d);
      if (!s) m.set(d, (s = new Set()));
      s.add(ref);
    };
    const walk = async (d: Descriptor, ref: string): Promise<void> => {
      if (!isDigest(d.digest)) return;
      add(blobs, d.digest, ref);
      if (!(await this.hasBlob(d.digest))) {
        add(missing, d.digest, ref);
        return;
      }
      const json = isIndexType(d.mediaType) || isManifestType(d.mediaType);
      if (!json) return;
      let doc: Partial<ImageIndex & ImageManifest>;
      try {
        doc = (await this.readJson(d.digest)) as Partial<ImageIndex & ImageManifest>;
      } catch {
        return; // verify reports it as corrupt
      }
      if (Array.isArray(doc.manifests)) for (const m of doc.manifests) await walk(m, ref);
      if (doc.config) await walk(doc.config, ref);
      if (Array.isArray(doc.layers)) for (const l of doc.layers) await walk(l, ref);
    };
    for (const d of idx.manifests) await walk(d, d.annotations?.[REF_NAME_ANNOTATION] ?? d.digest);
    return { blobs, missing };
  }

  async listBlobs(): Promise<Array<{ digest: Digest; size: number }>> {
    const dir = path.join(this.dir, 'blobs', 'sha256');
    let names: string[];
    try {
      names = await readdir(dir);
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return [];
      throw err;
    }
    const out: Array<{ digest: Digest; size: number }> = [];
    for (const n of names) {
      if (!/^[a-f0-9]{64}$/.test(n)) continue;
      const s = await stat(path.join(dir, n));
      out.push({ digest: `sha256:${n}`, size: s.size });
    }
    return out;
  }

  /** Delete blobs no ref reaches and temp files of dead processes. Caller holds the lock. */
  async prune(dryRun = false): Promise<PruneReport> {
    const { blobs } = await this.reachable();
    const removed: PruneReport['removed'] = [];
    for (const b of await this.listBlobs()) {
      if (blobs.has(b.digest)) continue;
      if (!dryRun) await unlink(this.blobPath(b.digest));
      removed.push(b);
    }
    if (removed.length && !dryRun) await fsyncDir(path.join(this.dir, 'blobs', 'sha256'));
    const tempFilesRemoved = dryRun ? 0 : await this.sweepTemp();
    return { removed, bytesFreed: removed.reduce((a, b) => a + b.size, 0), tempFilesRemoved };
  }

  /** What a stored blob hashes to now (a blob is renamed into place only after hashing; disks rot). */
  async hashBlob(digest: string): Promise<{ digest: Digest; size: number }> {
    const hasher = new HashStream();
    await pipeline(createReadStream(this.blobPath(digest)), hasher, async (src: AsyncIterable<Buffer>) => {
      for await (const _ of src) void _;
    });
    return { digest: hasher.digest(), size: hasher.size };
  }

  /** Re-hash every blob; report corrupt, missing and unreadable ones with the refs that need them. */
  async verify(onBlob?: (digest: string, size: number) => void): Promise<VerifyReport> {
    const { blobs: reach, missing } = await this.reachable();
    const problems: VerifyProblem[] = [];
    for (const [digest, refs] of missing) problems.push({ digest, problem: 'missing', detail: 'referenced but not in the store', refs: [...refs].sort() });
    let bytesChecked = 0;
    const all = await this.listBlobs();
    for (const b of all) {
      let actual: Digest;
      try {
        const h = await this.hashBlob(b.digest);
        actual = h.digest;
        bytesChecked += h.size;
        onBlob?.(b.digest, h.size);
      } catch (err) {
        problems.push({ digest: b.digest, problem: 'unreadable', detail: (err as Error).message, refs: [...(reach.get(b.digest) ?? [])].sort() });
        continue;
      }
      if (actual !== b.digest) {
        problems.push({ digest: b.digest, problem: 'corrupt', detail: `content hashes to ${actual}`, refs: [...(reach.get(b.digest) ?? [])].sort() });
      }
    }
    return { blobsChecked: all.length, bytesChecked, problems };
  }

  /** Remove temp files whose writer is no longer running. Returns how many were removed. */
  sweepTemp(): Promise<number> {
    return sweepDeadOwners(this.tmpDir);
  }
}

/** An errno error raised by the stream we read from rather than by our own writes. */
function isSourceError(err: NodeJS.ErrnoException, src: Readable): boolean {
  return src.errored === err;
}

function notFound(name: string): DarchError {
  return new DarchError('E_IMAGE_NOT_FOUND', `image ${name} is not in the local store`, {
    hint: '`darch images list` shows the images you have; `darch images import` or `darch images pull` adds one',
  });
}

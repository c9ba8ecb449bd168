/**
 * Staged-image bundles: one self-describing, streamable file to carry a staged image to a
 * machine with no registry or container runtime (rsync, scp, USB, or a pipe over ssh).
 *
 * Format: a POSIX tar whose first member is `darch-bundle.json`
 *   {"schemaVersion":1,"kind":"darch-staged-image","id","tags","created",
 *    "files":[{"path","size","sha256"}…]}
 * followed by exactly those files (meta.json, image.json, kernel, initramfs, hooks…,
 * rootfs.squash last). Import writes into <stage>/tmp, checks every size and sha256 as the
 * bytes arrive, and renames into live/ only when every file matched.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readFile, rm, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createHash } from 'node:crypto';
import { captureFile, commitFile, tempName } from '../lib/scratch.js';
import { DarchError, fsError, isErrno } from '../lib/errors.js';
import { silentReporter, type Reporter } from '../lib/report.js';
import { normalizeRef } from '../oci/reference.js';
import { ByteReader, END_OF_ARCHIVE, bodyPadding, encodeHeader, readTar, type TarHeader } from '../layers/tar.js';
import { ensureFreeSpace } from './space.js';
import { readMetaIn } from './meta-json.js';
import { DirFiles } from '../lib/smallfs.js';
import { listFiles } from './stage.js';
import { HOOKS_DIR } from './layout.js';
import { META_JSON, ROOTFS_FILE, type StageStore, type StagedMeta, isStageId } from './store.js';

export const BUNDLE_MANIFEST = 'darch-bundle.json';
const MAX_MANIFEST = 1024 * 1024;

export interface BundleFile {
  path: string;
  size: number;
  sha256: string;
}

export interface BundleManifest {
  schemaVersion: 1;
  kind: 'darch-staged-image';
  id: string;
  tags: string[];
  created: string;
  source?: StagedMeta['source'];
  files: BundleFile[];
}

function header(name: string, size: number): TarHeader {
  return {
    name,
    type: 'file',
    mode: 0o644,
    uid: 0,
    gid: 0,
    uname: 'root',
    gname: 'root',
    size,
    mtime: Math.floor(Date.now() / 1000),
    linkname: '',
    devmajor: 0,
    devminor: 0,
  };
}

function bundleCorrupt(msg: string): DarchError {
  return new DarchError('E_BUNDLE_CORRUPT', msg, { hint: 'copy the bundle again (or re-export it); nothing was staged' });
}

/** Order files so the big squashfs comes last and small metadata first. */
function orderFiles(files: string[]): string[] {
  const rank = (f: string) => (f === META_JSON ? 0 : f === ROOTFS_FILE ? 2 : 1);
  return [...files].sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
}

async function* bundleChunks(stageStore: StageStore, ref: string, onBytes?: (n: number) => void): AsyncGenerator<Buffer> {
  const img = await stageStore.get(ref);
  const meta = img.meta ?? (await stageStore.readMeta(img.id));
  const metaBytes = await readFile(path.join(img.dir, META_JSON));
  const files: BundleFile[] = [];
  for (const f of orderFiles(await listFiles(img.dir))) {
    // Hook outputs are this machine's (its fstab, hostname, machine-id, SSH host keys): the
    // machine that imports the bundle makes its own, and a bundle must not carry secrets.
    if (f.startsWith(`${HOOKS_DIR}/`)) continue;
    if (f === META_JSON) {
      files.push({ path: f, size: metaBytes.length, sha256: createHash('sha256').update(metaBytes).digest('hex') });
      continue;
    }
    const sha = meta.sha256?.[f];
    if (!sha) throw new DarchError('E_STAGE_CORRUPT', `staged image ${img.id}: ${f} is not listed in ${META_JSON}`);
    files.push({ path: f, size: (await stat(path.join(img.dir, f))).size, sha256: sha });
  }
  const manifest: BundleManifest = {
    schemaVersion: 1,
    kind: 'darch-staged-image',
    id: img.id,
    tags: img.tags,
    created: meta.created,
    source: meta.source,
    files,
  };
  const mbytes = Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`);
  yield encodeHeader(header(BUNDLE_MANIFEST, mbytes.length));
  yield mbytes;
  yield bodyPadding(mbytes.length);
  for (const f of files) {
    yield encodeHeader(header(f.path, f.size));
    if (f.path === META_JSON) {
      yield metaBytes;
    } else {
      // Re-hash while reading: a staged file damaged on disk must not leave as a valid bundle.
      const h = createHash('sha256');
      let n = 0;
      for await (const chunk of createReadStream(path.join(img.dir, f.path), { highWaterMark: 1024 * 1024 }) as AsyncIterable<Buffer>) {
        h.update(chunk);
        n += chunk.length;
        onBytes?.(chunk.length);
        yield chunk;
      }
      if (n !== f.size || h.digest('hex') !== f.sha256) {
        throw new DarchError('E_STAGE_CORRUPT', `staged image ${img.id}: ${f.path} does not match its checksum in ${META_JSON}`, {
          hint: 'the staged copy is damaged; stage the image again (`darch stage upload --force`)',
        });
      }
    }
    yield bodyPadding(f.size);
  }
  yield END_OF_ARCHIVE;
}

export interface ExportResult {
  id: string;
  tags: string[];
  output: string;
  bytes: number;
}

/** Write a bundle to a file (atomically: temp + rename) or to a stream such as stdout. */
export async function exportStaged(stageStore: StageStore, ref: string, out: string | Writable, onBytes?: (n: number) => void): Promise<ExportResult> {
  const img = await stageStore.get(ref);
  let bytes = 0;
  const src = Readable.from(bundleChunks(stageStore, img.id, onBytes), { objectMode: false });
  src.on('data', (b: Buffer) => (bytes += b.length));
  if (typeof out !== 'string') {
    await pipeline(src, out, { end: out !== process.stdout });
    return { id: img.id, tags: img.tags, output: '-', bytes };
  }
  const tmp = tempName(path.resolve(out));
  try {
    const ws = createWriteStream(tmp, { flags: 'wx', mode: 0o644, flush: true });
    await pipeline(src, ws);
    await commitFile(tmp, out);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw fsError(err, `cannot write ${out}`);
  }
  return { id: img.id, tags: img.tags, output: out, bytes };
}

function safeRelPath(p: string): boolean {
  return p !== '' && !p.startsWith('/') && !p.split('/').some((x) => x === '' || x === '.' || x === '..');
}

function parseManifest(buf: Buffer): BundleManifest {
  let m: BundleManifest;
  try {
    m = JSON.parse(buf.toString('utf8')) as BundleManifest;
  } catch {
    throw bundleCorrupt(`${BUNDLE_MANIFEST} is not valid JSON`);
  }
  if (m?.kind !== 'darch-staged-image' || m.schemaVersion !== 1)
    throw bundleCorrupt(`not a darch staged-image bundle (kind ${String(m?.kind)}, schemaVersion ${String(m?.schemaVersion)})`);
  if (!isStageId(m.id)) throw bundleCorrupt(`bad staged id in ${BUNDLE_MANIFEST}: ${String(m.id)}`);
  if (!Array.isArray(m.files) || !m.files.some((f) => f.path === ROOTFS_FILE) || !m.files.some((f) => f.path === META_JSON)) {
    throw bundleCorrupt(`${BUNDLE_MANIFEST} does not list ${ROOTFS_FILE} and ${META_JSON}`);
  }
  for (const f of m.files) {
    if (!safeRelPath(f.path) || !Number.isSafeInteger(f.size) || f.size < 0 || !/^[a-f0-9]{64}$/.test(f.sha256)) {
      throw bundleCorrupt(`${BUNDLE_MANIFEST} has a bad file entry: ${JSON.stringify(f)}`);
    }
  }
  if (!Array.isArray(m.tags)) m.tags = [];
  return m;
}

export interface ImportOptions {
  /** Tags to give instead of the bundle's own. */
  tags?: string[];
  /** Tags to give, decided from the bundle's manifest (when `tags` gives none). */
  tagsFor?: (m: BundleManifest) => string[];
  force?: boolean;
  keep?: number;
  onBytes?: (n: number) => void;
  /** Total bytes, when known (for progress). */
  onManifest?: (m: BundleManifest) => void;
  /**
   * Called with the digest of the bundle's manifest (which holds every file's sha256) before
   * anything is written: the signature policy's check; a throw stages nothing.
   */
  verify?: (manifestDigest: string, m: BundleManifest) => Promise<void>;
  report?: Reporter;
}

export interface ImportResult {
  id: string;
  tags: string[];
  dir: string;
  bytes: number;
  alreadyStaged: boolean;
  removed: string[];
}

/** The manifest of a bundle file and its digest (what a bundle's signature signs), reading only its first member. */
export async function readBundleManifest(file: string): Promise<{ manifest: BundleManifest; digest: string }> {
  const input = createReadStream(file, { highWaterMark: 64 * 1024 });
  try {
    for await (const e of readTar(new ByteReader(input as AsyncIterable<Buffer>))) {
      if (e.header.name !== BUNDLE_MANIFEST || e.header.type !== 'file' || e.header.size > MAX_MANIFEST) break;
      const parts: Buffer[] = [];
      for await (const c of e.body()) parts.push(Buffer.from(c));
      const bytes = Buffer.concat(parts);
      return { manifest: parseManifest(bytes), digest: `sha256:${createHash('sha256').update(bytes).digest('hex')}` };
    }
  } catch (err) {
    if (isErrno(err, 'ENOENT')) throw new DarchError('E_NOT_FOUND', `${file} does not exist`);
    if (err instanceof DarchError) throw err;
    throw fsError(err, `cannot read ${file}`);
  } finally {
    input.destroy();
  }
  throw bundleCorrupt(`${file} is not a darch bundle (its first member is not ${BUNDLE_MANIFEST})`);
}

/** Read a bundle (a file, or '-' for stdin), verify every part, then stage it. */
export async function importBundle(stageStore: StageStore, source: string | Readable, opts: ImportOptions = {}): Promise<ImportResult> {
  let input: Readable;
  if (typeof source === 'string' && source !== '-') {
    try {
      const s = await stat(source);
      if (!s.isFile()) throw new DarchError('E_BAD_INPUT', `${source} is not a file`);
    } catch (err) {
      if (isErrno(err, 'ENOENT')) throw new DarchError('E_NOT_FOUND', `${source} does not exist`);
      throw fsError(err, `cannot read ${source}`);
    }
    input = createReadStream(source, { highWaterMark: 1024 * 1024 });
  } else input = typeof source === 'string' ? process.stdin : source;

  await stageStore.init();
  await stageStore.sweepTemp();
  const work = await stageStore.makeWorkDir('import');
  let manifest: BundleManifest | undefined;
  let bytes = 0;
  try {
    const seen = new Set<string>();
    for await (const e of readTar(new ByteReader(input as AsyncIterable<Buffer>))) {
      if (!manifest) {
        if (e.header.name !== BUNDLE_MANIFEST || e.header.type !== 'file' || e.header.size > MAX_MANIFEST) {
          throw bundleCorrupt(`not a darch bundle: the first member is ${JSON.stringify(e.header.name)}, not ${BUNDLE_MANIFEST}`);
        }
        const parts: Buffer[] = [];
        for await (const c of e.body()) parts.push(Buffer.from(c));
        const mbytes = Buffer.concat(parts);
        manifest = parseManifest(mbytes);
        opts.onManifest?.(manifest);
        await opts.verify?.(`sha256:${createHash('sha256').update(mbytes).digest('hex')}`, manifest);
        const total = manifest.files.reduce((a, f) => a + f.size, 0);
        await ensureFreeSpace(stageStore.tmpDir, total, `importing staged image ${manifest.id}`);
        continue;
      }
      const want = manifest.files.find((f) => f.path === e.header.name);
      if (!want || e.header.type !== 'file') throw bundleCorrupt(`unexpected member ${JSON.stringify(e.header.name)} (not in ${BUNDLE_MANIFEST})`);
      if (seen.has(want.path)) throw bundleCorrupt(`${want.path} appears twice`);
      seen.add(want.path);
      if (e.header.size !== want.size) throw bundleCorrupt(`${want.path} is ${e.header.size} bytes, the manifest says ${want.size}`);
      const dest = path.join(work, want.path);
      await mkdir(path.dirname(dest), { recursive: true }).catch((err: unknown) => Promise.reject(fsError(err, `cannot create ${path.dirname(dest)}`)));
      const h = createHash('sha256');
      // A full disk is the stage's file system (E_FS_ENOSPC), never a corrupt bundle.
      const ws = captureFile(dest);
      try {
        for await (const c of e.body()) {
          h.update(c);
          bytes += c.length;
          opts.onBytes?.(c.length);
          await ws.write(c);
        }
        await ws.close();
      } finally {
        ws.abandon();
      }
      const got = h.digest('hex');
      if (got !== want.sha256) throw bundleCorrupt(`${want.path} does not match its sha256 (expected ${want.sha256.slice(0, 12)}…, got ${got.slice(0, 12)}…)`);
    }
    if (!manifest) throw bundleCorrupt('the bundle is empty');
    const missing = manifest.files.filter((f) => !seen.has(f.path));
    if (missing.length) throw bundleCorrupt(`the bundle is incomplete: ${missing.map((f) => f.path).join(', ')} missing`);
    const meta = await readMetaIn(new DirFiles(work)).catch((err: unknown) => Promise.reject(bundleCorrupt((err as Error).message)));
    if (meta.id !== manifest.id) throw bundleCorrupt(`${META_JSON} names id ${meta.id}, the manifest ${manifest.id}`);
    for (const f of manifest.files) {
      if (f.path !== META_JSON && meta.sha256?.[f.path] !== f.sha256) throw bundleCorrupt(`${f.path}: the manifest and ${META_JSON} disagree on its sha256`);
    }
  } catch (err) {
    await rm(work, { recursive: true, force: true }).catch(() => undefined);
    if (err instanceof DarchError) throw err;
    throw bundleCorrupt(`cannot read the bundle: ${(err as Error).message}`);
  }

  const m = manifest;
  const tags = (opts.tags?.length ? opts.tags : (opts.tagsFor?.(m) ?? m.tags)).map((t) => normalizeRef(t));
  try {
    return await stageStore.withLock(async () => {
      const existing = await stageStore.list();
      if (!opts.force) {
        for (const t of tags) {
          const owner = existing.find((i) => i.tags.includes(t));
          if (owner && owner.id !== m.id) {
            throw new DarchError('E_ALREADY_STAGED', `${t} is already staged (id ${owner.id})`, {
              hint: 'use --force to move the tag to the imported image, or --tag to give another name',
            });
          }
        }
      }
      const same = existing.find((i) => i.id === m.id);
      if (same) {
        const rootSha = m.files.find((f) => f.path === ROOTFS_FILE)?.sha256;
        if (same.meta?.sha256?.[ROOTFS_FILE] !== rootSha) {
          throw new DarchError('E_EXISTS', `a different staged image with id ${m.id} exists`, { hint: 'remove it first with `darch stage remove`' });
        }
        (opts.report ?? silentReporter).info(`staged image ${m.id} is already here; updating its tags`);
        if (tags.length) await stageStore.setTags(m.id, tags);
        await rm(work, { recursive: true, force: true });
        return { id: m.id, tags, dir: same.dir, bytes, alreadyStaged: true, removed: [] };
      }
      const dir = await stageStore.commit(work, m.id);
      if (tags.length) await stageStore.setTags(m.id, tags);
      const removed = opts.keep !== undefined ? await stageStore.applyRetention(opts.keep, [m.id]) : [];
      return { id: m.id, tags, dir, bytes, alreadyStaged: false, removed };
    });
  } catch (err) {
    await rm(work, { recursive: true, force: true }).catch(() => undefined);
    throw err;
  }
}

/**
 * Binary deltas between images (Darch issue #32: "is some kind of binary delta possible?").
 *
 * A delta rebuilds the tar that staging an image feeds tar2sqfs (src/stage/stage.ts's
 * writeStagingTar) from a zstd patch made against the root of an image the machine already
 * has staged, read back from its squashfs with sqfs2tar. tar2sqfs writes the same bytes from
 * the same tar and options, so the image staged from a delta is the image `darch stage
 * upload` stages from the layers: the same squashfs (checked by sha256 before anything is
 * staged), kernel and initramfs, and the same manifest and config digests in meta.json.
 *
 * The file: a tar whose first member is darch-delta.json (src/stage/delta-json.ts), then
 * patch.zst. Every step is checked: the base's root against the sha256 the patch was made
 * against, the rebuilt tar against the target's, the squashfs against what staging writes.
 * Any mismatch stages nothing; the caller falls back to layers.
 *
 * Memory: zstd holds a patch's reference (its dictionary) in memory while it decodes, so
 * applying a delta made in one piece takes about twice the base's root in RAM; a large root
 * is patched in segments (delta-segments.ts), each against the parts of the base that hold
 * its files, and memory follows the segment size (docs/DELTAS.md). Everything else streams
 * through files in the stage's tmp directory.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { open, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { DarchError, fsError } from '../lib/errors.js';
import { silentReporter, type Reporter } from '../lib/report.js';
import { commandFailed, run, spawnChild, waitChild } from '../lib/proc.js';
import { commitFile, makeWorkDir, tempName } from '../lib/scratch.js';
import { ByteReader, END_OF_ARCHIVE, bodyPadding, encodeHeader, readTar, type TarHeader } from '../layers/tar.js';
import { type Digest, digestFile, HashStream, parseDigest, sha256 } from '../oci/digest.js';
import { MediaType, type Descriptor } from '../oci/mediatypes.js';
import { parseConfig, parseJsonText, parseManifest } from '../oci/manifest-json.js';
import { ImageStore, type ResolvedImage } from '../oci/store.js';
import { normalizeRef } from '../oci/reference.js';
import { badDelta, DELTA_JSON, DELTA_PATCH, encodeDeltaJson, parseDeltaJson, patchSegments, type DeltaInfo, type PatchSegment } from './delta-json.js';
import { DEFAULT_SEGMENT_BYTES, patchWhole, planSegments } from './delta-segments.js';
import { copyRanges, tarExtents } from './tar-extents.js';
import { ensureFreeSpace } from './space.js';
import { type SquashfsCompressor, writeSquashfs } from './squashfs.js';
import { DEFAULT_BLOCK_SIZE, DEFAULT_COMPRESSOR, hashAndSync, stageImage, type StageOptions, type StageResult, writeStagingTar } from './stage.js';
import { ROOTFS_FILE, type StageStore, type StagedImage } from './store.js';

/** zstd's level for patches: -19 made the smallest patches in shared/reference/anchors-deltas.md (1.0 MB for a 120 MB root). */
export const DEFAULT_DELTA_LEVEL = 19;
/**
 * At -19 and above, what zstd itself suggests for patches (its "optimal parser notes"): one
 * thread, longer matches, a deeper chain. The staging tar keeps the layers' order while the
 * base reads back name-sorted, so matches jump around: on bench/delta.ts's two-package
 * update this cut the patch from 1.17 to 1.06 MB, for 2.5× the time and about 800 MB of
 * memory on the machine that makes it (chainLog 30 gave 1.05 MB for 2.4 GB). Decoding is
 * unaffected.
 */
const PATCH_TUNING = ['--single-thread', '--zstd=targetLength=4096,chainLog=27'];
/** zstd's largest window: a patch covers roots up to 2 GiB. */
const MAX_WINDOW_LOG = 31;
/** A segmented delta's header lists its references' ranges: a few hundred KB for a large image. */
const MAX_DELTA_JSON = 16 * 1024 * 1024;

export interface CreateDeltaOptions {
  /** Where the work files go (the uncompressed roots of both images). */
  tmpDir: string;
  /** zstd level, 1–22. */
  level?: number;
  /** The squashfs the target is checked against: what the machines stage with (stage.compression). */
  compressor?: SquashfsCompressor;
  blockSize?: number;
  /**
   * Roots larger than twice this are patched in segments of about this size, so applying
   * takes memory in proportion to it, not to the root (delta-segments.ts); 0: one patch
   * against the whole root (smallest, up to 2 GiB roots). Default DEFAULT_SEGMENT_BYTES.
   */
  segmentBytes?: number;
  signal?: AbortSignal;
  report?: Reporter;
}

export interface CreatedDelta {
  file: string;
  size: number;
  info: DeltaInfo;
  seconds: number;
}

/** zstd's window for a patch between files of these sizes: the reference and the target both fit. */
export function windowLogFor(...sizes: number[]): number {
  const max = Math.max(1, ...sizes);
  return Math.max(10, Math.ceil(Math.log2(max + 1)) + 1);
}

/** The root of a squashfs as sqfs2tar reads it back into `out`; its sha256 and size. */
async function rootOfSquashfs(squashfs: string, out: string, signal?: AbortSignal): Promise<{ sha256: string; size: number }> {
  const child = spawnChild('sqfs2tar', ['--no-skip', squashfs], { stdio: ['ignore', 'pipe', 'pipe'], signal });
  let stderr = '';
  child.stderr!.on('data', (b: Buffer) => {
    stderr = (stderr + b.toString()).slice(-4096);
  });
  const hash = new HashStream();
  const done = waitChild(child, 'sqfs2tar');
  await pipeline(child.stdout!, hash, createWriteStream(out, { mode: 0o600 }));
  const res = await done;
  if (res.code !== 0 || res.signal) throw commandFailed('sqfs2tar', [squashfs], { ...res, stderr });
  return { sha256: hash.digest().slice('sha256:'.length), size: hash.size };
}

async function fileSha256(file: string): Promise<{ sha256: string; size: number }> {
  const { digest, size } = await digestFile(file);
  return { sha256: digest.slice('sha256:'.length), size };
}

function member(name: string, size: number): Buffer {
  const h: TarHeader = { name, type: 'file', mode: 0o644, uid: 0, gid: 0, uname: '', gname: '', size, mtime: 0, linkname: '', devmajor: 0, devminor: 0 };
  return encodeHeader(h);
}

/**
 * `darch delta create FROM TO -o FILE`: both images from the image store. The work (both
 * roots uncompressed, the target's squashfs to learn its hash) happens in `opts.tmpDir`.
 */
export async function createDelta(store: ImageStore, fromRef: string, toRef: string, out: string, opts: CreateDeltaOptions): Promise<CreatedDelta> {
  const started = Date.now();
  const report = opts.report ?? silentReporter;
  const level = opts.level ?? DEFAULT_DELTA_LEVEL;
  if (!Number.isInteger(level) || level < 1 || level > 22)
    throw new DarchError('E_USAGE', `zstd level ${level} is not 1–22`, { hint: 'darch delta create --level 19' });
  const compressor = opts.compressor ?? DEFAULT_COMPRESSOR;
  const blockSize = opts.blockSize ?? DEFAULT_BLOCK_SIZE;
  const [from, to] = await Promise.all([store.resolveImage(fromRef), store.resolveImage(toRef)]);
  const work = await makeWorkDir(opts.tmpDir, 'delta');
  try {
    const sq = { writer: 'tar2sqfs' as const, blockSize, signal: opts.signal };
    // The base as a machine reads it back from whatever squashfs it staged: through one.
    report.step(`reading the root of ${from.name ?? fromRef}`);
    const fromTar = path.join(work, 'from.tar');
    await writeStagingTar(store, from, fromTar, opts.signal);
    const fromSquashfs = path.join(work, 'from.squash');
    await writeSquashfs(createReadStream(fromTar), fromSquashfs, { ...sq, compressor: 'lz4' });
    await rm(fromTar);
    const reference = path.join(work, 'from.root.tar');
    const fromRoot = await rootOfSquashfs(fromSquashfs, reference, opts.signal);
    await rm(fromSquashfs);

    report.step(`reading the root of ${to.name ?? toRef}`);
    const toTar = path.join(work, 'to.tar');
    const { passes } = await writeStagingTar(store, to, toTar, opts.signal);
    const toRoot = await fileSha256(toTar);
    const windowLog = windowLogFor(fromRoot.size, toRoot.size);
    const segmentBytes = opts.segmentBytes ?? DEFAULT_SEGMENT_BYTES;
    const whole = patchWhole(fromRoot.size, toRoot.size, segmentBytes);
    if (windowLog > MAX_WINDOW_LOG && whole)
      throw new DarchError('E_DELTA_TOO_LARGE', `the roots are ${fromRoot.size} and ${toRoot.size} bytes: one patch covers roots up to 2 GiB`, {
        hint: 'patch in segments (leave out --segment-size 0), or ship the update as layers (darch images push) or a stage bundle (darch stage export)',
      });
    report.step(`writing the squashfs machines will stage (${compressor}), for its checksum`);
    const toSquashfs = path.join(work, 'to.squash');
    await writeSquashfs(createReadStream(toTar), toSquashfs, { ...sq, compressor });
    const squashfs = await hashAndSync(toSquashfs);
    await rm(toSquashfs);

    const patch = path.join(work, DELTA_PATCH);
    const zstdArgs = (wl: number) => ['-q', '-f', `-${level}`, ...(level > 19 ? ['--ultra'] : []), ...(level >= 19 ? PATCH_TUNING : []), `--long=${wl}`];
    let segments: NonNullable<DeltaInfo['patch']['segments']> | undefined;
    let maxWindowLog = windowLog;
    if (whole) {
      report.step(`making the patch (zstd -${level}, window 2^${windowLog})`);
      await run('zstd', [...zstdArgs(windowLog), `--patch-from=${reference}`, toTar, '-o', patch], { signal: opts.signal });
    } else {
      const plans = planSegments(await tarExtents(reference), fromRoot.size, await tarExtents(toTar), toRoot.size, segmentBytes);
      report.step(`making the patch in ${plans.length} segments of about ${Math.round(segmentBytes / 2 ** 20)} MiB (zstd -${level})`);
      const progress = report.progress('patch', toRoot.size);
      segments = [];
      maxWindowLog = 10;
      try {
        const ref = path.join(work, 'segment.ref');
        const piece = path.join(work, 'segment.tar');
        const frame = path.join(work, 'segment.zst');
        for (const plan of plans) {
          const refSize = await copyRanges(reference, plan.reference, ref, opts.signal);
          await copyRanges(toTar, [[plan.start, plan.end]], piece, opts.signal);
          const wl = windowLogFor(refSize, plan.end - plan.start);
          if (wl > MAX_WINDOW_LOG)
            throw new DarchError('E_DELTA_TOO_LARGE', `a segment and its reference are over 2 GiB`, { hint: 'use a smaller --segment-size' });
          maxWindowLog = Math.max(maxWindowLog, wl);
          await run('zstd', [...zstdArgs(wl), ...(refSize ? [`--patch-from=${ref}`] : []), piece, '-o', frame], { signal: opts.signal });
          const size = (await stat(frame)).size;
          await pipeline(createReadStream(frame), createWriteStream(patch, { flags: 'a', mode: 0o600 }));
          segments.push({ frame: size, output: plan.end - plan.start, windowLog: wl, reference: plan.reference.flat() });
          progress.tick(plan.end - plan.start);
        }
      } finally {
        progress.done();
      }
    }
    const patchSum = await fileSha256(patch);
    const manifestBytes = await store.readBlob(to.manifestDigest);
    const configBytes = await store.readBlob(to.configDigest);
    const info: DeltaInfo = {
      schemaVersion: 1,
      kind: 'darch-delta',
      created: new Date().toISOString(),
      from: { ...(from.name ? { name: from.name } : {}), config: from.configDigest, rootSha256: fromRoot.sha256, rootSize: fromRoot.size },
      to: {
        name: normalizeRef(to.name ?? toRef),
        manifestDigest: to.manifestDigest,
        manifest: manifestBytes.toString('base64'),
        config: configBytes.toString('base64'),
        rootSha256: toRoot.sha256,
        rootSize: toRoot.size,
        passes,
      },
      squashfs: { compression: compressor, blockSize, size: squashfs.size, sha256: squashfs.sha256 },
      patch: { size: patchSum.size, sha256: patchSum.sha256, windowLog: maxWindowLog, level, ...(segments ? { segments } : {}) },
    };
    const json = encodeDeltaJson(info);
    const tmp = tempName(out);
    try {
      const ws = createWriteStream(tmp, { flags: 'wx', mode: 0o644, flush: true });
      async function* parts(): AsyncGenerator<Buffer> {
        yield member(DELTA_JSON, json.length);
        yield json;
        yield bodyPadding(json.length);
        yield member(DELTA_PATCH, patchSum.size);
        for await (const b of createReadStream(patch)) yield b as Buffer;
        yield bodyPadding(patchSum.size);
        yield END_OF_ARCHIVE;
      }
      await pipeline(parts(), ws);
      await commitFile(tmp, out);
    } catch (err) {
      await rm(tmp, { force: true });
      throw fsError(err, `cannot write ${out}`);
    }
    return { file: out, size: (await stat(out)).size, info, seconds: (Date.now() - started) / 1000 };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/**
 * The delta's header, without reading the patch (`darch delta inspect`, the base it needs),
 * and the sha256 of its bytes: what `darch sign --bundle` signs for a delta (the header
 * holds the patch's sha256 and the target's digests, so it commits to everything).
 */
export async function readDeltaHeader(file: string): Promise<{ info: DeltaInfo; digest: Digest }> {
  const input = createReadStream(file);
  try {
    for await (const e of readTar(new ByteReader(input as AsyncIterable<Buffer>))) {
      if (e.header.name !== DELTA_JSON || e.header.type !== 'file') throw badDelta(file, `its first member is ${e.header.name}, not ${DELTA_JSON}`);
      if (e.header.size > MAX_DELTA_JSON) throw badDelta(file, `${DELTA_JSON} is ${e.header.size} bytes`);
      const parts: Buffer[] = [];
      for await (const b of e.body()) parts.push(b);
      const bytes = Buffer.concat(parts);
      return { info: parseDeltaJson(bytes, file), digest: sha256(bytes) };
    }
    throw badDelta(file, 'it is empty');
  } catch (err) {
    if (err instanceof DarchError) throw err.code === 'E_BAD_DELTA' ? err : badDelta(file, err.message);
    throw fsError(err, `cannot read ${file}`);
  } finally {
    input.destroy();
  }
}

export async function readDeltaInfo(file: string): Promise<DeltaInfo> {
  return (await readDeltaHeader(file)).info;
}

/** The staged image a delta starts from: by its image config digest, or the one named. */
export async function deltaBase(stageStore: StageStore, info: DeltaInfo, file: string, named?: string): Promise<StagedImage> {
  const list = await stageStore.list();
  const base = named ? await stageStore.get(named) : list.find((s) => s.meta?.source?.config === info.from.config);
  if (!base) {
    throw new DarchError(
      'E_DELTA_NO_BASE',
      `${file} rebuilds ${info.to.name} from ${info.from.name ?? 'an image'} (config ${info.from.config}), which is not staged here`,
      { hint: 'stage the image from its layers (darch images pull, darch stage upload), or use a delta from an image that is staged' },
    );
  }
  if (named && base.meta?.source?.config !== info.from.config)
    throw new DarchError('E_DELTA_NO_BASE', `${named} is not the image ${file} starts from (config ${info.from.config})`, {
      hint: 'leave out --base: darch finds the base by its config digest',
    });
  return base;
}

/** The target image as the delta carries it, checked against its digests. */
export function deltaImage(info: DeltaInfo, file: string): ResolvedImage {
  const manifestBytes = Buffer.from(info.to.manifest, 'base64');
  const configBytes = Buffer.from(info.to.config, 'base64');
  if (sha256(manifestBytes) !== info.to.manifestDigest) throw badDelta(file, `its manifest does not hash to ${info.to.manifestDigest}`);
  const problem = { code: 'E_BAD_DELTA' as const, hint: 'copy or download the delta again, or stage the image from its layers; nothing was staged' };
  const manifest = parseManifest(parseJsonText(manifestBytes, `${file}: the manifest of ${info.to.name}`, problem), `${file}: the manifest`, problem);
  if (sha256(configBytes) !== manifest.config.digest) throw badDelta(file, `its image config does not hash to ${manifest.config.digest}`);
  const config = parseConfig(parseJsonText(configBytes, `${file}: the config of ${info.to.name}`, problem), `${file}: the config`, problem);
  return {
    name: info.to.name,
    descriptor: { mediaType: manifest.mediaType ?? MediaType.ociManifest, digest: parseDigest(info.to.manifestDigest), size: manifestBytes.length },
    manifestDigest: parseDigest(info.to.manifestDigest),
    manifest,
    configDigest: parseDigest(manifest.config.digest),
    config,
  };
}

export interface ApplyDeltaOptions extends Omit<StageOptions, 'rootTar' | 'compressor' | 'blockSize' | 'writer' | 'passes'> {
  /** The staged image to start from (id or tag); default: the one whose config digest the delta names. */
  base?: string;
  /** Judges the header's digest (signatures) before anything is read past it or written. */
  verify?: (digest: Digest) => Promise<void>;
}

/**
 * Pipe each frame of the delta's patch member through `zstd -d --patch-from=` its reference
 * (the base's whole root, or the ranges of it its segment names, cut into `work`) into the
 * work store, one zstd at a time: memory is what one segment needs.
 */
async function rebuildRoot(
  file: string,
  info: DeltaInfo,
  segments: PatchSegment[],
  reference: string,
  work: string,
  scratch: ImageStore,
  signal?: AbortSignal,
): Promise<Descriptor> {
  const out = new PassThrough();
  const patchHash = createHash('sha256');
  let current: ReturnType<typeof spawnChild> | undefined;
  // The store stopped reading (it failed): a zstd writing into the pipe would wait for ever.
  out.on('close', () => {
    current?.kill();
    current?.stdout?.destroy();
  });
  const digest = parseDigest(`sha256:${info.to.rootSha256}`);
  const stored = scratch.putBlob(out as Readable, { digest, size: info.to.rootSize });
  stored.catch(() => out.destroy());

  async function segment(seg: PatchSegment, frame: AsyncIterable<Buffer>): Promise<void> {
    let ref = reference;
    if (seg.reference) {
      ref = path.join(work, 'segment.ref');
      await copyRanges(reference, seg.reference, ref, signal);
    }
    const patched = !seg.reference || seg.reference.length > 0;
    const zstd = spawnChild('zstd', ['-d', '-q', '-c', `--long=${seg.windowLog}`, ...(patched ? [`--patch-from=${ref}`] : [])], {
      stdio: ['pipe', 'pipe', 'pipe'],
      signal,
    });
    current = zstd;
    let stderr = '';
    zstd.stderr!.on('data', (b: Buffer) => {
      stderr = (stderr + b.toString()).slice(-4096);
    });
    const exited = waitChild(zstd, 'zstd');
    const copied = new Promise<void>((resolve, reject) => {
      zstd.stdout!.on('close', resolve).on('error', reject);
      zstd.stdout!.pipe(out, { end: false });
    });
    async function* body(): AsyncGenerator<Buffer> {
      for await (const b of frame) {
        patchHash.update(b);
        yield b;
      }
    }
    const [fed, , ended] = await Promise.allSettled([pipeline(body(), zstd.stdin!), copied, exited]);
    current = undefined;
    if (ended.status === 'rejected') throw ended.reason;
    if (ended.value.code !== 0 || ended.value.signal)
      throw badDelta(file, `zstd could not apply its patch: ${stderr.trim().split('\n').at(-1) ?? `exit ${ended.value.code}`}`);
    if (fed.status === 'rejected') throw fed.reason;
  }

  const feed = (async () => {
    const input = createReadStream(file);
    try {
      let seen = 0;
      for await (const e of readTar(new ByteReader(input as AsyncIterable<Buffer>))) {
        seen++;
        if (seen === 1) {
          for await (const _ of e.body()) void _;
          continue;
        }
        if (e.header.name !== DELTA_PATCH || e.header.size !== info.patch.size)
          throw badDelta(file, `its second member is ${e.header.name} of ${e.header.size} bytes, not ${DELTA_PATCH} of ${info.patch.size}`);
        const frames = new ByteReader(e.body());
        for (const seg of segments) {
          if (out.destroyed) break;
          await segment(seg, frames.chunks(seg.frame));
        }
        return;
      }
      throw badDelta(file, `it has no ${DELTA_PATCH}`);
    } finally {
      input.destroy();
    }
  })();
  const [fed, put] = await Promise.allSettled([
    feed.then(
      () => void out.end(),
      (err: unknown) => {
        out.destroy();
        throw err;
      },
    ),
    stored,
  ]);
  if (fed.status === 'rejected') {
    const e = fed.reason as unknown;
    if (e instanceof DarchError && (e.code === 'E_BAD_DELTA' || e.code === 'E_ABORTED')) throw e;
    if (signal?.aborted) throw e;
    throw badDelta(file, (e as Error).message);
  }
  if (patchHash.digest('hex') !== info.patch.sha256) throw badDelta(file, 'its patch does not hash to the sha256 in its header');
  if (put.status === 'rejected') {
    const e = put.reason as unknown;
    if (e instanceof DarchError && (e.code === 'E_DIGEST_MISMATCH' || e.code === 'E_SIZE_MISMATCH'))
      throw new DarchError('E_DELTA_MISMATCH', `the root ${file} rebuilt is not the one of ${info.to.name}: ${e.message}`, {
        hint: 'stage the image from its layers (darch images pull, darch stage upload); nothing was staged',
      });
    throw e;
  }
  return { mediaType: MediaType.ociLayer, digest, size: info.to.rootSize };
}

/**
 * `darch delta apply FILE`: stage the delta's target from the staged base. The result is
 * what `darch stage upload` of the target writes; nothing is staged on any mismatch.
 */
export async function applyDelta(stageStore: StageStore, file: string, opts: ApplyDeltaOptions): Promise<StageResult & { base: string }> {
  const report = opts.report ?? silentReporter;
  const { info, digest } = await readDeltaHeader(file);
  await opts.verify?.(digest);
  const image = deltaImage(info, file);
  const base = await deltaBase(stageStore, info, file, opts.base);
  await stageStore.init();
  const work = await stageStore.makeWorkDir('delta');
  try {
    const segments = patchSegments(info, file);
    const largestRef = Math.max(0, ...segments.map((g) => (g.reference ?? []).reduce((n, [a, b]) => n + b - a, 0)));
    await ensureFreeSpace(work, info.from.rootSize + largestRef + info.to.rootSize + info.squashfs.size, `applying ${path.basename(file)}`);
    report.step(`reading the root of the staged ${base.tags[0] ?? base.id} (${base.id})`);
    const reference = path.join(work, 'base.tar');
    const got = await rootOfSquashfs(path.join(base.dir, ROOTFS_FILE), reference, opts.signal);
    if (got.sha256 !== info.from.rootSha256 || got.size !== info.from.rootSize)
      throw new DarchError(
        'E_DELTA_MISMATCH',
        `the root of the staged ${base.id} is not the one ${file} was made against (${got.size} bytes, sha256 ${got.sha256}; expected ${info.from.rootSize}, ${info.from.rootSha256})`,
        { hint: 'the staged image is damaged or was staged another way; stage the update from its layers (darch images pull, darch stage upload)' },
      );
    report.step(`applying the patch (${info.patch.size} bytes) to rebuild ${info.to.name}`);
    const scratch = new ImageStore(path.join(work, 'store'), path.join(work, 'store-tmp'));
    await scratch.init();
    const layer = await rebuildRoot(file, info, segments, reference, work, scratch, opts.signal);
    await rm(reference);
    const { base: _b, verify: _v, ...stageOpts } = opts;
    const res = await stageImage(scratch, stageStore, image, {
      ...stageOpts,
      tags: opts.tags?.length ? opts.tags : [info.to.name],
      writer: 'tar2sqfs',
      compressor: info.squashfs.compression,
      blockSize: info.squashfs.blockSize,
      rootTar: { layer, squashfs: { size: info.squashfs.size, sha256: info.squashfs.sha256 } },
    });
    return { ...res, base: base.id };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** Whether a file is a delta (its first member is darch-delta.json), for `update apply --from`. */
export async function isDeltaFile(file: string): Promise<boolean> {
  const fh = await open(file, 'r').catch(() => undefined);
  if (!fh) return false;
  try {
    const b = Buffer.alloc(DELTA_JSON.length);
    await fh.read(b, 0, b.length, 0);
    return b.toString('latin1') === DELTA_JSON;
  } finally {
    await fh.close();
  }
}

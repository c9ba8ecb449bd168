/**
 * `stageImage`: an image of the store becomes a staged image (squashfs, kernel, initramfs,
 * image.json, meta.json) in <stage>/live/<id>. Nothing from the image runs, no container
 * runtime is involved, and no root is needed. Work happens in <stage>/tmp and is renamed
 * into place only when complete, so a crash at any point leaves earlier staged images as
 * they were (the abandoned work directory is swept by the next stage command).
 *
 * Booting (initramfs, hooks) plugs in through `opts.steps`: steps run on the work directory
 * after the squashfs and kernel are written and before meta.json and the rename.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { open, readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { DirFiles } from '../lib/smallfs.js';
import { writeImageJsonIn, type ImageJson } from './image-json.js';
import { writeMetaIn, type NewStagedMeta } from './meta-json.js';
import { DarchError, fsError } from '../lib/errors.js';
import { silentReporter, type Reporter } from '../lib/report.js';
import { formatBytes } from '../lib/format.js';
import { HashSink } from '../oci/digest.js';
import { ImageStore, type ResolvedImage } from '../oci/store.js';
import { normalizeRef } from '../oci/reference.js';
import { type FlatIndex, type FlattenStats, indexLayers, rootHeader, streamFlattened } from '../layers/flatten.js';
import { streamTopDown, type TopDownResult } from '../layers/topdown.js';
import { type Descriptor, MediaType } from '../oci/mediatypes.js';
import { type BootOrder, readBootOrder, tracedIds } from './boot-order.js';
import { orderedTar } from './order.js';
import { bootReadahead, writeReadaheadIn } from './readahead.js';
import { type BootFiles, findBootFiles, refuseWithoutKernel } from './kernel.js';
import { ensureFreeSpace } from './space.js';
import { type SquashfsCompressor, type SquashfsWriter, copyFromSquashfs, defaultWriter, readFromSquashfs, writeSquashfs } from './squashfs.js';
import { INITRD_FILE, KERNEL_FILE, META_JSON, ROOTFS_FILE, type StageStore, type StagedImage, newStageId } from './store.js';
import { formatVerity, verityFileOf } from './verity.js';

export interface StageStepContext {
  id: string;
  /** The work directory that will become live/<id>; write extra files (initrd.img, hooks/) here. */
  dir: string;
  image: ResolvedImage;
  /** The flattened index: look files up with index.lookup(), read small ones with readImageFile(). */
  index: FlatIndex;
  boot: BootFiles;
  tags: string[];
  imageStore: ImageStore;
  stageStore: StageStore;
  signal?: AbortSignal;
  /** Where the step reports: the stage call's reporter. */
  report: Reporter;
}

export interface StageStep {
  name: string;
  run(ctx: StageStepContext): Promise<void>;
}

export interface StageOptions {
  /** Tags for the staged image; default: the image reference itself. */
  tags?: string[];
  /** Re-stage even if a tag is already staged (the tag moves to the new image). */
  force?: boolean;
  compressor?: SquashfsCompressor;
  blockSize?: number;
  /** Which program writes the squashfs; default tar2sqfs (reproducible) when installed, else sqfstar. */
  writer?: SquashfsWriter;
  /** 2 forces the two-pass flattener (index first); default one pass where the writer allows. */
  passes?: 1 | 2;
  /** Retention after a successful stage (stage.keep); undefined keeps everything. */
  keep?: number;
  /** Add a dm-verity hash tree (`rootfs.squash.verity`) and boot through it (stage.verity). */
  verity?: boolean;
  /**
   * The root as one flat tar already in `imageStore`, fed to the writer byte for byte instead
   * of flattening the image's layers (`darch delta apply`: the tar a delta rebuilt is what
   * staging the image's layers feeds tar2sqfs, so the squashfs comes out the same). With
   * `squashfs`, the squashfs written must have that size and sha256, or nothing is staged.
   */
  rootTar?: { layer: Descriptor; squashfs?: { size: number; sha256: string } };
  /**
   * The boot order (docs/BOOT-ORDER.md): the files a boot reads, written first in that order.
   * Undefined: the order recorded for the newest staged version of the same image
   * repository, if one was traced (defaultOrder); false: none. Needs tar2sqfs.
   */
  order?: StageOrder | false;
  /**
   * What runs before committing, in order. Required, so no caller forgets darch's
   * initramfs and hooks (the CLI passes its context's `stageSteps`; [] stages the bare image).
   */
  steps: StageStep[];
  signal?: AbortSignal;
  report?: Reporter;
}

export interface StageOrder {
  files: string[];
  /** Those of `files` the boot read little of: after the others, outside the readahead run. */
  partial?: string[];
  /** Where it came from, for meta.json and people: `trace of <id>` or the file. */
  source: string;
}

/**
 * `[HOST/]PATH[:TAG][@DIGEST]` without its tag, digest and registry: versions of one image
 * share it, also when they came through another registry (a mirror; the address a machine
 * reaches its registry by is not the one the image was built and staged at).
 */
function repositoryOf(name: string): string {
  const repo = name.replace(/@sha256:[0-9a-f]{64}$/, '').replace(/:[^/:]+$/, '');
  const [first, ...rest] = repo.split('/');
  return rest.length && (first === 'localhost' || /[.:]/.test(first ?? '')) ? rest.join('/') : repo;
}

/** The most recent boot order recorded for a staged image of `name`'s repository. */
export async function defaultOrder(stageStore: StageStore, name: string): Promise<StageOrder | undefined> {
  const traced = new Set(await tracedIds(stageStore.dir));
  if (!traced.size) return undefined;
  const repo = repositoryOf(normalizeRef(name));
  let best: BootOrder | undefined;
  for (const s of await stageStore.list()) {
    const from = s.meta?.source?.name;
    if (!traced.has(s.id) || !from || repositoryOf(normalizeRef(from)) !== repo) continue;
    const o = await readBootOrder(stageStore.dir, s.id).catch(() => undefined);
    if (o?.files.length && (!best || o.recorded > best.recorded)) best = o;
  }
  return best ? { files: best.files, ...(best.partial ? { partial: best.partial } : {}), source: `trace of ${best.stage}` } : undefined;
}

export interface StageResult extends StagedImage {
  meta: NewStagedMeta;
  /** Ids retention removed. */
  removed: string[];
  stats: { entries: number; files: number; contentBytes: number; layers: number; seconds: number };
}

export const DEFAULT_COMPRESSOR: SquashfsCompressor = 'zstd';
export const DEFAULT_BLOCK_SIZE = 131072;

/** Every regular file under dir (relative paths), for sizes, checksums and bundles. */
export async function listFiles(dir: string, rel = ''): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(path.join(dir, rel), { withFileTypes: true })) {
    const r = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...(await listFiles(dir, r)));
    else if (e.isFile()) out.push(r);
  }
  return out.sort();
}

/** Hash a file and make sure it is on disk (tar2sqfs does not fsync). */
export async function hashAndSync(file: string): Promise<{ size: number; sha256: string }> {
  const sink = new HashSink();
  await new Promise<void>((resolve, reject) => {
    const rs = createReadStream(file, { highWaterMark: 1024 * 1024 });
    rs.on('error', reject);
    sink.on('error', reject);
    sink.on('finish', resolve);
    rs.pipe(sink);
    sink.resume();
  });
  const fh = await open(file, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
  return { size: sink.size, sha256: sink.digest().slice(7) };
}

/** Fill sizes/sha256/totalSize of a meta from the files in dir (except meta.json itself). */
export async function describeFiles(dir: string): Promise<Pick<NewStagedMeta, 'sizes' | 'sha256' | 'totalSize'>> {
  const sizes: Record<string, number> = {};
  const sha: Record<string, string> = {};
  let total = 0;
  for (const f of await listFiles(dir)) {
    if (f === META_JSON) continue;
    const h = await hashAndSync(path.join(dir, f));
    sizes[f] = h.size;
    sha[f] = h.sha256;
    total += h.size;
  }
  return { sizes, sha256: sha, totalSize: total };
}

/** What the layer blobs take in the store: the one figure known before anything is read. */
function compressedSize(layers: Descriptor[]): number {
  return layers.reduce((a, l) => a + l.size, 0);
}

/** What copying the kernel and initramfs out writes beside the squashfs. */
function bootBytes(boot: BootFiles): number {
  return boot.kernel.size + (boot.initramfs?.size ?? 0);
}

interface TwoPassPlan {
  index: FlatIndex;
  stats: FlattenStats;
  boot: BootFiles;
}

/**
 * Pass 1 of the two-pass path: every layer's headers, then the kernel, before writing.
 * The index is the first moment the size of what pass 2 writes is known, so the free space
 * in `spaceDir` is checked here, whether two passes were chosen or one pass fell back.
 */
async function planTwoPass(
  imageStore: ImageStore,
  layers: Descriptor[],
  labels: Record<string, string>,
  sourceName: string,
  spaceDir: string,
  report: Reporter,
  signal?: AbortSignal,
): Promise<TwoPassPlan> {
  const started = Date.now();
  report.step(`indexing ${layers.length} layer${layers.length === 1 ? '' : 's'} of ${sourceName}`);
  const index = await indexLayers(imageStore, layers, { signal, onLayer: (i, n) => report.verbose(`layer ${i + 1}: ${n} entries`) });
  const st = index.stats();
  report.verbose(`indexed ${st.entries} entries (${formatBytes(st.contentBytes)} of file content) in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  const boot = await findBootFiles(imageStore, index, labels, sourceName);
  // squashfs is at most about the content plus metadata, and rarely more than the
  // compressed layers; take the smaller as the estimate.
  const estimate = Math.min(st.contentBytes, Math.ceil(compressedSize(layers) * 1.2)) + st.entries * 128 + bootBytes(boot) + 1024 * 1024;
  await ensureFreeSpace(spaceDir, estimate, `staging ${sourceName}`);
  return { index, stats: st, boot };
}

type SquashfsRun = { writer: SquashfsWriter; compressor: SquashfsCompressor; blockSize: number; signal?: AbortSignal; report: Reporter };

interface Written {
  index: FlatIndex;
  stats: FlattenStats;
  boot: BootFiles;
  passes: 1 | 2;
  /** Bytes of the squashfs its boot reads ahead (readahead.ts); only in a boot order. */
  readahead?: number;
}

/**
 * One pass: layers top-down into tar2sqfs, then the kernel and initramfs found in the
 * index and copied out of the squashfs. Undefined when the image needs two passes (the
 * partial squashfs is removed; nothing else was written).
 */
async function writeOnePass(
  imageStore: ImageStore,
  layers: Descriptor[],
  labels: Record<string, string>,
  sourceName: string,
  work: string,
  rootfs: string,
  sq: SquashfsRun,
): Promise<Written | undefined> {
  sq.report.step(`writing squashfs with ${sq.writer} (${sq.compressor}) from ${layers.length} layer${layers.length === 1 ? '' : 's'} of ${sourceName}`);
  const progress = sq.report.progress('squashfs', compressedSize(layers));
  const flat = streamTopDown(imageStore, layers, { onRaw: (n) => progress.tick(n), signal: sq.signal });
  let done: TopDownResult;
  try {
    await writeSquashfs(flat.stream, rootfs, sq);
    done = flat.result();
  } catch (err) {
    if (!(err instanceof DarchError && err.code === 'E_SINGLE_PASS')) throw err;
    sq.report.verbose(`${err.message}; staging with two passes`);
    await rm(rootfs, { force: true });
    return undefined;
  } finally {
    progress.done();
  }
  const boot = await copyBootFiles(imageStore, done.index, labels, sourceName, work, rootfs, (key) => done.dataPath(key), sq.signal);
  return { index: done.index, stats: done.index.stats(), boot, passes: 1 };
}

/** The kernel and initramfs found in the index, copied out of the squashfs just written. */
async function copyBootFiles(
  imageStore: ImageStore,
  index: FlatIndex,
  labels: Record<string, string>,
  sourceName: string,
  work: string,
  rootfs: string,
  dataPath: (key: number) => string | undefined,
  signal?: AbortSignal,
): Promise<BootFiles> {
  const inner = (key: number): string => {
    const p = dataPath(key);
    if (p === undefined) throw new DarchError('E_INTERNAL', `entry ${key} was not written to the squashfs`);
    return p;
  };
  // findBootFiles checks the size from the index before it asks for the bytes.
  const boot = await findBootFiles(imageStore, index, labels, sourceName, (key) => readFromSquashfs(rootfs, inner(key)));
  // The estimate before the pass could not count them: a kernel and initramfs compress to
  // little in the layers but are copied out whole.
  await ensureFreeSpace(work, bootBytes(boot), `the kernel and initramfs of ${sourceName}`);
  await copyFromSquashfs(rootfs, inner(boot.kernel.key), path.join(work, KERNEL_FILE), signal);
  if (boot.initramfs) await copyFromSquashfs(rootfs, inner(boot.initramfs.key), path.join(work, INITRD_FILE), signal);
  return boot;
}

/** `opts.rootTar`: the flat tar into the writer unchanged, indexed as a one-layer image for the kernel and the steps. */
async function writeFromRootTar(
  imageStore: ImageStore,
  root: NonNullable<StageOptions['rootTar']>,
  labels: Record<string, string>,
  sourceName: string,
  work: string,
  rootfs: string,
  sq: SquashfsRun,
  order?: StageOrder,
): Promise<Written> {
  const index = await indexLayers(imageStore, [root.layer], { signal: sq.signal });
  let tar: Readable;
  let after: string[] | undefined;
  if (order) {
    const o = await orderedTar(imageStore.blobPath(root.layer.digest), root.layer.size, order, sq.blockSize + 2048);
    tar = o.stream;
    after = o.after;
    sq.report.step(`boot order (${order.source}): ${o.matched} of its ${order.files.length} files first`);
  } else tar = imageStore.openBlob(root.layer.digest);
  sq.report.step(`writing squashfs with ${sq.writer} (${sq.compressor}) from the root of ${sourceName}`);
  const progress = sq.report.progress('squashfs', root.layer.size);
  try {
    tar.on('data', (b: Buffer) => progress.tick(b.length));
    await writeSquashfs(tar, rootfs, sq);
  } finally {
    progress.done();
  }
  // Rearranged, the squashfs is not the one the tar's sender wrote; the tar itself was checked.
  if (root.squashfs && !order) {
    const got = await hashAndSync(rootfs);
    if (got.size !== root.squashfs.size || got.sha256 !== root.squashfs.sha256)
      throw new DarchError(
        'E_DELTA_MISMATCH',
        `the squashfs rebuilt for ${sourceName} is not the one expected (${got.size} bytes, sha256 ${got.sha256}; expected ${root.squashfs.size} bytes, sha256 ${root.squashfs.sha256})`,
        {
          hint: "this machine's tar2sqfs writes other bytes than the one that made the delta; stage the image from its layers (darch images pull, darch stage upload)",
        },
      );
  }
  let readahead: number | undefined;
  if (after) {
    const ranges = await bootReadahead(rootfs, after);
    readahead = ranges.reduce((n, [, len]) => n + len, 0);
    await writeReadaheadIn(new DirFiles(path.dirname(rootfs)), ranges);
    sq.report.step(`readahead: ${formatBytes(readahead)} for its boot (${ranges.map(([o, n]) => `${formatBytes(n)} at ${o}`).join(', ')})`);
  }
  const plan = index.emissionPlan();
  const boot = await copyBootFiles(imageStore, index, labels, sourceName, work, rootfs, (key) => plan.get(key)?.[0], sq.signal);
  return { index, stats: index.stats(), boot, passes: 1, ...(readahead !== undefined ? { readahead } : {}) };
}

/** Staging in boot order: the layers flattened into a tar in the work directory, then rearranged into the writer. */
async function writeOrdered(
  imageStore: ImageStore,
  image: ResolvedImage,
  labels: Record<string, string>,
  sourceName: string,
  work: string,
  rootfs: string,
  sq: SquashfsRun,
  order: StageOrder,
): Promise<Written> {
  await ensureFreeSpace(work, Math.ceil(compressedSize(image.manifest.layers) * 3) + 1024 * 1024, `staging ${sourceName} in boot order`);
  const scratch = new ImageStore(path.join(work, 'order-store'), path.join(work, 'order-tmp'));
  await scratch.init();
  try {
    const { layer, passes } = await stagingTarBlob(imageStore, image, scratch, sq.signal);
    const written = await writeFromRootTar(scratch, { layer }, labels, sourceName, work, rootfs, sq, order);
    return { ...written, passes };
  } finally {
    await rm(path.join(work, 'order-store'), { recursive: true, force: true });
    await rm(path.join(work, 'order-tmp'), { recursive: true, force: true });
  }
}

/** Pass 2: stream the winners in layer order, copying the kernel and initramfs on the way. */
async function writeTwoPass(imageStore: ImageStore, plan: TwoPassPlan, work: string, rootfs: string, sq: SquashfsRun): Promise<void> {
  const { index, boot, stats: st } = plan;
  const capture = new Map<number, string>([[boot.kernel.key, path.join(work, KERNEL_FILE)]]);
  if (boot.initramfs && boot.initramfs.key !== boot.kernel.key) capture.set(boot.initramfs.key, path.join(work, INITRD_FILE));
  sq.report.step(`writing squashfs with ${sq.writer} (${sq.compressor}, ${st.files} files, ${formatBytes(st.contentBytes)})`);
  const progress = sq.report.progress('squashfs', st.contentBytes);
  const root = rootHeader(index);
  const flat = streamFlattened(imageStore, index, { capture, omitRoot: sq.writer === 'sqfstar', onBytes: (n) => progress.tick(n), signal: sq.signal });
  try {
    await writeSquashfs(flat, rootfs, { ...sq, root: { mode: root.mode, uid: root.uid, gid: root.gid, mtime: root.mtime } });
  } finally {
    progress.done();
  }
}

/**
 * The tar `stageImage` feeds tar2sqfs for this image's layers, written to `out`: the end of a
 * delta (src/stage/delta.ts). One pass where the layers allow it, else two, as staging does,
 * so a squashfs written from this file is the one `darch stage upload` writes.
 */
export async function writeStagingTar(imageStore: ImageStore, image: ResolvedImage, out: string, signal?: AbortSignal): Promise<{ passes: 1 | 2 }> {
  const { passes } = await stagingTar(imageStore, image, (tar) => pipeline(tar, createWriteStream(out, { mode: 0o600 })), signal);
  return { passes };
}

/** The staging tar, handed to `sink` as a stream: one pass where the layers allow it, else two. */
async function stagingTar<T>(
  imageStore: ImageStore,
  image: ResolvedImage,
  sink: (tar: Readable) => Promise<T>,
  signal?: AbortSignal,
): Promise<{ result: T; passes: 1 | 2 }> {
  const layers = image.manifest.layers;
  try {
    return { result: await sink(streamTopDown(imageStore, layers, { signal }).stream), passes: 1 };
  } catch (err) {
    if (!(err instanceof DarchError && err.code === 'E_SINGLE_PASS')) throw err;
  }
  const index = await indexLayers(imageStore, layers, { signal });
  return { result: await sink(streamFlattened(imageStore, index, { signal })), passes: 2 };
}

/** The staging tar as a blob of `scratch`: the flat root a boot order rearranges. */
async function stagingTarBlob(
  imageStore: ImageStore,
  image: ResolvedImage,
  scratch: ImageStore,
  signal?: AbortSignal,
): Promise<{ layer: Descriptor; passes: 1 | 2 }> {
  const { result: put, passes } = await stagingTar(imageStore, image, (tar) => scratch.putBlob(tar), signal);
  return { layer: { mediaType: MediaType.ociLayer, digest: put.digest, size: put.size }, passes };
}

/** `ref` names an image of `imageStore`, or is one already resolved (a delta's target, in no store). */
export async function stageImage(imageStore: ImageStore, stageStore: StageStore, ref: string | ResolvedImage, opts: StageOptions): Promise<StageResult> {
  const started = Date.now();
  const report = opts.report ?? silentReporter;
  const image = typeof ref === 'string' ? await imageStore.resolveImage(ref) : ref;
  const sourceName = image.name ?? (typeof ref === 'string' ? ref : image.manifestDigest);
  const tags = (opts.tags?.length ? opts.tags : [sourceName]).map((t) => normalizeRef(t));
  const compressor = opts.compressor ?? DEFAULT_COMPRESSOR;
  const blockSize = opts.blockSize ?? DEFAULT_BLOCK_SIZE;

  return stageStore.withLock(async () => {
    await stageStore.sweepTemp();
    if (!opts.force) {
      for (const t of tags) {
        const existing = await stageStore.idOfTag(t);
        if (existing) {
          throw new DarchError('E_ALREADY_STAGED', `${t} is already staged (id ${existing})`, {
            hint: 'use --force to stage it again (the tag moves to the new image; the old one stays until clean or retention)',
          });
        }
      }
    }
    const layers = image.manifest.layers;
    const labels = image.config.config?.Labels ?? {};
    const writer = opts.writer ?? (await defaultWriter());
    // One pass (layers top-down, each decompressed once, tar2sqfs busy from the first byte)
    // needs tar2sqfs; sqfstar wants the root's attributes before the stream starts.
    const order = opts.order === false ? undefined : (opts.order ?? (await defaultOrder(stageStore, sourceName)));
    if (order && writer !== 'tar2sqfs') report.warn(`the boot order (${order.source}) needs tar2sqfs (squashfs-tools-ng); staging without it`);
    const ordered = order?.files.length && writer === 'tar2sqfs' ? order : undefined;
    const onePass = writer === 'tar2sqfs' && opts.passes !== 2 && !opts.rootTar && !ordered;
    const plan = () => planTwoPass(imageStore, layers, labels, sourceName, stageStore.tmpDir, report, opts.signal);
    // Not indexed yet in one pass: squashfs is rarely larger than the compressed layers.
    // The kernel is found in the index only once the pass is over: an image that cannot have
    // one is refused from its layers' headers first (two passes find it before writing anyway).
    if (onePass) await refuseWithoutKernel(imageStore, layers, labels, sourceName, opts.signal);
    if (onePass) await ensureFreeSpace(stageStore.tmpDir, Math.ceil(compressedSize(layers) * 1.2) + 1024 * 1024, `staging ${sourceName}`);
    if (opts.rootTar) await ensureFreeSpace(stageStore.tmpDir, opts.rootTar.layer.size + 1024 * 1024, `staging ${sourceName}`);
    let twoPass = onePass || opts.rootTar || ordered ? undefined : await plan();

    const id = newStageId();
    const work = await stageStore.makeWorkDir('stage');
    try {
      const rootfs = path.join(work, ROOTFS_FILE);
      const sqOpts = { writer, compressor, blockSize, signal: opts.signal, report };
      let written = opts.rootTar
        ? await writeFromRootTar(imageStore, opts.rootTar, labels, sourceName, work, rootfs, sqOpts, ordered)
        : ordered
          ? await writeOrdered(imageStore, image, labels, sourceName, work, rootfs, sqOpts, ordered)
          : onePass
            ? await writeOnePass(imageStore, layers, labels, sourceName, work, rootfs, sqOpts)
            : undefined;
      if (!written) {
        twoPass ??= await plan();
        await writeTwoPass(imageStore, twoPass, work, rootfs, sqOpts);
        written = { ...twoPass, passes: 2 };
      }
      const { index, boot, stats: st, passes, readahead } = written;
      report.verbose(`kernel ${boot.kernel.path} (${boot.from})${boot.initramfs ? `, initramfs ${boot.initramfs.path}` : ', no initramfs in the image'}`);

      const workFiles = new DirFiles(work);
      // Before the steps: the initramfs darch builds carries dm-verity's tools only when image.json asks for them.
      const verity = opts.verity ? await formatVerity(rootfs, verityFileOf(rootfs), image.configDigest, report) : undefined;
      const imageJson: ImageJson = {
        kernel: KERNEL_FILE,
        ...(boot.initramfs ? { initramfs: INITRD_FILE } : {}),
        rootfs: ROOTFS_FILE,
        ...(boot.kernelparams ? { kernelparams: boot.kernelparams } : {}),
        ...(verity ? { verity } : {}),
      };
      await writeImageJsonIn(workFiles, imageJson);

      const ctx: StageStepContext = { id, dir: work, image, index, boot, tags, imageStore, stageStore, signal: opts.signal, report };
      for (const step of opts.steps) {
        opts.signal?.throwIfAborted();
        report.verbose(`stage step: ${step.name}`);
        await step.run(ctx);
      }

      // A step may have supplied the initramfs (issue 6's universal one): name it in image.json.
      let initramfsFromStep = false;
      if (!boot.initramfs && (await stat(path.join(work, INITRD_FILE)).catch(() => undefined))) {
        initramfsFromStep = true;
        await writeImageJsonIn(workFiles, { ...imageJson, initramfs: INITRD_FILE, rootfs: ROOTFS_FILE });
      }
      const files = await describeFiles(work);
      const meta: NewStagedMeta = {
        schemaVersion: 1,
        id,
        source: {
          name: sourceName,
          digest: image.descriptor.digest,
          manifestDigest: image.manifestDigest,
          config: image.configDigest,
          ...versionOf(image),
          layers: layers.length,
        },
        created: new Date().toISOString(),
        kernel: { path: boot.kernel.path, ...(boot.kernel.version ? { version: boot.kernel.version } : {}), from: boot.from },
        ...(boot.initramfs
          ? { initramfs: { path: boot.initramfs.path, from: boot.from } }
          : initramfsFromStep
            ? { initramfs: { path: INITRD_FILE, from: 'stage step' } }
            : {}),
        ...(boot.kernelparams ? { kernelparams: boot.kernelparams } : {}),
        compression: compressor,
        blockSize,
        writer,
        passes,
        ...(ordered ? { order: { source: ordered.source, files: ordered.files.length, ...(readahead !== undefined ? { readahead } : {}) } } : {}),
        ...files,
      };
      await writeMetaIn(workFiles, meta);
      opts.signal?.throwIfAborted();
      const dir = await stageStore.commit(work, id);
      await stageStore.setTags(id, tags);
      const removed = opts.keep !== undefined ? await stageStore.applyRetention(opts.keep, [id]) : [];
      return {
        id,
        tags,
        dir,
        meta,
        removed,
        stats: { entries: st.entries, files: st.files, contentBytes: st.contentBytes, layers: layers.length, seconds: (Date.now() - started) / 1000 },
      };
    } catch (err) {
      await rm(work, { recursive: true, force: true }).catch(() => undefined);
      if (opts.signal?.aborted && !(err instanceof DarchError)) throw new DarchError('E_ABORTED', 'interrupted');
      throw fsError(err, `cannot stage ${sourceName}`);
    }
  });
}

/** The version an image declares (manifest annotation first, then the config's label), for notices. */
function versionOf(image: { manifest: { annotations?: Record<string, string> }; config: { config?: { Labels?: Record<string, string> | null } } }): {
  version?: string;
} {
  const key = 'org.opencontainers.image.version';
  const v = image.manifest.annotations?.[key] ?? image.config.config?.Labels?.[key];
  return v ? { version: v } : {};
}

/**
 * OCI layers → one flattened tar stream, in two passes and without extracting anything:
 *
 * 1. index: read every layer's headers (bodies are skipped, several layers decompress at
 *    once) and replay them bottom-up on an in-memory tree of paths. That applies upper
 *    layers over lower ones, `.wh.<name>` whiteouts, `.wh..wh..opq` opaque directories, and
 *    resolves each hard link against the tree *as it was when the link was made* — so a
 *    link whose target an upper layer replaced or deleted keeps the old content, as
 *    `umoci unpack` (and the kernel's overlayfs) would give. Only headers live in memory,
 *    and for non-directories only a number per path.
 * 2. stream: directories first (from memory, parents before children), then each layer
 *    again, emitting only the entries that won. A file whose original name was replaced but
 *    that survives through a hard link is written under its first surviving name, and its
 *    other names follow as hard links. Every path appears exactly once, which tar2sqfs needs.
 *
 * Whiteouts and opaque markers apply to lower layers only (OCI image-spec, layer.md): an
 * entry the same layer adds survives, whatever the order inside the tar.
 */
import { DarchError, type ErrorCode } from '../lib/errors.js';
import { captureFile } from '../lib/scratch.js';
import type { Descriptor } from '../oci/mediatypes.js';
import type { ImageStore } from '../oci/store.js';
import { Readable } from 'node:stream';
import { openLayer } from './open.js';
import { ByteReader, END_OF_ARCHIVE, type EntryType, type TarHeader, bodyPadding, encodeHeader, readTar } from './tar.js';

/** A leaf is a number: the key of the entry that made the path (see keyOf). */
type Leaf = number;

interface DirNode {
  children: Map<string, Node>;
  /** The winning directory entry; undefined for a directory only implied by its children. */
  header?: TarHeader;
  /** The layer that last declared or created it (for "lower layers only" whiteouts). */
  layer: number;
}

type Node = DirNode | Leaf;

const TYPE_CODE: Record<Exclude<EntryType, 'dir'>, number> = { file: 0, link: 1, symlink: 2, char: 3, block: 4, fifo: 6 };
const CODE_TYPE = ['file', 'link', 'symlink', 'char', 'block', 'dir', 'fifo'] as const;
const LAYER_UNIT = 2 ** 32;

/** One number names an entry: layer, its position in the layer's tar, and its type. */
export function keyOf(layer: number, ordinal: number, type: Exclude<EntryType, 'dir'>): number {
  return (layer * LAYER_UNIT + ordinal) * 8 + TYPE_CODE[type];
}
export function layerOfKey(key: number): number {
  return Math.floor(key / 8 / LAYER_UNIT);
}
export function typeOfKey(key: number): EntryType {
  return CODE_TYPE[key % 8] ?? 'file';
}

const isDir = (n: Node | undefined): n is DirNode => typeof n === 'object';

/** What pass 1 records about each entry of a layer (bodies are never kept). */
export interface Rec {
  path: string;
  kind: EntryType | 'whiteout' | 'opaque';
  ordinal: number;
  linkname?: string;
  size?: number;
  header?: TarHeader;
}

/**
 * Normalise a tar member name to a relative path without `.`, empty or trailing
 * components. `..` is refused: a layer must not write outside the root.
 */
export function normalizePath(name: string, layer: number): string {
  const parts: string[] = [];
  for (const p of name.split('/')) {
    if (p === '' || p === '.') continue;
    if (p === '..') {
      throw new DarchError('E_BAD_LAYER', `layer ${layer + 1} has an entry outside the root: ${JSON.stringify(name)}`, {
        hint: 'the image is malformed or malicious; darch will not stage it',
      });
    }
    parts.push(p);
  }
  return parts.join('/');
}

export function split(path: string): { dir: string; base: string } {
  const i = path.lastIndexOf('/');
  return i < 0 ? { dir: '', base: path } : { dir: path.slice(0, i), base: path.slice(i + 1) };
}

/** What one tar entry means for the flattened root; undefined for AUFS bookkeeping names. */
export function recOf(header: TarHeader, ordinal: number, layer: number): Rec | undefined {
  const path = normalizePath(header.name, layer);
  const { dir, base } = split(path);
  if (base.startsWith('.wh.')) {
    if (base === '.wh..wh..opq') return { path: dir, kind: 'opaque', ordinal };
    // Other `.wh..wh.*` names are AUFS bookkeeping (hard-link dirs): never part of the root.
    if (base.startsWith('.wh..wh.')) return undefined;
    return { path: dir ? `${dir}/${base.slice(4)}` : base.slice(4), kind: 'whiteout', ordinal };
  }
  const rec: Rec = { path, kind: header.type, ordinal };
  if (header.type === 'dir') rec.header = { ...header, name: path };
  if (header.type === 'link') rec.linkname = normalizePath(header.linkname, layer);
  if (header.type === 'symlink') rec.linkname = header.linkname;
  if (header.type === 'file') rec.size = header.size;
  return rec;
}

const PASS_THROUGH = new Set<ErrorCode>(['E_STORE_CORRUPT', 'E_BLOB_MISSING', 'E_SINGLE_PASS', 'E_ABORTED']);

/**
 * A layer that cannot be read, reported by its cause. A damaged blob first shows up as
 * whatever the decompressor or the tar reader tripped on ("invalid tar header"), so before
 * blaming the image darch checks the blob against its digest: a mismatch means the store
 * was damaged after import, which `darch images verify` and a re-pull fix.
 */
export async function layerFailure(store: ImageStore, err: unknown, layer: Descriptor, index: number): Promise<unknown> {
  if ((err as Error)?.name === 'AbortError') return err;
  if (err instanceof DarchError && (PASS_THROUGH.has(err.code) || err.code.startsWith('E_FS_'))) return err;
  const now = await store.hashBlob(layer.digest).catch(() => undefined);
  if (now?.digest !== layer.digest) {
    return new DarchError('E_STORE_CORRUPT', `layer ${index + 1} does not match its digest ${layer.digest}: the image store was damaged after import`, {
      hint: 'run `darch images verify`, then re-import or re-pull the image',
      cause: err,
    });
  }
  if (err instanceof DarchError) {
    if (err.message.startsWith('layer ')) return err;
    return new DarchError(err.code, `layer ${index + 1} (${layer.digest}): ${err.message}`, { hint: err.hint, details: err.details, cause: err });
  }
  return new DarchError('E_BAD_LAYER', `layer ${index + 1} (${layer.digest}) cannot be read: ${(err as Error).message}`, {
    hint: 'the layer is corrupt or not a tar archive; `darch images verify` checks the store',
    cause: err,
  });
}

async function scanLayer(store: ImageStore, layer: Descriptor, index: number): Promise<Rec[]> {
  const opened = await openLayer(store, layer, index);
  const recs: Rec[] = [];
  try {
    for await (const { header, ordinal } of readTar(new ByteReader(opened.tar))) {
      const rec = recOf(header, ordinal, index);
      if (rec) recs.push(rec);
    }
    await opened.verified;
  } catch (err) {
    opened.close();
    throw await layerFailure(store, err, layer, index);
  }
  return recs;
}

export interface FlattenStats {
  layers: number;
  entries: number;
  files: number;
  directories: number;
  /** Bytes of file content in the flattened root (each hard-linked file once). */
  contentBytes: number;
}

export interface LookupResult {
  path: string;
  key?: number;
  type: EntryType;
  size?: number;
}

/** The result of pass 1: what the flattened root holds, and how to stream it. */
export class FlatIndex {
  readonly root: DirNode = { children: new Map(), layer: -1 };
  /** Hard-link entry key → key of the entry holding the data. */
  private readonly linkData = new Map<number, number>();
  private readonly symlinkTargets = new Map<number, string>();
  private readonly fileSizes = new Map<number, number>();
  private emissions?: Map<number, string[]>;

  constructor(readonly layers: Descriptor[]) {}

  /** The entry that holds a leaf's data (itself, or what its hard link resolved to). */
  dataKey(leaf: number): number {
    return this.linkData.get(leaf) ?? leaf;
  }

  private dirAt(path: string, layer: number, create: boolean): DirNode | undefined {
    let node = this.root;
    if (path === '') return node;
    for (const part of path.split('/')) {
      let next = node.children.get(part);
      if (!isDir(next)) {
        if (!create) return undefined;
        // A missing parent is implied; a non-directory in the way is replaced, as umoci does.
        next = { children: new Map(), layer };
        node.children.set(part, next);
      }
      node = next;
    }
    return node;
  }

  private nodeAt(path: string): Node | undefined {
    if (path === '') return this.root;
    const { dir, base } = split(path);
    return this.dirAt(dir, 0, false)?.children.get(base);
  }

  private static layerOf(n: Node): number {
    return isDir(n) ? n.layer : layerOfKey(n);
  }

  /** Remove what lower layers put at `node`, keeping what layer `layer` itself added. */
  private removeLower(parent: DirNode, name: string, layer: number): void {
    const n = parent.children.get(name);
    if (n === undefined) return;
    if (FlatIndex.layerOf(n) < layer) {
      parent.children.delete(name);
      return;
    }
    if (isDir(n)) for (const c of [...n.children.keys()]) this.removeLower(n, c, layer);
  }

  apply(layer: number, recs: Rec[]): void {
    const whiteouts: string[] = [];
    const opaques: string[] = [];
    for (const r of recs) {
      if (r.kind === 'whiteout') {
        whiteouts.push(r.path);
        continue;
      }
      if (r.kind === 'opaque') {
        opaques.push(r.path);
        continue;
      }
      if (r.path === '') {
        if (r.kind === 'dir') {
          this.root.header = r.header;
          this.root.layer = layer;
        }
        continue;
      }
      const { dir, base } = split(r.path);
      const parent = this.dirAt(dir, layer, true)!;
      if (r.kind === 'dir') {
        const existing = parent.children.get(base);
        if (isDir(existing)) {
          existing.header = r.header;
          existing.layer = layer;
        } else parent.children.set(base, { children: new Map(), header: r.header, layer });
        continue;
      }
      const key = keyOf(layer, r.ordinal, r.kind);
      if (r.kind === 'link') {
        const target = this.nodeAt(r.linkname!);
        if (target === undefined || isDir(target)) {
          throw new DarchError(
            'E_BAD_LAYER',
            `layer ${layer + 1}: hard link ${r.path} points to ${r.linkname}, which ${target === undefined ? 'does not exist' : 'is a directory'}`,
            {
              hint: 'the image is malformed; umoci and container runtimes would refuse it too',
            },
          );
        }
        this.linkData.set(key, this.dataKey(target));
      } else if (r.kind === 'symlink') this.symlinkTargets.set(key, r.linkname!);
      else if (r.kind === 'file') this.fileSizes.set(key, r.size ?? 0);
      parent.children.set(base, key);
    }
    for (const w of whiteouts) {
      const { dir, base } = split(w);
      const parent = this.dirAt(dir, layer, false);
      if (parent) this.removeLower(parent, base, layer);
    }
    for (const o of opaques) {
      const d = this.dirAt(o, layer, false);
      if (d) for (const c of [...d.children.keys()]) this.removeLower(d, c, layer);
    }
    this.emissions = undefined;
  }

  /** Every directory, parents before children, with its path ('' is the root). */
  *directories(): Generator<{ path: string; node: DirNode }> {
    const walk = function* (path: string, node: DirNode): Generator<{ path: string; node: DirNode }> {
      yield { path, node };
      for (const [name, child] of [...node.children].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
        if (isDir(child)) yield* walk(path ? `${path}/${name}` : name, child);
      }
    };
    yield* walk('', this.root);
  }

  /** Data entry key → the paths that show it, the first one being where the data goes. */
  emissionPlan(): Map<number, string[]> {
    if (this.emissions) return this.emissions;
    const plan = new Map<number, string[]>();
    for (const { path, node } of this.directories()) {
      for (const [name, child] of [...node.children].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
        if (isDir(child)) continue;
        const k = this.dataKey(child);
        const p = path ? `${path}/${name}` : name;
        const list = plan.get(k);
        if (list) list.push(p);
        else plan.set(k, [p]);
      }
    }
    this.emissions = plan;
    return plan;
  }

  stats(): FlattenStats {
    let directories = 0;
    let files = 0;
    let entries = 0;
    let contentBytes = 0;
    for (const _ of this.directories()) directories++;
    for (const [k, paths] of this.emissionPlan()) {
      entries += paths.length;
      if (typeOfKey(k) === 'file') {
        files++;
        contentBytes += this.fileSizes.get(k) ?? 0;
      }
    }
    return { layers: this.layers.length, entries: entries + directories, files, directories, contentBytes };
  }

  /** What a path is in the flattened root, following symlinks (within the image) if asked. */
  lookup(path: string, follow = true): LookupResult | undefined {
    let p = normalizePath(path, -1);
    for (let hops = 0; hops < 40; hops++) {
      // Resolve symlinks in the directory part first, one component at a time.
      const parts = p === '' ? [] : p.split('/');
      let node: Node = this.root;
      let at = '';
      let restarted = false;
      for (let i = 0; i < parts.length; i++) {
        if (!isDir(node)) return undefined;
        const child: Node | undefined = node.children.get(parts[i]!);
        if (child === undefined) return undefined;
        const here = at ? `${at}/${parts[i]}` : parts[i]!;
        const last = i === parts.length - 1;
        if (!isDir(child) && typeOfKey(this.dataKey(child)) === 'symlink' && (!last || follow)) {
          const target = this.symlinkTargets.get(this.dataKey(child)) ?? '';
          const base = target.startsWith('/') ? '' : at;
          const rest = parts.slice(i + 1).join('/');
          p = normalizeLoose([base, target, rest].filter(Boolean).join('/'));
          restarted = true;
          break;
        }
        node = child;
        at = here;
      }
      if (restarted) continue;
      if (isDir(node)) return { path: p, type: 'dir' };
      const k = this.dataKey(node);
      return { path: p, key: k, type: typeOfKey(k), size: this.fileSizes.get(k) };
    }
    return undefined;
  }

  /** Names in a directory of the flattened root (no symlink following for the entries). */
  list(dirPath: string): Array<{ name: string; type: EntryType }> {
    const r = this.lookup(dirPath);
    if (r?.type !== 'dir') return [];
    const node = r.path === '' ? this.root : this.dirAt(r.path, 0, false);
    if (!node) return [];
    return [...node.children].map(([name, c]) => ({ name, type: isDir(c) ? 'dir' : typeOfKey(this.dataKey(c)) }));
  }

  symlinkTarget(key: number): string | undefined {
    return this.symlinkTargets.get(key);
  }
}

/** Like normalizePath, but `..` climbs (clamped at the root) as symlink resolution needs. */
function normalizeLoose(p: string): string {
  const out: string[] = [];
  for (const part of p.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') out.pop();
    else out.push(part);
  }
  return out.join('/');
}

export interface IndexOptions {
  /** Layers decompressed at once in pass 1. */
  concurrency?: number;
  onLayer?: (index: number, entries: number) => void;
  signal?: AbortSignal;
}

/** Pass 1: read headers of all layers and build the flattened index. */
export async function indexLayers(store: ImageStore, layers: Descriptor[], opts: IndexOptions = {}): Promise<FlatIndex> {
  if (layers.length >= 2 ** 17) throw new DarchError('E_UNSUPPORTED', `${layers.length} layers is more than darch supports`);
  const index = new FlatIndex(layers);
  const limit = Math.max(1, opts.concurrency ?? 2);
  const scans: Array<Promise<Rec[]> | undefined> = new Array(layers.length);
  let next = 0;
  const startNext = () => {
    if (next >= layers.length) return;
    const i = next++;
    const p = scanLayer(store, layers[i]!, i);
    p.catch(() => undefined);
    scans[i] = p;
  };
  for (let i = 0; i < limit; i++) startNext();
  for (let i = 0; i < layers.length; i++) {
    opts.signal?.throwIfAborted();
    let recs: Rec[];
    try {
      recs = await scans[i]!;
    } finally {
      scans[i] = undefined;
    }
    startNext();
    index.apply(i, recs);
    opts.onLayer?.(i, recs.length);
  }
  return index;
}

export const IMPLIED_DIR: TarHeader = {
  name: '',
  type: 'dir',
  mode: 0o755,
  uid: 0,
  gid: 0,
  uname: 'root',
  gname: 'root',
  size: 0,
  mtime: 0,
  linkname: '',
  devmajor: 0,
  devminor: 0,
};

/** The root directory's attributes (from a './' entry, or the implied defaults). */
export function rootHeader(index: FlatIndex): TarHeader {
  return index.root.header ?? { ...IMPLIED_DIR, name: './' };
}

export interface StreamOptions {
  /** Leave out the './' entry (sqfstar ignores it; its attributes go on the command line). */
  omitRoot?: boolean;
  /** Data entry key → file to copy that entry's content to while streaming (kernel, initrd). */
  capture?: Map<number, string>;
  /** Raw (compressed) layer bytes are not counted; this gets uncompressed tar bytes emitted. */
  onBytes?: (n: number) => void;
  signal?: AbortSignal;
}

export function fitHeader(h: TarHeader, name: string): TarHeader {
  return { ...h, name };
}

async function* flattenedChunks(store: ImageStore, index: FlatIndex, opts: StreamOptions): AsyncGenerator<Buffer> {
  const plan = index.emissionPlan();
  const emit = (b: Buffer): Buffer => {
    opts.onBytes?.(b.length);
    return b;
  };
  // Directories first: a layer may re-declare a parent after its children.
  for (const { path, node } of index.directories()) {
    if (path === '' && opts.omitRoot) continue;
    // A directory only implied by its children gets fixed attributes (0755 root, time 0),
    // the same whichever squashfs writer reads the stream.
    const header = node.header ?? { ...IMPLIED_DIR, name: path };
    yield emit(encodeHeader(fitHeader(header, path === '' ? './' : path)));
  }
  for (let i = 0; i < index.layers.length; i++) {
    opts.signal?.throwIfAborted();
    const opened = await openLayer(store, index.layers[i]!, i);
    try {
      for await (const { header, ordinal, body } of readTar(new ByteReader(opened.tar))) {
        if (header.type === 'dir' || header.type === 'link') continue;
        const key = keyOf(i, ordinal, header.type);
        const paths = plan.get(key);
        if (!paths) continue;
        const [first, ...others] = paths as [string, ...string[]];
        yield emit(encodeHeader(fitHeader(header, first)));
        const dest = header.type === 'file' ? opts.capture?.get(key) : undefined;
        const ws = dest ? captureFile(dest) : undefined;
        try {
          if (header.type === 'file' && header.size > 0) {
            for await (const chunk of body()) {
              if (ws) await ws.write(chunk);
              yield emit(chunk);
            }
            const padding = bodyPadding(header.size);
            if (padding.length) yield emit(padding);
          }
          await ws?.close();
        } finally {
          ws?.abandon();
        }
        for (const p of others) {
          yield emit(encodeHeader({ ...header, name: p, type: 'link', linkname: first, size: 0, xattrs: undefined }));
        }
      }
      await opened.verified;
    } catch (err) {
      opened.close();
      throw await layerFailure(store, err, index.layers[i]!, i);
    }
  }
  yield emit(END_OF_ARCHIVE);
}

/** Pass 2: the flattened root as one tar stream (each path once, hard links after their data). */
export function streamFlattened(store: ImageStore, index: FlatIndex, opts: StreamOptions = {}): Readable {
  return Readable.from(flattenedChunks(store, index, opts), { objectMode: false, highWaterMark: 1024 * 1024 });
}

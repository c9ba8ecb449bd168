/**
 * The flattened root in one pass over the layers instead of two (flatten.ts): layers are
 * read from the top down, the way an overlay mount looks files up, so whether an entry
 * survives is known when it is read: an entry is hidden when a layer above it deleted it
 * (whiteout), made its parent opaque, put a non-directory at one of its parents, or put
 * anything at its own path (a directory's attributes come from the topmost declaration).
 * Every layer is decompressed once, and tar2sqfs starts compressing with the first bytes.
 *
 * What one pass cannot do in stream order is left to the end of the archive: directories
 * no layer declared (fixed attributes) and hard links, which tar2sqfs resolves after reading
 * everything. The records of every layer are kept (headers only), replayed bottom-up into
 * the same FlatIndex the two-pass path builds, and what was streamed is checked against it.
 * Anything this pass cannot express, or any disagreement, stops it with E_SINGLE_PASS and
 * the caller stages again with two passes: a hard link whose data a layer above hid but
 * whose other name survives, a path listed twice in one layer, or a semantic corner the two
 * replays see differently. The result is then the two-pass one, never something else.
 *
 * Only for tar2sqfs: it accepts a directory after its children and the './' entry anywhere;
 * sqfstar takes the root's attributes on its command line, before the stream starts.
 */
import { Readable } from 'node:stream';
import { DarchError } from '../lib/errors.js';
import type { Descriptor } from '../oci/mediatypes.js';
import type { ImageStore } from '../oci/store.js';
import { FlatIndex, IMPLIED_DIR, type Rec, fitHeader, keyOf, layerFailure, recOf } from './flatten.js';
import { openLayer } from './open.js';
import { ByteReader, END_OF_ARCHIVE, type TarHeader, bodyPadding, encodeHeader, readTar } from './tar.js';

/** What the layers above say about one path. */
interface MaskNode {
  children?: Map<string, MaskNode>;
  /** Deleted by a whiteout: hides the path and everything under it. */
  whiteout?: boolean;
  /** A non-directory was put here: hides the path and everything under it. */
  leaf?: boolean;
  /** A directory entry was put here: its attributes win over lower declarations. */
  dir?: boolean;
  /** Something was put under it: it is a directory, a lower non-directory here is gone. */
  implied?: boolean;
  /** `.wh..wh..opq`: lower entries under it are hidden, the directory itself is not. */
  opaque?: boolean;
}

class Masks {
  private readonly root: MaskNode = {};

  private node(path: string, implyParents: boolean): MaskNode {
    let n = this.root;
    if (path === '') return n;
    for (const part of path.split('/')) {
      if (implyParents) n.implied = true;
      n.children ??= new Map();
      let c = n.children.get(part);
      if (!c) n.children.set(part, (c = {}));
      n = c;
    }
    return n;
  }

  /** Record what a layer did, once the whole layer was read (a layer never hides itself). */
  add(r: Rec): void {
    if (r.kind === 'whiteout') this.node(r.path, false).whiteout = true;
    else if (r.kind === 'opaque') this.node(r.path, false).opaque = true;
    else if (r.kind === 'dir') this.node(r.path, true).dir = true;
    else this.node(r.path, true).leaf = true;
  }

  hidden(path: string, isDir: boolean): boolean {
    const parts = path.split('/');
    let n = this.root;
    for (let i = 0; i < parts.length; i++) {
      if (n.opaque) return true;
      const c = n.children?.get(parts[i]!);
      if (!c) return false;
      if (c.whiteout || c.leaf) return true;
      if (i === parts.length - 1) return Boolean(c.dir || (!isDir && c.implied));
      n = c;
    }
    return false;
  }
}

export interface TopDownOptions {
  /** Compressed layer bytes read (the layers' sizes add up to the total). */
  onRaw?: (n: number) => void;
  signal?: AbortSignal;
}

export interface TopDownResult {
  /** The same index the two-pass path builds (lookups for the kernel, stage steps, stats). */
  index: FlatIndex;
  /** Where an entry's data went in the stream (a regular file of the squashfs). */
  dataPath(key: number): string | undefined;
}

/**
 * Headers are 512 bytes and many files are small: gather them into larger writes, so the
 * pipe to tar2sqfs sees fewer, fuller writes (fewer wake-ups on both sides). Big chunks
 * pass through uncopied.
 */
async function* coalesce(src: AsyncGenerator<Buffer>, target = 128 * 1024): AsyncGenerator<Buffer> {
  let parts: Buffer[] = [];
  let size = 0;
  for await (const b of src) {
    if (b.length >= target) {
      if (size) yield Buffer.concat(parts, size);
      parts = [];
      size = 0;
      yield b;
      continue;
    }
    parts.push(b);
    size += b.length;
    if (size >= target) {
      yield Buffer.concat(parts, size);
      parts = [];
      size = 0;
    }
  }
  if (size) yield Buffer.concat(parts, size);
}

function fallback(reason: string): DarchError {
  return new DarchError('E_SINGLE_PASS', `one pass cannot flatten this image: ${reason}`, { hint: 'darch stages it with two passes instead' });
}

export interface TopDownStream {
  stream: Readable;
  /**
   * Once the stream ended (the writer took every byte): the index and where data went. A
   * pass that gave up never gets here: its error (E_SINGLE_PASS included) fails the stream.
   */
  result(): TopDownResult;
}

export function streamTopDown(store: ImageStore, layers: Descriptor[], opts: TopDownOptions = {}): TopDownStream {
  let finished: TopDownResult | undefined;
  const emittedData = new Map<number, string>();

  async function* chunks(): AsyncGenerator<Buffer> {
    const masks = new Masks();
    const recsByLayer: Rec[][] = new Array(layers.length);
    const emittedDirs = new Set<TarHeader>();
    let rootSeen = false;
    for (let i = layers.length - 1; i >= 0; i--) {
      opts.signal?.throwIfAborted();
      const opened = await openLayer(store, layers[i]!, i, opts.onRaw);
      const recs: Rec[] = [];
      const seen = new Set<string>();
      try {
        for await (const { header, ordinal, body } of readTar(new ByteReader(opened.tar))) {
          const rec = recOf(header, ordinal, i);
          if (!rec) continue;
          recs.push(rec);
          if (rec.kind === 'whiteout' || rec.kind === 'opaque') continue;
          if (seen.has(rec.path)) throw fallback(`layer ${i + 1} lists ${JSON.stringify(rec.path || '/')} twice`);
          seen.add(rec.path);
          if (rec.kind === 'link') continue;
          if (rec.path === '') {
            if (rec.kind === 'dir' && !rootSeen) {
              emittedDirs.add(rec.header!);
              yield encodeHeader(fitHeader(rec.header!, './'));
            }
            rootSeen ||= rec.kind === 'dir';
            continue;
          }
          if (masks.hidden(rec.path, rec.kind === 'dir')) continue;
          if (rec.kind === 'dir') {
            emittedDirs.add(rec.header!);
            yield encodeHeader(fitHeader(rec.header!, rec.path));
            continue;
          }
          emittedData.set(keyOf(i, ordinal, rec.kind), rec.path);
          yield encodeHeader(fitHeader(header, rec.path));
          if (header.type === 'file' && header.size > 0) {
            for await (const chunk of body()) yield chunk;
            const padding = bodyPadding(header.size);
            if (padding.length) yield padding;
          }
        }
        await opened.verified;
      } catch (err) {
        opened.close();
        throw await layerFailure(store, err, layers[i]!, i);
      }
      for (const r of recs) masks.add(r);
      recsByLayer[i] = recs;
    }

    // The reference semantics: the same records replayed bottom-up.
    const index = new FlatIndex(layers);
    for (let i = 0; i < layers.length; i++) index.apply(i, recsByLayer[i]!);
    const tail: Buffer[] = [];
    let dirs = 0;
    for (const { path, node } of index.directories()) {
      if (node.header) {
        if (!emittedDirs.has(node.header))
          throw fallback(`directory ${JSON.stringify(path || '/')} was streamed with other attributes than the layers give it`);
        dirs++;
      } else tail.push(encodeHeader({ ...IMPLIED_DIR, name: path === '' ? './' : path }));
    }
    if (dirs !== emittedDirs.size) throw fallback('a directory was streamed that the layers delete');
    let data = 0;
    for (const [key, paths] of index.emissionPlan()) {
      const at = emittedData.get(key);
      if (at === undefined)
        throw fallback(`${JSON.stringify(paths[0])} needs data a layer above hid under another name (a hard link to a replaced or deleted file)`);
      if (!paths.includes(at)) throw fallback(`${JSON.stringify(at)} was streamed, but the layers put that data at ${JSON.stringify(paths[0])}`);
      data++;
      for (const p of paths) {
        // tar2sqfs gives a hard link the inode of its target: only the names matter.
        if (p !== at) tail.push(encodeHeader({ ...IMPLIED_DIR, name: p, type: 'link', linkname: at, mode: 0o644 }));
      }
    }
    if (data !== emittedData.size) throw fallback('an entry was streamed that the layers delete');
    finished = { index, dataPath: (key) => emittedData.get(key) };
    for (const b of tail) yield b;
    yield END_OF_ARCHIVE;
  }

  return {
    stream: Readable.from(coalesce(chunks()), { objectMode: false, highWaterMark: 1024 * 1024 }),
    result() {
      if (!finished) throw new DarchError('E_INTERNAL', 'the flattened stream was not read to its end');
      return finished;
    },
  };
}

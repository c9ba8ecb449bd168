/**
 * Open one layer blob of the image store as a stream of uncompressed tar bytes, verifying
 * the blob's digest on the way (a store corrupted since import is caught here, not at boot).
 */
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { DarchError, fsError, isErrno } from '../lib/errors.js';
import { decompressor, sniff } from '../oci/compression.js';
import { HashStream } from '../oci/digest.js';
import { type Descriptor, layerCompression } from '../oci/mediatypes.js';
import type { ImageStore } from '../oci/store.js';

export interface OpenedLayer {
  /** Uncompressed tar bytes. */
  tar: Readable;
  /** Resolves once the compressed blob was read to the end and its digest checked. */
  verified: Promise<void>;
  /** Stop reading early (closes the file and any decompressor). */
  close(): void;
}

async function magicOf(file: string): Promise<ReturnType<typeof sniff>> {
  const fh = await open(file, 'r');
  try {
    const buf = Buffer.alloc(8);
    const { bytesRead } = await fh.read(buf, 0, 8, 0);
    return sniff(buf.subarray(0, bytesRead));
  } finally {
    await fh.close();
  }
}

/** onRaw counts compressed bytes as they are read (progress against the layers' sizes). */
export async function openLayer(store: ImageStore, layer: Descriptor, index: number, onRaw?: (n: number) => void): Promise<OpenedLayer> {
  const file = store.blobPath(layer.digest);
  let kind: ReturnType<typeof sniff>;
  try {
    kind = await magicOf(file);
  } catch (err) {
    if (isErrno(err, 'ENOENT')) {
      throw new DarchError('E_BLOB_MISSING', `layer ${index + 1} (${layer.digest}) is missing from the image store`, {
        hint: 'run `darch images verify`, then re-import or re-pull the image',
      });
    }
    throw fsError(err, `cannot read layer ${layer.digest}`);
  }
  // Trust the bytes over the media type: some tools label uncompressed layers +gzip.
  const declared = layerCompression(layer.mediaType);
  const actual = kind === 'gzip' || kind === 'zstd' ? kind : kind === 'none' ? 'none' : kind;
  if (actual !== 'gzip' && actual !== 'zstd' && actual !== 'none') {
    throw new DarchError('E_UNSUPPORTED', `layer ${index + 1} (${layer.digest}) is ${actual}-compressed, which OCI layers may not be`, {
      hint: `media type says ${declared}`,
    });
  }
  const raw = createReadStream(file, { highWaterMark: 256 * 1024 });
  const hasher = new HashStream();
  const verified = new Promise<void>((resolve, reject) => {
    hasher.on('finish', () => {
      const got = hasher.digest();
      if (got !== layer.digest) {
        reject(
          new DarchError('E_STORE_CORRUPT', `layer ${index + 1} does not match its digest ${layer.digest} (got ${got})`, {
            hint: 'run `darch images verify`, then re-import or re-pull the image',
          }),
        );
      } else resolve();
    });
    hasher.on('error', reject);
    raw.on('error', (e) => reject(fsError(e, `cannot read layer ${layer.digest}`)));
  });
  verified.catch(() => undefined);
  if (onRaw) raw.on('data', (b) => onRaw(b.length));
  raw.pipe(hasher);
  const d = decompressor(actual);
  const tar: Readable = d ? (hasher.pipe(d) as unknown as Readable) : hasher;
  if (d) hasher.on('error', (e) => d.destroy(e));
  return {
    tar,
    verified,
    close() {
      raw.destroy();
      hasher.destroy();
      d?.destroy();
    },
  };
}

/**
 * Where each entry of a tar file lies, and copying byte ranges of one: what segmented
 * deltas (delta-segments.ts) and boot-ordered staging (order.ts) cut and reassemble tars by,
 * without holding a tar in memory.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ByteReader, type EntryType, readTar } from '../layers/tar.js';

export interface TarExtent {
  /** The entry's path, without a leading `./` or `/` or a trailing `/`. */
  name: string;
  /** Its first byte (its first metadata record) and the byte after its padded body. */
  start: number;
  end: number;
  type?: EntryType;
}

export function extentName(name: string): string {
  return name.replace(/^(\.\/|\/)+/, '').replace(/\/+$/, '');
}

/** The entries of a tar with the bytes each takes (metadata records, header, padded body). */
export async function tarExtents(file: string): Promise<TarExtent[]> {
  const input = createReadStream(file);
  const reader = new ByteReader(input as AsyncIterable<Buffer>);
  const out: TarExtent[] = [];
  let start = 0;
  try {
    for await (const e of readTar(reader)) {
      for await (const _ of e.body()) void _;
      out.push({ name: extentName(e.header.name), start, end: reader.offset, type: e.header.type });
      start = reader.offset;
    }
  } finally {
    input.destroy();
  }
  return out;
}

/** The bytes of `ranges` of `src`, one after the other. */
export async function* rangesOf(src: string, ranges: Iterable<readonly [number, number]>): AsyncGenerator<Buffer> {
  for (const [a, b] of ranges) if (b > a) for await (const c of createReadStream(src, { start: a, end: b - 1 })) yield c as Buffer;
}

/** The bytes of `ranges` of `src`, one after the other, into `dest`; their total. */
export async function copyRanges(src: string, ranges: Array<[number, number]>, dest: string, signal?: AbortSignal): Promise<number> {
  await pipeline(rangesOf(src, ranges) as unknown as Readable, createWriteStream(dest, { mode: 0o600 }), { signal });
  return ranges.reduce((n, [a, b]) => n + b - a, 0);
}

/**
 * Segmented patches (docs/DELTAS.md, "Memory and disk"): zstd keeps a patch's whole
 * reference in memory while it decodes, so one patch against a 4 GiB root needs about 8 GB
 * on the machine, and zstd's window stops at 2 GiB anyway. A segmented delta cuts the
 * target's tar into pieces of about `segmentBytes` and patches each against only the parts
 * of the base's root that hold the same files, so apply's memory follows the segment size,
 * not the root's.
 *
 * Pure: from the entries of both tars (name and byte extent) to the plan, which the delta's
 * header carries, so the machine cuts the same references from its base without looking at
 * names. What a segment's reference holds, for each entry of the target in it:
 * - the base's entry of the same name (a file updated in place);
 * - else up to two entries of the same directory whose names share the longest prefix with
 *   it, so a renamed file (libfoo.so.1.2 → libfoo.so.1.3, a package's versioned directory)
 *   still finds its old bytes;
 * - for an entry larger than a segment, only the share of the base's entry in proportion to
 *   the piece, with a margin, so one large file does not bring its whole old self into
 *   every piece.
 * Content that moved to another name entirely is lost to a segment (it compresses as new
 * bytes): the price of the bound, measured in bench/delta.ts.
 */

import type { TarExtent } from './tar-extents.js';

export type { TarExtent };

export interface SegmentPlan {
  /** The bytes of the target's tar this segment rebuilds. */
  start: number;
  end: number;
  /** The base's root bytes it is patched against: [start, end) pairs, ascending, apart. */
  reference: Array<[number, number]>;
}

/** The default piece: apply's peak memory is a few times this (docs/DELTAS.md). */
export const DEFAULT_SEGMENT_BYTES = 128 * 1024 * 1024;
/** Ranges of the base closer than this are joined: fewer ranges in the header, a few bytes more reference. */
const JOIN_GAP = 64 * 1024;

function dirOf(name: string): string {
  const i = name.lastIndexOf('/');
  return i < 0 ? '' : name.slice(0, i);
}

function commonPrefix(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a.charCodeAt(i) === b.charCodeAt(i)) i++;
  return i;
}

/** Whether both roots are small enough for one patch against the whole base (the smallest delta). */
export function patchWhole(fromSize: number, toSize: number, segmentBytes: number): boolean {
  return segmentBytes <= 0 || Math.max(fromSize, toSize) <= 2 * segmentBytes;
}

/** The base's entries that hold what `name` was: the same name, else the closest names in its directory. */
function counterparts(name: string, byName: Map<string, TarExtent>, byDir: Map<string, TarExtent[]>): TarExtent[] {
  const same = byName.get(name);
  if (same) return [same];
  const base = name.slice(name.lastIndexOf('/') + 1);
  const siblings = byDir.get(dirOf(name)) ?? [];
  // A prefix this long says "the same thing, another version", not "another file that starts alike".
  const need = Math.max(3, Math.floor(base.length / 2));
  let best = 0;
  let found: TarExtent[] = [];
  for (const s of siblings) {
    const p = commonPrefix(base, s.name.slice(s.name.lastIndexOf('/') + 1));
    if (p < need || p < best) continue;
    if (p > best) {
      best = p;
      found = [];
    }
    if (found.length < 2) found.push(s);
  }
  return found;
}

function joinRanges(ranges: Array<[number, number]>): Array<[number, number]> {
  const sorted = ranges.filter(([s, e]) => e > s).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  const out: Array<[number, number]> = [];
  for (const [s, e] of sorted) {
    const last = out.at(-1);
    if (last && s <= last[1] + JOIN_GAP) last[1] = Math.max(last[1], e);
    else out.push([s, e]);
  }
  return out;
}

/**
 * Cut the target's tar (`to`, `toSize` bytes) into segments of about `segmentBytes` at entry
 * boundaries (an entry larger than that into equal pieces), each with its reference in the
 * base's root (`from`, `fromSize` bytes). The segments cover [0, toSize) exactly, in order.
 */
export function planSegments(from: TarExtent[], fromSize: number, to: TarExtent[], toSize: number, segmentBytes: number): SegmentPlan[] {
  if (!(segmentBytes > 0)) throw new Error('planSegments: the segment size must be positive');
  const byName = new Map<string, TarExtent>();
  const byDir = new Map<string, TarExtent[]>();
  for (const f of from) {
    byName.set(f.name, f);
    const d = dirOf(f.name);
    const list = byDir.get(d);
    if (list) list.push(f);
    else byDir.set(d, [f]);
  }
  // The cuts: entry boundaries, and equal pieces of an entry larger than a segment.
  const cuts: number[] = [0];
  let segStart = 0;
  for (const e of to) {
    const len = e.end - e.start;
    if (len > segmentBytes) {
      if (e.start > segStart) cuts.push(e.start);
      const pieces = Math.ceil(len / segmentBytes);
      for (let k = 1; k < pieces; k++) cuts.push(e.start + Math.floor((len * k) / pieces));
      cuts.push(e.end);
      segStart = e.end;
    } else if (e.end - segStart > segmentBytes && e.start > segStart) {
      cuts.push(e.start);
      segStart = e.start;
    }
  }
  // The end-of-archive blocks (and anything after the last entry) go with the last segment.
  const lastEnd = to.at(-1)?.end ?? 0;
  const bounds = [...new Set(cuts.filter((c) => c > 0 && c < lastEnd && c < toSize))].sort((a, b) => a - b);
  bounds.unshift(0);
  bounds.push(toSize);
  const margin = Math.floor(segmentBytes / 16);
  const plans: SegmentPlan[] = [];
  let i = 0; // the first target entry that may overlap the current segment
  for (let k = 0; k + 1 < bounds.length; k++) {
    const start = bounds[k] as number;
    const end = bounds[k + 1] as number;
    while (i < to.length && (to[i] as TarExtent).end <= start) i++;
    const ranges: Array<[number, number]> = [];
    for (let j = i; j < to.length && (to[j] as TarExtent).start < end; j++) {
      const e = to[j] as TarExtent;
      const len = e.end - e.start;
      for (const f of counterparts(e.name, byName, byDir)) {
        if (len <= segmentBytes) {
          ranges.push([f.start, f.end]);
          continue;
        }
        const flen = f.end - f.start;
        const a = Math.max(start, e.start) - e.start;
        const b = Math.min(end, e.end) - e.start;
        ranges.push([Math.max(f.start, f.start + Math.floor((a * flen) / len) - margin), Math.min(f.end, f.start + Math.ceil((b * flen) / len) + margin)]);
      }
    }
    plans.push({ start, end, reference: joinRanges(ranges.map(([s, e]) => [Math.max(0, s), Math.min(fromSize, e)])) });
  }
  return plans;
}

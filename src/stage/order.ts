/**
 * Boot-ordered staging (docs/BOOT-ORDER.md): the staging tar rearranged so that tar2sqfs,
 * which writes file data in the order the tar brings it, puts the files a boot reads first
 * at the front of the squashfs, in the order the boot read them. A disk then serves the boot
 * from a few long runs instead of seeking across the image.
 *
 * The rest keeps the staging tar's own order, so two versions of an image staged with the
 * same boot order differ where their files do, and deltas between them stay small.
 */
import { Readable } from 'node:stream';
import { extentName, rangesOf, type TarExtent, tarExtents } from './tar-extents.js';

export interface OrderPlan {
  /** Byte ranges of the staging tar, in the order to write them. */
  ranges: Array<[number, number]>;
  /** How many files of the order the image has. */
  matched: number;
  /**
   * The first few files written after those the boot read whole that are larger than
   * `minBytes` (so have data blocks of their own): where the first one's data starts, the
   * run the initramfs reads ahead ends (readahead.ts).
   */
  after: string[];
}

/** Files in the order a boot first read them; `partial`: those of them it read little of. */
export interface FileOrder {
  files: string[];
  partial?: string[];
}

/**
 * Everything that is not a file's data first (directories, symlinks, devices: tar2sqfs
 * writes no data for them), then the files of `order` that the tar has (those the boot read
 * little of after the others), then the other files in the tar's order, then hard links
 * (after the files they name), then the end of the archive. Adjacent ranges are joined.
 */
export function planOrder(extents: TarExtent[], size: number, order: FileOrder, minBytes = Number.POSITIVE_INFINITY): OrderPlan {
  const files = new Map<string, TarExtent>();
  for (const e of extents) if (e.type === 'file') files.set(e.name, e);
  const little = new Set((order.partial ?? []).map(extentName));
  const whole: TarExtent[] = [];
  const partly: TarExtent[] = [];
  const seen = new Set<TarExtent>();
  for (const name of order.files) {
    const e = files.get(extentName(name));
    if (e && !seen.has(e)) {
      seen.add(e);
      (little.has(e.name) ? partly : whole).push(e);
    }
  }
  const first = [...whole, ...partly];
  // An order that names none of the image's files changes nothing.
  if (!first.length) return { ranges: size > 0 ? [[0, size]] : [], matched: 0, after: [] };
  const rest = extents.filter((e) => e.type === 'file' && !seen.has(e));
  const seq = [...extents.filter((e) => e.type !== 'file' && e.type !== 'link'), ...first, ...rest, ...extents.filter((e) => e.type === 'link')];
  const ranges: Array<[number, number]> = [];
  const push = (a: number, b: number) => {
    const last = ranges.at(-1);
    if (last && last[1] === a) last[1] = b;
    else if (b > a) ranges.push([a, b]);
  };
  for (const e of seq) push(e.start, e.end);
  push(extents.at(-1)?.end ?? 0, size);
  const after = [...partly, ...rest]
    .filter((e) => e.end - e.start > minBytes)
    .slice(0, 4)
    .map((e) => e.name);
  return { ranges, matched: first.length, after };
}

/** The staging tar in `file` (of `size` bytes) rearranged by `order`, streamed from the file. */
export async function orderedTar(
  file: string,
  size: number,
  order: FileOrder,
  minBytes?: number,
): Promise<{ stream: Readable; matched: number; after: string[] }> {
  const plan = planOrder(await tarExtents(file), size, order, minBytes);
  return { stream: Readable.from(rangesOf(file, plan.ranges)), matched: plan.matched, after: plan.after };
}

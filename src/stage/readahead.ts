/**
 * `live/<id>/readahead` (docs/BOOT-ORDER.md, "Reading ahead"): the byte ranges of the staged
 * squashfs that its boot reads, for the initramfs (darch_readahead in darch-lib.sh) to read
 * in a few long sequential requests before the squashfs is mounted. The page cache then
 * serves the boot's scattered reads of them. The only reader and writer.
 *
 * Written only for an image staged in a boot order: its boot's files are then one run at the
 * front of the squashfs. The other range is the squashfs's tables (inodes, directories,
 * fragment, id and export tables), which every boot reads scattered all over.
 *
 * Plain text, because a shell reads it: `OFFSET LENGTH` in bytes, one range per line, `#`
 * comments.
 */
import { open } from 'node:fs/promises';
import { DarchError } from '../lib/errors.js';
import { run } from '../lib/proc.js';
import type { SmallFiles } from '../lib/smallfs.js';
import * as z from '../lib/zod.js';

export const READAHEAD_FILE = 'readahead';

const RangesSchema = z.lazySchema(() => z.array(z.tuple([z.number().check(z.int(), z.nonnegative()), z.number().check(z.int(), z.positive())])));

/** Offset and length in bytes. */
export type ReadaheadRange = [number, number];

const HEADER =
  '# darch boot readahead (docs/BOOT-ORDER.md): byte offset and length of the ranges of the\n' +
  '# squashfs its boot reads, read in long requests before the squashfs is mounted.\n';

export function formatReadahead(ranges: ReadaheadRange[]): string {
  return HEADER + ranges.map(([o, n]) => `${o} ${n}\n`).join('');
}

export function parseReadahead(text: string, file: string): ReadaheadRange[] {
  const rows = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => l.split(/\s+/).map(Number));
  const got = RangesSchema().safeParse(rows);
  if (!got.success) throw new DarchError('E_STAGE_CORRUPT', `${file} is not a list of "OFFSET LENGTH" byte ranges`, { hint: 'stage the image again' });
  return got.data as ReadaheadRange[];
}

export async function readReadaheadIn(dir: SmallFiles): Promise<ReadaheadRange[] | undefined> {
  const raw = await dir.read(READAHEAD_FILE);
  return raw === undefined ? undefined : parseReadahead(raw.toString('utf8'), `${dir.where}/${READAHEAD_FILE}`);
}

export async function writeReadaheadIn(dir: SmallFiles, ranges: ReadaheadRange[]): Promise<void> {
  await dir.write(READAHEAD_FILE, formatReadahead(ranges));
}

/** Where a squashfs 4.0's tables start and the image ends (its superblock). */
export async function squashfsTables(file: string): Promise<{ tablesStart: number; bytesUsed: number }> {
  const fh = await open(file, 'r');
  const sb = Buffer.alloc(96);
  try {
    await fh.read(sb, 0, 96, 0);
  } finally {
    await fh.close();
  }
  if (sb.readUInt32LE(0) !== 0x73717368 || sb.readUInt16LE(28) !== 4)
    throw new DarchError('E_STAGE_CORRUPT', `${file} is not a squashfs 4.0 image`, { hint: 'stage the image again' });
  const bytesUsed = Number(sb.readBigUInt64LE(40));
  // id, xattr id, inode, directory, fragment and export tables; an absent one is all ones.
  const starts = [48, 56, 64, 72, 80, 88].map((o) => sb.readBigUInt64LE(o)).filter((v) => v !== 0xffffffffffffffffn);
  const tablesStart = Math.min(...starts.map(Number));
  return { tablesStart, bytesUsed };
}

/** Where the data of `inner` starts in a squashfs, or undefined when it has no full blocks (rdsquashfs --stat). */
export async function dataStart(squashfs: string, inner: string): Promise<number | undefined> {
  const out = (await run('rdsquashfs', ['--stat', `/${inner}`, squashfs])).stdout;
  const count = /^Block count: (\d+)$/m.exec(out);
  const start = /^Blocks start: (\d+)$/m.exec(out);
  return count && start && Number(count[1]) > 0 ? Number(start[1]) : undefined;
}

/**
 * The ranges to read ahead in a squashfs written in boot order: from its start to where the
 * data of the first file after the ordered ones begins (`after`: names of those files, in
 * the order written; the first that has full blocks marks the end), and its tables. Fragment
 * blocks filled by the ordered files' tails lie in the first range, but for the last one.
 * When none of `after` has full blocks (or there is none), the tables only.
 */
export async function bootReadahead(squashfs: string, after: string[]): Promise<ReadaheadRange[]> {
  const { tablesStart, bytesUsed } = await squashfsTables(squashfs);
  let end: number | undefined;
  for (const name of after) {
    end = await dataStart(squashfs, name);
    if (end !== undefined) break;
  }
  const ranges: ReadaheadRange[] = [];
  if (end !== undefined && end > 0 && end < tablesStart) ranges.push([0, end]);
  if (bytesUsed > tablesStart) ranges.push([tablesStart, bytesUsed - tablesStart]);
  return ranges;
}

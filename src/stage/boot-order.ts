/**
 * `<stage>/traces/<staged id>.json`: the order in which a boot of a staged image first read
 * the files of its root (`darch boot trace`, docs/BOOT-ORDER.md). Kept beside the staged
 * image, outside its checksummed directory (as failed/<id> is), and read when the image's
 * next version is staged, whose squashfs then holds those files first, in that order. The
 * only reader and writer, also of the plain lists `stage upload --order FILE` takes.
 */
import { mkdir, readdir, readFile, unlink } from 'node:fs/promises';
import path from 'node:path';
import { DarchError, fsError, isErrno } from '../lib/errors.js';
import { writeFileAtomic } from '../lib/scratch.js';
import { type ContractProblem, contractText, parseContract } from '../lib/smallfs.js';
import * as z from '../lib/zod.js';

export const TRACES_DIR = 'traces';
/** A boot reads tens of thousands of files at most; a list this long is not a boot's. */
const MAX_FILES = 500_000;
const MAX_ORDER_FILE = 64 * 1024 * 1024;
const BAD: ContractProblem = { code: 'E_BAD_BOOT_ORDER', hint: 'record it again with darch boot trace, or stage without it (--no-order)' };

const OrderSchema = z.lazySchema(() =>
  z.strictObject({
    schemaVersion: z.literal(1),
    kind: z.literal('darch-boot-order'),
    /** The staged image whose boot was traced. */
    stage: z.string().check(z.regex(/^[a-z0-9]{25}$/)),
    /** Its image name, for people. */
    image: z.optional(z.string()),
    recorded: z.string(),
    /** Seconds since the kernel started when the trace was read: how much of the boot it covers. */
    uptime: z.optional(z.number()),
    /** Page-cache additions the kernel reported, and whether its buffer filled (later reads then missing). */
    events: z.number().check(z.int(), z.nonnegative()),
    full: z.optional(z.boolean()),
    /** Paths in the root (no leading slash), in the order the boot first read them. */
    files: z.array(z.string().check(z.minLength(1))).check(z.maxLength(MAX_FILES)),
    /** Those of `files` the boot read little of (readLittleOf in src/boot/trace.ts): written after the others, not read ahead. */
    partial: z.optional(z.array(z.string().check(z.minLength(1))).check(z.maxLength(MAX_FILES))),
  }),
);

export type BootOrder = z.infer<ReturnType<typeof OrderSchema>>;

export function traceFile(stageId: string): string {
  return `${TRACES_DIR}/${stageId}.json`;
}

export async function writeBootOrder(stageDir: string, order: BootOrder): Promise<string> {
  const file = path.join(stageDir, traceFile(order.stage));
  try {
    await mkdir(path.dirname(file), { recursive: true });
    await writeFileAtomic(file, contractText(OrderSchema().parse(order)));
  } catch (err) {
    throw fsError(err, `cannot write ${file}`);
  }
  return file;
}

function parseOrderText(text: string, file: string): BootOrder {
  return parseContract(OrderSchema(), text, file, BAD);
}

/** The recorded order of `stageId`, or undefined when its boots were never traced. */
export async function readBootOrder(stageDir: string, stageId: string): Promise<BootOrder | undefined> {
  const file = path.join(stageDir, traceFile(stageId));
  const text = await readFile(file, 'utf8').catch((err: unknown) => {
    if (isErrno(err, 'ENOENT') || isErrno(err, 'ENOTDIR')) return undefined;
    throw fsError(err, `cannot read ${file}`);
  });
  return text === undefined ? undefined : parseOrderText(text, file);
}

/** The staged ids that have a recorded order. */
export async function tracedIds(stageDir: string): Promise<string[]> {
  const names = await readdir(path.join(stageDir, TRACES_DIR)).catch(() => [] as string[]);
  return names.filter((n) => /^[a-z0-9]{25}\.json$/.test(n)).map((n) => n.slice(0, -'.json'.length));
}

export async function removeBootOrder(stageDir: string, stageId: string): Promise<void> {
  await unlink(path.join(stageDir, traceFile(stageId))).catch((err: unknown) => {
    if (!isErrno(err, 'ENOENT') && !isErrno(err, 'ENOTDIR')) throw fsError(err, `cannot remove the boot order of ${stageId}`);
  });
}

/**
 * `stage upload --order FILE`: a boot order darch recorded (JSON), or a plain list, one
 * path per line (`#` comments, blank lines and leading slashes ignored), as from any tracer.
 * Only darch's own traces say which files the boot read little of.
 */
export async function readOrderFile(file: string): Promise<{ files: string[]; partial?: string[] }> {
  let text: string;
  try {
    const buf = await readFile(file);
    if (buf.length > MAX_ORDER_FILE) throw new DarchError('E_BAD_BOOT_ORDER', `${file} is ${buf.length} bytes: not a boot order`, { hint: BAD.hint });
    text = buf.toString('utf8');
  } catch (err) {
    if (err instanceof DarchError) throw err;
    throw fsError(err, `cannot read ${file}`);
  }
  if (text.trimStart().startsWith('{')) {
    const o = parseOrderText(text, file);
    return { files: o.files, ...(o.partial ? { partial: o.partial } : {}) };
  }
  const files = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => l.replace(/^\/+/, ''))
    .filter(Boolean);
  if (files.length > MAX_FILES) throw new DarchError('E_BAD_BOOT_ORDER', `${file} lists ${files.length} files: not a boot order`, { hint: BAD.hint });
  return { files };
}

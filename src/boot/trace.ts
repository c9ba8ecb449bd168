/**
 * `darch boot trace` (docs/BOOT-ORDER.md): the order in which this boot first read the files
 * of its root, from the kernel's `filemap:mm_filemap_add_to_page_cache` events that the
 * initramfs turned on for the squashfs (darch_start_trace in assets/initramfs/darch-lib.sh,
 * a tracing instance named `darch`), kept beside the staged image for its next version.
 *
 * atime cannot tell (the squashfs is read-only) and fanotify starts too late (after the
 * initramfs); the page cache sees every read, from the first. Each event names the inode
 * (squashfs inode numbers are stable and unique) and the page; the first event of an inode
 * is when the boot first needed that file.
 */
import { createReadStream } from 'node:fs';
import { lstat, readdir, readFile, rmdir, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { DarchError, fsError, isErrno } from '../lib/errors.js';
import { type BootOrder, writeBootOrder } from '../stage/boot-order.js';

export const TRACE_INSTANCE = 'darch';

/** Where things are: the real ones by default; tests point them elsewhere. */
export interface TracePlaces {
  /** tracefs (DARCH_TRACEFS, else /sys/kernel/tracing). */
  tracefs: string;
  /** The initramfs's run directory (DARCH_RUN_DIR, else /run/darch): its `trace` mark and `lower` mount. */
  runDir: string;
}

export function tracePlaces(env: NodeJS.ProcessEnv = process.env): TracePlaces {
  return { tracefs: env.DARCH_TRACEFS || '/sys/kernel/tracing', runDir: env.DARCH_RUN_DIR || '/run/darch' };
}

const EVENT = /mm_filemap_add_to_page_cache: dev (\d+:\d+) ino ([0-9a-f]+) .*\bofs=(\d+)(?: order=(\d+))?/;
const PAGE = 4096;

/**
 * Pure, fed line by line: the inodes of device `dev` (MAJ:MIN) in the order of their first
 * event, and how many bytes of each entered the page cache (each page counted once).
 */
export class FirstReads {
  readonly inodes: number[] = [];
  private readonly pages = new Map<number, Map<number, number>>();
  events = 0;

  constructor(private readonly dev: string) {}

  add(line: string): void {
    const m = EVENT.exec(line);
    if (!m || m[1] !== this.dev) return;
    this.events++;
    const ino = Number.parseInt(m[2] as string, 16);
    let seen = this.pages.get(ino);
    if (!seen) {
      seen = new Map();
      this.pages.set(ino, seen);
      this.inodes.push(ino);
    }
    // A folio of 2^order pages at byte offset ofs.
    seen.set(Number(m[3]), PAGE << Number(m[4] ?? 0));
  }

  /** Bytes of inode `ino` the boot read. */
  bytesRead(ino: number): number {
    let n = 0;
    for (const len of this.pages.get(ino)?.values() ?? []) n += len;
    return n;
  }
}

/**
 * A file the boot read little of: less than half, and more than 1 MiB of it unread (a large
 * program of which a boot runs a few functions, a database it looks a few keys up in).
 * Staging still puts it early, but after the files the boot read whole, outside the run the
 * initramfs reads ahead (readahead.ts): reading it all ahead would cost more than the few
 * reads the boot makes of it. A seek costs about what a megabyte's transfer does on a hard disk.
 */
export function readLittleOf(size: number, read: number): boolean {
  return read * 2 < size && size - read > 1024 * 1024;
}

/** Regular files under `root` by inode number (a hard-linked inode keeps its first path), and their sizes. */
async function pathsByInode(root: string, wanted: Set<number>): Promise<Map<number, { path: string; size: number }>> {
  const out = new Map<number, { path: string; size: number }>();
  const walk = async (rel: string): Promise<void> => {
    const entries = await readdir(path.join(root, rel), { withFileTypes: true }).catch(() => []);
    for (const e of entries) {
      if (out.size === wanted.size) return;
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) await walk(r);
      else if (e.isFile()) {
        const st = await lstat(path.join(root, r)).catch(() => undefined);
        if (st && wanted.has(st.ino) && !out.has(st.ino)) out.set(st.ino, { path: r, size: st.size });
      }
    }
  };
  await walk('');
  return out;
}

async function dropped(instance: string): Promise<boolean> {
  const cpus = await readdir(path.join(instance, 'per_cpu')).catch(() => [] as string[]);
  for (const c of cpus) {
    const stats = await readFile(path.join(instance, 'per_cpu', c, 'stats'), 'utf8').catch(() => '');
    if (/^dropped events: *[1-9]/m.test(stats)) return true;
  }
  return false;
}

/** Turn the event off and remove the instance (its buffer is freed with it). */
async function stopTracing(instance: string): Promise<void> {
  await writeFile(path.join(instance, 'events/filemap/mm_filemap_add_to_page_cache/enable'), '0').catch(() => undefined);
  await rmdir(instance).catch(() => undefined);
}

export interface RecordedTrace {
  order: BootOrder;
  /** Where it was kept (the stage directory), when it was. */
  file?: string;
}

/**
 * Read this boot's trace of staged image `stageId`, stop tracing, and keep the order in
 * `stageDir` (unless `keep` is false). `prepareWrite` runs before the write (a booted
 * machine remounts its read-only stage file system).
 */
export async function recordBootOrder(opts: {
  stageId: string;
  image?: string;
  stageDir: string;
  places?: TracePlaces;
  keep?: boolean;
  prepareWrite?: () => Promise<unknown>;
}): Promise<RecordedTrace> {
  const places = opts.places ?? tracePlaces();
  const mark = path.join(places.runDir, 'trace');
  const markText = await readFile(mark, 'utf8').catch((err: unknown) => {
    if (isErrno(err, 'ENOENT')) return undefined;
    throw fsError(err, `cannot read ${mark}`);
  });
  const dev = /^dev=(\d+:\d+)$/m.exec(markText ?? '')?.[1];
  if (!dev)
    throw new DarchError('E_NO_TRACE', `this boot of ${opts.stageId} recorded no trace (${mark} is missing)`, {
      hint: 'a boot traces its image while no trace of it is kept, or always with darch.trace=1 on the kernel command line',
    });
  const instance = path.join(places.tracefs, 'instances', TRACE_INSTANCE);
  const traceText = path.join(instance, 'trace');
  const reads = new FirstReads(dev);
  // The events of this boot only: stop recording first, so reading does not add its own.
  await writeFile(path.join(instance, 'tracing_on'), '0').catch(() => undefined);
  try {
    const lines = createInterface({ input: createReadStream(traceText), crlfDelay: Number.POSITIVE_INFINITY });
    for await (const line of lines) reads.add(line);
  } catch (err) {
    throw fsError(err, `cannot read the trace ${traceText}`);
  }
  const full = await dropped(instance);
  const uptime = Number((await readFile('/proc/uptime', 'utf8').catch(() => '0')).split(' ')[0]);
  await stopTracing(instance);
  const byInode = await pathsByInode(path.join(places.runDir, 'lower'), new Set(reads.inodes));
  const found = reads.inodes.flatMap((i) => {
    const f = byInode.get(i);
    return f ? [{ ...f, read: reads.bytesRead(i) }] : [];
  });
  const files = found.map((f) => f.path);
  const partial = found.filter((f) => readLittleOf(f.size, f.read)).map((f) => f.path);
  const order: BootOrder = {
    schemaVersion: 1,
    kind: 'darch-boot-order',
    stage: opts.stageId,
    ...(opts.image ? { image: opts.image } : {}),
    recorded: new Date().toISOString(),
    ...(Number.isFinite(uptime) && uptime > 0 ? { uptime } : {}),
    events: reads.events,
    ...(full ? { full } : {}),
    files,
    ...(partial.length ? { partial } : {}),
  };
  let file: string | undefined;
  if (opts.keep !== false) {
    await opts.prepareWrite?.();
    file = await writeBootOrder(opts.stageDir, order);
  }
  await unlink(mark).catch(() => undefined);
  return { order, ...(file ? { file } : {}) };
}

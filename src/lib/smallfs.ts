/**
 * The small files of darch's on-disk contracts (images.json, image.json, meta.json,
 * disk.json, BLS entries) live in three kinds of place: a mounted directory, the ext4
 * partition of a disk image (debugfs, src/disk/ext4.ts) and the FAT ESP of a disk image
 * (mtools, src/boot/shared/esp.ts). Each contract module reads and writes through this interface,
 * so one parser and one writer serve all three.
 */
import { mkdir, open, readdir, unlink } from 'node:fs/promises';
import path from 'node:path';
import { DarchError, fsError, isErrno, type ErrorCode } from './errors.js';
import { fsyncDir, writeFileAtomic } from './scratch.js';
import * as z from './zod.js';

export interface SmallFiles {
  /** For messages: where these files are. */
  readonly where: string;
  /** A file's bytes (at most maxBytes); undefined when it does not exist. */
  read(file: string, maxBytes?: number): Promise<Buffer | undefined>;
  /** Replace a file whole, as atomically as the medium allows; parent directories are made. */
  write(file: string, data: Buffer | string): Promise<void>;
  /** Names in a directory; [] when it does not exist. */
  list(dir: string): Promise<string[]>;
  /** Remove a file; one that is not there is fine. */
  remove(file: string): Promise<void>;
}

/** Contract files are small: a larger one is damaged, and is never read whole. */
export const MAX_SMALL_FILE = 8 * 1024 * 1024;

/** Files under a directory of this machine. */
export class DirFiles implements SmallFiles {
  constructor(readonly dir: string) {}
  get where(): string {
    return this.dir;
  }
  private at(file: string): string {
    return path.join(this.dir, file);
  }
  async read(file: string, maxBytes = MAX_SMALL_FILE): Promise<Buffer | undefined> {
    let fh;
    try {
      fh = await open(this.at(file), 'r');
    } catch (err) {
      if (isErrno(err, 'ENOENT') || isErrno(err, 'ENOTDIR')) return undefined;
      throw fsError(err, `cannot read ${this.at(file)}`);
    }
    try {
      const buf = Buffer.alloc(Math.min(maxBytes, (await fh.stat()).size + 1));
      maxBytes = buf.length;
      let n = 0;
      for (;;) {
        const { bytesRead } = await fh.read(buf, n, maxBytes - n, n);
        if (bytesRead === 0 || (n += bytesRead) >= maxBytes) break;
      }
      return buf.subarray(0, n);
    } catch (err) {
      throw fsError(err, `cannot read ${this.at(file)}`);
    } finally {
      await fh.close();
    }
  }
  async write(file: string, data: Buffer | string): Promise<void> {
    try {
      await mkdir(path.dirname(this.at(file)), { recursive: true });
      await writeFileAtomic(this.at(file), data);
    } catch (err) {
      throw fsError(err, `cannot write ${this.at(file)}`);
    }
  }
  async list(dir: string): Promise<string[]> {
    try {
      return await readdir(this.at(dir));
    } catch (err) {
      if (isErrno(err, 'ENOENT') || isErrno(err, 'ENOTDIR')) return [];
      throw fsError(err, `cannot read ${this.at(dir)}`);
    }
  }
  async remove(file: string): Promise<void> {
    try {
      await unlink(this.at(file));
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return;
      throw fsError(err, `cannot remove ${this.at(file)}`);
    }
    await fsyncDir(path.dirname(this.at(file)));
  }
}

/** The files under `prefix` of another SmallFiles (the stage directory inside a disk's partition). */
export function subFiles(fs: SmallFiles, prefix: string): SmallFiles {
  const at = (f: string) => path.posix.join(prefix, f);
  return {
    where: `${fs.where}${prefix.startsWith('/') ? '' : '/'}${prefix}`,
    read: (f, max) => fs.read(at(f), max),
    write: (f, d) => fs.write(at(f), d),
    list: (d) => fs.list(at(d)),
    remove: (f) => fs.remove(at(f)),
  };
}

export interface ContractProblem {
  /** The error code a damaged file gives (E_STAGE_CORRUPT, E_NOT_DARCH_DISK, …). */
  code: ErrorCode;
  hint: string;
}

/**
 * Parse a contract file's text with its schema. A file that is not JSON, or not the shape
 * the schema says, is one DarchError naming the file and the first problem.
 */
export function parseContract<S extends z.core.$ZodType>(schema: S, text: string, file: string, problem: ContractProblem): z.infer<S> {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new DarchError(problem.code, `${file} is corrupt: ${(err as Error).message}`, { hint: problem.hint });
  }
  const res = z.safeParse(schema, raw);
  if (!res.success) {
    const issue = res.error.issues[0];
    const at = issue?.path.length ? ` at ${issue.path.join('.')}` : '';
    throw new DarchError(problem.code, `${file} is corrupt: ${issue?.message ?? 'unexpected shape'}${at}`, { hint: problem.hint });
  }
  return res.data;
}

/** `JSON.stringify` as every contract file is written: two spaces, a final newline. */
export function contractText(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

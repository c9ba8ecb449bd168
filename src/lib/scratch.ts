/**
 * Scratch space and writes a power cut must not tear: the one place that names temp files
 * and work directories, writes and copies files atomically, swaps directories, and writes
 * streams whose failures are the file system's (E_FS_*), never the data's.
 *
 * Every temp name is `[.]<kind>-<pid>-<boot><random>…`, so `sweepDeadOwners(dir)` can tell
 * which ones a crash, kill -9 or power cut left behind (their process is gone, or they are
 * from another boot, where the pid may now name someone else) and remove exactly those.
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import { once } from 'node:events';
import { copyFile, link, mkdir, open, readdir, rename, rm, stat, unlink } from 'node:fs/promises';
import { finished } from 'node:stream/promises';
import path from 'node:path';
import { fsError, isErrno } from './errors.js';
import { bootId, ownerAlive } from './lock.js';
import { run } from './proc.js';

/** Random hex for unique names. node:crypto is loaded on first use: start-up never needs it. */
export function randomHex(bytes: number): string {
  return process.getBuiltinModule('node:crypto').randomBytes(bytes).toString('hex');
}

const OWNED = /^\.?[a-z]+-(\d+)-([a-f0-9]+)/;
/** Hex digits of the boot id in a name: names with 12 hex digits (older versions, or no boot id) carry none. */
const BOOT_TAG = 8;

/** `<pid>-<boot><random>`: the part of a scratch name that tells a later process who made it. */
function ownerPart(sep: string): string {
  return `${process.pid}${sep}${bootId().slice(0, BOOT_TAG)}${randomHex(6)}`;
}

/** `<kind>-<pid>-<boot><random>`: a scratch name a later process can attribute to its owner. */
export function ownedTempName(kind: string): string {
  return `${kind}-${ownerPart('-')}`;
}

/** Whether the process that made an owned name may still be using it. */
function nameOwnerAlive(pid: number, hex: string): boolean {
  return ownerAlive(pid, hex.length >= BOOT_TAG + 12 ? hex.slice(0, BOOT_TAG) : undefined);
}

/**
 * A temp name next to `target` (same directory, so same file system: the rename is atomic).
 * Hidden, and owned like every other scratch name.
 */
export function tempName(target: string): string {
  return path.join(path.dirname(target), `.${ownedTempName('tmp')}.${path.basename(target)}`);
}

/** Remove the entries of dir whose owning process is gone; returns how many were removed. */
export async function sweepDeadOwners(dir: string): Promise<number> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return 0;
    throw err;
  }
  let n = 0;
  for (const name of names) {
    const m = OWNED.exec(name);
    if (!m) continue;
    const pid = Number(m[1]);
    if (nameOwnerAlive(pid, m[2] as string)) continue;
    await rm(path.join(dir, name), { recursive: true, force: true });
    n++;
  }
  return n;
}

/**
 * A fresh work directory `<parent>/<kind>-<pid>-<random>` that sweepDeadOwners(parent) finds
 * once we are gone. Private by default; one that is renamed into place as a staged image or
 * a hook directory passes 0o755.
 */
export async function makeWorkDir(parent: string, kind: string, mode = 0o700): Promise<string> {
  try {
    await mkdir(parent, { recursive: true });
    const d = path.join(parent, ownedTempName(kind));
    await mkdir(d, { mode });
    return d;
  } catch (err) {
    throw fsError(err, `cannot create a work directory in ${parent}`);
  }
}

async function fsyncPath(p: string, flags: 'r' | 'r+'): Promise<void> {
  const fh = await open(p, flags);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Make a rename or unlink in `dir` durable. */
export const fsyncDir = (dir: string): Promise<void> => fsyncPath(dir, 'r');
/** Opened for writing: some systems refuse fsync on a read-only descriptor of a file (a device). */
export const fsyncFile = (file: string): Promise<void> => fsyncPath(file, 'r+');

/**
 * Put a complete, fsynced file in place of `dest` and make the rename durable. The temp
 * file is removed when the rename fails.
 */
export async function commitFile(tmp: string, dest: string): Promise<void> {
  try {
    await rename(tmp, dest);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  await fsyncDir(path.dirname(dest));
}

/** Create `file` (it must not exist) with `data`, fsynced; on failure nothing is left. For a temp file that commitFile puts in place. */
export async function writeFileDurable(file: string, data: string | Uint8Array, mode = 0o644): Promise<void> {
  const fh = await open(file, 'wx', mode);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } catch (err) {
    await fh.close().catch(() => undefined);
    await unlink(file).catch(() => undefined);
    throw err;
  }
  await fh.close();
}

export async function writeFileAtomic(target: string, data: string | Uint8Array, mode = 0o644): Promise<void> {
  const tmp = tempName(target);
  await writeFileDurable(tmp, data, mode);
  await commitFile(tmp, target);
}

export async function writeJsonAtomic(target: string, value: unknown, mode = 0o644): Promise<void> {
  await writeFileAtomic(target, `${JSON.stringify(value, null, 2)}\n`, mode);
}

/** Copy `src` to `dst` so `dst` is either the old file or the whole new one, also after a power cut. */
export async function copyFileAtomic(src: string, dst: string): Promise<void> {
  await mkdir(path.dirname(dst), { recursive: true });
  const tmp = tempName(dst);
  try {
    await copyFile(src, tmp);
    await fsyncFile(tmp);
    await commitFile(tmp, dst);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw fsError(err, `cannot copy ${src} to ${dst}`);
  }
}

/**
 * A file written chunk by chunk (a capture of a stream, a bundle member), fsynced on close.
 * A failure is the file system's (E_FS_ENOSPC for a full disk), named after the file, so it
 * is never blamed on where the bytes came from. A stream that failed is never waited on
 * again: a closed stream emits no more events.
 */
export interface CaptureFile {
  write(chunk: Uint8Array): Promise<void>;
  close(): Promise<void>;
  abandon(): void;
}

export function captureFile(dest: string, mode = 0o644): CaptureFile {
  const ws: WriteStream = createWriteStream(dest, { flags: 'wx', mode, flush: true });
  ws.on('error', () => undefined); // reported by write() and close() through ws.errored / finished()
  const failed = (err: unknown) => fsError(err, `cannot write ${dest}`);
  return {
    async write(chunk) {
      if (ws.errored) throw failed(ws.errored);
      if (!ws.write(chunk)) await once(ws, 'drain').catch((err: unknown) => Promise.reject(failed(err)));
    },
    async close() {
      ws.end();
      await finished(ws).catch((err: unknown) => Promise.reject(failed(ws.errored ?? err)));
    },
    abandon() {
      if (!ws.closed) ws.destroy();
    },
  };
}

// ---------------------------------------------------------------------------------------
// Directory swap.

/** renameat2's number per architecture (Linux); RENAME_EXCHANGE is 2, AT_FDCWD -100. */
const RENAMEAT2: Partial<Record<string, number>> = { x64: 316, arm64: 276, riscv64: 276, ia32: 353, arm: 382, ppc64: 357, s390x: 347, loong64: 276 };
const EXCHANGE_SCRIPT =
  'my $r = syscall($ARGV[0] + 0, -100, $ARGV[1], -100, $ARGV[2], 2); exit 0 if $r == 0; print STDERR "$!\\n"; exit(($!{ENOSYS} || $!{EINVAL} || $!{EPERM}) ? 3 : 1)';
let exchangeWorks: boolean | undefined;

/**
 * renameat2(RENAME_EXCHANGE): both names exist before and after, each naming a whole
 * directory. Node has no binding for it; perl (Essential on Debian, present on every
 * distribution darch targets) reaches the system call without a compiled addon. false when
 * it cannot be reached here (no perl, an unknown architecture, a file system without it).
 */
async function exchange(a: string, b: string): Promise<boolean> {
  const nr = RENAMEAT2[process.arch];
  if (exchangeWorks === false || nr === undefined || process.platform !== 'linux') return false;
  let res;
  try {
    res = await run('perl', ['-e', EXCHANGE_SCRIPT, String(nr), path.resolve(a), path.resolve(b)], { allowFailure: true });
  } catch {
    exchangeWorks = false; // no perl
    return false;
  }
  if (res.code === 0) {
    exchangeWorks = true;
    return true;
  }
  if (res.code === 3) return false; // this file system (vfat) or kernel cannot: not remembered, another may
  throw fsError(Object.assign(new Error(res.stderr.trim() || 'renameat2 failed'), { code: 'EIO' }), `cannot swap ${b} for ${a}`);
}

/**
 * Replace the directory `final` with the complete directory `next` (same parent) so that a
 * reader, or a crash, never finds `final` missing or half written. `next` is gone afterwards.
 *
 * With RENAME_EXCHANGE the swap is one atomic step and the old tree is removed after it.
 * Without it there is no gap-free way to replace a non-empty directory by renames alone
 * (rename(2) refuses a non-empty target, and a symlink flip would change what bundles and
 * meta.json see: they carry regular files only), so the fallback moves the old directory
 * aside under a name that records what it was (`.old.<pid>.<random>.<name>`) and puts the
 * new one in place; the gap is only the moment between two renames, and a crash inside it is
 * healed by the next swap of the same directory, which puts the old one back first.
 */
export async function swapDir(next: string, final: string): Promise<void> {
  const parent = path.dirname(final);
  const base = path.basename(final);
  try {
    await restoreAbandoned(parent, base);
    const have = await stat(final).then(
      (s) => s.isDirectory(),
      () => false,
    );
    if (!have) {
      await rename(next, final);
    } else if (await exchange(next, final)) {
      await rm(next, { recursive: true, force: true });
    } else {
      // Not an owned scratch name on purpose: until it is back, it is the only copy, and a
      // sweep must not take it for a dead process's leftovers.
      const old = path.join(parent, `.old.${ownerPart('.')}.${base}`);
      await rename(final, old);
      await rename(next, final);
      await rm(old, { recursive: true, force: true });
    }
    await fsyncDir(parent);
  } catch (err) {
    throw fsError(err, `cannot put ${final} in place`);
  }
}

/** A directory the fallback of swapDir moved aside and a crash kept from coming back. */
async function restoreAbandoned(parent: string, base: string): Promise<void> {
  const names = await readdir(parent).catch(() => [] as string[]);
  for (const name of names) {
    const m = /^\.old\.(\d+)\.([a-f0-9]+)\.(.*)$/.exec(name);
    if (!m || m[3] !== base || nameOwnerAlive(Number(m[1]), m[2] as string)) continue;
    const final = path.join(parent, base);
    if (
      await stat(final).then(
        () => true,
        () => false,
      )
    )
      await rm(path.join(parent, name), { recursive: true, force: true });
    else await rename(path.join(parent, name), final);
  }
}

/** A hard link where the file system allows one (no copy of a large staged file), else a copy. */
export async function linkOrCopy(s: string, d: string): Promise<void> {
  try {
    await link(s, d);
  } catch (err) {
    if (!isErrno(err, 'EXDEV') && !isErrno(err, 'EPERM')) throw err;
    await copyFile(s, d);
  }
}

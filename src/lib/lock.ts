/**
 * An exclusive lock for writers of a store. A lock file holds the owner's pid and boot; a
 * lock whose owner is gone (kill -9, power cut) is taken over at once, so a crashed import
 * never leaves the store locked. We do not use mtime-based stale detection
 * (proper-lockfile) because it makes a store look locked for seconds after a crash.
 * Readers never lock: the index is replaced atomically.
 *
 * Pids repeat across boots: a machine that boots the same way each time gives its update
 * run the same pid, so after a power cut the lock's pid can be alive again, even be our
 * own. A lock (or scratch name) from another boot therefore names no one, whatever its pid.
 */
import { readFileSync } from 'node:fs';
import { open, readFile, rename, unlink } from 'node:fs/promises';
import os from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { DarchError, fsError, isErrno } from './errors.js';
import { publishLockWait } from './diagnostics.js';

interface Owner {
  pid: number;
  host: string;
  command: string;
  since: string;
  /** The kernel's boot_id when the lock was taken (absent in locks of older versions). */
  boot?: string;
}

export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return isErrno(err, 'EPERM');
  }
}

let thisBoot: string | undefined;

/** This boot's id (/proc/sys/kernel/random/boot_id, without dashes); '' where there is none. */
export function bootId(): string {
  if (thisBoot === undefined) {
    try {
      thisBoot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim().replaceAll('-', '');
    } catch {
      thisBoot = '';
    }
  }
  return thisBoot;
}

/** Whether a pid recorded during boot `boot` (the id or its first digits; unknown: assume this boot) still names a live process. */
export function ownerAlive(pid: number, boot: string | undefined): boolean {
  if (boot && bootId() && !bootId().startsWith(boot)) return false;
  return processAlive(pid);
}

async function readOwner(file: string): Promise<Owner | undefined> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as Owner;
  } catch {
    return undefined;
  }
}

async function tryCreate(file: string): Promise<boolean> {
  const me: Owner = { pid: process.pid, host: os.hostname(), command: process.argv.slice(2).join(' '), since: new Date().toISOString(), boot: bootId() };
  try {
    const fh = await open(file, 'wx', 0o644);
    await fh.writeFile(JSON.stringify(me));
    await fh.close();
    return true;
  } catch (err) {
    if (isErrno(err, 'EEXIST')) return false;
    throw fsError(err, `cannot create the lock file ${file}`);
  }
}

export interface LockHandle {
  release(): Promise<void>;
}

const held = new Map<string, number>();

export async function acquireLock(file: string, what: string, timeoutSec: number): Promise<LockHandle> {
  // Re-entrant within one process: nested store operations share the outer lock.
  const depth = held.get(file);
  if (depth !== undefined) {
    held.set(file, depth + 1);
    return { release: async () => void held.set(file, (held.get(file) ?? 1) - 1) };
  }
  const deadline = Date.now() + timeoutSec * 1000;
  let announced = false;
  for (;;) {
    if (await tryCreate(file)) break;
    const owner = await readOwner(file);
    const sameHost = !owner || owner.host === os.hostname();
    if (!owner || (sameHost && !ownerAlive(owner.pid, owner.boot))) {
      // Stale: move it aside atomically so two waiters cannot both delete a fresh lock.
      const aside = `${file}.stale.${process.pid}`;
      try {
        await rename(file, aside);
        await unlink(aside);
      } catch {
        /* someone else took it over first */
      }
      continue;
    }
    if (Date.now() >= deadline) {
      throw new DarchError('E_LOCKED', `${what} is locked by another darch process (pid ${owner.pid}: darch ${owner.command})`, {
        hint: `wait for it to finish, or raise store.lock_timeout; the lock file is ${file}`,
        details: { owner },
      });
    }
    if (!announced) {
      publishLockWait({ what, pid: owner.pid });
      announced = true;
    }
    await sleep(200);
  }
  held.set(file, 1);
  return {
    async release() {
      const d = held.get(file) ?? 1;
      if (d > 1) {
        held.set(file, d - 1);
        return;
      }
      held.delete(file);
      await unlink(file).catch(() => undefined);
    },
  };
}

export async function withLock<T>(file: string, what: string, timeoutSec: number, fn: () => Promise<T>): Promise<T> {
  const lock = await acquireLock(file, what, timeoutSec);
  try {
    return await fn();
  } finally {
    await lock.release();
  }
}

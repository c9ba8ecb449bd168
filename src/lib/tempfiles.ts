/**
 * Scratch files and directories named after the process that owns them
 * (`<kind>-<pid>-<random>[suffix]`), so a later process can tell which ones a crash or
 * kill -9 left behind and remove exactly those.
 */
import { randomBytes } from 'node:crypto';
import { readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { isErrno } from './errors.js';
import { processAlive } from './lock.js';

const OWNED = /^[a-z]+-(\d+)-[a-f0-9]+/;

export function ownedTempName(kind: string): string {
  return `${kind}-${process.pid}-${randomBytes(6).toString('hex')}`;
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
    if (pid === process.pid || processAlive(pid)) continue;
    await rm(path.join(dir, name), { recursive: true, force: true });
    n++;
  }
  return n;
}

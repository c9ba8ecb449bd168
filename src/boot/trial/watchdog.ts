/**
 * The watchdog a trial boot runs under (darch.watchdog=<s>): darch's initramfs arms it and
 * records it in /run/darch/watchdog; only a commit stops it, so a trial that hangs is reset
 * and the boot loader's counter runs down. Writing 'V' before closing a watchdog device is
 * the kernel's "magic close": it stops the timer instead of leaving it running.
 */
import { access, mkdir, open, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { cmdlineParam } from '../../stage/protect.js';

export interface ArmedWatchdog {
  device: string;
  seconds?: number;
  driver?: string;
}

export function watchdogRecord(root: string): string {
  return path.join(root, 'run/darch/watchdog');
}

/**
 * `/run/darch/committed`: this boot proved itself (`darch boot mark-good` or darch-commit
 * ran). darch-trial-failed's boot-complete deadline stands down on it, also when no
 * watchdog was armed. Best effort: /run may be read-only or missing in a test root.
 */
export async function markCommitted(root: string): Promise<void> {
  const dir = path.join(root, 'run/darch');
  await mkdir(dir, { recursive: true })
    .then(
      () => writeFile(path.join(dir, 'committed'), ''),
      () => undefined,
    )
    .catch(() => undefined);
}

/** The watchdog armed for this boot, if any. */
export async function armedWatchdog(root: string): Promise<ArmedWatchdog | undefined> {
  let text: string;
  try {
    text = await readFile(watchdogRecord(root), 'utf8');
  } catch {
    return undefined;
  }
  const v = Object.fromEntries(text.split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
  if (!v.device) return undefined;
  const seconds = Number(v.seconds);
  return { device: v.device, ...(Number.isFinite(seconds) && seconds > 0 ? { seconds } : {}), ...(v.driver ? { driver: v.driver } : {}) };
}

/**
 * Stop the trial's watchdog. Returns what was stopped, undefined when none was armed, or
 * an error message when the device could not be stopped (another program holds it: systemd
 * with RuntimeWatchdogSec= then keeps it fed itself).
 */
export async function disarmWatchdog(root: string, cmdline: string): Promise<{ stopped?: ArmedWatchdog; error?: string } | undefined> {
  const wd = (await armedWatchdog(root)) ?? (await impliedWatchdog(root, cmdline));
  if (!wd) return undefined;
  try {
    const fh = await open(wd.device, 'w');
    try {
      await fh.write('V');
    } finally {
      await fh.close();
    }
  } catch (err) {
    return { error: `cannot stop the trial's watchdog ${wd.device}: ${(err as Error).message}` };
  }
  await rm(watchdogRecord(root), { force: true });
  return { stopped: wd };
}

/**
 * Without its record (an image that mounts a fresh /run hides the one the initramfs handed
 * on), a trial boot with darch.watchdog= on its command line has /dev/watchdog0 running.
 */
async function impliedWatchdog(root: string, cmdline: string): Promise<ArmedWatchdog | undefined> {
  const seconds = Number(cmdlineParam(cmdline, 'darch.watchdog'));
  if (!(seconds > 0) || !` ${cmdline.trim()} `.includes(' darch.trial=1 ')) return undefined;
  const device = path.join(root, 'dev/watchdog0');
  return access(device).then(
    () => ({ device, seconds }),
    () => undefined,
  );
}

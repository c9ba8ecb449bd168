/**
 * The watchdog a trial boot runs under (darch.watchdog=<s>): darch's initramfs arms it and
 * records it in /run/darch/watchdog; only a commit stops it, so a trial that hangs is reset
 * and the boot loader's counter runs down. Writing 'V' before closing a watchdog device is
 * the kernel's "magic close": it stops the timer instead of leaving it running.
 */
import { open, readFile, rm } from 'node:fs/promises';
import path from 'node:path';

export interface ArmedWatchdog {
  device: string;
  seconds?: number;
  driver?: string;
}

export function watchdogRecord(root: string): string {
  return path.join(root, 'run/darch/watchdog');
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
export async function disarmWatchdog(root: string): Promise<{ stopped?: ArmedWatchdog; error?: string } | undefined> {
  const wd = await armedWatchdog(root);
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

/**
 * When the timer's run does its work (pure: the clock and the machine are arguments).
 * The systemd timer fires often (hourly, Persistent=true); darch decides whether a check is
 * due from `[update] schedule`, plus a share of `random_delay` fixed per machine, so a fleet
 * spreads out and a config change needs no unit rewrite.
 */
import { DarchError } from '../lib/errors.js';
import { rolloutBucket } from './rollout.js';

const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const NAMED: Record<string, number> = { hourly: 3_600_000, daily: 86_400_000, weekly: 7 * 86_400_000 };

/** "6h", "30m", "daily" → milliseconds. */
export function durationMs(s: string): number {
  const named = NAMED[s];
  if (named !== undefined) return named;
  const m = /^(\d+)([smhd])$/.exec(s);
  if (!m) throw new DarchError('E_CONFIG', `"${s}" is not a duration`, { hint: 'use hourly, daily, weekly, or a number with s, m, h or d (6h)' });
  return Number(m[1]) * (UNIT_MS[m[2] as string] ?? 0);
}

/** When the next scheduled check is due: the last one plus the schedule plus this machine's share of the delay. */
export function nextCheckAt(lastCheck: Date | undefined, schedule: string, randomDelay: string, machineId: string | undefined): Date | undefined {
  if (!lastCheck) return undefined; // never checked: due now
  const jitter = machineId ? (rolloutBucket(machineId, 'schedule') / 100) * durationMs(randomDelay) : 0;
  return new Date(lastCheck.getTime() + durationMs(schedule) + jitter);
}

export function isDue(now: Date, next: Date | undefined): boolean {
  return next === undefined || now.getTime() >= next.getTime();
}

export type RebootPolicy = { kind: 'never' } | { kind: 'prompt' } | { kind: 'window'; from: number; to: number; text: string };

export function parseReboot(s: string): RebootPolicy {
  if (s === 'never' || s === 'prompt') return { kind: s };
  const m = /^(\d\d):(\d\d)-(\d\d):(\d\d)$/.exec(s);
  if (!m) throw new DarchError('E_CONFIG', `update.reboot = "${s}" is not never, prompt or a window`, { hint: 'e.g. reboot = "02:00-05:00"' });
  const [, h1, m1, h2, m2] = m.map(Number) as [number, number, number, number, number];
  return { kind: 'window', from: h1 * 60 + m1, to: h2 * 60 + m2, text: s };
}

/** Whether local time `now` is inside the window; a window like 23:00-01:00 spans midnight. */
export function inWindow(now: Date, p: RebootPolicy): boolean {
  if (p.kind !== 'window') return false;
  const t = now.getHours() * 60 + now.getMinutes();
  return p.from <= p.to ? t >= p.from && t < p.to : t >= p.from || t < p.to;
}

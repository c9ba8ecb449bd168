/**
 * Phased rollouts without a server: the pushed manifest carries a percentage, each machine
 * decides for itself. A machine takes the image when its bucket (a hash of its machine-id
 * and the image's config digest) falls under the percentage. The config digest, not the
 * manifest's, is hashed because changing the annotation changes the manifest's digest:
 * with it, raising 10 → 50 keeps the first 10 % in and only adds machines.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { sha256 } from '../oci/digest.js';

export const ROLLOUT_ANNOTATION = 'org.darch.rollout.percent';

/** The percentage an image's annotations ask for; undefined when absent (everyone) or not a number from 0 to 100. */
export function rolloutPercent(annotations: Record<string, string> | undefined): number | undefined {
  const raw = annotations?.[ROLLOUT_ANNOTATION]?.trim();
  if (raw === undefined || !/^\d+(\.\d+)?$/.test(raw)) return undefined;
  const n = Number(raw);
  return n >= 0 && n <= 100 ? n : undefined;
}

/** This machine's place in [0, 100) for one image: uniform over machine-ids, fixed for a machine and image. */
export function rolloutBucket(machineId: string, imageId: string): number {
  const h = sha256(Buffer.from(`${machineId.trim()}\n${imageId}`)).slice(7, 15);
  return (Number.parseInt(h, 16) / 0x1_0000_0000) * 100;
}

export function inRollout(machineId: string | undefined, imageId: string, percent: number | undefined): boolean {
  if (percent === undefined || percent >= 100) return true;
  // Without a machine-id there is nothing stable to hash: such a machine waits for 100 %.
  if (!machineId) return false;
  return rolloutBucket(machineId, imageId) < percent;
}

/** /etc/machine-id under the root (systemd's, also written by dbus and by darch's hooks). */
export async function readMachineId(root: string): Promise<string | undefined> {
  const id = (await readFile(path.join(root, 'etc/machine-id'), 'utf8').catch(() => '')).trim();
  return /^[0-9a-f]{32}$/.test(id) ? id : undefined;
}

/**
 * `darch status`: one screen of what matters on a machine (or a darch disk): what booted and
 * how (a trial, after a fallback), the boot state, every staged image with its size, age and
 * role, and the free space of the stage and boot file systems. The JSON form is versioned
 * (docs/STATUS.md). Parts that cannot be read (no ESP on a build host) are reported as such,
 * never fatal: status must work wherever darch runs.
 */
import { statfs } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { DarchPaths } from '../lib/paths.js';
import { silentReporter, type Reporter } from '../lib/report.js';
import { StageStore } from '../stage/store.js';
import { bootedId } from '../stage/protect.js';
import { localEspDir } from './shared/esp.js';
import { rolesIn, statusOf, type StatusView } from './status.js';
import type { BootTarget } from './target.js';

export const STATUS_SCHEMA_VERSION = 1;

export interface SpaceView {
  path: string;
  free: number;
  size: number;
}

export interface StagedRow {
  id: string;
  tags: string[];
  /** Bytes of its files (meta.json totalSize; on a disk, what its partition holds). */
  size: number;
  created: string | null;
  roles: Array<'booted' | 'default' | 'trial' | 'previous' | 'bad'>;
}

export interface Overview {
  schemaVersion: typeof STATUS_SCHEMA_VERSION;
  target: string;
  /** The darch image this system runs, if it booted one (null on a disk or elsewhere). */
  booted: { stage: string; tags: string[]; trial: boolean; fellBack: boolean } | null;
  /** The boot state, or null with `bootStateError` when there is none to read here. */
  boot: StatusView | null;
  bootStateError: string | null;
  staged: StagedRow[];
  space: { stage: SpaceView | null; boot: SpaceView | null };
}

/** The file system a path is (or will be) on: a stage directory not made yet is on its parent's. */
async function space(path: string | undefined): Promise<SpaceView | null> {
  if (!path) return null;
  for (let p = path; ; p = dirname(p)) {
    try {
      const s = await statfs(p);
      return { path, free: s.bavail * s.bsize, size: s.blocks * s.bsize };
    } catch {
      if (p === dirname(p)) return null;
    }
  }
}

function rolesOf(boot: StatusView | null, id: string, bootedStage?: string): StagedRow['roles'] {
  return [...(bootedStage === id ? (['booted'] as const) : []), ...(boot ? rolesIn(boot, id) : [])];
}

/** This machine: its stage store, its booted image, its ESP's boot state. */
export async function localOverview(
  paths: DarchPaths,
  target: () => Promise<BootTarget>,
  espConfigured: string | undefined,
  report: Reporter = silentReporter,
): Promise<Overview> {
  let boot: StatusView | null = null;
  let bootStateError: string | null = null;
  try {
    boot = await statusOf(await target(), report);
  } catch (err) {
    bootStateError = (err as Error).message;
  }
  const booted = await bootedId();
  const store = new StageStore(paths.stageDir, 0);
  const images = await store.list().catch(() => []);
  const esp = await localEspDir(paths, espConfigured).catch(() => undefined);
  const bootedImage = booted ? images.find((i) => i.id === booted) : undefined;
  return {
    schemaVersion: STATUS_SCHEMA_VERSION,
    target: 'this machine',
    booted: booted ? { stage: booted, tags: bootedImage?.tags ?? [], trial: boot?.booted?.trial ?? false, fellBack: boot?.booted?.fellBack ?? false } : null,
    boot,
    bootStateError,
    staged: images.map((i) => ({ id: i.id, tags: i.tags, size: i.meta?.totalSize ?? 0, created: i.meta?.created ?? null, roles: rolesOf(boot, i.id, booted) })),
    space: { stage: await space(paths.stageDir), boot: await space(esp) },
  };
}

/** A darch disk from outside: its images as its partition holds them, its boot state, its free space. */
export async function diskOverview(
  disk: string,
  target: BootTarget,
  listing: {
    images: Array<{ id: string; tags: string[]; bytes: number; created?: string }>;
    free: { darch: number; esp: number };
    size?: { darch?: number; esp?: number };
  },
  report: Reporter = silentReporter,
): Promise<Overview> {
  let boot: StatusView | null = null;
  let bootStateError: string | null = null;
  try {
    boot = await statusOf(target, report);
  } catch (err) {
    bootStateError = (err as Error).message;
  }
  return {
    schemaVersion: STATUS_SCHEMA_VERSION,
    target: disk,
    booted: null,
    boot,
    bootStateError,
    staged: listing.images.map((i) => ({ id: i.id, tags: i.tags, size: i.bytes, created: i.created ?? null, roles: rolesOf(boot, i.id) })),
    space: {
      stage: { path: `${disk} (darch partition)`, free: listing.free.darch, size: listing.size?.darch ?? 0 },
      boot: { path: `${disk} (ESP)`, free: listing.free.esp, size: listing.size?.esp ?? 0 },
    },
  };
}

/**
 * What a `darch boot` command acts on: this machine (the mounted ESP and the local stage,
 * here) or a disk made by `darch disk create` (src/disk/target.ts: its ESP through mtools,
 * its image list from disk.json). Also turns a user's STAGED argument (tag, id or id
 * prefix) into the GRUB menu entry and staged id the boot state needs.
 */
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { DarchError } from '../lib/errors.js';
import { withLock } from '../lib/lock.js';
import type { DarchPaths } from '../lib/paths.js';
import { readCmdline } from '../stage/protect.js';
import { matchStaged, StageStore } from '../stage/store.js';
import { armedWatchdog, type ArmedWatchdog } from './trial/watchdog.js';
import { localEspDir } from './shared/esp.js';
import { localEnvStorage, type EnvStorage } from './grub/grubenv.js';
import { readFailure, removeFailure, type TrialFailure } from '../stage/failures.js';
import { DirEntryFiles, ENTRIES_DIR, parseEntryName, type EntryFiles } from './sdboot/sdboot.js';
import { bootedFrom, type BootedInfo, type ImageRef } from './trial/state.js';
import { grubCfgPaths, syncBootConfig } from './grub/sync.js';
import { entryId } from './grub/grubcfg.js';

export interface KnownImage {
  id: string;
  tags: string[];
}

export interface BootTarget {
  kind: 'local' | 'disk';
  /** For messages: "this machine" or the disk path. */
  label: string;
  storage: EnvStorage;
  images(): Promise<KnownImage[]>;
  /** The image GRUB boots when the state names none (the first menu entry), if known. */
  firstEntry(): Promise<ImageRef | undefined>;
  /** The running system's boot (local only). */
  booted(): Promise<BootedInfo | undefined>;
  /** The watchdog the initramfs armed for this trial boot (local only). */
  watchdog(): Promise<ArmedWatchdog | undefined>;
  withLock<T>(fn: () => Promise<T>): Promise<T>;
  /** The ESP's loader/entries, where the systemd-boot backend keeps its state. */
  entries: EntryFiles;
  /** The boot loader the target says it has (disk.json, config), if it says. */
  declaredBootloader(): Promise<'grub' | 'systemd-boot' | undefined>;
  /** Why a trial of `stage` failed, if its boot could record it (src/stage/failures.ts). */
  failure(stage: string): Promise<TrialFailure | undefined>;
  clearFailure(stage: string): Promise<void>;
  /**
   * Keep the default also first in the target's GRUB menu: what GRUB boots when the state
   * is lost. Nothing to do under systemd-boot, whose entries are the state.
   */
  followDefault(defaultEntry: string, images: KnownImage[]): Promise<void>;
  /**
   * Make sure the target's GRUB menu has `entry` before a state names it: a state naming an
   * entry the menu lacks (a power cut between staging and the menu's rewrite) would have
   * GRUB boot its first entry, whatever that is, as the trial.
   */
  ensureInMenu(entry: string, defaultEntry: string | undefined, images: KnownImage[]): Promise<void>;
}

/** The declared boot loader; else systemd-boot when darch's BLS entries are on the ESP, GRUB (grubenv) otherwise. */
export async function backendOf(t: BootTarget): Promise<'grub' | 'systemd-boot'> {
  const declared = await t.declaredBootloader().catch(() => undefined);
  if (declared) return declared;
  return (await t.entries.list()).some((f) => parseEntryName(f)) ? 'systemd-boot' : 'grub';
}

export async function localTarget(
  paths: DarchPaths,
  espConfigured: string | undefined,
  lockTimeoutSec: number,
  bootloader: 'auto' | 'grub' | 'systemd-boot' = 'auto',
): Promise<BootTarget> {
  const storage = await localEnvStorage(paths, espConfigured);
  const store = new StageStore(paths.stageDir, lockTimeoutSec);
  return {
    entries: new DirEntryFiles(path.join(await localEspDir(paths, espConfigured), ENTRIES_DIR)),
    kind: 'local',
    label: 'this machine',
    declaredBootloader: async () => (bootloader === 'auto' ? undefined : bootloader),
    storage,
    images: async () => (await store.list()).map((i) => ({ id: i.id, tags: i.tags })),
    firstEntry: async () => undefined,
    booted: async () => bootedFrom(await readCmdline()),
    watchdog: () => armedWatchdog(paths.root),
    failure: (stage) => readFailure(paths.stageDir, stage),
    clearFailure: (stage) => removeFailure(paths.stageDir, stage),
    async followDefault(defaultEntry, images) {
      const current = await readFile(grubCfgPaths(paths).primary, 'utf8').catch(() => undefined);
      if (current !== undefined) await rewriteMenu(paths, current, defaultEntry, images);
    },
    async ensureInMenu(entry, defaultEntry, images) {
      const current = await readFile(grubCfgPaths(paths).primary, 'utf8').catch(() => undefined);
      if (current !== undefined && !current.includes(`--id ${entry} {`)) await rewriteMenu(paths, current, defaultEntry, images);
    },
    async withLock(fn) {
      await mkdir(paths.stateDir, { recursive: true });
      return withLock(path.join(paths.stateDir, 'boot.lock'), 'the boot state', lockTimeoutSec, fn);
    },
  };
}

/** This machine's darch menu again, from the stage, with `defaultEntry` first. */
async function rewriteMenu(paths: DarchPaths, current: string, defaultEntry: string | undefined, images: KnownImage[]): Promise<void> {
  const tag = images.flatMap((i) => i.tags).find((tg) => entryId(tg) === defaultEntry);
  // Where the stage is, as GRUB saw it when the menu was last written (no re-detection needed).
  const uuid = /--set=darch_fs (\S+)/.exec(current)?.[1];
  const dir = /darch_dir=UUID=[^:\s]+:(\S+)\/live\//.exec(current)?.[1];
  await syncBootConfig(paths, { defaultTag: tag, ...(uuid && dir ? { location: { uuid, path: dir } } : {}) });
}

/** STAGED → (menu entry, staged id): a tag (NAME[:TAG], :latest implied), an id, or a unique id prefix. */
export function resolveImage(images: KnownImage[], what: string): ImageRef & { tag: string } {
  const { image: img, tag } = matchStaged(images, what);
  if (tag) return { entry: entryId(tag), stage: img.id, tag };
  const first = [...img.tags].sort()[0];
  if (!first) {
    throw new DarchError('E_NO_MENU_ENTRY', `staged image ${img.id} has no tag, so it has no boot menu entry`, {
      hint: `tag it first: darch stage tag ${img.id} NAME:TAG`,
    });
  }
  return { entry: entryId(first), stage: img.id, tag: first };
}

export function tagsOf(images: KnownImage[], stage: string | undefined): string[] {
  return images.find((i) => i.id === stage)?.tags ?? [];
}

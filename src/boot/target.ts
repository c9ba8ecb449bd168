/**
 * What a `darch boot` command acts on: this machine (the mounted ESP and the local stage)
 * or a disk made by `darch disk create` (its ESP through mtools, its image list from the
 * disk.json that `disk create` leaves on the ESP). Also turns a user's STAGED argument
 * (tag, id or id prefix) into the GRUB menu entry and staged id the boot state needs.
 */
import { createHash } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { DarchError } from '../lib/errors.js';
import { withLock } from '../lib/lock.js';
import type { DarchPaths } from '../lib/paths.js';
import { readCmdline } from '../stage/protect.js';
import { matchStaged, StageStore } from '../stage/store.js';
import { armedWatchdog, type ArmedWatchdog } from './watchdog.js';
import { ESP_DARCH_DIR, MtoolsFat, diskEnvStorage, findEsp, localEnvStorage, localEspDir, readPartitions } from './esp.js';
import { failureFile, parseFailure, readFailure, removeFailure, type TrialFailure } from '../stage/failures.js';
import { Ext4Image } from '../disk/ext4.js';
import { LINUX_TYPE, STAGE_PATH } from '../disk/layout.js';
import { DirEntryFiles, DiskEntryFiles, ENTRIES_DIR, parseEntryName, type EntryFiles } from './sdboot.js';
import type { EnvStorage } from './grubenv.js';
import { bootedFrom, type BootedInfo, type ImageRef } from './state.js';

export interface KnownImage {
  id: string;
  tags: string[];
}

/**
 * The GRUB menu entry id of a staged tag. Must match issue 6's grub.cfg generator
 * (src/boot/grubcfg.ts entryId + staged.ts tagKey): `darch-` + the tag with / → + and : → @.
 */
export function entryIdForTag(tag: string): string {
  return `darch-${tag.replace(/\//g, '+').replace(/:/g, '@')}`;
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
}

/** The declared boot loader; else systemd-boot when darch's BLS entries are on the ESP, GRUB (grubenv) otherwise. */
export async function backendOf(t: BootTarget): Promise<'grub' | 'systemd-boot'> {
  const declared = await t.declaredBootloader().catch(() => undefined);
  if (declared) return declared;
  return (await t.entries.list()).some((f) => parseEntryName(f)) ? 'systemd-boot' : 'grub';
}

export async function localTarget(paths: DarchPaths, espConfigured: string | undefined, lockTimeoutSec: number, bootloader: 'auto' | 'grub' | 'systemd-boot' = 'auto'): Promise<BootTarget> {
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
    async withLock(fn) {
      await mkdir(paths.stateDir, { recursive: true });
      return withLock(path.join(paths.stateDir, 'boot.lock'), 'the boot state', lockTimeoutSec, fn);
    },
  };
}

interface DiskJson {
  images?: Array<{ id?: string; tags?: string[] }>;
  bootloader?: string;
}

export async function diskTarget(device: string, lockTimeoutSec: number): Promise<BootTarget> {
  const storage = await diskEnvStorage(device);
  const esp = await findEsp(device);
  const fat = new MtoolsFat(device, esp.offset);
  let cached: KnownImage[] | undefined;
  let declared: 'grub' | 'systemd-boot' | undefined;
  const images = async (): Promise<KnownImage[]> => {
    if (cached) return cached;
    const raw = await fat.readFile(`${ESP_DARCH_DIR}/disk.json`, 1024 * 1024);
    if (!raw) {
      throw new DarchError('E_NOT_DARCH_DISK', `${device} has no ${ESP_DARCH_DIR}/disk.json on its ESP`, {
        hint: 'give a disk made by `darch disk create`',
      });
    }
    try {
      const doc = JSON.parse(raw.toString('utf8')) as DiskJson;
      cached = (doc.images ?? []).filter((i): i is KnownImage => typeof i.id === 'string' && Array.isArray(i.tags));
      // Disks made before systemd-boot disks existed say nothing: then the ESP's entries tell.
      declared = doc.bootloader === 'systemd-boot' || doc.bootloader === 'grub' ? doc.bootloader : undefined;
    } catch (err) {
      throw new DarchError('E_NOT_DARCH_DISK', `${device}: ${ESP_DARCH_DIR}/disk.json is corrupt: ${(err as Error).message}`, {
        hint: 'recreate the disk with `darch disk create`',
      });
    }
    return cached;
  };
  // The darch partition (ext4), where the trial's boot keeps why it failed.
  const stageFs = async (): Promise<Ext4Image> => {
    const part = (await readPartitions(device)).find((p) => p.type === LINUX_TYPE);
    if (!part) throw new DarchError('E_DISK_FORMAT', `${device} has no darch partition`, { hint: 'is this a disk made by `darch disk create`?' });
    return new Ext4Image(device, part.offset);
  };
  // Lock by the disk's real path, in the system temp directory: never next to a /dev node.
  const key = createHash('sha256').update(path.resolve(device)).digest('hex').slice(0, 16);
  return {
    entries: new DiskEntryFiles(fat),
    kind: 'disk',
    label: device,
    async declaredBootloader() {
      await images();
      return declared;
    },
    storage,
    images,
    async firstEntry() {
      const first = (await images())[0];
      const tag = first?.tags[0];
      return first && tag ? { entry: entryIdForTag(tag), stage: first.id } : undefined;
    },
    booted: async () => undefined,
    watchdog: async () => undefined,
    async failure(stage) {
      const fs = await stageFs();
      return parseFailure(await fs.readText(`${STAGE_PATH}/${failureFile(stage)}`), stage);
    },
    async clearFailure(stage) {
      await (await stageFs()).remove(`${STAGE_PATH}/${failureFile(stage)}`);
    },
    withLock: (fn) => withLock(path.join(os.tmpdir(), `darch-boot-${key}.lock`), `the boot state of ${device}`, lockTimeoutSec, fn),
  };
}

/** STAGED → (menu entry, staged id): a tag (NAME[:TAG], :latest implied), an id, or a unique id prefix. */
export function resolveImage(images: KnownImage[], what: string): ImageRef & { tag: string } {
  const { image: img, tag } = matchStaged(images, what);
  if (tag) return { entry: entryIdForTag(tag), stage: img.id, tag };
  const first = [...img.tags].sort()[0];
  if (!first) {
    throw new DarchError('E_NO_MENU_ENTRY', `staged image ${img.id} has no tag, so it has no boot menu entry`, {
      hint: `tag it first: darch stage tag ${img.id} NAME:TAG`,
    });
  }
  return { entry: entryIdForTag(first), stage: img.id, tag: first };
}

export function tagsOf(images: KnownImage[], stage: string | undefined): string[] {
  return images.find((i) => i.id === stage)?.tags ?? [];
}

/**
 * `darch disk add|remove|list`: a disk made by `darch disk create` takes new images and lets
 * old ones go, keeping its boot state (default, trial, previous, bad). Nothing is mounted:
 * the ext4 partition through debugfs, the ESP through mtools, as `disk create` wrote them.
 *
 * Crash safety: the disk boots its default whatever step an interruption stops. An image
 * becomes bootable in this order: its files (under a directory nothing names yet), its
 * systemd-boot kernel copies and entry, images.json, the GRUB menu, and disk.json last (what
 * `darch boot … --disk` offers). Removal runs the other way round: first nothing names it,
 * then its files go. Files a crash left unnamed are swept by the next add or remove.
 */
import { lstat, readdir } from 'node:fs/promises';
import path from 'node:path';
import { DarchError } from '../lib/errors.js';
import type { DarchPaths } from '../lib/paths.js';
import { formatBytes } from '../lib/format.js';
import { silentReporter, type Reporter } from '../lib/report.js';
import { subFiles } from '../lib/smallfs.js';
import { listStaged, type BootableImage } from '../boot/shared/staged.js';
import { matchStaged } from '../stage/store.js';
import { readImagesFile, writeImagesFile } from '../stage/images-json.js';
import { failureFile } from '../stage/failures.js';
import { LIVE_DIR, liveRel } from '../stage/layout.js';
import { changeState, readState } from '../boot/bootstate.js';
import { backendOf, type BootTarget, type KnownImage } from '../boot/target.js';
import { forgetImage, type Transition } from '../boot/trial/state.js';
import { rolesIn, type StateRole } from '../boot/status.js';
import { readDiskJson, rewriteDiskJson, type DiskInfo } from '../boot/shared/disk-json.js';
import { MtoolsFat, findEsp } from '../boot/shared/esp.js';
import { blsEntryFor, espBytesFor, espCopiesOf, espTooSmall, ESP_IMAGE_DIR } from '../boot/sdboot/sdboot-sync.js';
import { entryName, parseEntryName, renderBlsEntry, retune, trialArgsOf, VERSION } from '../boot/sdboot/sdboot.js';
import { DEFAULT_KERNEL_ARGS } from './create.js';
import { resolveOnDisk } from './defaults.js';
import { STAGE_PATH } from './layout.js';
import { diskImages, diskStageFs, diskStageLocation, writeDiskMenu } from './menu.js';
import { diskTarget } from './target.js';
import type { Ext4Image } from './ext4.js';

const BLOCK = 4096;
/** Only darch writes the darch partition: what e2fsck reconnects here is what an interrupted darch change left. */
const LOST_FOUND = '/lost+found';

export interface DiskImageRow {
  id: string;
  tags: string[];
  /** What the boot state says of it. */
  roles: StateRole[];
  /** Bytes of its files in the darch partition. */
  bytes: number;
}

export interface DiskListing {
  disk: string;
  bootloader: 'grub' | 'systemd-boot';
  images: DiskImageRow[];
  trialTries?: number;
  free: { darch: number; esp: number };
  /** Partition sizes, as disk.json records them (disks made by older versions may not). */
  size: { darch?: number; esp?: number };
}

/** What a darch disk holds, what its boot state says of each image, and the room left on both partitions. */
export async function listDisk(disk: string, lockTimeoutSec: number): Promise<DiskListing> {
  const t = await diskTarget(disk, lockTimeoutSec);
  const fat = new MtoolsFat(disk, (await findEsp(disk)).offset);
  const info = await readDiskJson(fat);
  const images = info.images;
  const { state } = await readState(t);
  const fs = await diskStageFs(disk);
  const rows = await Promise.all(
    images.map(
      async (i): Promise<DiskImageRow> => ({
        id: i.id,
        tags: i.tags,
        roles: rolesIn(state, i.id),
        bytes: await fs.treeBytes(`${STAGE_PATH}/${liveRel(i.id)}`),
      }),
    ),
  );
  return {
    disk,
    bootloader: await backendOf(t),
    images: rows,
    ...(state.trial ? { trialTries: state.tries } : {}),
    free: { darch: await fs.freeBytes(), esp: await fat.freeBytes() },
    size: { darch: info.darchSize, esp: info.espSize },
  };
}

export interface AddResult {
  disk: string;
  /** Images copied onto the disk. */
  added: KnownImage[];
  /** Images the disk had, now with more tags. */
  tagged: KnownImage[];
  bytes: number;
  free: number;
}

interface Chosen {
  image: BootableImage;
  tags: string[];
}

/** Staged images by the user's names, their tags merged per id, in the order named. */
function chooseLocal(all: BootableImage[], what: string[]): Chosen[] {
  const byId = new Map<string, Chosen>();
  for (const w of what) {
    const { image, tag } = matchStaged(all, w);
    const c = byId.get(image.id) ?? { image, tags: [] };
    for (const t of tag ? [tag] : image.tags) if (!c.tags.includes(t)) c.tags.push(t);
    byId.set(image.id, c);
  }
  return [...byId.values()];
}

/** Bytes a host directory takes in ext4: each file rounded up to blocks, one block per inode for metadata. */
async function ext4Bytes(dir: string): Promise<number> {
  let n = BLOCK;
  for (const ent of await readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, ent.name);
    if (ent.isDirectory()) n += await ext4Bytes(p);
    else n += Math.ceil((await lstat(p)).size / BLOCK) * BLOCK + BLOCK;
  }
  return n;
}

/** Everything that changes what a disk holds runs under the lock of its boot state. */
async function withDisk<T>(
  disk: string,
  lockTimeoutSec: number,
  report: Reporter,
  fn: (t: BootTarget, info: DiskInfo, fs: Ext4Image, fat: MtoolsFat) => Promise<T>,
): Promise<T> {
  const t = await diskTarget(disk, lockTimeoutSec);
  return t.withLock(async () => {
    const fat = new MtoolsFat(disk, (await findEsp(disk)).offset);
    const info = await readDiskJson(fat);
    const fs = await diskStageFs(disk);
    if (await fs.repair()) report.warn(`${disk}: repaired its darch partition (an earlier change was interrupted)`);
    for (const name of await fs.list(LOST_FOUND)) await fs.removeTree(`${LOST_FOUND}/${name}`);
    return fn({ ...t, withLock: (f) => f() }, info, fs, fat);
  });
}

/** Image directories in the darch partition that neither images.json nor disk.json names: what a crash left. */
async function sweepUnnamed(fs: Ext4Image, keep: Set<string>): Promise<string[]> {
  const swept: string[] = [];
  for (const id of await fs.list(`${STAGE_PATH}/${LIVE_DIR}`)) {
    if (keep.has(id)) continue;
    await fs.removeTree(`${STAGE_PATH}/${liveRel(id)}`);
    swept.push(id);
  }
  return swept;
}

export async function addToDisk(paths: DarchPaths, disk: string, what: string[], opts: { lockTimeoutSec: number; report?: Reporter }): Promise<AddResult> {
  const report = opts.report ?? silentReporter;
  const chosen = chooseLocal(await listStaged(paths.stageDir), what);
  return withDisk(disk, opts.lockTimeoutSec, report, async (t, info, fs, fat) => {
    const stage = subFiles(fs, STAGE_PATH);
    const named = await readImagesFile(stage);
    const onDisk = new Map(info.images.map((i) => [i.id, i]));
    // A tag names one image, on a disk as in a stage.
    for (const c of chosen) {
      for (const tag of c.tags) {
        const other = info.images.find((i) => i.id !== c.image.id && i.tags.includes(tag));
        if (other) {
          throw new DarchError('E_USAGE', `${tag} already names another image on ${disk} (${other.id})`, {
            hint: `remove that one first (darch disk remove ${disk} ${other.id}), or add this image under another tag`,
          });
        }
      }
    }
    const fresh = chosen.filter((c) => !onDisk.has(c.image.id));
    // disk.json says what the disk holds; anything else in live/ is what a crash left.
    const swept = await sweepUnnamed(fs, new Set([...onDisk.keys(), ...fresh.map((c) => c.image.id)]));
    if (swept.length) report.info(`removed what an interrupted change left on ${disk}: ${swept.join(', ')}`);

    // Room first, with the numbers, before anything is written.
    let need = 0;
    for (const c of fresh) need += await ext4Bytes(c.image.dir);
    // A leftover of an interrupted add of the same image is replaced: its room comes back.
    for (const c of fresh) need -= await fs.treeBytes(`${STAGE_PATH}/${liveRel(c.image.id)}`);
    const free = await fs.freeBytes();
    if (need + 1024 * 1024 > free) {
      throw new DarchError(
        'E_DISK_FULL',
        `${fresh.map((c) => c.tags[0] ?? c.image.id).join(', ')} need ${formatBytes(need)} in the darch partition of ${disk}, which has ${formatBytes(free)} free`,
        {
          hint: `remove an image from the disk first (darch disk remove ${disk} NAME:TAG), or make a bigger disk with darch disk create --size`,
        },
      );
    }
    const sdboot = (await backendOf(t)) === 'systemd-boot';
    if (sdboot && fresh.length) {
      const espNeed = await espBytesFor(fresh.map((c) => c.image));
      const espFree = await fat.freeBytes();
      if (espNeed + 64 * 1024 > espFree)
        throw espTooSmall(
          espNeed,
          fresh.length,
          `the ESP of ${disk} has ${formatBytes(espFree)} free`,
          `remove an image from the disk first (darch disk remove ${disk} NAME:TAG)`,
        );
    }

    let bytes = 0;
    for (const c of fresh) {
      const dir = `${STAGE_PATH}/${liveRel(c.image.id)}`;
      report.step(`copying ${c.tags.join(', ') || c.image.id} onto ${disk}`);
      await fs.removeTree(dir);
      await fs.putTree(c.image.dir, dir);
      bytes += await fs.treeBytes(dir);
      if (sdboot) {
        const loc = diskStageLocation(info, disk);
        for (const copy of await espCopiesOf(c.image)) await fat.put(copy.src, `${ESP_IMAGE_DIR}/${c.image.id}/${copy.name}`);
        const img = { ...c.image, tags: c.tags };
        await t.entries.write(entryName(c.image.id), renderBlsEntry(blsEntryFor(img, loc, info.kernelArgs ?? DEFAULT_KERNEL_ARGS), VERSION.other));
        await fat.sync();
      }
    }

    const merged = (id: string, old: string[]) => [...new Set([...old, ...(chosen.find((c) => c.image.id === id)?.tags ?? [])])];
    const images: Record<string, { tags: string[] }> = {};
    for (const i of info.images) images[i.id] = { tags: merged(i.id, named.images[i.id]?.tags ?? i.tags) };
    for (const c of fresh) images[c.image.id] = { tags: c.tags };
    await writeImagesFile(stage, { version: 1, images });
    const { state } = await readState(t);
    await writeDiskMenu(disk, state.default?.entry);

    const list = [...info.images.map((i) => ({ id: i.id, tags: merged(i.id, i.tags) })), ...fresh.map((c) => ({ id: c.image.id, tags: c.tags }))];
    await rewriteDiskJson(fat, { ...info, images: list });
    const tagged = chosen.filter((c) => onDisk.has(c.image.id) && c.tags.some((tg) => !onDisk.get(c.image.id)?.tags.includes(tg)));
    return {
      disk,
      added: fresh.map((c) => ({ id: c.image.id, tags: c.tags })),
      tagged: tagged.map((c) => ({ id: c.image.id, tags: merged(c.image.id, onDisk.get(c.image.id)?.tags ?? []) })),
      bytes,
      free: await fs.freeBytes(),
    };
  });
}

export interface RemoveResult {
  disk: string;
  removed: KnownImage[];
  free: number;
}

export async function removeFromDisk(disk: string, what: string[], opts: { lockTimeoutSec: number; report?: Reporter }): Promise<RemoveResult> {
  const report = opts.report ?? silentReporter;
  return withDisk(disk, opts.lockTimeoutSec, report, async (t, info, fs, fat) => {
    const ids = [...new Set(what.map((w) => resolveOnDisk(info.images, w, disk).stage))];
    const gone = info.images.filter((i) => ids.includes(i.id));
    const name = (id: string) => info.images.find((i) => i.id === id)?.tags.join(', ') || id;
    const sdboot = (await backendOf(t)) === 'systemd-boot';
    if (!sdboot) {
      // The boot state first: the default and the trial are refused before anything changes.
      await changeState(t, (s) => {
        let tr: Transition = { state: s, changed: false, message: '' };
        for (const id of ids) {
          const next = forgetImage(tr.state, id, name(id));
          tr = { ...next, changed: tr.changed || next.changed };
        }
        return tr;
      });
    } else {
      const { state } = await readState(t);
      for (const id of ids) forgetImage(state, id, name(id));
    }

    // Nothing names them any more, then their files go.
    const left = info.images.filter((i) => !ids.includes(i.id));
    await rewriteDiskJson(fat, { ...info, images: left });
    const stage = subFiles(fs, STAGE_PATH);
    const named = await readImagesFile(stage);
    const keep = new Set(left.map((i) => i.id));
    await writeImagesFile(stage, { version: 1, images: Object.fromEntries(Object.entries(named.images).filter(([id]) => keep.has(id))) });
    const { state } = await readState(t);
    await writeDiskMenu(disk, state.default?.entry);
    if (sdboot) {
      for (const f of await t.entries.list()) if (ids.includes(parseEntryName(f)?.stage ?? '')) await t.entries.remove(f);
      for (const id of ids) await fat.removeTree(`${ESP_IMAGE_DIR}/${id}`);
      await fat.sync();
    }
    for (const id of ids) {
      report.step(`removing ${name(id)} from ${disk}`);
      await fs.removeTree(`${STAGE_PATH}/${liveRel(id)}`);
      await fs.remove(`${STAGE_PATH}/${failureFile(id)}`);
    }
    await sweepUnnamed(fs, keep);
    return { disk, removed: gone.map((i) => ({ id: i.id, tags: i.tags })), free: await fs.freeBytes() };
  });
}

export interface KernelArgsResult {
  disk: string;
  kernelArgs: string;
  previous: string;
  changed: boolean;
}

/**
 * `darch disk kernel-args DISK ARGS`: the arguments every entry of the disk boots with
 * (`--kernel-args` of `disk create`). disk.json first (what every later menu rewrite reads),
 * then what boots: GRUB's menu sets them (grubcfg.ts), systemd-boot's entries carry them,
 * rewritten under their current names so trial counters and versions stay.
 */
export async function setDiskKernelArgs(disk: string, args: string, opts: { lockTimeoutSec: number; report?: Reporter }): Promise<KernelArgsResult> {
  const kernelArgs = args.trim().replace(/\s+/g, ' ');
  if (/[\n\r]/.test(args))
    throw new DarchError('E_USAGE', 'kernel arguments are one line', { hint: 'darch disk kernel-args disk.img "console=ttyS0,115200 quiet"' });
  return withDisk(disk, opts.lockTimeoutSec, opts.report ?? silentReporter, async (t, info, fs, fat) => {
    const previous = info.kernelArgs ?? DEFAULT_KERNEL_ARGS;
    await rewriteDiskJson(fat, { ...info, kernelArgs });
    if ((await backendOf(t)) === 'systemd-boot') {
      const loc = diskStageLocation(info, disk);
      const images = await diskImages(fs);
      for (const f of await t.entries.list()) {
        const img = images.find((i) => i.id === parseEntryName(f)?.stage);
        if (!img) continue;
        const text = await t.entries.read(f);
        const version = Number(/^version (\d+)/m.exec(text)?.[1] ?? VERSION.other);
        const fresh = renderBlsEntry(blsEntryFor(img, loc, kernelArgs), version);
        await t.entries.write(f, retune(fresh, version, trialArgsOf(text)));
      }
      await fat.sync();
    } else {
      const { state } = await readState(t);
      await writeDiskMenu(disk, state.default?.entry);
    }
    return { disk, kernelArgs, previous, changed: previous !== kernelArgs };
  });
}

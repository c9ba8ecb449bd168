/**
 * The GRUB menu inside a darch disk (`/stage/grub.cfg` in its ext4 partition), regenerated
 * from the disk's own staged images with the boot state's default first: the first entry
 * is what GRUB boots when the state on the ESP is lost, so it must follow the default when
 * `darch boot set-default|rollback|mark-good --disk` changes it.
 */
import { DarchError } from '../lib/errors.js';
import { subFiles } from '../lib/smallfs.js';
import { entryId, menuEntries, renderGrubCfg } from '../boot/grub/grubcfg.js';
import { findEsp, MtoolsFat, readPartitions } from '../boot/shared/esp.js';
import { readDiskJson, type DiskInfo } from '../boot/shared/disk-json.js';
import type { StageLocation } from '../boot/shared/location.js';
import { listBootable, type BootableImage } from '../boot/shared/staged.js';
import { GRUB_CFG, liveRel } from '../stage/layout.js';
import { Ext4Image } from './ext4.js';
import { LINUX_TYPE, STAGE_PATH } from './layout.js';

/** The darch partition of a disk (ext4, through debugfs). */
export async function diskStageFs(disk: string): Promise<Ext4Image> {
  const part = (await readPartitions(disk)).find((p) => p.type === LINUX_TYPE);
  if (!part) throw new DarchError('E_DISK_FORMAT', `${disk} has no darch partition`, { hint: 'is this a disk made by `darch disk create`?' });
  return new Ext4Image(disk, part.offset);
}

/** The staged images of a disk, as its ext4 partition holds them (newest first, like listStaged). */
export function diskImages(fs: Ext4Image): Promise<BootableImage[]> {
  return listBootable({ files: subFiles(fs, STAGE_PATH), dirOf: (id) => `${STAGE_PATH}/${liveRel(id)}`, fallbackTime: async () => new Date(0) });
}

/** Where a disk's boot entries find its stage: the darch partition's UUID (disk.json) and /stage. */
export function diskStageLocation(info: DiskInfo, disk: string): StageLocation {
  if (!info.darchUuid) {
    throw new DarchError('E_NOT_DARCH_DISK', `${disk}: its disk.json does not say the darch partition's UUID`, {
      hint: 'a disk made by `darch disk create` has it',
    });
  }
  return { uuid: info.darchUuid, path: STAGE_PATH };
}

/**
 * Rewrite the disk's grub.cfg from the images its ext4 partition names, with the entry
 * `defaultEntry` (a menu entry id) first, or the first image's when it is not given.
 * Returns false when the disk is not a GRUB disk or its menu is already that.
 */
export async function writeDiskMenu(disk: string, defaultEntry?: string): Promise<boolean> {
  const info = await readDiskJson(new MtoolsFat(disk, (await findEsp(disk)).offset));
  if (info.bootloader && info.bootloader !== 'grub') return false;
  const loc = diskStageLocation(info, disk);
  const fs = await diskStageFs(disk);
  const images = await diskImages(fs);
  let defaultTag: string | undefined;
  if (defaultEntry) {
    defaultTag = images.flatMap((i) => i.tags).find((t) => entryId(t) === defaultEntry);
    if (!defaultTag) throw new DarchError('E_NOT_STAGED', `${defaultEntry} is not a menu entry of ${disk}`);
  }
  const text = renderGrubCfg(menuEntries(images, loc, defaultTag), loc, info.kernelArgs);
  const file = `${STAGE_PATH}/${GRUB_CFG}`;
  if ((await fs.readText(file)) === text) return false;
  await fs.replaceText(file, text);
  return true;
}

/** Keep the default first in the disk's menu after the boot state changed it. */
export function reorderDiskMenu(disk: string, defaultEntry: string): Promise<boolean> {
  return writeDiskMenu(disk, defaultEntry);
}

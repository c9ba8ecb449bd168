/**
 * The GRUB menu inside a darch disk (`/stage/grub.cfg` in its ext4 partition), regenerated
 * from the disk's own staged images with the boot state's default first: the first entry
 * is what GRUB boots when the state on the ESP is lost, so it must follow the default when
 * `darch boot set-default|rollback|mark-good --disk` changes it.
 */
import { DarchError } from '../lib/errors.js';
import { entryId, menuEntries, renderGrubCfg } from '../boot/grubcfg.js';
import { readPartitions } from '../boot/esp.js';
import type { StagedImage, StagedImageJson } from '../boot/staged.js';
import { Ext4Image } from './ext4.js';
import { readDiskInfo } from './defaults.js';
import { LINUX_TYPE, STAGE_PATH } from './layout.js';

function parse<T>(text: string | undefined, what: string, disk: string): T {
  if (text === undefined) throw new DarchError('E_DISK_FORMAT', `${disk} has no ${what} in its darch partition`, { hint: 'is this a disk made by `darch disk create`?' });
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new DarchError('E_DISK_FORMAT', `${disk}: ${what} in its darch partition is corrupt`, { hint: 'create the disk again' });
  }
}

/** The staged images of a disk, as its ext4 partition holds them (newest first, like listStaged). */
async function diskImages(fs: Ext4Image, disk: string): Promise<StagedImage[]> {
  const doc = parse<{ images?: Record<string, { tags?: string[] }> }>(await fs.readText(`${STAGE_PATH}/images.json`), `${STAGE_PATH}/images.json`, disk);
  const out: StagedImage[] = [];
  for (const [id, v] of Object.entries(doc.images ?? {})) {
    const dir = `${STAGE_PATH}/live/${id}`;
    const image = parse<StagedImageJson>(await fs.readText(`${dir}/image.json`), `${dir}/image.json`, disk);
    const meta = await fs.readText(`${dir}/meta.json`);
    let created = new Date(0);
    try {
      if (meta) created = new Date((JSON.parse(meta) as { created?: string }).created ?? 0);
    } catch {
      /* meta.json is optional */
    }
    out.push({ id, tags: [...(v.tags ?? [])].sort(), dir, image, created });
  }
  return out.sort((a, b) => b.created.getTime() - a.created.getTime() || a.id.localeCompare(b.id));
}

/**
 * Rewrite the disk's grub.cfg with the entry `defaultEntry` (a menu entry id) first.
 * Returns false when the disk is not a GRUB disk or already lists it first.
 */
export async function reorderDiskMenu(disk: string, defaultEntry: string): Promise<boolean> {
  const info = await readDiskInfo(disk);
  if (info.bootloader && info.bootloader !== 'grub') return false;
  const part = (await readPartitions(disk)).find((p) => p.type === LINUX_TYPE);
  if (!part) throw new DarchError('E_DISK_FORMAT', `${disk} has no darch partition`, { hint: 'is this a disk made by `darch disk create`?' });
  const fs = new Ext4Image(disk, part.offset);
  const images = await diskImages(fs, disk);
  const defaultTag = images.flatMap((i) => i.tags).find((t) => entryId(t) === defaultEntry);
  if (!defaultTag) throw new DarchError('E_NOT_STAGED', `${defaultEntry} is not a menu entry of ${disk}`);
  const loc = { uuid: info.darchUuid, path: STAGE_PATH };
  const text = renderGrubCfg(menuEntries(images, loc, defaultTag), loc);
  const file = `${STAGE_PATH}/grub.cfg`;
  if ((await fs.readText(file)) === text) return false;
  await fs.replaceText(file, text);
  return true;
}

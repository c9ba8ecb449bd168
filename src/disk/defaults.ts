/** A darch disk from outside: where its ESP is, what its disk.json says, which image it boots by default. */
import { DarchError } from '../lib/errors.js';
import { resolveImage, type KnownImage } from '../boot/target.js';
import { matchStaged } from '../stage/store.js';
import { changeState } from '../boot/bootstate.js';
import { setDefault, type ImageRef } from '../boot/trial/state.js';
import { diskTarget } from './target.js';
import { ESP_TYPE } from './layout.js';
import { readGpt } from './tools.js';
import { readDiskJson, type DiskInfo } from '../boot/shared/disk-json.js';
import { MtoolsFat } from '../boot/shared/esp.js';

export async function espOffset(disk: string): Promise<number> {
  const gpt = await readGpt(disk);
  const esp = gpt.partitions.find((p) => p.type.toUpperCase() === ESP_TYPE);
  if (!esp) throw new DarchError('E_DISK_FORMAT', `${disk} has no EFI system partition`, { hint: 'is this a disk made by `darch disk create`?' });
  return esp.start * gpt.sectorsize;
}

/** disk.json of a darch disk (src/boot/shared/disk-json.ts), and where its ESP starts. */
export async function readDiskInfo(disk: string): Promise<DiskInfo & { espOffset: number }> {
  const off = await espOffset(disk);
  return { ...(await readDiskJson(new MtoolsFat(disk, off))), espOffset: off };
}

export interface SetDefaultResult {
  tag: string;
  id: string;
  entry: string;
  changed: boolean;
  /** Problems after the state was saved (the disk's menu order), for the caller to report. */
  warnings: string[];
}

/** `darch disk set-default`: the same change as `darch boot set-default --disk`. */
export async function setDiskDefault(disk: string, what: string, lockTimeoutSec: number, local: KnownImage[] = []): Promise<SetDefaultResult> {
  const t = await diskTarget(disk, lockTimeoutSec);
  let target: (ImageRef & { tag: string }) | undefined;
  const res = await changeState(t, (s, images) => {
    target = resolveOnDisk(images, what, disk, local);
    return setDefault(s, target);
  });
  const r = target!;
  return { tag: r.tag, id: r.stage, entry: r.entry, changed: res.transition.changed, warnings: res.warnings };
}

/**
 * resolveImage, with a message that says which images the disk has, and, when the image is
 * staged on this machine but not on the disk, how to put it there.
 */
export function resolveOnDisk(images: KnownImage[], what: string, disk: string, local: KnownImage[] = []): ImageRef & { tag: string } {
  try {
    return resolveImage(images, what);
  } catch (err) {
    if (!(err instanceof DarchError) || err.code !== 'E_NOT_STAGED') throw err;
    const here = (() => {
      try {
        return matchStaged(local, what);
      } catch {
        return undefined;
      }
    })();
    if (here)
      throw new DarchError('E_NOT_STAGED', `${what} is staged here but not on ${disk}`, { hint: `add it to the disk first: darch disk add ${disk} ${what}` });
    throw new DarchError('E_NOT_STAGED', `${what} is not on ${disk}`, { hint: `on the disk: ${images.flatMap((i) => i.tags).join(', ') || 'nothing'}` });
  }
}

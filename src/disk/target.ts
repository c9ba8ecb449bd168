/**
 * A disk made by `darch disk create` as the target of `darch boot … --disk` and `darch disk
 * set-default`: its ESP through mtools (the grubenv copies or the systemd-boot entries), its
 * images from the ESP's disk.json, the trial failure records and the GRUB menu in its ext4
 * partition. Nothing is mounted.
 */
import os from 'node:os';
import path from 'node:path';
import { withLock } from '../lib/lock.js';
import { digestHex, sha256 } from '../oci/digest.js';
import { readDiskJson } from '../boot/shared/disk-json.js';
import { MtoolsFat, findEsp } from '../boot/shared/esp.js';
import { diskEnvStorage } from '../boot/grub/grubenv.js';
import { DiskEntryFiles } from '../boot/sdboot/sdboot.js';
import { entryId } from '../boot/grub/grubcfg.js';
import type { BootTarget, KnownImage } from '../boot/target.js';
import { failureFile, parseFailure } from '../stage/failures.js';
import { STAGE_PATH } from './layout.js';
import { diskStageFs, reorderDiskMenu } from './menu.js';

export async function diskTarget(device: string, lockTimeoutSec: number): Promise<BootTarget> {
  const storage = await diskEnvStorage(device);
  const esp = await findEsp(device);
  const fat = new MtoolsFat(device, esp.offset);
  let cached: KnownImage[] | undefined;
  let declared: 'grub' | 'systemd-boot' | undefined;
  const images = async (): Promise<KnownImage[]> => {
    if (cached) return cached;
    const doc = await readDiskJson(fat);
    cached = doc.images;
    // Disks made before systemd-boot disks existed say nothing: then the ESP's entries tell.
    declared = doc.bootloader;
    return cached;
  };
  // The darch partition (ext4), where the trial's boot keeps why it failed.
  const stageFs = () => diskStageFs(device);
  // Lock by the disk's real path, in the system temp directory: never next to a /dev node.
  const key = digestHex(sha256(path.resolve(device))).slice(0, 16);
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
      return first && tag ? { entry: entryId(tag), stage: first.id } : undefined;
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
    async followDefault(defaultEntry) {
      await reorderDiskMenu(device, defaultEntry);
    },
    // A disk's menu lists every image on it: `disk add` writes it before the image can be armed.
    ensureInMenu: async () => undefined,
    withLock: (fn) => withLock(path.join(os.tmpdir(), `darch-boot-${key}.lock`), `the boot state of ${device}`, lockTimeoutSec, fn),
  };
}

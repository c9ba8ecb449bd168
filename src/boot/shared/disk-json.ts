/**
 * `EFI/darch/disk.json` on the ESP of a disk made by `darch disk create`: how the disk was
 * made (its partitions, boot loader and kernel arguments) and which staged images it holds,
 * so `darch boot … --disk`, `darch disk info|set-default` and `darch boot sync` on the
 * booted disk read it without mounting anything. The only reader and writer, over the ESP
 * as a directory (mounted) or through mtools.
 */
import { DarchError } from '../../lib/errors.js';
import { contractText, DirFiles, parseContract, type ContractProblem, type SmallFiles } from '../../lib/smallfs.js';
import * as z from '../../lib/zod.js';
import { ESP_DARCH_DIR } from './esp.js';

/** Relative to the ESP's root. */
export const DISK_JSON_PATH = `${ESP_DARCH_DIR}/disk.json`;

// Readers need different parts (the boot state only `images` and `bootloader`), and disks
// made by older versions or by tests carry less: only `images` is required to read.
const DiskInfoSchema = z.lazySchema(() =>
  z.looseObject({
    version: z.optional(z.literal(1)),
    /** ext4 UUID of the darch partition. */
    darchUuid: z.optional(z.string()),
    /** FAT volume serial of the ESP, as GRUB's search --fs-uuid spells it (XXXX-XXXX). */
    espSerial: z.optional(z.string()),
    espOffset: z.optional(z.number()),
    darchOffset: z.optional(z.number()),
    darchSize: z.optional(z.number()),
    kernelArgs: z.optional(z.string()),
    /** Absent on disks made before systemd-boot disks existed: GRUB. */
    bootloader: z.optional(z.enum(['grub', 'systemd-boot'])),
    espSize: z.optional(z.number()),
    created: z.optional(z.string()),
    /** In the order they were named: the first was the default. */
    images: z.array(z.object({ id: z.string(), tags: z.array(z.string()) })),
  }),
);

/** disk.json as read. */
export type DiskInfo = z.infer<ReturnType<typeof DiskInfoSchema>>;

/** disk.json as `darch disk create` writes it: every field. */
export type NewDiskInfo = DiskInfo &
  Required<
    Pick<DiskInfo, 'version' | 'darchUuid' | 'espSerial' | 'espOffset' | 'darchOffset' | 'darchSize' | 'kernelArgs' | 'bootloader' | 'espSize' | 'created'>
  >;

const NOT_DARCH: ContractProblem = { code: 'E_NOT_DARCH_DISK', hint: 'give a disk made by `darch disk create` (or create it again)' };

export async function readDiskJson(esp: SmallFiles): Promise<DiskInfo> {
  const raw = await esp.read(DISK_JSON_PATH, 1024 * 1024);
  if (raw === undefined) throw new DarchError('E_NOT_DARCH_DISK', `${esp.where} has no ${DISK_JSON_PATH}`, { hint: NOT_DARCH.hint });
  return parseContract(DiskInfoSchema(), raw.toString('utf8'), `${esp.where}:/${DISK_JSON_PATH}`, NOT_DARCH);
}

/** disk.json of a disk's ESP, or undefined when it has none or it cannot be read (a machine that is not a darch disk). */
export async function readDiskJsonIfAny(esp: SmallFiles): Promise<DiskInfo | undefined> {
  return readDiskJson(esp).catch(() => undefined);
}

/** The kernel arguments of the darch disk this machine booted, from disk.json on its mounted ESP (undefined elsewhere). */
export async function mountedDiskKernelArgs(espDir: string): Promise<string | undefined> {
  return (await readDiskJsonIfAny(new DirFiles(espDir)))?.kernelArgs;
}

export async function writeDiskJson(esp: SmallFiles, info: NewDiskInfo): Promise<void> {
  await esp.write(DISK_JSON_PATH, contractText(DiskInfoSchema().parse(info)));
}

/** Rewrite disk.json after a change to what the disk holds (`darch disk add|remove`); older disks keep the fields they lack absent. */
export async function rewriteDiskJson(esp: SmallFiles, info: DiskInfo): Promise<void> {
  await esp.write(DISK_JSON_PATH, contractText(DiskInfoSchema().parse(info)));
}

/**
 * `live/<id>/image.json`, Darch's description of a staged image, as its GRUB and initramfs
 * code read it: `{"kernel","initramfs"?,"rootfs","kernelparams"?}`, each file a name inside
 * the image's directory. Also the names darch gives those files. The only reader and writer.
 */
import { DarchError } from '../lib/errors.js';
import { contractText, parseContract, type ContractProblem, type SmallFiles } from '../lib/smallfs.js';
import * as z from '../lib/zod.js';
import { liveRel } from './layout.js';

export const IMAGE_JSON = 'image.json';
export const ROOTFS_FILE = 'rootfs.squash';
export const KERNEL_FILE = 'vmlinuz';
export const INITRD_FILE = 'initrd.img';

const fileName = () =>
  z.string().check(
    z.minLength(1),
    z.refine((s) => !s.includes('/'), 'a file name inside the image directory, without /'),
  );

// loose: the original Darch's tools may add fields; darch keeps them when it rewrites the file.
const hex = (n: number) => z.string().check(z.regex(new RegExp(`^[0-9a-f]{${n}}$`), `${n} lowercase hex digits`));

/** dm-verity over the squashfs (src/stage/verity.ts): what the entry's command line carries. */
const VeritySchema = z.lazySchema(() =>
  z.object({
    /** The hash tree's root hash. */
    roothash: hex(64),
    salt: hex(64),
    /** 4 KiB blocks of the squashfs the tree covers. */
    blocks: z.number().check(z.int(), z.positive()),
    algorithm: z.literal('sha256'),
  }),
);

export type VerityParams = z.infer<ReturnType<typeof VeritySchema>>;

const ImageJsonSchema = z.lazySchema(() =>
  z.looseObject({
    kernel: fileName(),
    initramfs: z.optional(fileName()),
    rootfs: fileName(),
    kernelparams: z.optional(z.string()),
    /** Set when the squashfs is staged with dm-verity; its hash tree is `<rootfs>.verity`. */
    verity: z.optional(VeritySchema()),
  }),
);

export type ImageJson = z.infer<ReturnType<typeof ImageJsonSchema>>;

/**
 * The kernel parameters that make the initramfs map the squashfs through dm-verity (none for
 * an image staged without it). Both boot loaders' entries take them from here.
 */
export function verityKernelArgs(doc: Pick<ImageJson, 'verity'>): string[] {
  const v = doc.verity;
  return v ? [`darch_verity=${v.roothash}`, `darch_verity_salt=${v.salt}`, `darch_verity_blocks=${v.blocks}`] : [];
}
/** What booting needs: an image.json that names an initramfs. */
export type BootImageJson = ImageJson & { initramfs: string };

const CORRUPT: ContractProblem = { code: 'E_STAGE_CORRUPT', hint: 'stage the image again' };

/** image.json of staged image `id`, under a stage directory's files. */
export async function readImageJson(stage: SmallFiles, id: string): Promise<ImageJson> {
  const file = liveRel(id, IMAGE_JSON);
  const raw = await stage.read(file);
  if (raw === undefined) throw new DarchError('E_STAGE_CORRUPT', `staged image ${id} has no ${IMAGE_JSON} (${stage.where}/${file})`, CORRUPT);
  return parseContract(ImageJsonSchema(), raw.toString('utf8'), `${stage.where}/${file}`, CORRUPT);
}

/** The same, for an image directory being staged (the files directly under `dir`). */
export async function readImageJsonIn(dir: SmallFiles): Promise<ImageJson> {
  const raw = await dir.read(IMAGE_JSON);
  if (raw === undefined) throw new DarchError('E_STAGE_CORRUPT', `${dir.where} has no ${IMAGE_JSON}`, CORRUPT);
  return parseContract(ImageJsonSchema(), raw.toString('utf8'), `${dir.where}/${IMAGE_JSON}`, CORRUPT);
}

export async function writeImageJsonIn(dir: SmallFiles, doc: ImageJson): Promise<void> {
  await dir.write(IMAGE_JSON, contractText(ImageJsonSchema().parse(doc)));
}

export function requireInitramfs(doc: ImageJson, id: string): BootImageJson {
  if (!doc.initramfs) throw new DarchError('E_STAGE_CORRUPT', `staged image ${id}: image.json has no valid "initramfs"`, CORRUPT);
  return { ...doc, initramfs: doc.initramfs };
}

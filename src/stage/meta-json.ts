/**
 * `live/<id>/meta.json`: where a staged image came from, when, and the size and sha256 of
 * every file of its directory (what bundles and `stage verify` check). The only reader and
 * writer. darch writes every field; a reader accepts less (images staged by the original
 * Darch or by older versions have only some, and a disk's copy is rewritten with its own
 * `created`).
 */
import { DarchError } from '../lib/errors.js';
import { contractText, parseContract, type ContractProblem, type SmallFiles } from '../lib/smallfs.js';
import * as z from '../lib/zod.js';
import { liveRel } from './layout.js';

export const META_JSON = 'meta.json';

const MetaSchema = z.lazySchema(() =>
  z.looseObject({
    schemaVersion: z.optional(z.literal(1)),
    id: z.string(),
    source: z.optional(
      z.looseObject({
        name: z.optional(z.string()),
        digest: z.optional(z.string()),
        manifestDigest: z.optional(z.string()),
        /** The image's config digest (its id): the same image under a re-annotated manifest. */
        config: z.optional(z.string()),
        /** org.opencontainers.image.version of the manifest or the config's labels, if set. */
        version: z.optional(z.string()),
        layers: z.optional(z.number()),
      }),
    ),
    created: z.string(),
    /** Where in the image the kernel and initramfs came from. */
    kernel: z.optional(z.object({ path: z.string(), version: z.optional(z.string()), from: z.string() })),
    initramfs: z.optional(z.object({ path: z.string(), from: z.string() })),
    kernelparams: z.optional(z.string()),
    compression: z.optional(z.string()),
    blockSize: z.optional(z.number()),
    /** sqfstar or tar2sqfs. */
    writer: z.optional(z.string()),
    /** 1: layers read once, top-down; 2: indexed first (sqfstar, --two-pass, or a fallback). */
    passes: z.optional(z.union([z.literal(1), z.literal(2)])),
    /**
     * The boot order the squashfs was written in (docs/BOOT-ORDER.md): where it came from, how
     * many files it lists, how many bytes of the squashfs its boot reads ahead (readahead.ts).
     */
    order: z.optional(z.looseObject({ source: z.string(), files: z.number(), readahead: z.optional(z.number()) })),
    /** Every file of the staged directory (relative path) → size and sha256. */
    sizes: z.optional(z.record(z.string(), z.number())),
    sha256: z.optional(z.record(z.string(), z.string())),
    totalSize: z.optional(z.number()),
  }),
);

/** meta.json as read: what any staged image's file may hold. */
export type StagedMeta = z.infer<ReturnType<typeof MetaSchema>>;

/** meta.json as darch writes it when it stages an image: every field. */
export type NewStagedMeta = StagedMeta & {
  schemaVersion: 1;
  source: { name?: string; digest: string; manifestDigest: string; config: string; version?: string; layers: number };
  kernel: { path: string; version?: string; from: string };
  compression: string;
  blockSize: number;
  sizes: Record<string, number>;
  sha256: Record<string, string>;
  totalSize: number;
};

const CORRUPT: ContractProblem = { code: 'E_STAGE_CORRUPT', hint: 'stage the image again' };

export function parseMeta(text: string, file: string): StagedMeta {
  return parseContract(MetaSchema(), text, file, CORRUPT);
}

/** meta.json of staged image `id`, under a stage directory's files. */
export async function readMeta(stage: SmallFiles, id: string): Promise<StagedMeta> {
  const file = liveRel(id, META_JSON);
  const raw = await stage.read(file);
  if (raw === undefined) throw new DarchError('E_STAGE_CORRUPT', `staged image ${id} has no ${META_JSON}`, CORRUPT);
  return parseMeta(raw.toString('utf8'), `${stage.where}/${file}`);
}

/** meta.json directly under an image directory (one being staged, imported or copied). */
export async function readMetaIn(dir: SmallFiles): Promise<StagedMeta> {
  const raw = await dir.read(META_JSON);
  if (raw === undefined) throw new DarchError('E_STAGE_CORRUPT', `${dir.where} has no ${META_JSON}`, CORRUPT);
  return parseMeta(raw.toString('utf8'), `${dir.where}/${META_JSON}`);
}

export async function writeMetaIn(dir: SmallFiles, meta: StagedMeta): Promise<void> {
  await dir.write(META_JSON, contractText(meta));
}

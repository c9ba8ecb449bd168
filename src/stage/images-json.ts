/**
 * `<stage>/images.json`, which tags name which staged ids:
 *
 *   {"version":1,"images":{"<id>":{"tags":["name:tag",…]}}}
 *
 * The only reader and writer of the file, for the local stage (StageStore) and a disk's
 * stage alike. A staged image exists once its directory is in live/; this file only names it.
 */
import { contractText, parseContract, type ContractProblem, type SmallFiles } from '../lib/smallfs.js';
import * as z from '../lib/zod.js';

export const IMAGES_JSON = 'images.json';

const ImagesFileSchema = z.lazySchema(() =>
  z.object({
    version: z.optional(z.literal(1)),
    images: z.record(z.string(), z.looseObject({ tags: z._default(z.array(z.string()), []) })),
  }),
);

export interface ImagesFile {
  version: 1;
  images: Record<string, { tags: string[] }>;
}

const CORRUPT: ContractProblem = {
  code: 'E_STAGE_CORRUPT',
  hint: 'restore it, or delete it: staged images stay in live/ and can be tagged again with `darch stage tag <id> <name>`',
};

/** The file's content; an empty list when there is none yet. */
export async function readImagesFile(fs: SmallFiles): Promise<ImagesFile> {
  const raw = await fs.read(IMAGES_JSON);
  if (raw === undefined) return { version: 1, images: {} };
  const doc = parseContract(ImagesFileSchema(), raw.toString('utf8'), `${fs.where}/${IMAGES_JSON}`, CORRUPT);
  return { version: 1, images: Object.fromEntries(Object.entries(doc.images).map(([id, v]) => [id, { tags: v.tags }])) };
}

export async function writeImagesFile(fs: SmallFiles, doc: ImagesFile): Promise<void> {
  await fs.write(IMAGES_JSON, contractText({ version: 1, images: doc.images }));
}

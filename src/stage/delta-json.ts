/**
 * darch-delta.json, the first member of a delta file (src/stage/delta.ts): which image the
 * delta starts from and which it rebuilds, with what checks each step. The only reader and
 * writer of it.
 *
 * - `from`: the base, by its image config digest (what `darch stage list` shows as the
 *   image), and the sha256 and size of its root as `sqfs2tar` reads it back from any
 *   squashfs of that image: the reference the patch was made against.
 * - `to`: the target image's manifest and config, whole (base64; their sha256 are the
 *   digests the image has in its registry, so the staged image is that image), and the
 *   sha256 and size of the tar staging it feeds tar2sqfs (`passes` as staging chose).
 * - `squashfs`: what `darch stage upload` writes from that tar with these options.
 * - `patch`: the zstd frame that follows, and the window it needs to decode.
 */
import { DarchError } from '../lib/errors.js';
import { type ContractProblem, contractText, parseContract } from '../lib/smallfs.js';
import * as z from '../lib/zod.js';
import { SQUASHFS_COMPRESSORS } from './squashfs.js';

export const DELTA_JSON = 'darch-delta.json';
/** The member after it: the zstd patch. */
export const DELTA_PATCH = 'patch.zst';

const BAD: ContractProblem = { code: 'E_BAD_DELTA', hint: 'copy or download the delta again, or stage the image from its layers; nothing was staged' };

const DeltaSchema = z.lazySchema(() => {
  const sha256 = z.string().check(z.regex(/^[0-9a-f]{64}$/, '64 lowercase hex digits'));
  const digest = z.string().check(z.regex(/^sha256:[0-9a-f]{64}$/, 'a sha256 digest'));
  const size = z.number().check(z.int(), z.nonnegative());
  return z.strictObject({
    schemaVersion: z.literal(1),
    kind: z.literal('darch-delta'),
    created: z.string(),
    from: z.strictObject({ name: z.optional(z.string()), config: digest, rootSha256: sha256, rootSize: size }),
    to: z.strictObject({
      name: z.string().check(z.minLength(1)),
      manifestDigest: digest,
      manifest: z.string(),
      config: z.string(),
      rootSha256: sha256,
      rootSize: size,
      passes: z.union([z.literal(1), z.literal(2)]),
    }),
    squashfs: z.strictObject({ compression: z.enum(SQUASHFS_COMPRESSORS), blockSize: size, size, sha256 }),
    patch: z.strictObject({ size, sha256, windowLog: z.number().check(z.int(), z.gte(10), z.lte(31)), level: z.number().check(z.int()) }),
  });
});

export type DeltaInfo = z.infer<ReturnType<typeof DeltaSchema>>;

export function encodeDeltaJson(info: DeltaInfo): Buffer {
  return Buffer.from(contractText(DeltaSchema().parse(info)));
}

export function parseDeltaJson(bytes: Buffer, file: string): DeltaInfo {
  return parseContract(DeltaSchema(), bytes.toString('utf8'), `${file}: ${DELTA_JSON}`, BAD);
}

/** A member the format does not have where it should be. */
export function badDelta(file: string, what: string): DarchError {
  return new DarchError('E_BAD_DELTA', `${file} is not a darch delta: ${what}`, { hint: BAD.hint });
}

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
 * - `patch`: the zstd frames that follow, and the window they need to decode: one against
 *   the base's whole root, or one per segment against parts of it (delta-segments.ts).
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
  const windowLog = z.number().check(z.int(), z.gte(10), z.lte(31));
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
    patch: z.strictObject({
      size,
      sha256,
      windowLog,
      level: z.number().check(z.int()),
      // Absent: one frame against the base's whole root. Present: one frame per segment, in
      // order, each against the base's bytes in `reference` ([start, end) pairs, flattened).
      segments: z.optional(z.array(z.strictObject({ frame: size, output: size, windowLog, reference: z.array(size) }))),
    }),
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

export interface PatchSegment {
  frame: number;
  output: number;
  windowLog: number;
  /** [start, end) ranges of the base's root; undefined: the whole root. */
  reference?: Array<[number, number]>;
}

/** The frames of the patch, checked against each other and both roots: a header that does not add up is a bad delta. */
export function patchSegments(info: DeltaInfo, file: string): PatchSegment[] {
  const segs = info.patch.segments;
  if (!segs) return [{ frame: info.patch.size, output: info.to.rootSize, windowLog: info.patch.windowLog }];
  let frames = 0;
  let output = 0;
  const out: PatchSegment[] = [];
  for (const [i, s] of segs.entries()) {
    frames += s.frame;
    output += s.output;
    if (s.reference.length % 2) throw badDelta(file, `segment ${i} has an odd number of reference offsets`);
    const reference: Array<[number, number]> = [];
    let last = 0;
    for (let k = 0; k < s.reference.length; k += 2) {
      const a = s.reference[k] as number;
      const b = s.reference[k + 1] as number;
      if (a < last || b <= a || b > info.from.rootSize)
        throw badDelta(file, `segment ${i}'s reference [${a}, ${b}) is out of order or outside the base's ${info.from.rootSize} bytes`);
      reference.push([a, b]);
      last = b;
    }
    out.push({ frame: s.frame, output: s.output, windowLog: s.windowLog, reference });
  }
  if (frames !== info.patch.size) throw badDelta(file, `its segments' frames add up to ${frames} bytes, not the patch's ${info.patch.size}`);
  if (output !== info.to.rootSize) throw badDelta(file, `its segments rebuild ${output} bytes, not the root's ${info.to.rootSize}`);
  return out;
}

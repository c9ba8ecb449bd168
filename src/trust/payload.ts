/**
 * The "simple signing" payload a sigstore signature signs (the cosign flavour that skopeo,
 * podman and cosign write and read): the manifest digest and the reference it was signed
 * for. darch writes what containers/image writes (keys sorted, compact, no newline: the
 * full reference with its tag, `optional.creator` and an integer `timestamp`) and reads as
 * strictly as it does: exactly these keys in `critical`, any extra ones in `optional`.
 *
 * The signature covers the payload's bytes, so the bytes are kept as they came: parse
 * them, never re-serialise them.
 */
import { type KeyObject, sign } from 'node:crypto';
import { DarchError } from '../lib/errors.js';
import * as z from '../lib/zod.js';

export const PAYLOAD_TYPE = 'cosign container image signature';
/** The media type of a signature layer in a `sha256-<hex>.sig` manifest. */
export const SIMPLE_SIGNING_MEDIA_TYPE = 'application/vnd.dev.cosign.simplesigning.v1+json';
/** The layer annotation that holds the base64 signature over the payload. */
export const SIGNATURE_ANNOTATION = 'dev.cosignproject.cosign/signature';

const PayloadSchema = z.strictObject({
  critical: z.strictObject({
    identity: z.strictObject({ 'docker-reference': z.string() }),
    image: z.strictObject({ 'docker-manifest-digest': z.string().check(z.regex(/^sha256:[0-9a-f]{64}$/)) }),
    type: z.literal(PAYLOAD_TYPE),
  }),
  optional: z.nullable(z.looseObject({ creator: z.optional(z.string()), timestamp: z.optional(z.int()) })),
});

export interface Payload {
  /** The reference the signer named (`host[:port]/repo:tag`, or a repository for cosign's). */
  reference: string;
  digest: string;
  creator?: string;
  timestamp?: number;
}

/** The payload's bytes for signing `digest` as `reference`. */
export function makePayload(reference: string, digest: string, creator: string, now = new Date()): Buffer {
  const doc = {
    critical: {
      identity: { 'docker-reference': reference },
      image: { 'docker-manifest-digest': digest },
      type: PAYLOAD_TYPE,
    },
    optional: { creator, timestamp: Math.floor(now.getTime() / 1000) },
  };
  return Buffer.from(JSON.stringify(doc));
}

/** A signature of `digest` as `reference`: the payload's bytes and the base64 ECDSA (DER) signature over them. */
export function signDigest(reference: string, digest: string, key: KeyObject, creator: string): { payload: Buffer; signature: string } {
  const payload = makePayload(reference, digest, creator);
  return { payload, signature: sign('sha256', payload, { key, dsaEncoding: 'der' }).toString('base64') };
}

/** The payload in signed bytes; E_UNTRUSTED when it is not one (a signature over something else). */
export function parsePayload(bytes: Uint8Array): Payload {
  let doc: z.output<typeof PayloadSchema>;
  try {
    doc = z.parse(PayloadSchema, JSON.parse(Buffer.from(bytes).toString('utf8')));
  } catch {
    throw new DarchError('E_UNTRUSTED', 'a signature signs something that is not a simple-signing payload for an image');
  }
  return {
    reference: doc.critical.identity['docker-reference'],
    digest: doc.critical.image['docker-manifest-digest'],
    ...(doc.optional?.creator ? { creator: doc.optional.creator } : {}),
    ...(doc.optional?.timestamp !== undefined ? { timestamp: doc.optional.timestamp } : {}),
  };
}

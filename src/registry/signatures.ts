/**
 * Sigstore signatures as the containers tools keep them in a registry ("sigstore
 * attachments"): an OCI image manifest tagged `sha256-<hex>.sig` in the image's own
 * repository, one layer per signature, each layer the payload itself (media type
 * `application/vnd.dev.cosign.simplesigning.v1+json`) with the base64 signature in its
 * `dev.cosignproject.cosign/signature` annotation. skopeo, podman and cosign read and
 * write the same tags, so signatures made by one are found by the others.
 *
 * Reading re-hashes every layer (a registry cannot swap a payload under its signature),
 * and anything that is not an OCI manifest or not a signature layer is skipped, as
 * containers/image does. Writing them is sign.ts.
 */
import { DarchError } from '../lib/errors.js';
import { sha256 } from '../oci/digest.js';
import { MediaType } from '../oci/mediatypes.js';
import { SIGNATURE_ANNOTATION, SIMPLE_SIGNING_MEDIA_TYPE } from '../trust/payload.js';
import type { Signature } from '../trust/verify.js';
import { type RegistryClient, headerValue, readSmall } from './client.js';
import { declaredMediaType, parseJsonText, parseManifest } from '../oci/manifest-json.js';

/** containers/image's cap on a signature's size. */
const MAX_SIGNATURE = 4 * 1024 * 1024;
const LIED = { code: 'E_REGISTRY', hint: 'the registry answered with something that is not a signature manifest; nothing was stored' } as const;

/** The tag that holds the signatures of a manifest digest. */
export function signatureTag(digest: string): string {
  return `${digest.replace(':', '-')}.sig`;
}

export interface SigManifest {
  schemaVersion: 2;
  mediaType: string;
  config: { mediaType: string; digest: string; size: number };
  layers: Array<{ mediaType: string; digest: string; size: number; annotations?: Record<string, string> }>;
}

/** The `.sig` manifest of a digest, or undefined when there is none. */
export async function fetchSigManifest(client: RegistryClient, repo: string, digest: string, scopes: string[]): Promise<SigManifest | undefined> {
  const tag = signatureTag(digest);
  // Docker's type accepted too: a registry converts a manifest the client does not accept
  // (Docker schema 2 to schema 1), which would hide what the tag really holds.
  const res = await client.send({ url: `/v2/${repo}/manifests/${tag}`, headers: { accept: `${MediaType.ociManifest}, ${MediaType.dockerManifest}` }, scopes });
  if (res.status === 404) {
    await res.body.dump().catch(() => undefined);
    return undefined;
  }
  if (res.status !== 200) {
    await res.body.dump().catch(() => undefined);
    throw new DarchError('E_REGISTRY', `${client.host} answered ${res.status} for the signatures of ${repo}@${digest}`);
  }
  const bytes = await readSmall(res.body, MAX_SIGNATURE);
  const ct = (headerValue(res.headers, 'content-type') ?? '').split(';')[0]?.trim();
  const what = `the signature manifest ${repo}:${tag}`;
  const raw = parseJsonText(bytes, what, LIED);
  const mediaType = declaredMediaType(raw) ?? ct;
  if (mediaType !== MediaType.ociManifest) {
    throw new DarchError('E_REGISTRY', `${repo}:${tag} is a ${mediaType}, not the OCI manifest signatures are kept in`);
  }
  return parseManifest(raw, what, LIED) as SigManifest;
}

/** The signatures stored for `digest` in `repo` (none: an empty list). */
export async function fetchSignatures(client: RegistryClient, repo: string, digest: string, scopes: string[]): Promise<Signature[]> {
  const m = await fetchSigManifest(client, repo, digest, scopes);
  const out: Signature[] = [];
  for (const l of m?.layers ?? []) {
    const signature = l.annotations?.[SIGNATURE_ANNOTATION];
    if (l.mediaType !== SIMPLE_SIGNING_MEDIA_TYPE || !signature) continue;
    if (l.size > MAX_SIGNATURE) throw new DarchError('E_REGISTRY', `a signature of ${repo}@${digest} claims ${l.size} bytes`);
    const res = await client.send({ url: `/v2/${repo}/blobs/${l.digest}`, scopes });
    if (res.status !== 200) {
      await res.body.dump().catch(() => undefined);
      throw new DarchError('E_REGISTRY', `${client.host} answered ${res.status} for a signature of ${repo}@${digest}`);
    }
    const payload = await readSmall(res.body, MAX_SIGNATURE);
    if (sha256(payload) !== l.digest) {
      throw new DarchError('E_DIGEST_MISMATCH', `a signature payload of ${repo}@${digest} does not match its digest ${l.digest}`, {
        hint: 'the registry or a proxy changed it; nothing was stored',
      });
    }
    out.push({ payload, signature });
  }
  return out;
}

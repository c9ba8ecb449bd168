/**
 * `darch sign`: sign an image in a registry with a cosign-format key, where skopeo, podman
 * and cosign look for the signature (signatures.ts). The payload names the manifest digest
 * the registry serves for the reference and the reference itself, tag included, as
 * containers/image signs; adding reads what is there, appends, and stores it again: the
 * registry has no compare-and-swap, so two signers at once can lose one signature.
 */
import type { KeyObject } from 'node:crypto';
import { DarchError } from '../lib/errors.js';
import { sha256 } from '../oci/digest.js';
import { MediaType } from '../oci/mediatypes.js';
import { parseRef } from '../oci/reference.js';
import { SIGNATURE_ANNOTATION, SIMPLE_SIGNING_MEDIA_TYPE, signDigest } from '../trust/payload.js';
import type { Signature } from '../trust/verify.js';
import type { RegistryClient } from './client.js';
import { fetchManifest } from './manifest.js';
import { putManifest, putSmallBlob } from './push.js';
import { type ConnectSettings, connectFor, requireRegistry } from './remote.js';
import { fetchSigManifest, type SigManifest, signatureTag } from './signatures.js';

/** Add a signature to the `.sig` manifest of `digest` (made if missing); an identical one is not added twice. */
export async function appendSignature(
  client: RegistryClient,
  repo: string,
  digest: string,
  sig: Signature,
  scopes: string[],
): Promise<{ tag: string; signatures: number }> {
  const payload = Buffer.from(sig.payload);
  const layer = { mediaType: SIMPLE_SIGNING_MEDIA_TYPE, digest: sha256(payload), size: payload.length, annotations: { [SIGNATURE_ANNOTATION]: sig.signature } };
  const current = await fetchSigManifest(client, repo, digest, scopes);
  const layers = [...(current?.layers ?? [])];
  const tag = signatureTag(digest);
  if (layers.some((l) => l.digest === layer.digest && l.annotations?.[SIGNATURE_ANNOTATION] === sig.signature)) return { tag, signatures: layers.length };
  layers.push(layer);
  await putSmallBlob(client, repo, payload, scopes);
  // The config containers/image writes: an empty image whose diff_ids are the layers.
  const config = Buffer.from(JSON.stringify({ architecture: '', os: '', config: {}, rootfs: { type: 'layers', diff_ids: layers.map((l) => l.digest) } }));
  await putSmallBlob(client, repo, config, scopes);
  const manifest: SigManifest = {
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    config: { mediaType: MediaType.ociConfig, digest: sha256(config), size: config.length },
    layers,
  };
  await putManifest(client, repo, tag, Buffer.from(JSON.stringify(manifest)), MediaType.ociManifest, scopes);
  return { tag, signatures: layers.length };
}

export interface SignResult {
  /** What was signed, as the payload names it. */
  reference: string;
  digest: string;
  /** The tag the signature went to, and how many signatures it now holds. */
  tag: string;
  signatures: number;
}

/** Sign what `input` (HOST/REPO:TAG) points at in its registry. */
export async function signRemote(input: string, key: KeyObject, creator: string, opts: ConnectSettings): Promise<SignResult> {
  const ref = parseRef(input);
  const remote = requireRegistry(ref, input);
  if (ref.digest) {
    throw new DarchError(
      'E_USAGE',
      `${input} names a digest: sign the tag people pull (the policy matches a tagged pull only against a signature for that tag)`,
    );
  }
  const scopes = [`repository:${remote.repo}:pull,push`];
  const client = await connectFor(remote.host, opts);
  try {
    const top = await fetchManifest(client, remote.repo, ref.tag, scopes);
    const reference = `${remote.display}:${ref.tag}`;
    const res = await appendSignature(client, remote.repo, top.digest, signDigest(reference, top.digest, key, creator), scopes);
    return { reference, digest: top.digest, ...res };
  } finally {
    await client.close();
  }
}

/** Fetching manifests and indexes: media types, digest checks, platform choice. */
import { DarchError } from '../lib/errors.js';
import { type Digest, sha256 } from '../oci/digest.js';
import { type Descriptor, type ImageIndex, type ImageManifest, type Platform, MediaType, isIndexType, isManifestType } from '../oci/mediatypes.js';
import { type RegistryClient, headerValue, readSmall } from './client.js';
import { declaredMediaType, looksLikeIndex, parseIndex, parseJsonText, parseManifest } from '../oci/manifest-json.js';

export const MANIFEST_ACCEPT = [MediaType.ociManifest, MediaType.ociIndex, MediaType.dockerManifest, MediaType.dockerManifestList].join(', ');
const MAX_MANIFEST = 8 * 1024 * 1024;
const LIED = { code: 'E_REGISTRY', hint: 'the registry answered with something that is not an image manifest; nothing was stored' } as const;

export interface FetchedManifest {
  bytes: Buffer;
  digest: Digest;
  mediaType: string;
  doc: ImageManifest & ImageIndex;
}

export async function fetchManifest(client: RegistryClient, repo: string, reference: string, scopes: string[]): Promise<FetchedManifest> {
  const res = await client.send({ url: `/v2/${repo}/manifests/${reference}`, headers: { accept: MANIFEST_ACCEPT }, scopes });
  if (res.status !== 200) {
    await res.body.dump().catch(() => undefined);
    if (res.status === 404) {
      throw new DarchError('E_NOT_FOUND', `${client.host}/${repo}:${reference} was not found in the registry`, {
        hint: 'check the name and tag (`skopeo list-tags docker://HOST/REPO` lists tags); a private repository may also answer 404 without login',
      });
    }
    if (res.status === 403)
      throw new DarchError('E_AUTH_DENIED', `${client.host} denied access to ${repo}`, { hint: `check your account's rights: darch login ${client.host}` });
    throw new DarchError('E_REGISTRY', `${client.host} answered ${res.status} for the manifest of ${repo}:${reference}`);
  }
  const bytes = await readSmall(res.body, MAX_MANIFEST);
  const digest = sha256(bytes);
  const expected = reference.startsWith('sha256:') ? reference : headerValue(res.headers, 'docker-content-digest');
  if (expected?.startsWith('sha256:') && expected !== digest) {
    throw new DarchError('E_DIGEST_MISMATCH', `the manifest of ${repo}:${reference} does not match its digest ${expected} (got ${digest})`, {
      hint: 'the registry or a proxy changed it on the way; nothing was stored',
    });
  }
  const what = `the manifest of ${repo}:${reference}`;
  const raw = parseJsonText(bytes, what, LIED);
  const ct = (headerValue(res.headers, 'content-type') ?? '').split(';')[0]?.trim();
  const mediaType = declaredMediaType(raw) ?? (ct && ct !== 'application/json' ? ct : looksLikeIndex(raw) ? MediaType.ociIndex : MediaType.ociManifest);
  if (!isIndexType(mediaType) && !isManifestType(mediaType)) {
    throw new DarchError('E_UNSUPPORTED', `${repo}:${reference} is a ${mediaType}, which darch does not pull`, {
      hint: 'darch pulls OCI and Docker schema 2 images; convert old schema 1 images with `skopeo copy`',
    });
  }
  // Checked before anything uses it: a registry's JSON is input like any other.
  const doc = (isIndexType(mediaType) ? parseIndex(raw, what, LIED) : parseManifest(raw, what, LIED)) as ImageManifest & ImageIndex;
  return { bytes, digest, mediaType, doc };
}

export function parsePlatform(s: string): Platform {
  const [os, architecture, variant] = s.split('/');
  if (!os || !architecture) throw new DarchError('E_USAGE', `invalid platform "${s}"`, { hint: 'use OS/ARCH[/VARIANT], e.g. linux/amd64 or linux/arm64/v8' });
  return { os, architecture, ...(variant ? { variant } : {}) };
}

export function formatPlatform(p: Platform | undefined): string {
  return p ? [p.os, p.architecture, p.variant].filter(Boolean).join('/') : 'unknown';
}

/** The entry of an index for a platform; a missing variant in either side matches. */
export function choosePlatform(index: ImageIndex, want: Platform): Descriptor | undefined {
  const candidates = index.manifests.filter((m) => isManifestType(m.mediaType) || !m.mediaType);
  return (
    candidates.find(
      (m) =>
        m.platform?.os === want.os &&
        m.platform?.architecture === want.architecture &&
        (!want.variant || !m.platform?.variant || m.platform.variant === want.variant),
    ) ?? (candidates.length === 1 && !candidates[0]?.platform ? candidates[0] : undefined)
  );
}

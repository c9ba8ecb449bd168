/**
 * OCI 1.1 referrers: artifacts attached to a manifest through their `subject` field
 * (distribution spec, "Listing Referrers" and "Referrers Tag Schema").
 *
 * A registry that keeps referrers itself answers `GET /v2/<repo>/referrers/<digest>` with an
 * image index and says so when a manifest with a subject is stored (the `OCI-Subject`
 * header). One that does not (Debian's docker-registry 2.8 among them) answers 404 there;
 * clients then keep that index themselves under the tag `sha256-<hex of the subject>`, read
 * and rewritten by whoever attaches an artifact. The registry has no compare-and-swap, so
 * two pushers at once can lose an entry of the tag: the artifact itself stays stored and
 * attaching it again puts it back.
 */
import { DarchError } from '../lib/errors.js';
import { sha256 } from '../oci/digest.js';
import { type Descriptor, MediaType } from '../oci/mediatypes.js';
import { parseIndex, parseJsonText } from '../oci/manifest-json.js';
import { type RegistryClient, headerValue, readSmall } from './client.js';
import { fetchManifest } from './manifest.js';
import { putManifest, putSmallBlob } from './push.js';

/** The config of an artifact that has none (image spec, "Guidance for an Empty Descriptor"). */
export const EMPTY_JSON = { mediaType: 'application/vnd.oci.empty.v1+json', bytes: Buffer.from('{}') } as const;
const MAX_INDEX = 4 * 1024 * 1024;
const LIED = { code: 'E_REGISTRY', hint: 'the registry answered the referrers query with something that is not an image index' } as const;

export interface Referrer extends Descriptor {
  artifactType?: string;
}

/** The tag a client keeps the referrers of `digest` under when the registry does not. */
export function referrersTag(digest: string): string {
  return digest.replace(':', '-');
}

/**
 * The artifacts attached to `subject` (of `artifactType`, when given), and whether the
 * registry listed them or the fallback tag did.
 */
export async function listReferrers(
  client: RegistryClient,
  repo: string,
  subject: string,
  scopes: string[],
  artifactType?: string,
): Promise<{ via: 'api' | 'tag'; referrers: Referrer[] }> {
  const query = artifactType ? `?artifactType=${encodeURIComponent(artifactType)}` : '';
  const res = await client.send({ url: `/v2/${repo}/referrers/${subject}${query}`, headers: { accept: MediaType.ociIndex }, scopes });
  let via: 'api' | 'tag';
  let manifests: Referrer[];
  if (res.status === 200) {
    const what = `the referrers of ${repo}@${subject}`;
    via = 'api';
    manifests = parseIndex(parseJsonText(await readSmall(res.body, MAX_INDEX), what, LIED), what, LIED).manifests;
  } else if (res.status === 404) {
    await res.body.dump().catch(() => undefined);
    via = 'tag';
    manifests = (await fallbackIndex(client, repo, subject, scopes))?.manifests ?? [];
  } else {
    await res.body.dump().catch(() => undefined);
    throw new DarchError('E_REGISTRY', `${client.host} answered ${res.status} for the referrers of ${repo}@${subject}`);
  }
  // A registry may ignore the filter (it says so in OCI-Filters-Applied); the tag never filters.
  return { via, referrers: artifactType ? manifests.filter((m) => m.artifactType === artifactType) : manifests };
}

/** The index under the fallback tag, or undefined when the tag does not exist. */
async function fallbackIndex(client: RegistryClient, repo: string, subject: string, scopes: string[]): Promise<{ manifests: Referrer[] } | undefined> {
  const tag = referrersTag(subject);
  try {
    const m = await fetchManifest(client, repo, tag, scopes);
    if (m.mediaType !== MediaType.ociIndex) {
      throw new DarchError('E_REGISTRY', `${repo}:${tag} is a ${m.mediaType}, not the index the referrers tag scheme keeps there`, {
        hint: 'something else uses that tag; remove it, or use a registry with the referrers API',
      });
    }
    return { manifests: m.doc.manifests as Referrer[] };
  } catch (err) {
    if (err instanceof DarchError && err.code === 'E_NOT_FOUND') return undefined;
    throw err;
  }
}

export interface ArtifactManifest {
  schemaVersion: 2;
  mediaType: typeof MediaType.ociManifest;
  artifactType: string;
  config: Descriptor;
  layers: Descriptor[];
  subject: Descriptor;
  annotations?: Record<string, string>;
}

/**
 * Store an artifact manifest (its blobs pushed already) by digest and attach it to its
 * subject: nothing more where the registry keeps referrers, else its entry added to the
 * fallback tag's index (once). The artifact is stored before the tag names it.
 */
export async function attachArtifact(
  client: RegistryClient,
  repo: string,
  manifest: ArtifactManifest,
  scopes: string[],
): Promise<{ digest: string; size: number; via: 'api' | 'tag' }> {
  await putSmallBlob(client, repo, EMPTY_JSON.bytes, scopes);
  const bytes = Buffer.from(JSON.stringify(manifest));
  const digest = sha256(bytes);
  const headers = await putManifest(client, repo, digest, bytes, MediaType.ociManifest, scopes);
  if (headerValue(headers, 'oci-subject') === manifest.subject.digest) return { digest, size: bytes.length, via: 'api' };
  const current = await fallbackIndex(client, repo, manifest.subject.digest, scopes);
  const entry: Referrer = {
    mediaType: MediaType.ociManifest,
    digest,
    size: bytes.length,
    artifactType: manifest.artifactType,
    ...(manifest.annotations ? { annotations: manifest.annotations } : {}),
  };
  const others = (current?.manifests ?? []).filter((m) => m.digest !== digest);
  const index = { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [...others, entry] };
  await putManifest(client, repo, referrersTag(manifest.subject.digest), Buffer.from(JSON.stringify(index)), MediaType.ociIndex, scopes);
  return { digest, size: bytes.length, via: 'tag' };
}

/** The descriptor of the empty config, as artifacts name it. */
export function emptyConfig(): Descriptor {
  return { mediaType: EMPTY_JSON.mediaType, digest: sha256(EMPTY_JSON.bytes), size: EMPTY_JSON.bytes.length };
}

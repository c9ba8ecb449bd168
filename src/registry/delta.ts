/**
 * Deltas in the registry (docs/DELTAS.md): a delta file (src/stage/delta.ts) stored as an
 * OCI artifact attached to the manifest of the image it rebuilds, so the registry stays the
 * one channel machines update from.
 *
 * The artifact: an OCI image manifest with `artifactType` DELTA_ARTIFACT_TYPE, the empty
 * config, one layer (the delta file as it is) and `subject` the target's manifest; its
 * annotations name the image config the delta starts from, so a machine picks the delta
 * for what it has staged without downloading any. Found through the referrers API, or the
 * `sha256-<hex>` tag where the registry has none (referrers.ts).
 *
 * Signatures: the ones `darch sign IMAGE --bundle FILE.delta` made (FILE.sig, over the
 * sha256 of the delta's header, which commits to the patch and to the target's digests) go
 * to the registry with it, under the artifact's `sha256-<hex>.sig` tag. The same signature
 * then vouches for the delta offline and from the registry.
 */
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { DarchError, fsError } from '../lib/errors.js';
import { silentReporter } from '../lib/report.js';
import { type Digest, digestFile, parseDigest } from '../oci/digest.js';
import { MediaType } from '../oci/mediatypes.js';
import { parseRef, refString } from '../oci/reference.js';
import type { ImageStore } from '../oci/store.js';
import { deltaImage, readDeltaHeader } from '../stage/delta.js';
import type { DeltaInfo } from '../stage/delta-json.js';
import { readDetached } from '../trust/detached.js';
import type { Signature } from '../trust/verify.js';
import type { RegistryClient } from './client.js';
import { downloadBlob } from './download.js';
import { fetchManifest, MANIFEST_ACCEPT } from './manifest.js';
import { type PushOptions, pushBlob } from './push.js';
import { type ArtifactManifest, attachArtifact, emptyConfig, listReferrers, type Referrer } from './referrers.js';
import { type ConnectSettings, connectFor, requireRegistry } from './remote.js';
import { appendSignature } from './sign.js';
import { fetchSignatures } from './signatures.js';

export const DELTA_ARTIFACT_TYPE = 'application/vnd.dev.darch.delta.v1';
/** The layer: the delta file, byte for byte. */
export const DELTA_LAYER_TYPE = 'application/vnd.dev.darch.delta.v1.tar';
/** The image config digest of the image the delta starts from (what a machine matches its staged images by). */
export const FROM_CONFIG_ANNOTATION = 'dev.darch.delta.from.config';
const FROM_NAME_ANNOTATION = 'dev.darch.delta.from.name';
const TO_CONFIG_ANNOTATION = 'dev.darch.delta.to.config';
const CREATED_ANNOTATION = 'org.opencontainers.image.created';
const TITLE_ANNOTATION = 'org.opencontainers.image.title';
/** The delta file's size, so a listing tells it without fetching the manifest. */
const SIZE_ANNOTATION = 'dev.darch.delta.size';

export interface PushDeltaResult {
  /** HOST/REPO:TAG the delta is attached to. */
  destination: string;
  /** The manifest it is attached to. */
  subject: string;
  /** The artifact manifest's digest. */
  digest: string;
  size: number;
  from: string;
  /** Where the registry keeps the link: its referrers API, or the fallback tag. */
  via: 'api' | 'tag';
  uploaded: boolean;
  /** Signatures from FILE.sig carried along. */
  signatures: number;
}

async function fileDigest(file: string): Promise<{ digest: Digest; size: number }> {
  try {
    return await digestFile(file);
  } catch (err) {
    throw fsError(err, `cannot read ${file}`);
  }
}

/**
 * The manifest the delta attaches to: the target's own, or, when it was pushed with other
 * annotations (`images push --rollout` makes a new manifest for the same image), the one the
 * tag points at if its config is the delta's target config.
 */
async function subjectOf(client: RegistryClient, repo: string, tag: string, info: DeltaInfo, configDigest: string, scopes: string[]) {
  const head = await client.send({ method: 'HEAD', url: `/v2/${repo}/manifests/${info.to.manifestDigest}`, headers: { accept: MANIFEST_ACCEPT }, scopes });
  await head.body.dump().catch(() => undefined);
  if (head.status === 200) {
    const mediaType = (head.headers['content-type'] as string | undefined)?.split(';')[0]?.trim() || MediaType.ociManifest;
    return { mediaType, digest: info.to.manifestDigest, size: Buffer.from(info.to.manifest, 'base64').length };
  }
  const tagged = await fetchManifest(client, repo, tag, scopes).catch((err: unknown) => {
    if (err instanceof DarchError && err.code === 'E_NOT_FOUND') return undefined;
    throw err;
  });
  if (tagged && tagged.doc.config?.digest === configDigest) return { mediaType: tagged.mediaType, digest: tagged.digest, size: tagged.bytes.length };
  throw new DarchError('E_NOT_FOUND', `${client.host}/${repo} does not hold ${info.to.name} (manifest ${info.to.manifestDigest}), which the delta rebuilds`, {
    hint: `push the image first (darch images push ${info.to.name} ${client.host}/${repo}:${tag}), then its delta`,
  });
}

/**
 * `darch delta push FILE [DEST]`: the delta as an artifact attached to its target in the
 * registry (DEST, default the target's name), with the signatures of FILE.sig.
 */
export async function pushDelta(file: string, destInput: string | undefined, opts: Omit<PushOptions, 'jobs'>): Promise<PushDeltaResult> {
  const report = opts.report ?? silentReporter;
  const { info } = await readDeltaHeader(file);
  const input = destInput ?? info.to.name;
  const ref = parseRef(input);
  const remote = requireRegistry(ref, input);
  if (ref.digest)
    throw new DarchError('E_USAGE', `${input} names a digest: give the repository and tag machines follow`, { hint: `darch delta push ${file} HOST/NAME:TAG` });
  const tag = ref.tag ?? 'latest';
  const sigs: Signature[] = await readDetached(file);
  const configDigest = deltaImage(info, file).configDigest;
  const scopes = [`repository:${remote.repo}:pull,push`];
  const client = await connectFor(remote.host, opts);
  try {
    const subject = await subjectOf(client, remote.repo, tag, info, configDigest, scopes);
    const blob = { mediaType: DELTA_LAYER_TYPE, ...(await fileDigest(file)) };
    report.step(`pushing ${path.basename(file)} to ${remote.display}, attached to ${subject.digest.slice(0, 19)}`);
    const progress = report.progress(`pushing ${path.basename(file)}`, blob.size);
    const pushed = await pushBlob(client, file, remote.repo, blob, undefined, scopes, { ...opts, jobs: 1 }, progress).finally(() => progress.done());
    const manifest: ArtifactManifest = {
      schemaVersion: 2,
      mediaType: MediaType.ociManifest,
      artifactType: DELTA_ARTIFACT_TYPE,
      config: emptyConfig(),
      layers: [{ ...blob, annotations: { [TITLE_ANNOTATION]: path.basename(file) } }],
      subject,
      annotations: {
        [FROM_CONFIG_ANNOTATION]: info.from.config,
        ...(info.from.name ? { [FROM_NAME_ANNOTATION]: info.from.name } : {}),
        [TO_CONFIG_ANNOTATION]: configDigest,
        [SIZE_ANNOTATION]: String(blob.size),
        [CREATED_ANNOTATION]: info.created,
      },
    };
    const attached = await attachArtifact(client, remote.repo, manifest, scopes);
    for (const s of sigs) await appendSignature(client, remote.repo, attached.digest, s, scopes);
    return {
      destination: refString({ ...ref, domain: remote.host, path: remote.repo, tag }),
      subject: subject.digest,
      digest: attached.digest,
      size: blob.size,
      from: info.from.config,
      via: attached.via,
      uploaded: pushed.how === 'uploaded',
      signatures: sigs.length,
    };
  } finally {
    await client.close();
  }
}

export interface RemoteDelta {
  /** The artifact manifest's digest (its signatures are kept under it). */
  digest: string;
  /** The delta file's blob. */
  blob: { mediaType: string; digest: Digest; size: number };
  /** The image config it starts from. */
  from: string;
  via: 'api' | 'tag';
}

/**
 * A delta attached to `subject` that starts from one of `bases` (image config digests, the
 * preferred first), or undefined. Only the listing is read, not the delta.
 */
export async function findDelta(client: RegistryClient, repo: string, subject: string, bases: string[]): Promise<RemoteDelta | undefined> {
  const scopes = [`repository:${repo}:pull`];
  const { via, referrers } = await listReferrers(client, repo, subject, scopes, DELTA_ARTIFACT_TYPE);
  const rank = (r: Referrer) => bases.indexOf(r.annotations?.[FROM_CONFIG_ANNOTATION] ?? '');
  const candidates = referrers.filter((r) => rank(r) >= 0).sort((a, b) => rank(a) - rank(b));
  for (const c of candidates) {
    const m = await fetchManifest(client, repo, c.digest, scopes);
    const doc = m.doc as unknown as Partial<ArtifactManifest>;
    const layer = doc.layers?.[0];
    // The listing is only a hint: the manifest itself must say what it is and what it is for.
    if (doc.artifactType !== DELTA_ARTIFACT_TYPE || doc.subject?.digest !== subject || doc.layers?.length !== 1 || layer?.mediaType !== DELTA_LAYER_TYPE)
      continue;
    const from = doc.annotations?.[FROM_CONFIG_ANNOTATION];
    if (!from || !bases.includes(from)) continue;
    return { digest: m.digest, blob: { mediaType: layer.mediaType, digest: parseDigest(layer.digest), size: layer.size }, from, via };
  }
  return undefined;
}

/** Download the delta into the image store (resumable like any blob, checked against its digest); its path. */
export async function downloadDelta(
  client: RegistryClient,
  store: ImageStore,
  repo: string,
  delta: RemoteDelta,
  opts: { retries: number; onBytes: (n: number) => void; signal?: AbortSignal },
): Promise<{ file: string; downloaded: number; resumed: number }> {
  const t = await downloadBlob(client, store, delta.blob, { repo, ...opts });
  const file = store.blobPath(delta.blob.digest);
  await stat(file).catch((err: unknown) => {
    throw fsError(err, `cannot read the downloaded delta ${file}`);
  });
  return { file, downloaded: t.downloaded, resumed: t.resumed };
}

/** The signatures stored for a delta artifact. */
export function deltaSignatures(client: RegistryClient, repo: string, delta: RemoteDelta): Promise<Signature[]> {
  return fetchSignatures(client, repo, delta.digest, [`repository:${repo}:pull`]);
}

export interface ListedDelta {
  digest: string;
  from: string;
  fromName?: string;
  size: number;
  created?: string;
}

/** `darch delta list REF`: the deltas attached to what REF points at (read from the listing alone). */
export async function listDeltas(input: string, opts: ConnectSettings): Promise<{ image: string; subject: string; via: 'api' | 'tag'; deltas: ListedDelta[] }> {
  const ref = parseRef(input);
  const remote = requireRegistry(ref, input);
  const scopes = [`repository:${remote.repo}:pull`];
  const client = await connectFor(remote.host, opts);
  try {
    const top = await fetchManifest(client, remote.repo, ref.digest ?? ref.tag ?? 'latest', scopes);
    const { via, referrers } = await listReferrers(client, remote.repo, top.digest, scopes, DELTA_ARTIFACT_TYPE);
    return {
      image: `${remote.display}${ref.digest ? `@${ref.digest}` : `:${ref.tag ?? 'latest'}`}`,
      subject: top.digest,
      via,
      deltas: referrers.map((r) => ({
        digest: r.digest,
        from: r.annotations?.[FROM_CONFIG_ANNOTATION] ?? '',
        ...(r.annotations?.[FROM_NAME_ANNOTATION] ? { fromName: r.annotations[FROM_NAME_ANNOTATION] } : {}),
        // The listing gives the manifest's size; the delta's is in its layer, read only when used.
        size: Number(r.annotations?.[SIZE_ANNOTATION] ?? r.size),
        ...(r.annotations?.[CREATED_ANNOTATION] ? { created: r.annotations[CREATED_ANNOTATION] } : {}),
      })),
    };
  } finally {
    await client.close();
  }
}

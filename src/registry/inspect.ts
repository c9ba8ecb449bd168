/**
 * What a tag in a registry points at for one platform, without downloading the image: the
 * platform's manifest digest, its config digest (the image id) and what the image says of
 * itself (annotations of the index and the manifest, the config's labels). The update
 * agent compares these with what is staged.
 */
import { DarchError } from '../lib/errors.js';
import { type Digest, sha256 } from '../oci/digest.js';
import { type Platform, hostPlatform, isIndexType } from '../oci/mediatypes.js';
import { parseRef } from '../oci/reference.js';
import { type RegistryClient, readSmall } from './client.js';
import { choosePlatform, fetchManifest, formatPlatform } from './manifest.js';
import { isSourceFailure } from './pull.js';
import { NO_REGISTRIES_CONF, type PullSource, type RegistriesConf, sourcesFor } from './registries-conf.js';
import { type ConnectSettings, connectFor, remoteOf } from './remote.js';

export const VERSION_KEY = 'org.opencontainers.image.version';

export interface RemoteImage {
  /** host/repository:tag as asked. */
  source: string;
  /** The platform manifest's digest: what `darch images pull` stores and staging records. */
  digest: Digest;
  /** The config's digest: the same image under another manifest (re-annotated) has the same one. */
  config: string;
  platform: string;
  /** The index's annotations overlaid with the manifest's. */
  annotations: Record<string, string>;
  labels: Record<string, string>;
  version?: string;
}

/**
 * Asked of the same sources a pull uses (registries.conf: mirrors first, then the registry),
 * so a site's pull-through cache also answers the checks; the first that answers wins.
 */
export async function inspectRemote(input: string, opts: ConnectSettings & { platform?: Platform; registries?: RegistriesConf }): Promise<RemoteImage> {
  const ref = parseRef(input);
  const remote = remoteOf(ref);
  const sources = sourcesFor(ref, opts.registries ?? NO_REGISTRIES_CONF);
  const earlier: string[] = [];
  for (const [i, s] of sources.entries()) {
    try {
      const client = await connectFor(s.host, opts, s.insecure);
      try {
        return await inspectAt(client, s, remote.display, opts.platform ?? hostPlatform());
      } finally {
        await client.close();
      }
    } catch (err) {
      if (i === sources.length - 1 || !isSourceFailure(err, opts.signal)) {
        if (earlier.length && err instanceof DarchError)
          throw new DarchError(err.code, `${err.message} (tried first: ${earlier.join('; ')})`, { hint: err.hint, cause: err });
        throw err;
      }
      earlier.push(`${s.host}/${s.repo}: ${err.message}`);
      opts.report?.warn(`${s.mirror ? 'mirror' : 'registry'} ${s.host}/${s.repo}: ${err.message}; trying the next source`);
    }
  }
  throw new DarchError('E_REGISTRY', `no source for ${remote.display}`);
}

async function inspectAt(client: RegistryClient, s: PullSource, display: string, platform: Platform): Promise<RemoteImage> {
  const scopes = [`repository:${s.repo}:pull`];
  let top = await fetchManifest(client, s.repo, s.reference, scopes);
  let annotations: Record<string, string> = {};
  if (isIndexType(top.mediaType)) {
    annotations = { ...(top.doc.annotations ?? {}) };
    const pick = choosePlatform(top.doc, platform);
    if (!pick) throw new DarchError('E_PLATFORM', `${display}:${s.reference} has no image for ${formatPlatform(platform)}`);
    top = await fetchManifest(client, s.repo, pick.digest, scopes);
  }
  const manifest = top.doc;
  if (!manifest.config?.digest) throw new DarchError('E_REGISTRY', `the manifest of ${display} has no config`);
  annotations = { ...annotations, ...(manifest.annotations ?? {}) };
  const res = await client.send({ url: `/v2/${s.repo}/blobs/${manifest.config.digest}`, scopes });
  if (res.status !== 200) {
    await res.body.dump().catch(() => undefined);
    throw new DarchError('E_REGISTRY', `${client.host} answered ${res.status} for the config of ${display}`);
  }
  const configBytes = await readSmall(res.body, 8 * 1024 * 1024);
  if (sha256(configBytes) !== manifest.config.digest) throw new DarchError('E_DIGEST_MISMATCH', `the config of ${display} does not match its digest`);
  let labels: Record<string, string> = {};
  try {
    labels = (JSON.parse(configBytes.toString('utf8')) as { config?: { Labels?: Record<string, string> | null } }).config?.Labels ?? {};
  } catch {
    throw new DarchError('E_REGISTRY', `the config of ${display} is not valid JSON`);
  }
  const version = annotations[VERSION_KEY] ?? labels[VERSION_KEY];
  return {
    source: `${display}:${s.reference}`,
    digest: top.digest,
    config: manifest.config.digest,
    platform: formatPlatform(platform),
    annotations,
    labels,
    ...(version ? { version } : {}),
  };
}

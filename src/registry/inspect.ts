/**
 * What a tag in a registry points at for one platform, without downloading the image: the
 * platform's manifest digest, its config digest (the image id) and what the image says of
 * itself (annotations of the index and the manifest, the config's labels). The update
 * agent compares these with what is staged.
 */
import { DarchError } from '../lib/errors.js';
import type { Digest } from '../oci/digest.js';
import { type Platform, hostPlatform, isIndexType } from '../oci/mediatypes.js';
import { parseRef } from '../oci/reference.js';
import { readSmall } from './client.js';
import { choosePlatform, fetchManifest, formatPlatform } from './manifest.js';
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

export async function inspectRemote(input: string, opts: ConnectSettings & { platform?: Platform }): Promise<RemoteImage> {
  const ref = parseRef(input);
  const remote = remoteOf(ref);
  const platform = opts.platform ?? hostPlatform();
  const scopes = [`repository:${remote.repo}:pull`];
  const reference = ref.digest ?? ref.tag;
  const client = await connectFor(remote.host, opts);
  try {
    let top = await fetchManifest(client, remote.repo, reference, scopes);
    let annotations: Record<string, string> = {};
    if (isIndexType(top.mediaType)) {
      annotations = { ...(top.doc.annotations ?? {}) };
      const pick = choosePlatform(top.doc, platform);
      if (!pick) throw new DarchError('E_PLATFORM', `${remote.display}:${reference} has no image for ${formatPlatform(platform)}`);
      top = await fetchManifest(client, remote.repo, pick.digest, scopes);
    }
    const manifest = top.doc;
    if (!manifest.config?.digest) throw new DarchError('E_REGISTRY', `the manifest of ${remote.display} has no config`);
    annotations = { ...annotations, ...(manifest.annotations ?? {}) };
    const res = await client.send({ url: `/v2/${remote.repo}/blobs/${manifest.config.digest}`, scopes });
    if (res.status !== 200) {
      await res.body.dump().catch(() => undefined);
      throw new DarchError('E_REGISTRY', `${remote.host} answered ${res.status} for the config of ${remote.display}`);
    }
    const configBytes = await readSmall(res.body, 8 * 1024 * 1024);
    let labels: Record<string, string> = {};
    try {
      labels = (JSON.parse(configBytes.toString('utf8')) as { config?: { Labels?: Record<string, string> | null } }).config?.Labels ?? {};
    } catch {
      throw new DarchError('E_REGISTRY', `the config of ${remote.display} is not valid JSON`);
    }
    const version = annotations[VERSION_KEY] ?? labels[VERSION_KEY];
    return {
      source: `${remote.display}:${reference}`,
      digest: top.digest,
      config: manifest.config.digest,
      platform: formatPlatform(platform),
      annotations,
      labels,
      ...(version ? { version } : {}),
    };
  } finally {
    await client.close();
  }
}

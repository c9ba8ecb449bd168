/**
 * `darch images pull`: manifest (choosing a platform from an index), then config and
 * layers in parallel into the store, skipping blobs the store already has (the
 * layer-level delta), then the manifest and the name, last, under the store lock.
 */
import { DarchError } from '../lib/errors.js';
import { formatBytes } from '../lib/format.js';
import { silentReporter } from '../lib/report.js';
import type { Digest } from '../oci/digest.js';
import { type Descriptor, type Platform, hostPlatform, isIndexType } from '../oci/mediatypes.js';
import { type ImageRef, parseRef, refString } from '../oci/reference.js';
import type { ImageStore } from '../oci/store.js';
import { RegistryClient } from './client.js';
import { type BlobTransfer, downloadBlob } from './download.js';
import { choosePlatform, fetchManifest, formatPlatform } from './manifest.js';
import { type ConnectSettings, connectFor, remoteOf } from './remote.js';

/** Annotation on a pulled image's ref: where it came from, for cross-repository mounts on push. */
export const SOURCE_ANNOTATION = 'dev.darch.registry.source';

export interface PullOptions extends ConnectSettings {
  platform?: Platform;
  /** Local name; default: the reference as given. */
  name?: string;
  jobs: number;
}

export interface PullResult {
  name: string;
  source: string;
  digest: Digest;
  mediaType: string;
  platform: string;
  layers: number;
  blobsDownloaded: number;
  blobsSkipped: number;
  bytesDownloaded: number;
  bytesSkipped: number;
  bytesResumed: number;
}

/** The local name for a pulled reference: as typed, with a tag; digest-only refs get sha256-<12>. */
export function localNameFor(input: string, ref: ImageRef): string {
  const noDigest = input.split('@')[0] ?? input;
  const hasTag = noDigest.lastIndexOf(':') > noDigest.lastIndexOf('/');
  if (!hasTag && ref.digest) return refString({ ...ref, tag: `sha256-${ref.digest.slice(7, 19)}` });
  return refString(ref);
}

/** Run tasks with at most n at a time; after a failure start no more, then throw the first error. */
export async function pool<T, R>(items: T[], n: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  let failed: { err: unknown } | undefined;
  const worker = async () => {
    while (!failed && next < items.length) {
      const i = next++;
      try {
        out[i] = await fn(items[i] as T);
      } catch (err) {
        failed ??= { err };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(n, items.length)) }, worker));
  if (failed) throw failed.err;
  return out;
}

export async function pullImage(store: ImageStore, input: string, opts: PullOptions): Promise<PullResult> {
  const report = opts.report ?? silentReporter;
  const ref = parseRef(input);
  const remote = remoteOf(ref);
  const name = opts.name ? refString(parseRef(opts.name)) : localNameFor(input, ref);
  const platform = opts.platform ?? hostPlatform();
  const scopes = [`repository:${remote.repo}:pull`];
  const client = await connectFor(remote.host, opts);
  try {
    return await store.withLock(async () => {
      report.step(`pulling ${remote.display}${ref.digest ? `@${ref.digest}` : `:${ref.tag}`}`);
      let top = await fetchManifest(client, remote.repo, ref.digest ?? ref.tag, scopes);
      if (isIndexType(top.mediaType)) {
        const pick = choosePlatform(top.doc, platform);
        if (!pick) {
          throw new DarchError('E_PLATFORM', `${remote.display} has no image for ${formatPlatform(platform)}`, {
            hint: `available: ${top.doc.manifests.map((m) => formatPlatform(m.platform)).join(', ')}; choose one with --platform`,
          });
        }
        report.verbose(`index: chose ${formatPlatform(pick.platform)} (${pick.digest})`);
        top = await fetchManifest(client, remote.repo, pick.digest, scopes);
        if (isIndexType(top.mediaType)) throw new DarchError('E_UNSUPPORTED', `${remote.display}: an index inside an index is not supported`);
      }
      const manifest = top.doc;
      if (!manifest.config || !Array.isArray(manifest.layers)) throw new DarchError('E_REGISTRY', `the manifest of ${remote.display} has no config or layers`);
      const blobs: Descriptor[] = [];
      const seen = new Set<string>();
      for (const d of [manifest.config, ...manifest.layers]) {
        if (seen.has(d.digest)) continue;
        seen.add(d.digest);
        if (d.urls?.length) report.verbose(`${d.digest}: foreign layer, fetched from the registry anyway`);
        blobs.push(d);
      }
      const present = await Promise.all(blobs.map((d) => store.hasBlob(d.digest)));
      const toFetch = blobs.filter((_, i) => !present[i]);
      const total = toFetch.reduce((a, d) => a + d.size, 0);
      const skippedBytes = blobs.filter((_, i) => present[i]).reduce((a, d) => a + d.size, 0);
      if (skippedBytes > 0)
        report.info(`${blobs.length - toFetch.length} of ${blobs.length} blobs already in the store (${formatBytes(skippedBytes)} skipped)`);
      const progress = report.progressGroup(`pulling ${name}`, total);
      const transfers = await pool<Descriptor, BlobTransfer>(toFetch, opts.jobs, async (d) => {
        const bar = progress.item(d.digest.slice(7, 19), d.size);
        const t = await downloadBlob(client, store, d, { repo: remote.repo, retries: opts.retries, onBytes: (n) => bar.tick(n), signal: opts.signal });
        bar.done();
        report.verbose(
          `${t.digest}: ${t.skipped ? 'already present' : `${formatBytes(t.downloaded)} downloaded${t.resumed ? `, ${formatBytes(t.resumed)} resumed` : ''}`}`,
        );
        return t;
      }).catch((err) => {
        progress.done();
        throw err;
      });
      progress.done();
      const desc = await store.putBytes(top.bytes, top.mediaType);
      await store.setRef(name, { ...desc, annotations: { [SOURCE_ANNOTATION]: remote.display } });
      const downloaded = transfers.filter((t) => !t.skipped);
      const result: PullResult = {
        name,
        source: `${remote.display}${ref.digest ? `@${ref.digest}` : `:${ref.tag}`}`,
        digest: desc.digest as Digest,
        mediaType: top.mediaType,
        platform: formatPlatform(platform),
        layers: manifest.layers.length,
        blobsDownloaded: downloaded.length,
        blobsSkipped: blobs.length - downloaded.length,
        bytesDownloaded: transfers.reduce((a, t) => a + t.downloaded, 0),
        bytesSkipped: skippedBytes + transfers.filter((t) => t.skipped).reduce((a, t) => a + t.size, 0),
        bytesResumed: transfers.reduce((a, t) => a + t.resumed, 0),
      };
      return result;
    });
  } finally {
    await client.close();
  }
}

export { RegistryClient };

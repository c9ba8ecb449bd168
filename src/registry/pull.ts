/**
 * `darch images pull`: manifest (choosing a platform from an index), then config and
 * layers in parallel into the store, skipping blobs the store already has (the
 * layer-level delta), then the manifest and the name, last, under the store lock.
 *
 * Where from: the sources registries.conf gives (`sourcesFor`: mirrors, then the registry),
 * tried in order like podman does. The first that serves the manifest wins; a source that
 * cannot be reached or fails (5xx, 404, a bad answer) is reported and the next one tried.
 * Blobs come from the source that served the manifest; a blob that fails there is fetched
 * from the sources after it (the partial file, named by digest, resumes across them), and
 * a source that failed once is not asked again in this pull. Every blob is digest-verified,
 * whoever serves it.
 */
import { DarchError, type ErrorCode } from '../lib/errors.js';
import { formatBytes } from '../lib/format.js';
import { type Reporter, silentReporter } from '../lib/report.js';
import type { Digest } from '../oci/digest.js';
import { type Descriptor, type Platform, hostPlatform, isIndexType } from '../oci/mediatypes.js';
import { type ImageRef, parseRef, refString } from '../oci/reference.js';
import { type LoadedPolicy, policyImageOf } from '../trust/policy.js';
import { type Verdict, verifyImage } from '../trust/verify.js';
import type { ImageStore } from '../oci/store.js';
import { RegistryClient } from './client.js';
import { type BlobTransfer, downloadBlob } from './download.js';
import { type FetchedManifest, choosePlatform, fetchManifest, formatPlatform } from './manifest.js';
import { NO_REGISTRIES_CONF, type PullSource, type RegistriesConf, sourcesFor } from './registries-conf.js';
import { type ConnectSettings, connectFor, remoteOf } from './remote.js';
import { fetchSignatures } from './signatures.js';

/** Annotation on a pulled image's ref: where it came from, for cross-repository mounts on push. */
export const SOURCE_ANNOTATION = 'dev.darch.registry.source';

export interface PullOptions extends ConnectSettings {
  platform?: Platform;
  /** Local name; default: the reference as given. */
  name?: string;
  jobs: number;
  /**
   * registries.conf as `loadRegistriesConf` read it: mirrors, rewritten locations, blocked
   * names. Without it a pull goes to the reference's own registry only.
   */
  registries?: RegistriesConf;
  /** The signature policy to enforce; without it nothing is checked (a caller that has no policy). */
  trust?: TrustSettings;
}

export interface TrustSettings {
  policy: LoadedPolicy;
  /** keyPath files are read under this root (--root). */
  root: string;
}

export interface PullResult {
  name: string;
  /** The reference pulled, as a name (`host/repo:tag`, `host/repo@digest`). */
  source: string;
  /** host[:port] that served the manifest: a mirror, the registry's location, or the reference's registry. */
  from: string;
  digest: Digest;
  mediaType: string;
  platform: string;
  layers: number;
  blobsDownloaded: number;
  blobsSkipped: number;
  bytesDownloaded: number;
  bytesSkipped: number;
  bytesResumed: number;
  /** What the signature policy said (when one was enforced). */
  trust?: Verdict;
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

/** Failures that say something about a source (it is down, lacks the image, serves bad data): the next one may do better. */
const SOURCE_FAILURES = new Set<ErrorCode>([
  'E_REGISTRY',
  'E_REGISTRY_INTERRUPTED',
  'E_REGISTRY_RETRY',
  'E_REGISTRY_UNREACHABLE',
  'E_NOT_FOUND',
  'E_AUTH',
  'E_AUTH_DENIED',
  'E_AUTH_FAILED',
  'E_AUTH_REQUIRED',
  'E_TLS',
  'E_DIGEST_MISMATCH',
  'E_SIZE_MISMATCH',
  'E_UNSUPPORTED',
]);

export function isSourceFailure(err: unknown, signal: AbortSignal | undefined): err is DarchError {
  return !signal?.aborted && err instanceof DarchError && SOURCE_FAILURES.has(err.code);
}

function sourceName(s: PullSource): string {
  return `${s.mirror ? 'mirror' : 'registry'} ${s.host}/${s.repo}`;
}

/** The clients of one pull's sources, each connected on first use (once, shared by parallel blobs) and all closed at the end. */
class Sources {
  private readonly clients = new Map<number, Promise<RegistryClient>>();
  /** Sources that failed once in this pull: not asked again (the last one excepted: nothing comes after it). */
  readonly failed = new Set<number>();

  constructor(
    readonly list: PullSource[],
    private readonly opts: ConnectSettings,
  ) {}

  get last(): number {
    return this.list.length - 1;
  }

  at(i: number): PullSource {
    return this.list[i] as PullSource;
  }

  client(i: number): Promise<RegistryClient> {
    let c = this.clients.get(i);
    if (!c) {
      const s = this.at(i);
      c = connectFor(s.host, this.opts, s.insecure);
      c.catch(() => undefined);
      this.clients.set(i, c);
    }
    return c;
  }

  /** The next source after i still worth asking, or undefined. */
  next(i: number): number | undefined {
    for (let j = i + 1; j <= this.last; j++) if (j === this.last || !this.failed.has(j)) return j;
    return undefined;
  }

  async close(): Promise<void> {
    await Promise.all(
      [...this.clients.values()].map((c) =>
        c.then(
          (client) => client.close(),
          () => undefined,
        ),
      ),
    );
  }
}

/** The last source's error, saying what the ones before it answered. */
function withEarlierFailures(err: unknown, earlier: string[]): unknown {
  if (!earlier.length || !(err instanceof DarchError)) return err;
  return new DarchError(err.code, `${err.message} (tried first: ${earlier.join('; ')})`, {
    hint: err.hint,
    exitCode: err.exitCode,
    details: { ...err.details, triedFirst: earlier },
    cause: err,
  });
}

export async function pullImage(store: ImageStore, input: string, opts: PullOptions): Promise<PullResult> {
  const report = opts.report ?? silentReporter;
  const ref = parseRef(input);
  const remote = remoteOf(ref);
  const name = opts.name ? refString(parseRef(opts.name)) : localNameFor(input, ref);
  const platform = opts.platform ?? hostPlatform();
  const conf = opts.registries ?? NO_REGISTRIES_CONF;
  const sources = new Sources(sourcesFor(ref, conf), opts);
  if (conf.files.length) report.debug(`registries.conf: ${conf.files.join(', ')}`);
  if (sources.list.length > 1 || sources.at(0).host !== remote.host || sources.at(0).repo !== remote.repo) {
    report.verbose(`sources: ${sources.list.map((s) => `${sourceName(s)}${s.insecure ? ' (insecure)' : ''}`).join(', ')}`);
  }
  try {
    return await store.withLock(async () => {
      report.step(`pulling ${remote.display}${ref.digest ? `@${ref.digest}` : `:${ref.tag}`}`);

      // The manifest: the first source that serves it wins.
      const earlier: string[] = [];
      let served = 0;
      let top: (FetchedManifest & { index?: Digest }) | undefined;
      for (let i = 0; i <= sources.last && !top; i++) {
        const s = sources.at(i);
        try {
          top = await manifestFrom(await sources.client(i), s, platform, remote.display, report);
          served = i;
        } catch (err) {
          if (i === sources.last || !isSourceFailure(err, opts.signal)) throw withEarlierFailures(err, earlier);
          sources.failed.add(i);
          earlier.push(`${sourceName(s)}: ${err.message}`);
          const nxt = sources.at(i + 1);
          report.warn(`${sourceName(s)} failed: ${err.message}; trying ${sourceName(nxt)}`);
        }
      }
      if (!top) throw new DarchError('E_INTERNAL', `no source served ${remote.display}`);
      const from = sources.at(served);
      if (from.mirror) report.info(`using ${sourceName(from)}`);
      else if (from.host !== remote.host || from.repo !== remote.repo) report.verbose(`${remote.display} is at ${from.host}/${from.repo} (registries.conf)`);

      // Before any blob: an image the policy refuses leaves nothing in the store.
      const trust = opts.trust ? await checkTrust(opts.trust, sources, served, top, ref, report) : undefined;

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
        const t = await blobFrom(sources, served, store, d, opts, report, (n) => bar.tick(n));
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
        from: from.host,
        digest: desc.digest as Digest,
        mediaType: top.mediaType,
        platform: formatPlatform(platform),
        layers: manifest.layers.length,
        blobsDownloaded: downloaded.length,
        blobsSkipped: blobs.length - downloaded.length,
        bytesDownloaded: transfers.reduce((a, t) => a + t.downloaded, 0),
        bytesSkipped: skippedBytes + transfers.filter((t) => t.skipped).reduce((a, t) => a + t.size, 0),
        bytesResumed: transfers.reduce((a, t) => a + t.resumed, 0),
        ...(trust ? { trust } : {}),
      };
      return result;
    });
  } finally {
    await sources.close();
  }
}

/** The signature policy's verdict on the manifest a source served; E_UNTRUSTED refuses it. */
async function checkTrust(
  trust: TrustSettings,
  sources: Sources,
  served: number,
  top: FetchedManifest & { index?: Digest },
  ref: ImageRef,
  report: Reporter,
): Promise<Verdict> {
  const s = sources.at(served);
  const client = await sources.client(served);
  const digests = [top.digest, ...(top.index ? [top.index] : [])];
  // The policy judges the name as given (not a mirror's); signatures come from where the image did.
  const { img, display } = policyImageOf(ref);
  const verdict = await verifyImage(trust.policy, img, {
    digests,
    signatures: async () => (await Promise.all(digests.map((d) => fetchSignatures(client, s.repo, d, [`repository:${s.repo}:pull`])))).flat(),
    root: trust.root,
    display: `${display}${ref.digest ? `@${ref.digest}` : `:${ref.tag}`}`,
  });
  report.verbose(`signature policy ${verdict.policy ?? '(none)'}, ${verdict.scope}: accepted by ${verdict.acceptedBy.join(', ')}`);
  return verdict;
}

/** The image manifest from one source; from an index, the platform's entry (fetched from the same source) and the index's digest. */
async function manifestFrom(
  client: RegistryClient,
  s: PullSource,
  platform: Platform,
  display: string,
  report: Reporter,
): Promise<FetchedManifest & { index?: Digest }> {
  const scopes = [`repository:${s.repo}:pull`];
  let top: FetchedManifest & { index?: Digest } = await fetchManifest(client, s.repo, s.reference, scopes);
  if (isIndexType(top.mediaType)) {
    const index = top.digest;
    const pick = choosePlatform(top.doc, platform);
    if (!pick) {
      throw new DarchError('E_PLATFORM', `${display} has no image for ${formatPlatform(platform)}`, {
        hint: `available: ${top.doc.manifests.map((m) => formatPlatform(m.platform)).join(', ')}; choose one with --platform`,
      });
    }
    report.verbose(`index: chose ${formatPlatform(pick.platform)} (${pick.digest})`);
    top = { ...(await fetchManifest(client, s.repo, pick.digest, scopes)), index };
    if (isIndexType(top.mediaType)) throw new DarchError('E_UNSUPPORTED', `${display}: an index inside an index is not supported`);
  }
  return top;
}

/**
 * One blob, from the source that served the manifest or, when that fails, the ones after
 * it. The bar counts each byte once however many sources it took; `downloaded` adds the
 * bytes of the failed attempts, `resumed` is what an earlier run had left.
 */
async function blobFrom(
  sources: Sources,
  served: number,
  store: ImageStore,
  d: Descriptor,
  opts: PullOptions,
  report: Reporter,
  tick: (n: number) => void,
): Promise<BlobTransfer> {
  let counted = 0;
  let lostNetwork = 0;
  let firstResumed: number | undefined;
  // Another blob may have found the serving source failing already.
  const start = sources.failed.has(served) ? sources.next(served) : served;
  for (let i = start; i !== undefined; i = sources.next(i)) {
    const s = sources.at(i);
    let bytes = 0;
    let resumed = 0;
    try {
      const t = await downloadBlob(await sources.client(i), store, d, {
        repo: s.repo,
        retries: opts.retries,
        signal: opts.signal,
        onResume: (n) => void (resumed = n),
        onBytes: (n) => {
          bytes += n;
          if (bytes > counted) {
            tick(bytes - counted);
            counted = bytes;
          }
        },
      });
      return { ...t, downloaded: t.downloaded + lostNetwork, resumed: firstResumed ?? t.resumed };
    } catch (err) {
      const nxt = sources.next(i);
      if (nxt === undefined || !isSourceFailure(err, opts.signal)) throw err;
      sources.failed.add(i);
      firstResumed ??= resumed;
      lostNetwork += Math.max(0, bytes - resumed);
      report.warn(`${sourceName(s)} failed for blob ${d.digest.slice(7, 19)}: ${err.message}; fetching it from ${sourceName(sources.at(nxt))}`);
    }
  }
  throw new DarchError('E_INTERNAL', `no source left for blob ${d.digest}`);
}

export { RegistryClient };

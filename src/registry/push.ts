/**
 * `darch images push`: blobs first (each skipped if the registry has it, mounted from
 * another repository of the same registry when we know one, else uploaded whole or in
 * chunks), manifests last, so a registry never names an image it cannot serve.
 */
import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { DarchError } from '../lib/errors.js';
import type { Progress } from '../lib/report.js';
import { silentReporter } from '../lib/report.js';
import { formatBytes } from '../lib/format.js';
import { type Digest, sha256 } from '../oci/digest.js';
import { type Descriptor, type ImageIndex, type ImageManifest, MediaType, isIndexType } from '../oci/mediatypes.js';
import { parseRef, refString } from '../oci/reference.js';
import type { ImageStore } from '../oci/store.js';
import { type RegistryClient, backoffMs, describe, headerValue, isRetryableNetworkError } from './client.js';
import { pool, SOURCE_ANNOTATION } from './pull.js';
import { type ConnectSettings, connectFor, remoteOf, requireRegistry } from './remote.js';

export interface PushOptions extends ConnectSettings {
  jobs: number;
  /** Upload in PATCH chunks of this many bytes; 0 = one PUT per blob. */
  chunkSize: number;
  /** Annotations to set on the pushed top manifest (e.g. a rollout percentage); its digest then differs from the local one. */
  annotations?: Record<string, string>;
}

export interface PushResult {
  source: string;
  destination: string;
  digest: Digest;
  blobsUploaded: number;
  blobsExisting: number;
  blobsMounted: number;
  bytesUploaded: number;
  bytesSkipped: number;
}

interface ManifestNode {
  desc: Descriptor;
  bytes: Buffer;
}

export async function pushImage(store: ImageStore, localName: string, destInput: string | undefined, opts: PushOptions): Promise<PushResult> {
  const report = opts.report ?? silentReporter;
  const local = await store.resolve(localName);
  const destRef = parseRef(destInput ?? local.name);
  const remote = requireRegistry(destRef, destInput ?? local.name);
  // Blobs we pulled from another repository of the same registry can be mounted, not uploaded.
  const source = local.descriptor.annotations?.[SOURCE_ANNOTATION];
  const sourceRemote = source ? remoteOf(parseRef(source)) : undefined;
  const mountFrom = sourceRemote && sourceRemote.host === remote.host && sourceRemote.repo !== remote.repo ? sourceRemote.repo : undefined;
  const scopes = [`repository:${remote.repo}:pull,push`, ...(mountFrom ? [`repository:${mountFrom}:pull`] : [])];

  // Everything to send: child manifests of an index (those we have), then the top.
  const top: ManifestNode = { desc: stripAnnotations(local.descriptor), bytes: await store.readBlob(local.descriptor.digest) };
  if (opts.annotations && Object.keys(opts.annotations).length) top.bytes = withAnnotations(top.bytes, opts.annotations).bytes;
  const manifests: ManifestNode[] = [];
  const blobs = new Map<string, Descriptor>();
  const addManifest = (node: ManifestNode) => {
    const m = JSON.parse(node.bytes.toString('utf8')) as ImageManifest;
    for (const d of [m.config, ...(m.layers ?? [])]) if (d) blobs.set(d.digest, d);
  };
  const topDoc = JSON.parse(top.bytes.toString('utf8')) as ImageIndex & ImageManifest;
  if (isIndexType(top.desc.mediaType) || Array.isArray(topDoc.manifests)) {
    for (const child of topDoc.manifests) {
      if (!(await store.hasBlob(child.digest))) {
        throw new DarchError(
          'E_INCOMPLETE',
          `${local.name} is a multi-platform index but the store lacks ${child.digest} (${child.platform?.architecture ?? '?'})`,
          {
            hint: 'push a single-platform image instead, or import all of its platforms first',
          },
        );
      }
      const node = { desc: child, bytes: await store.readBlob(child.digest) };
      addManifest(node);
      manifests.push(node);
    }
  } else {
    addManifest(top);
  }
  for (const d of blobs.values()) {
    if (!(await store.hasBlob(d.digest))) {
      throw new DarchError('E_BLOB_MISSING', `${local.name} needs blob ${d.digest}, which is not in the store`, {
        hint: 'run `darch images verify`; re-import or re-pull the image',
      });
    }
  }

  const client = await connectFor(remote.host, opts);
  try {
    report.step(`pushing ${local.name} to ${remote.display}:${destRef.tag}`);
    const list = [...blobs.values()];
    const total = list.reduce((a, d) => a + d.size, 0);
    const progress = report.progress(`pushing ${remote.display}:${destRef.tag}`, total);
    const outcomes = await pool(list, opts.jobs, (d) => pushBlob(client, store.blobPath(d.digest), remote.repo, d, mountFrom, scopes, opts, progress)).finally(
      () => progress.done(),
    );
    for (const m of manifests) await putManifest(client, remote.repo, m.desc.digest, m.bytes, m.desc.mediaType, scopes);
    const topType = top.desc.mediaType ?? topDoc.mediaType ?? MediaType.ociManifest;
    await putManifest(client, remote.repo, destRef.digest ?? destRef.tag, top.bytes, topType, scopes);
    const sum = (k: PushOutcome['how']) => outcomes.filter((o) => o.how === k);
    return {
      source: local.name,
      destination: refString({ ...destRef, domain: remote.host, path: remote.repo }),
      digest: sha256(top.bytes),
      blobsUploaded: sum('uploaded').length,
      blobsExisting: sum('existing').length,
      blobsMounted: sum('mounted').length,
      bytesUploaded: sum('uploaded').reduce((a, o) => a + o.size, 0),
      bytesSkipped: [...sum('existing'), ...sum('mounted')].reduce((a, o) => a + o.size, 0),
    };
  } finally {
    await client.close();
  }
}

/** A manifest or index with these annotations added (null removes one): new bytes, so a new digest. */
export function withAnnotations(bytes: Buffer, set: Record<string, string | null>): { bytes: Buffer; annotations: Record<string, string> } {
  const doc = JSON.parse(bytes.toString('utf8')) as { annotations?: Record<string, string> };
  const annotations = { ...(doc.annotations ?? {}) };
  for (const [k, v] of Object.entries(set)) {
    if (v === null) delete annotations[k];
    else annotations[k] = v;
  }
  const { annotations: _old, ...rest } = doc;
  return { bytes: Buffer.from(JSON.stringify(Object.keys(annotations).length ? { ...rest, annotations } : rest)), annotations };
}

function stripAnnotations(d: Descriptor): Descriptor {
  const { annotations: _a, ...rest } = d;
  return rest;
}

export interface PushOutcome {
  digest: string;
  size: number;
  how: 'existing' | 'mounted' | 'uploaded';
}

/** One blob from a file (an image store's blob, a delta) unless the registry has it: mounted, whole or in chunks, retried. */
export async function pushBlob(
  client: RegistryClient,
  path: string,
  repo: string,
  d: Descriptor,
  mountFrom: string | undefined,
  scopes: string[],
  opts: PushOptions,
  progress: Progress,
): Promise<PushOutcome> {
  const short = d.digest.slice(7, 19);
  const head = await client.send({ method: 'HEAD', url: `/v2/${repo}/blobs/${d.digest}`, scopes });
  await head.body.dump().catch(() => undefined);
  if (head.status === 200) {
    client.report.verbose(`${short}: the registry has it`);
    progress.tick(d.size);
    return { digest: d.digest, size: d.size, how: 'existing' };
  }
  checkStatus(head.status, [404], client, repo, `HEAD of blob ${short}`);
  for (let attempt = 0; ; attempt++) {
    let sent = 0;
    try {
      const start = mountFrom
        ? `/v2/${repo}/blobs/uploads/?mount=${encodeURIComponent(d.digest)}&from=${encodeURIComponent(mountFrom)}`
        : `/v2/${repo}/blobs/uploads/`;
      const res = await client.send({ method: 'POST', url: start, headers: { 'content-length': '0' }, scopes });
      await res.body.dump().catch(() => undefined);
      if (res.status === 201 && mountFrom) {
        client.report.verbose(`${short}: mounted from ${mountFrom}`);
        progress.tick(d.size);
        return { digest: d.digest, size: d.size, how: 'mounted' };
      }
      checkStatus(res.status, [202], client, repo, `starting an upload of ${short}`);
      let location = uploadUrl(res, client);
      if (opts.chunkSize > 0 && d.size > opts.chunkSize) {
        for (let offset = 0; offset < d.size; offset += opts.chunkSize) {
          const end = Math.min(d.size, offset + opts.chunkSize) - 1;
          const r = await client.send({
            method: 'PATCH',
            url: location,
            headers: { 'content-type': 'application/octet-stream', 'content-range': `${offset}-${end}`, 'content-length': String(end - offset + 1) },
            body: () => createReadStream(path, { start: offset, end }),
            scopes,
            retry: false,
          });
          await r.body.dump().catch(() => undefined);
          checkStatus(r.status, [202], client, repo, `uploading a chunk of ${short}`);
          location = uploadUrl(r, client);
          sent += end - offset + 1;
          progress.tick(end - offset + 1);
        }
        const fin = new URL(location);
        fin.searchParams.set('digest', d.digest);
        const r = await client.send({ method: 'PUT', url: fin.toString(), headers: { 'content-length': '0' }, scopes, retry: false });
        await r.body.dump().catch(() => undefined);
        checkStatus(r.status, [201, 204], client, repo, `finishing the upload of ${short}`);
      } else {
        const put = new URL(location);
        put.searchParams.set('digest', d.digest);
        const r = await client.send({
          method: 'PUT',
          url: put.toString(),
          headers: { 'content-type': 'application/octet-stream', 'content-length': String(d.size) },
          // A generator, not a 'data' listener: that would start the flow before undici reads.
          body: () =>
            Readable.from(
              (async function* () {
                for await (const b of createReadStream(path) as AsyncIterable<Buffer>) {
                  sent += b.length;
                  progress.tick(b.length);
                  yield b;
                }
              })(),
            ),
          scopes,
          retry: false,
        });
        await r.body.dump().catch(() => undefined);
        checkStatus(r.status, [201, 204], client, repo, `uploading ${short}`);
      }
      client.report.verbose(`${short}: uploaded ${formatBytes(d.size)}`);
      return { digest: d.digest, size: d.size, how: 'uploaded' };
    } catch (err) {
      progress.tick(-sent);
      const retryable = isRetryableNetworkError(err) || (err instanceof DarchError && err.code === 'E_REGISTRY_RETRY');
      if (!retryable || attempt >= opts.retries || opts.signal?.aborted)
        throw err instanceof DarchError && err.code !== 'E_REGISTRY_RETRY' ? err : client.networkError(err);
      const wait = backoffMs(attempt);
      client.report.warn(`${short}: upload failed (${describe(err)}); starting it again in ${(wait / 1000).toFixed(1)} s`);
      await sleep(wait, undefined, { signal: opts.signal });
    }
  }
}

function uploadUrl(res: { headers: Record<string, string | string[] | undefined>; url: string }, client: RegistryClient): string {
  const loc = headerValue(res.headers, 'location');
  if (!loc) throw new DarchError('E_REGISTRY', `${client.host} started an upload without a Location`);
  return new URL(loc, res.url).toString();
}

function checkStatus(status: number, ok: number[], client: RegistryClient, repo: string, what: string): void {
  if (ok.includes(status)) return;
  if (status === 429 || status >= 500) throw new DarchError('E_REGISTRY_RETRY', `${client.host} answered ${status} to ${what}`);
  if (status === 403 || status === 401) {
    throw new DarchError('E_AUTH_DENIED', `${client.host} denied ${what} in ${repo} (${status})`, {
      hint: `check that your account may push there: darch login ${client.host}`,
    });
  }
  throw new DarchError('E_REGISTRY', `${client.host} answered ${status} to ${what} in ${repo}`);
}

/** A small blob from memory (a signature's payload, its config), unless the registry has it. */
export async function putSmallBlob(client: RegistryClient, repo: string, bytes: Buffer, scopes: string[]): Promise<Digest> {
  const digest = sha256(bytes);
  const head = await client.send({ method: 'HEAD', url: `/v2/${repo}/blobs/${digest}`, scopes });
  await head.body.dump().catch(() => undefined);
  if (head.status === 200) return digest;
  checkStatus(head.status, [404], client, repo, `HEAD of blob ${digest.slice(7, 19)}`);
  const res = await client.send({ method: 'POST', url: `/v2/${repo}/blobs/uploads/`, headers: { 'content-length': '0' }, scopes });
  await res.body.dump().catch(() => undefined);
  checkStatus(res.status, [202], client, repo, `starting an upload of ${digest.slice(7, 19)}`);
  const put = new URL(uploadUrl(res, client));
  put.searchParams.set('digest', digest);
  const r = await client.send({
    method: 'PUT',
    url: put.toString(),
    headers: { 'content-type': 'application/octet-stream', 'content-length': String(bytes.length) },
    body: () => bytes,
    scopes,
  });
  await r.body.dump().catch(() => undefined);
  checkStatus(r.status, [201, 204], client, repo, `uploading ${digest.slice(7, 19)}`);
  return digest;
}

/** Store a manifest; returns the registry's answer headers (OCI-Subject says it keeps the referrers of a subject itself). */
export async function putManifest(
  client: RegistryClient,
  repo: string,
  reference: string,
  bytes: Buffer,
  mediaType: string,
  scopes: string[],
): Promise<Record<string, string | string[] | undefined>> {
  const res = await client.send({
    method: 'PUT',
    url: `/v2/${repo}/manifests/${reference}`,
    headers: { 'content-type': mediaType, 'content-length': String(bytes.length) },
    body: () => bytes,
    scopes,
  });
  await res.body.dump().catch(() => undefined);
  checkStatus(res.status, [201, 200, 204], client, repo, `storing the manifest ${reference}`);
  const dcd = headerValue(res.headers, 'docker-content-digest');
  if (dcd && dcd !== sha256(bytes)) {
    throw new DarchError('E_DIGEST_MISMATCH', `${client.host} stored the manifest under ${dcd}, expected ${sha256(bytes)}`, {
      hint: 'the registry rewrote the manifest; its digest differs from the local image',
    });
  }
  return res.headers;
}

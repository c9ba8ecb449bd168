/**
 * Pull and push against a real registry (Debian's docker-registry) through a
 * fault-injecting proxy: cut, stalled, failing and corrupted transfers; resume across a
 * kill; the layer-level delta; platform choice; interop with skopeo both ways.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { DARCH_BIN, darch, darchOk, tempDir } from '../helpers/darch.js';
import { FaultyProxy } from '../helpers/faulty-proxy.js';
import { type LayoutImage, deriveImage } from '../helpers/oci-images.js';
import { type RegistryServer, freePort, startRegistry } from '../helpers/registry.js';
import { execFileSync } from 'node:child_process';

const MiB = 1024 * 1024;
const NO_TLS = '--tls-verify=false';

function skopeo(args: string[]): string {
  return execFileSync('skopeo', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function storeDir(root: string): string {
  return path.join(root, 'var/lib/darch/images');
}

function blobFile(root: string, digest: string): string {
  return path.join(storeDir(root), 'blobs/sha256', digest.slice(7));
}

async function partials(root: string): Promise<string[]> {
  try {
    return (await readdir(path.join(root, 'var/lib/darch/tmp'))).filter((n) => n.endsWith('.partial'));
  } catch {
    return [];
  }
}

/** Bytes kept in all partial downloads: other blobs run in parallel, so a stopped pull can leave several. */
async function partialBytes(root: string): Promise<number> {
  const dir = path.join(root, 'var/lib/darch/tmp');
  let sum = 0;
  for (const n of await partials(root)) sum += (await stat(path.join(dir, n))).size;
  return sum;
}

function total(img: LayoutImage): number {
  return img.configSize + img.layers.reduce((a, l) => a + l.size, 0);
}

async function verifyOk(root: string): Promise<void> {
  const v = await darch(['images', 'verify'], { root });
  assert.equal(v.code, 0, `darch images verify failed:\n${v.stdout}\n${v.stderr}`);
}

describe('registry: pull and push through a faulty network', () => {
  let reg: RegistryServer;
  let proxy: FaultyProxy;
  let work: string;
  let layout: string;
  let app1: LayoutImage;
  let app2: LayoutImage;
  let big: LayoutImage;

  before(async () => {
    reg = await startRegistry();
    proxy = await new FaultyProxy({ host: '127.0.0.1', port: reg.port }).start();
    work = await mkdtemp(path.join(os.tmpdir(), 'darch-reg-'));
    const build = path.join(work, 'build');
    await darchOk(['demo', '--image-only', '--name', 'base:1'], { root: build });
    layout = path.join(work, 'layout');
    app1 = await deriveImage(storeDir(build), 'base:1', layout, 'app:1', [3 * MiB]);
    app2 = await deriveImage(layout, 'app:1', layout, 'app:2', [1 * MiB]);
    big = await deriveImage(storeDir(build), 'base:1', layout, 'big:1', [8 * MiB]);
    // skopeo pushes the fixtures: darch pulling them is the skopeo → darch direction.
    for (const ref of ['app:1', 'app:2', 'big:1']) {
      skopeo(['copy', '-q', '--dest-tls-verify=false', `oci:${layout}:${ref}`, `docker://${reg.host}/${ref.replace(':', ':')}`]);
    }
  });

  after(async () => {
    await proxy?.stop();
    await reg?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  test('skopeo → darch: a pulled image has the digest skopeo pushed and every blob verifies', async (t) => {
    const root = await tempDir(t);
    const r = await darchOk(['images', 'pull', `${reg.host}/app:1`, NO_TLS, '--json'], { root });
    const j = r.json();
    assert.equal(j.digest, app1.manifestDigest);
    assert.equal(j.name, `${reg.host}/app:1`);
    assert.equal(j.layers, 2);
    assert.equal(j.bytesDownloaded, total(app1));
    await verifyOk(root);
    const list = await darchOk(['images', 'list', '--names'], { root });
    assert.match(list.stdout, new RegExp(`${reg.host}/app:1`));
    // --name chooses the local name.
    const r2 = await darchOk(['images', 'pull', `${reg.host}/app:1`, NO_TLS, '--name', 'mine:7'], { root });
    assert.match(r2.stderr, /0 B downloaded/);
    assert.match((await darchOk(['images', 'list', '--names'], { root })).stdout, /^mine:7$/m);
  });

  test('a second pull of an updated image downloads only the new layer and reports what it skipped', async (t) => {
    const root = await tempDir(t);
    proxy.clear();
    await darchOk(['images', 'pull', `${proxy.host}/app:1`, NO_TLS], { root });
    proxy.clear();
    const j = (await darchOk(['images', 'pull', `${proxy.host}/app:2`, NO_TLS, '--json'], { root })).json();
    const newLayer = app2.layers[2]!;
    assert.equal(j.bytesDownloaded, newLayer.size + app2.configSize);
    assert.equal(j.bytesSkipped, app2.layers[0]!.size + app2.layers[1]!.size);
    assert.equal(j.blobsDownloaded, 2);
    assert.equal(j.blobsSkipped, 2);
    // Nothing already in the store went over the wire.
    for (const l of app1.layers) assert.equal(proxy.requests(l.digest).length, 0, `${l.digest} was fetched again`);
    assert.equal(proxy.requests(newLayer.digest).length, 1);
    await verifyOk(root);
  });

  test('a download cut mid-stream resumes with a Range request and ends with the right digest', async (t) => {
    const root = await tempDir(t);
    proxy.clear();
    const layer = big.layers[1]!;
    proxy.addRule({ method: 'GET', url: layer.digest, fault: { kind: 'cut', afterBytes: 3 * MiB } });
    const r = await darchOk(['images', 'pull', `${proxy.host}/big:1`, NO_TLS, '--json'], { root });
    const j = r.json();
    assert.equal(j.digest, big.manifestDigest);
    const gets = proxy.requests(layer.digest);
    assert.equal(gets.length, 2);
    assert.equal(gets[0]!.fault, 'cut');
    // It resumes from what reached its partial file (bytes still buffered when the socket
    // closed are dropped by undici and asked for again).
    const from = Number(/^bytes=(\d+)-$/.exec(gets[1]!.range ?? '')?.[1]);
    assert.ok(from > 2 * MiB && from <= 3 * MiB, `resumed from ${gets[1]!.range}`);
    assert.equal(gets[1]!.status, 206);
    assert.equal(gets[1]!.bytes, layer.size - from);
    // Not fetched again from the start (that would be at least total + from bytes).
    assert.ok(j.bytesDownloaded >= total(big) && j.bytesDownloaded < total(big) + from, `${j.bytesDownloaded} bytes downloaded`);
    assert.match(r.stderr, /interrupted/);
    const got = createHash('sha256')
      .update(await readFile(blobFile(root, layer.digest)))
      .digest('hex');
    assert.equal(`sha256:${got}`, layer.digest);
    assert.deepEqual(await partials(root), []);
    await verifyOk(root);
  });

  test('a stalled transfer is abandoned after --timeout and resumed', async (t) => {
    const root = await tempDir(t);
    proxy.clear();
    const layer = big.layers[1]!;
    proxy.addRule({ method: 'GET', url: layer.digest, fault: { kind: 'stall', afterBytes: 1 * MiB } });
    const j = (await darchOk(['images', 'pull', `${proxy.host}/big:1`, NO_TLS, '--timeout', '2', '--json'], { root })).json();
    assert.equal(j.digest, big.manifestDigest);
    const gets = proxy.requests(layer.digest);
    assert.equal(gets.length, 2);
    assert.equal(gets[1]!.range, `bytes=${1 * MiB}-`);
    await verifyOk(root);
  });

  test('500 and 429 answers are retried with backoff (Retry-After honoured)', async (t) => {
    const root = await tempDir(t);
    proxy.clear();
    proxy.addRule({ method: 'GET', url: '/manifests/1', fault: { kind: 'status', status: 500 }, times: 2 });
    proxy.addRule({ method: 'GET', url: app1.layers[1]!.digest, fault: { kind: 'status', status: 429, retryAfter: '1' } });
    const started = Date.now();
    const r = await darchOk(['images', 'pull', `${proxy.host}/app:1`, NO_TLS, '--json'], { root });
    assert.equal(r.json().digest, app1.manifestDigest);
    assert.equal(proxy.requests('/manifests/1').length, 3);
    assert.deepEqual(
      proxy.requests(app1.layers[1]!.digest).map((l) => l.status),
      [429, 200],
    );
    assert.ok(Date.now() - started >= 1000, 'Retry-After: 1 was not waited for');
    assert.match(r.stderr, /answered 500; retrying/);
    await verifyOk(root);
  });

  test('the retry budget ends in a clear error, and the next run resumes', async (t) => {
    const root = await tempDir(t);
    proxy.clear();
    proxy.addRule({ method: 'GET', url: app1.layers[1]!.digest, fault: { kind: 'status', status: 503 }, times: Infinity });
    const r = await darch(['images', 'pull', `${proxy.host}/app:1`, NO_TLS, '--retries', '1'], { root });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^error: .*503/m);
    assert.match(r.stderr, /^hint: /m);
    assert.doesNotMatch((await darch(['images', 'list', '--names'], { root })).stdout, /app:1/);
    proxy.clear();
    await darchOk(['images', 'pull', `${proxy.host}/app:1`, NO_TLS], { root });
    await verifyOk(root);
  });

  test('a flipped byte is rejected: nothing corrupt enters the store, a clean retry succeeds', async (t) => {
    const root = await tempDir(t);
    proxy.clear();
    const layer = app1.layers[1]!;
    proxy.addRule({ method: 'GET', url: layer.digest, fault: { kind: 'flip', atByte: 100_000 }, times: Infinity });
    const r = await darch(['images', 'pull', `${proxy.host}/app:1`, NO_TLS], { root });
    assert.equal(r.code, 1, r.stderr);
    const errors = r.stderr.split('\n').filter((l) => l.startsWith('error:'));
    assert.equal(errors.length, 1);
    assert.match(errors[0]!, /does not match its digest/);
    assert.match(r.stderr, /^hint: .*nothing was stored/m);
    assert.equal(existsSync(blobFile(root, layer.digest)), false);
    assert.deepEqual(await partials(root), []);
    assert.doesNotMatch((await darch(['images', 'list', '--names'], { root })).stdout, /app:1/);
    await verifyOk(root);
    // One corrupted transfer: darch fetches the blob again by itself.
    proxy.clear();
    proxy.addRule({ method: 'GET', url: layer.digest, fault: { kind: 'flip', atByte: 100_000 } });
    const ok = await darchOk(['images', 'pull', `${proxy.host}/app:1`, NO_TLS, '--json'], { root });
    assert.equal(ok.json().digest, app1.manifestDigest);
    assert.match(ok.stderr, /downloading it again/);
    assert.equal(proxy.requests(layer.digest).length, 2);
    await verifyOk(root);
  });

  test('a download killed mid-way (SIGKILL) resumes from its partial file in the next process', async (t) => {
    const root = await tempDir(t);
    proxy.clear();
    const layer = big.layers[1]!;
    const cutAt = 2 * MiB;
    proxy.addRule({ method: 'GET', url: layer.digest, fault: { kind: 'stall', afterBytes: cutAt } });
    const child = spawn(DARCH_BIN, ['--root', root, 'images', 'pull', `${proxy.host}/big:1`, NO_TLS], {
      stdio: 'ignore',
      env: { ...process.env, DARCH_LOCK_TIMEOUT: '0' },
    });
    const partial = path.join(root, 'var/lib/darch/tmp', `pull-sha256-${layer.digest.slice(7)}.partial`);
    let size = 0;
    for (let i = 0; i < 200 && size < cutAt; i++) {
      await sleep(100);
      size = await stat(partial).then(
        (s) => s.size,
        () => 0,
      );
    }
    assert.equal(size, cutAt, 'the partial download did not reach the stall point');
    child.kill('SIGKILL');
    await new Promise((r) => child.once('close', r));
    assert.equal(existsSync(blobFile(root, layer.digest)), false);
    assert.equal((await stat(partial)).size, cutAt);
    const kept = await partialBytes(root);
    const j = (await darchOk(['images', 'pull', `${proxy.host}/big:1`, NO_TLS, '--json'], { root })).json();
    assert.equal(j.digest, big.manifestDigest);
    // Every partial file is resumed, not only the stalled layer's.
    assert.equal(j.bytesResumed, kept);
    const gets = proxy.requests(layer.digest);
    assert.equal(gets.at(-1)!.range, `bytes=${cutAt}-`);
    assert.equal(gets.at(-1)!.status, 206);
    assert.equal(gets.at(-1)!.bytes, layer.size - cutAt);
    assert.equal(existsSync(partial), false);
    await verifyOk(root);
  });

  test('Ctrl-C (SIGINT) stops a pull with status 130, keeps the partial download and releases the store', async (t) => {
    const root = await tempDir(t);
    proxy.clear();
    const layer = app1.layers[1]!;
    const cutAt = 1 * MiB;
    proxy.addRule({ method: 'GET', url: layer.digest, fault: { kind: 'stall', afterBytes: cutAt } });
    const child = spawn(DARCH_BIN, ['--root', root, 'images', 'pull', `${proxy.host}/app:1`, NO_TLS], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, DARCH_LOCK_TIMEOUT: '0', NO_COLOR: '1' },
    });
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => void (stderr += b.toString()));
    const partial = path.join(root, 'var/lib/darch/tmp', `pull-sha256-${layer.digest.slice(7)}.partial`);
    let size = 0;
    for (let i = 0; i < 200 && size < cutAt; i++) {
      await sleep(100);
      size = await stat(partial).then(
        (s) => s.size,
        () => 0,
      );
    }
    child.kill('SIGINT');
    const code = await new Promise<number | null>((r) => child.once('close', (c) => r(c)));
    assert.equal(code, 130, stderr);
    assert.match(stderr, /^error: interrupted/m);
    // What reached the disk before the signal is kept (at least up to the stall point).
    const kept = (await stat(partial)).size;
    assert.ok(kept >= cutAt && kept < layer.size, `${kept} bytes kept\n${stderr}`);
    assert.equal(existsSync(path.join(root, 'var/lib/darch/images.lock')), false, 'the store lock was left behind');
    // The network is healthy again: the resumed pull must pick up exactly where the killed one stopped.
    proxy.clear();
    const keptAll = await partialBytes(root);
    const j = (await darchOk(['images', 'pull', `${proxy.host}/app:1`, NO_TLS, '--json'], { root })).json();
    assert.equal(j.bytesResumed, keptAll);
    assert.equal(proxy.requests(layer.digest).at(-1)!.range, `bytes=${kept}-`);
    await verifyOk(root);
  });

  test('a server that ignores Range (200 instead of 206) makes the partial file start over', async (t) => {
    const root = await tempDir(t);
    proxy.clear();
    const layer = app1.layers[1]!;
    // A correct first MiB, as an interrupted earlier run would have left it.
    const blob = await readFile(path.join(layout, 'blobs/sha256', layer.digest.slice(7)));
    await mkdir(path.join(root, 'var/lib/darch/tmp'), { recursive: true });
    await writeFile(path.join(root, 'var/lib/darch/tmp', `pull-sha256-${layer.digest.slice(7)}.partial`), blob.subarray(0, MiB));
    proxy.addRule({ method: 'GET', url: layer.digest, fault: { kind: 'ignore-range' } });
    const j = (await darchOk(['images', 'pull', `${proxy.host}/app:1`, NO_TLS, '--json'], { root })).json();
    assert.equal(j.digest, app1.manifestDigest);
    const gets = proxy.requests(layer.digest);
    assert.deepEqual(
      gets.map((l) => [l.range, l.status]),
      [[`bytes=${MiB}-`, 200]],
    );
    // The whole blob came again and was not appended to the partial file.
    assert.equal(gets[0]!.bytes, layer.size);
    const stored = await readFile(blobFile(root, layer.digest));
    assert.equal(stored.length, layer.size);
    await verifyOk(root);
  });

  test('a partial file with wrong bytes is caught on resume and downloaded again', async (t) => {
    const root = await tempDir(t);
    proxy.clear();
    const layer = app1.layers[1]!;
    // A partial left by an earlier run, with garbage in it (a torn write, a bad disk).
    await mkdir(path.join(root, 'var/lib/darch/tmp'), { recursive: true });
    await writeFile(path.join(root, 'var/lib/darch/tmp', `pull-sha256-${layer.digest.slice(7)}.partial`), Buffer.alloc(4096, 7));
    const r = await darchOk(['images', 'pull', `${proxy.host}/app:1`, NO_TLS, '--json'], { root });
    assert.equal(r.json().digest, app1.manifestDigest);
    assert.deepEqual(
      proxy.requests(layer.digest).map((l) => l.range),
      ['bytes=4096-', undefined],
    );
    await verifyOk(root);
  });

  test('platform selection from a Docker manifest list', async (t) => {
    const root = await tempDir(t);
    const list = {
      schemaVersion: 2,
      mediaType: 'application/vnd.docker.distribution.manifest.list.v2+json',
      manifests: [
        {
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          digest: app1.manifestDigest,
          size: app1.manifestSize,
          platform: { os: 'linux', architecture: 'amd64' },
        },
        {
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          digest: big.manifestDigest,
          size: big.manifestSize,
          platform: { os: 'linux', architecture: 'arm64', variant: 'v8' },
        },
      ],
    };
    // The registry accepts an index whose manifests it already has (pushed by skopeo in before()).
    const body = JSON.stringify(list);
    const res = await fetch(`${reg.url}/v2/multi/manifests/1`, { method: 'PUT', headers: { 'content-type': list.mediaType }, body }).catch(() => undefined);
    if (res?.status !== 201) {
      // Manifests must live in the same repository: copy them there first.
      skopeo(['copy', '-q', '--dest-tls-verify=false', `oci:${layout}:app:1`, `docker://${reg.host}/multi:amd`]);
      skopeo(['copy', '-q', '--dest-tls-verify=false', `oci:${layout}:big:1`, `docker://${reg.host}/multi:arm`]);
      const again = await fetch(`${reg.url}/v2/multi/manifests/1`, { method: 'PUT', headers: { 'content-type': list.mediaType }, body });
      assert.equal(again.status, 201, await again.text());
    }
    const arm = (
      await darchOk(['images', 'pull', `${reg.host}/multi:1`, NO_TLS, '--platform', 'linux/arm64', '--name', 'multi:arm', '--json'], { root })
    ).json();
    assert.equal(arm.digest, big.manifestDigest);
    const amd = (
      await darchOk(['images', 'pull', `${reg.host}/multi:1`, NO_TLS, '--platform', 'linux/amd64', '--name', 'multi:amd', '--json'], { root })
    ).json();
    assert.equal(amd.digest, app1.manifestDigest);
    const none = await darch(['images', 'pull', `${reg.host}/multi:1`, NO_TLS, '--platform', 'linux/s390x'], { root });
    assert.equal(none.code, 1);
    assert.match(none.stderr, /has no image for linux\/s390x/);
    assert.match(none.stderr, /hint: available: linux\/amd64, linux\/arm64\/v8/);
    await verifyOk(root);
  });

  test('darch → skopeo: a pushed image is what skopeo copies; push skips and mounts blobs the registry has', async (t) => {
    const root = await tempDir(t);
    await darchOk(['images', 'import', `oci:${layout}:app:2`, 'local/app:2'], { root });
    const first = (await darchOk(['images', 'push', 'local/app:2', `${reg.host}/pushed/app:2`, NO_TLS, '--json'], { root })).json();
    assert.equal(first.digest, app2.manifestDigest);
    assert.equal(first.blobsUploaded, 4);
    const out = path.join(await tempDir(t), 'oci');
    skopeo(['copy', '-q', '--src-tls-verify=false', `docker://${reg.host}/pushed/app:2`, `oci:${out}:copied`]);
    const idx = JSON.parse(await readFile(path.join(out, 'index.json'), 'utf8'));
    assert.equal(idx.manifests[0].digest, app2.manifestDigest);
    // Again: every blob is already there (HEAD), nothing is uploaded.
    const again = (await darchOk(['images', 'push', 'local/app:2', `${reg.host}/pushed/app:2`, NO_TLS, '--json'], { root })).json();
    assert.equal(again.blobsExisting, 4);
    assert.equal(again.bytesUploaded, 0);
    // An image pulled from one repository and pushed to another of the same registry is mounted.
    await darchOk(['images', 'pull', `${reg.host}/app:1`, NO_TLS], { root });
    const mounted = (await darchOk(['images', 'push', `${reg.host}/app:1`, `${reg.host}/elsewhere/app:1`, NO_TLS, '--json'], { root })).json();
    assert.equal(mounted.blobsMounted, 3);
    assert.equal(mounted.bytesUploaded, 0);
    skopeo(['inspect', '--tls-verify=false', `docker://${reg.host}/elsewhere/app:1`]);
  });

  test('chunked upload through a flaky proxy ends in the same image', async (t) => {
    const root = await tempDir(t);
    await darchOk(['images', 'import', `oci:${layout}:big:1`, 'local/big:1'], { root });
    proxy.clear();
    proxy.addRule({ method: 'PATCH', url: '/blobs/uploads/', fault: { kind: 'status', status: 500 } });
    const r = (await darchOk(['images', 'push', 'local/big:1', `${proxy.host}/chunked/big:1`, NO_TLS, '--chunk-size', '2', '--json'], { root })).json();
    assert.equal(r.digest, big.manifestDigest);
    assert.ok(proxy.requests('/blobs/uploads/', 'PATCH').length >= 5, 'the 8 MiB layer was not sent in 2 MiB chunks');
    // Manifest last: the PUT of the manifest is the final request.
    const puts = proxy.log.filter((l) => l.method === 'PUT');
    assert.match(puts.at(-1)!.url, /\/manifests\/1$/);
    const root2 = await tempDir(t);
    assert.equal((await darchOk(['images', 'pull', `${reg.host}/chunked/big:1`, NO_TLS, '--json'], { root: root2 })).json().digest, big.manifestDigest);
    await verifyOk(root2);
  });

  test('darch build --pull fetches an external base from the registry (registry.insecure in config.toml)', async (t) => {
    const root = await tempDir(t);
    const recipes = await tempDir(t);
    await mkdir(path.join(recipes, 'hello'));
    await writeFile(path.join(recipes, 'hello', 'config.json'), JSON.stringify({ inherits: `external:${reg.host}/app:1` }));
    await writeFile(path.join(recipes, 'hello', 'script'), '#!/bin/sh\necho hello > /etc/hello\n', { mode: 0o755 });
    await mkdir(path.join(root, 'etc/darch'), { recursive: true });
    await writeFile(path.join(root, 'etc/darch/config.toml'), `[registry]\ninsecure = ["${reg.host}"]\n`);
    const without = await darch(['build', '-d', recipes, 'hello'], { root });
    assert.equal(without.code, 1);
    assert.match(without.stderr, /not in the local store/);
    const r = await darch(['build', '-d', recipes, 'hello', '--pull'], { root });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /pulling 127\.0\.0\.1:\d+\/app:1/);
    const base = (await darchOk(['images', 'inspect', `${reg.host}/app:1`, '--json'], { root })).json();
    assert.equal(base.digest, app1.manifestDigest);
    await darchOk(['images', 'inspect', 'hello:latest'], { root });
    await verifyOk(root);
  });

  test('a missing image and an unreachable registry give one-line errors with hints', async (t) => {
    const root = await tempDir(t);
    const missing = await darch(['images', 'pull', `${reg.host}/nope:1`, NO_TLS], { root });
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^error: .*nope:1 was not found/m);
    assert.match(missing.stderr, /^hint: /m);
    const plain = await darch(['images', 'pull', `${reg.host}/app:1`], { root });
    assert.equal(plain.code, 1);
    assert.match(plain.stderr, /^error: .*does not speak TLS/m);
    assert.match(plain.stderr, /--tls-verify=false/);
    const closed = await freePort();
    const started = Date.now();
    const refused = await darch(['images', 'pull', `127.0.0.1:${closed}/app:1`, NO_TLS], { root });
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /^error: cannot reach 127\.0\.0\.1:\d+: .*ECONNREFUSED/m);
    assert.ok(Date.now() - started < 5000, 'a wrong address should fail at once, not after retries');
    const noPush = await darch(['images', 'push', 'nothere:1', `${reg.host}/x:1`, NO_TLS], { root });
    assert.equal(noPush.code, 1);
    assert.match(noPush.stderr, /not in the local store/);
  });
});

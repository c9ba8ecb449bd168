/**
 * Mirrors from registries.conf against real registries (Debian's docker-registry): a
 * pull-through cache in proxy mode serves a second machine after the origin is gone; a
 * mirror that is down or breaks mid-blob falls back to the origin; a malformed file and a
 * blocked registry are refused. Each machine is its own --root with
 * <root>/etc/containers/registries.conf.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { darch, darchOk, tempDir } from '../helpers/darch.js';
import { FaultyProxy } from '../helpers/faulty-proxy.js';
import { type RegistryServer, freePort, startRegistry } from '../helpers/registry.js';

const NO_TLS = '--tls-verify=false';

function storeDir(root: string): string {
  return path.join(root, 'var/lib/darch/images');
}

function confFile(root: string): string {
  return path.join(root, 'etc/containers/registries.conf');
}

async function writeConf(root: string, text: string): Promise<void> {
  await mkdir(path.dirname(confFile(root)), { recursive: true });
  await writeFile(confFile(root), text);
}

/** A [[registry]] for `prefix` with plain-HTTP mirrors, as a person would write it. */
function mirrorConf(prefix: string, mirrors: string[], more = ''): string {
  return [
    '# darch test: a registry and its mirrors',
    'unqualified-search-registries = ["docker.io"]',
    '',
    '[[registry]]',
    `prefix = "${prefix}"`,
    'insecure = true',
    more,
    ...mirrors.flatMap((m) => ['', '[[registry.mirror]]', `location = "${m}"`, 'insecure = true']),
    '',
  ].join('\n');
}

/** Config and layer digests of a pulled manifest, read from the machine's store. */
async function blobsOf(root: string, manifestDigest: string): Promise<string[]> {
  const m = JSON.parse(await readFile(path.join(storeDir(root), 'blobs/sha256', manifestDigest.slice(7)), 'utf8')) as {
    config: { digest: string };
    layers: Array<{ digest: string }>;
  };
  return [m.config.digest, ...m.layers.map((l) => l.digest)];
}

/**
 * distribution's proxy answers a blob while it copies it into its storage in the
 * background: wait until every blob is stored before the origin goes away.
 */
async function waitCached(mirror: RegistryServer, digests: string[]): Promise<void> {
  const file = (d: string) => path.join(mirror.dir, 'data/docker/registry/v2/blobs/sha256', d.slice(7, 9), d.slice(7), 'data');
  for (let i = 0; i < 300; i++) {
    if (digests.every((d) => existsSync(file(d)))) return;
    await sleep(100);
  }
  throw new Error(`the mirror did not store ${digests.filter((d) => !existsSync(file(d))).join(', ')} within 30 s`);
}

async function verifyOk(root: string): Promise<void> {
  const v = await darch(['images', 'verify'], { root });
  assert.equal(v.code, 0, `darch images verify failed:\n${v.stdout}\n${v.stderr}`);
}

describe('registry mirrors (registries.conf)', () => {
  let work: string;
  let build: string;
  let origin: RegistryServer;
  /** What was pushed to `origin` as fleet/app:1. */
  let pushed: string;

  before(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'darch-mirrors-'));
    build = path.join(work, 'build');
    await darchOk(['demo', '--image-only', '--name', 'base:1'], { root: build });
    origin = await startRegistry();
    pushed = (await darchOk(['images', 'push', 'base:1', `${origin.host}/fleet/app:1`, NO_TLS, '--json'], { root: build })).json().digest;
  });

  after(async () => {
    await origin?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  test('a pull-through cache: machine 1 fills it, then machine 2 pulls through it with the origin gone, same digests', async (t) => {
    // An origin and a mirror of their own: this test stops the origin.
    const own = await startRegistry();
    t.after(() => own.stop());
    const mirror = await startRegistry({ proxy: { remoteurl: own.url } });
    t.after(() => mirror.stop());
    const digest = (await darchOk(['images', 'push', 'base:1', `${own.host}/fleet/app:1`, NO_TLS, '--json'], { root: build })).json().digest;
    const ref = `${own.host}/fleet/app:1`;
    const conf = mirrorConf(own.host, [mirror.host]);

    const machine1 = await tempDir(t);
    await writeConf(machine1, conf);
    // No --tls-verify=false: `insecure = true` in registries.conf allows plain HTTP.
    const r1 = await darchOk(['images', 'pull', ref, '--json'], { root: machine1 });
    const j1 = r1.json();
    assert.equal(j1.digest, digest);
    assert.equal(j1.from, mirror.host);
    assert.equal(j1.source, ref);
    assert.equal(j1.name, ref, 'the image is named after the reference, not the mirror');
    assert.match(r1.stderr, new RegExp(`using mirror ${mirror.host}/fleet/app`));
    await verifyOk(machine1);
    const blobs = await blobsOf(machine1, j1.digest);
    await waitCached(mirror, blobs);

    await own.stop();
    // Without the mirror the origin is really gone.
    const gone = await tempDir(t);
    const g = await darch(['images', 'pull', ref, NO_TLS], { root: gone });
    assert.equal(g.code, 1, g.stderr);
    assert.match(g.stderr, /E_REGISTRY_UNREACHABLE|cannot reach/);

    const machine2 = await tempDir(t);
    await writeConf(machine2, conf);
    const j2 = (await darchOk(['images', 'pull', ref, '--json'], { root: machine2 })).json();
    assert.equal(j2.digest, j1.digest);
    assert.equal(j2.from, mirror.host);
    assert.deepEqual(await blobsOf(machine2, j2.digest), blobs);
    assert.equal(j2.bytesDownloaded, j1.bytesDownloaded);
    await verifyOk(machine2);
    // By digest too.
    const j3 = (await darchOk(['images', 'pull', `${own.host}/fleet/app@${digest}`, '--json'], { root: machine2 })).json();
    assert.equal(j3.digest, digest);
    assert.equal(j3.from, mirror.host);
    const list = await darchOk(['images', 'list', '--names'], { root: machine2 });
    assert.match(list.stdout, new RegExp(`^${ref.replace(/[.]/g, '\\.')}$`, 'm'));
  });

  test('a mirror that is down: a warning naming it, then the origin serves the pull', async (t) => {
    const closed = await freePort();
    const root = await tempDir(t);
    await writeConf(root, mirrorConf(origin.host, [`127.0.0.1:${closed}`]));
    const r = await darchOk(['images', 'pull', `${origin.host}/fleet/app:1`], { root });
    assert.match(r.stderr, new RegExp(`warning: mirror 127\\.0\\.0\\.1:${closed}/fleet/app failed: .*; trying registry ${origin.host}/fleet/app`));
    assert.match(r.stderr, /pulled /);
    const again = (await darchOk(['images', 'pull', `${origin.host}/fleet/app:1`, '--json', '--name', 'again:1'], { root })).json();
    assert.equal(again.from, origin.host);
    assert.equal(again.digest, pushed);
    await verifyOk(root);
  });

  test('a mirror that breaks mid-blob: the blob resumes from the registry (Range), digests verified', async (t) => {
    // The mirror is a cutting proxy in front of the origin; the registry's location is a
    // logging proxy in front of it too, which also shows the location rewrite at work.
    const cutting = await new FaultyProxy({ host: '127.0.0.1', port: origin.port }).start();
    t.after(() => cutting.stop());
    const logging = await new FaultyProxy({ host: '127.0.0.1', port: origin.port }).start();
    t.after(() => logging.stop());
    cutting.addRule({ method: 'GET', url: '/blobs/', fault: { kind: 'cut', afterBytes: 64 * 1024 }, times: Number.POSITIVE_INFINITY });
    const root = await tempDir(t);
    await writeConf(root, mirrorConf(origin.host, [cutting.host], `location = "${logging.host}"`));
    const r = await darchOk(['images', 'pull', `${origin.host}/fleet/app:1`, '--retries', '0', '--json'], { root });
    const j = r.json();
    assert.equal(j.digest, pushed);
    assert.equal(j.from, cutting.host, 'the mirror served the manifest');
    assert.match(
      r.stderr,
      new RegExp(`warning: mirror ${cutting.host}/fleet/app failed for blob [0-9a-f]{12}: .*; fetching it from registry ${logging.host}/fleet/app`),
    );
    assert.ok(cutting.requests('/manifests/').length > 0);
    assert.ok(
      logging.requests('/blobs/').some((l) => l.range?.startsWith('bytes=') && l.status === 206),
      `the registry was asked for the rest: ${JSON.stringify(logging.log)}`,
    );
    assert.equal(logging.requests('/manifests/').length, 0, 'the manifest came from the mirror only');
    await verifyOk(root);
  });

  test('a malformed registries.conf: exit 78 and the file named', async (t) => {
    const root = await tempDir(t);
    await writeConf(root, '[[registry]]\nprefix = "example.com"\nlocation = "example.net"\n[[registry.mirror]\nlocation = "m.local"\n');
    const r = await darch(['images', 'pull', `${origin.host}/fleet/app:1`, NO_TLS], { root });
    assert.equal(r.code, 78, r.stderr);
    assert.ok(r.stderr.includes(`error: ${confFile(root)}:`), r.stderr);
    // The same through CONTAINERS_REGISTRIES_CONF, and under --json.
    const own = path.join(root, 'mine.conf');
    await writeFile(own, '[[registry]]\nlocation = "example.net"\ninsecure = "yes"\n');
    const j = await darch(['images', 'pull', `${origin.host}/fleet/app:1`, NO_TLS, '--json'], { root, env: { CONTAINERS_REGISTRIES_CONF: own } });
    assert.equal(j.code, 78, j.stderr);
    const e = j.json().error;
    assert.equal(e.code, 'E_REGISTRIES_CONF');
    assert.ok(e.message.startsWith(`${own}: registry.0.insecure`), e.message);
    assert.equal(
      existsSync(path.join(storeDir(root), 'index.json')) ? JSON.parse(await readFile(path.join(storeDir(root), 'index.json'), 'utf8')).manifests.length : 0,
      0,
    );
  });

  test('blocked = true refuses the pull and stores nothing', async (t) => {
    const root = await tempDir(t);
    await writeConf(root, `[[registry]]\nprefix = "${origin.host}/fleet"\nblocked = true\n\n[[registry]]\nprefix = "${origin.host}"\ninsecure = true\n`);
    const r = await darch(['images', 'pull', `${origin.host}/fleet/app:1`, '--json'], { root });
    assert.equal(r.code, 1, r.stderr);
    const e = r.json().error;
    assert.equal(e.code, 'E_REGISTRY_BLOCKED');
    assert.ok(e.message.includes(confFile(root)), e.message);
    assert.ok(e.message.includes(`"${origin.host}/fleet"`), e.message);
    const list = await darchOk(['images', 'list', '--names'], { root });
    assert.equal(list.stdout.trim(), '');
  });
});

/** Pure parts of the registry client: challenges, credential lookup order, ranges, names, platforms. */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { authFileOrder, findCredentials, primaryAuthFile, removeCredentials, saveCredentials } from '../../src/registry/auth-file.js';
import { parseChallenges } from '../../src/registry/challenge.js';
import { backoffMs } from '../../src/registry/client.js';
import { contentRangeStart } from '../../src/registry/download.js';
import { choosePlatform, parsePlatform } from '../../src/registry/manifest.js';
import { localNameFor } from '../../src/registry/pull.js';
import { remoteOf } from '../../src/registry/remote.js';
import { parseRef } from '../../src/oci/reference.js';

describe('WWW-Authenticate', () => {
  test('Bearer with quoted parameters, commas inside quotes', () => {
    const [c] = parseChallenges('Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push"');
    assert.deepEqual(c, { scheme: 'bearer', params: { realm: 'https://auth.example/token', service: 'registry.example', scope: 'repository:a/b:pull,push' } });
  });
  test('Basic, several challenges, unknown schemes skipped', () => {
    const cs = parseChallenges(['Negotiate abc', 'Basic realm="Registry Realm"']);
    assert.deepEqual(cs, [{ scheme: 'basic', params: { realm: 'Registry Realm' } }]);
    assert.deepEqual(parseChallenges(undefined), []);
  });
});

describe('credential lookup (containers-auth.json order)', () => {
  async function setup() {
    const home = await mkdtemp(path.join(os.tmpdir(), 'darch-auth-'));
    const env = { HOME: home, XDG_RUNTIME_DIR: path.join(home, 'run'), XDG_CONFIG_HOME: path.join(home, 'cfg') };
    return { home, env };
  }
  const enc = (u: string, p: string) => Buffer.from(`${u}:${p}`).toString('base64');
  async function put(file: string, doc: unknown) {
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, JSON.stringify(doc));
  }

  test('order: REGISTRY_AUTH_FILE (or runtime auth.json), config auth.json, docker config, .dockercfg', async () => {
    const { home, env } = await setup();
    try {
      assert.deepEqual(
        authFileOrder({ env }).map((e) => e.file),
        [
          path.join(home, 'run/containers/auth.json'),
          path.join(home, 'cfg/containers/auth.json'),
          path.join(home, '.docker/config.json'),
          path.join(home, '.dockercfg'),
        ],
      );
      assert.equal(authFileOrder({ env: { ...env, REGISTRY_AUTH_FILE: '/x/a.json' } })[0]!.file, '/x/a.json');
      assert.equal(authFileOrder({ env: { ...env, DOCKER_CONFIG: '/d' } })[2]!.file, '/d/config.json');
      assert.equal(primaryAuthFile({ env, authFile: '/y/b.json' }), '/y/b.json');

      await put(path.join(home, '.dockercfg'), { 'https://reg.example': { auth: enc('legacy', 'l') } });
      assert.equal((await findCredentials('reg.example', 'a/b', { env }))?.username, 'legacy');
      await put(path.join(home, '.docker/config.json'), { auths: { 'https://reg.example/v1/': { auth: enc('docker', 'd') } } });
      assert.equal((await findCredentials('reg.example', 'a/b', { env }))?.username, 'docker');
      await put(path.join(home, 'cfg/containers/auth.json'), { auths: { 'reg.example': { auth: enc('config', 'c') } } });
      assert.equal((await findCredentials('reg.example', 'a/b', { env }))?.username, 'config');
      // A repository-specific entry beats the registry-wide one in the same file.
      await put(path.join(home, 'run/containers/auth.json'), {
        auths: { 'reg.example': { auth: enc('runtime', 'r') }, 'reg.example/a/b': { auth: enc('repo', 'x') } },
      });
      const c = await findCredentials('reg.example', 'a/b', { env });
      assert.deepEqual([c?.username, c?.password], ['repo', 'x']);
      assert.equal((await findCredentials('reg.example', 'other', { env }))?.username, 'runtime');
      assert.equal(await findCredentials('elsewhere.example', undefined, { env }), undefined);
    } finally {
      await rm(home, { recursive: true, force: true });
    }
  });

  test('save keeps other entries and writes 0600; remove drops only that registry', async () => {
    const { home, env } = await setup();
    try {
      const file = primaryAuthFile({ env });
      await put(file, { auths: { 'keep.example': { auth: enc('k', 'k') } }, credHelpers: { 'x.example': 'none' } });
      await saveCredentials('reg.example:5000', 'u', 'p', { env });
      const doc = JSON.parse(await readFile(file, 'utf8'));
      assert.deepEqual(Object.keys(doc.auths).sort(), ['keep.example', 'reg.example:5000']);
      assert.deepEqual(doc.credHelpers, { 'x.example': 'none' });
      assert.equal((await stat(file)).mode & 0o777, 0o600);
      assert.equal((await removeCredentials('reg.example:5000', { env })).removed, true);
      assert.equal((await removeCredentials('reg.example:5000', { env })).removed, false);
      assert.deepEqual(Object.keys(JSON.parse(await readFile(file, 'utf8')).auths), ['keep.example']);
    } finally {
      await rm(home, { recursive: true, force: true });
    }
  });

  test('a corrupt auth file is a clear error naming the file', async () => {
    const { home, env } = await setup();
    try {
      await put(path.join(home, 'run/containers/auth.json'), {});
      await writeFile(path.join(home, 'run/containers/auth.json'), '{not json');
      await assert.rejects(findCredentials('reg.example', undefined, { env }), /auth\.json is not valid JSON/);
    } finally {
      await rm(home, { recursive: true, force: true });
    }
  });
});

describe('ranges, backoff, names, platforms', () => {
  test('Content-Range', () => {
    assert.deepEqual(contentRangeStart('bytes 100-199/200'), { start: 100, total: 200 });
    assert.deepEqual(contentRangeStart('bytes 5-9/*'), { start: 5, total: undefined });
    assert.equal(contentRangeStart('100-199/200'), undefined);
    assert.equal(contentRangeStart(undefined), undefined);
  });
  test('backoff grows, is capped, and honours Retry-After', () => {
    assert.ok(backoffMs(0) <= 300 && backoffMs(0) >= 150);
    assert.ok(backoffMs(3) >= 1200 && backoffMs(3) <= 2400);
    assert.ok(backoffMs(30) <= 10_000);
    assert.equal(backoffMs(0, '2'), 2000);
    assert.equal(backoffMs(0, '9999'), 30_000);
  });
  test('local names and remotes', () => {
    assert.equal(localNameFor('127.0.0.1:5000/foo:1', parseRef('127.0.0.1:5000/foo:1')), '127.0.0.1:5000/foo:1');
    assert.equal(localNameFor('127.0.0.1:5000/foo', parseRef('127.0.0.1:5000/foo')), '127.0.0.1:5000/foo:latest');
    const d = `sha256:${'ab'.repeat(32)}`;
    assert.equal(localNameFor(`reg.example/foo@${d}`, parseRef(`reg.example/foo@${d}`)), 'reg.example/foo:sha256-abababababab');
    assert.equal(localNameFor(`reg.example/foo:2@${d}`, parseRef(`reg.example/foo:2@${d}`)), 'reg.example/foo:2');
    assert.deepEqual(remoteOf(parseRef('busybox')), { host: 'docker.io', repo: 'library/busybox', display: 'docker.io/library/busybox' });
    assert.deepEqual(remoteOf(parseRef('localhost:5000/a/b:1')), { host: 'localhost:5000', repo: 'a/b', display: 'localhost:5000/a/b' });
  });
  test('platform choice', () => {
    const idx = {
      schemaVersion: 2 as const,
      manifests: [
        { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: 'sha256:a', size: 1, platform: { os: 'linux', architecture: 'amd64' } },
        { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: 'sha256:b', size: 1, platform: { os: 'linux', architecture: 'arm', variant: 'v7' } },
        { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: 'sha256:c', size: 1, platform: { os: 'linux', architecture: 'arm', variant: 'v6' } },
      ],
    };
    assert.equal(choosePlatform(idx, parsePlatform('linux/amd64'))?.digest, 'sha256:a');
    assert.equal(choosePlatform(idx, parsePlatform('linux/arm/v6'))?.digest, 'sha256:c');
    assert.equal(choosePlatform(idx, parsePlatform('linux/riscv64')), undefined);
    assert.throws(() => parsePlatform('amd64'), /invalid platform/);
  });
});

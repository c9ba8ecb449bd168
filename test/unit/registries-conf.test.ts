/** containers-registries.conf(5): prefix matching, rewrites, mirrors and their order, the files and their merge. */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { DarchError } from '../../src/lib/errors.js';
import { resolvePaths } from '../../src/lib/paths.js';
import { parseRef } from '../../src/oci/reference.js';
import {
  type MirrorEntry,
  type RegistriesConf,
  type RegistryEntry,
  findRegistry,
  loadRegistriesConf,
  prefixMatch,
  registriesConfFiles,
  sourcesFor,
} from '../../src/registry/registries-conf.js';

const DIGEST = `sha256:${'ab'.repeat(32)}`;

function entry(prefix: string, more: Partial<RegistryEntry> = {}): RegistryEntry {
  return {
    prefix,
    location: prefix.startsWith('*.') ? '' : prefix,
    insecure: false,
    blocked: false,
    mirrors: [],
    file: '/etc/containers/registries.conf',
    ...more,
  };
}

function mirror(location: string, more: Partial<MirrorEntry> = {}): MirrorEntry {
  return { location, insecure: false, pullFromMirror: 'all', ...more };
}

function conf(...registries: RegistryEntry[]): RegistriesConf {
  return { files: ['/etc/containers/registries.conf'], registries };
}

/** The sources as `host/repo:ref` strings (a digest with @), mirrors first. */
function tried(input: string, c: RegistriesConf): string[] {
  return sourcesFor(parseRef(input), c).map((s) => `${s.host}/${s.repo}${s.reference.startsWith('sha256:') ? '@' : ':'}${s.reference}`);
}

describe('prefix matching', () => {
  test('a host, a namespace, a repository, with a separator after the prefix', () => {
    assert.equal(prefixMatch('example.com/foo/bar:1', 'example.com'), 'example.com'.length);
    assert.equal(prefixMatch('example.com/foo/bar:1', 'example.com/foo'), 'example.com/foo'.length);
    assert.equal(prefixMatch('example.com/foo/bar:1', 'example.com/foo/bar'), 'example.com/foo/bar'.length);
    assert.equal(prefixMatch('example.com/foo/bar:1', 'example.com/foo/bar:1'), 'example.com/foo/bar:1'.length);
    assert.equal(prefixMatch(`example.com/foo/bar@${DIGEST}`, 'example.com/foo/bar'), 'example.com/foo/bar'.length);
    // Not at a component boundary.
    assert.equal(prefixMatch('example.com/foobar/x:1', 'example.com/foo'), -1);
    assert.equal(prefixMatch('example.community/x:1', 'example.com'), -1);
    // A bare host does not match the same host with a port.
    assert.equal(prefixMatch('example.com:5000/x:1', 'example.com'), -1);
    assert.equal(prefixMatch('example.com:5000/x:1', 'example.com:5000'), 'example.com:5000'.length);
  });

  test('*.example.com covers any subdomain (with or without a port), not example.com itself', () => {
    assert.equal(prefixMatch('a.example.com/x:1', '*.example.com'), 'a.example.com'.length);
    assert.equal(prefixMatch('b.a.example.com/x/y:1', '*.example.com'), 'b.a.example.com'.length);
    assert.equal(prefixMatch('a.example.com:5000/x:1', '*.example.com'), 'a.example.com:5000'.length);
    assert.equal(prefixMatch('example.com/x:1', '*.example.com'), -1);
    assert.equal(prefixMatch('aexample.com/x:1', '*.example.com'), -1);
    assert.equal(prefixMatch('other.org/example.com/x:1', '*.example.com'), -1);
  });

  test('the longest prefix wins, whatever the order; on a tie a plain prefix beats a wildcard', () => {
    const c = conf(entry('example.com'), entry('example.com/team/app'), entry('example.com/team'), entry('*.example.com'), entry('a.example.com'));
    assert.equal(findRegistry('example.com/team/app:1', c)?.entry.prefix, 'example.com/team/app');
    assert.equal(findRegistry('example.com/team/other:1', c)?.entry.prefix, 'example.com/team');
    assert.equal(findRegistry('example.com/x:1', c)?.entry.prefix, 'example.com');
    assert.equal(findRegistry('a.example.com/x:1', c)?.entry.prefix, 'a.example.com');
    assert.equal(findRegistry('b.example.com/x:1', c)?.entry.prefix, '*.example.com');
    assert.equal(findRegistry('other.org/x:1', c), undefined);
  });
});

describe('sourcesFor', () => {
  test('no matching entry: the reference itself (Docker Hub names get library/)', () => {
    assert.deepEqual(tried('example.com/foo:1', conf()), ['example.com/foo:1']);
    assert.deepEqual(tried('busybox', conf(entry('quay.io'))), ['docker.io/library/busybox:latest']);
    assert.deepEqual(sourcesFor(parseRef('example.com/foo:1'), conf()), [{ host: 'example.com', repo: 'foo', reference: '1', insecure: false, mirror: false }]);
  });

  test("mirrors in order, then the location; each rewrites the part the prefix matched (the man page's example)", () => {
    const c = conf(
      entry('example.com/foo', {
        location: 'internal-registry-for-example.net/bar',
        mirrors: [mirror('example-mirror-0.local/mirror-for-foo'), mirror('example-mirror-1.local/mirrors/foo', { insecure: true })],
      }),
      entry('registry.com', { mirrors: [mirror('mirror.registry.com')] }),
    );
    assert.deepEqual(tried('example.com/foo/image:latest', c), [
      'example-mirror-0.local/mirror-for-foo/image:latest',
      'example-mirror-1.local/mirrors/foo/image:latest',
      'internal-registry-for-example.net/bar/image:latest',
    ]);
    const s = sourcesFor(parseRef('example.com/foo/image:latest'), c);
    assert.deepEqual(
      s.map((x) => [x.mirror, x.insecure]),
      [
        [true, false],
        [true, true],
        [false, false],
      ],
    );
    // A mirror belongs to its own entry only.
    assert.deepEqual(tried('registry.com/image:1', c), ['mirror.registry.com/image:1', 'registry.com/image:1']);
  });

  test('Docker Hub: prefix docker.io matches short names; the mirror sees library/', () => {
    const c = conf(entry('docker.io', { mirrors: [mirror('127.0.0.1:5000')] }));
    assert.deepEqual(tried('busybox:1.36', c), ['127.0.0.1:5000/library/busybox:1.36', 'docker.io/library/busybox:1.36']);
    assert.deepEqual(tried('docker.io/someone/tool', c), ['127.0.0.1:5000/someone/tool:latest', 'docker.io/someone/tool:latest']);
    assert.deepEqual(tried('index.docker.io/busybox', c), ['127.0.0.1:5000/library/busybox:latest', 'docker.io/library/busybox:latest']);
  });

  test('pull-from-mirror: digest-only mirrors serve pulls by digest only, tag-only ones pulls by tag only', () => {
    const c = conf(
      entry('example.com', {
        mirrors: [mirror('digests.local', { pullFromMirror: 'digest-only' }), mirror('tags.local', { pullFromMirror: 'tag-only' }), mirror('all.local')],
      }),
    );
    assert.deepEqual(tried('example.com/app:2', c), ['tags.local/app:2', 'all.local/app:2', 'example.com/app:2']);
    assert.deepEqual(tried(`example.com/app@${DIGEST}`, c), [`digests.local/app@${DIGEST}`, `all.local/app@${DIGEST}`, `example.com/app@${DIGEST}`]);
    // A reference with both a tag and a digest is a pull by digest.
    assert.deepEqual(tried(`example.com/app:2@${DIGEST}`, c)[0], `digests.local/app@${DIGEST}`);
  });

  test('a wildcard entry keeps the name (no location) but its mirrors and insecure apply; a location replaces the host', () => {
    const c = conf(entry('*.example.com', { insecure: true, mirrors: [mirror('cache.local/ex')] }));
    const s = sourcesFor(parseRef('a.example.com:5000/team/app:3'), c);
    assert.deepEqual(
      s.map((x) => `${x.host}/${x.repo}:${x.reference}`),
      ['cache.local/ex/team/app:3', 'a.example.com:5000/team/app:3'],
    );
    assert.equal(s[1]?.insecure, true);
    const moved = conf(entry('*.example.com', { location: 'central.local' }));
    assert.deepEqual(tried('b.example.com/app:1', moved), ['central.local/app:1']);
  });

  test('a prefix with a tag rewrites the tag too', () => {
    const c = conf(entry('example.com/app:stable', { location: 'example.com/app:2.4' }));
    assert.deepEqual(tried('example.com/app:stable', c), ['example.com/app:2.4']);
    assert.deepEqual(tried('example.com/app:other', c), ['example.com/app:other']);
  });

  test('blocked = true refuses the pull, naming the file and the prefix', () => {
    const c = conf(entry('example.com'), entry('example.com/bad', { blocked: true }));
    assert.deepEqual(tried('example.com/good:1', c), ['example.com/good:1']);
    assert.throws(
      () => sourcesFor(parseRef('example.com/bad/app:1'), c),
      (e: unknown) => e instanceof DarchError && e.code === 'E_REGISTRY_BLOCKED' && /registries\.conf/.test(e.message) && /example\.com\/bad/.test(e.message),
    );
  });

  test('a rewrite that leaves no repository is a configuration error naming the file', () => {
    const c = conf(entry('example.com/app', { location: 'other.example' }));
    assert.throws(
      () => sourcesFor(parseRef('example.com/app:1'), c),
      (e: unknown) => e instanceof DarchError && e.code === 'E_REGISTRIES_CONF' && e.exitCode === 78 && e.message.includes('registries.conf'),
    );
  });
});

describe('reading registries.conf', () => {
  const dirs: string[] = [];
  after(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });
  async function root(): Promise<string> {
    const d = await mkdtemp(path.join(os.tmpdir(), 'darch-regconf-'));
    dirs.push(d);
    return d;
  }
  async function put(file: string, text: string): Promise<void> {
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, text);
  }

  test('--root relocates /etc/containers; drop-ins in sorted order replace entries with the same prefix; unused keys are ignored', async () => {
    const r = await root();
    const paths = resolvePaths({ root: r, env: {} });
    assert.equal(paths.containersConfDir, path.join(r, 'etc/containers'));
    const etc = paths.containersConfDir;
    await put(
      path.join(etc, 'registries.conf'),
      `unqualified-search-registries = ["docker.io"]
short-name-mode = "enforcing"
credential-helpers = ["containers-auth.json"]
[aliases]
"busybox" = "docker.io/library/busybox"

[[registry]]
prefix = "example.com"
location = "origin.example"
insecure = true
[[registry.mirror]]
location = "m1.local"

[[registry]]
location = "quay.io"
`,
    );
    await put(path.join(etc, 'registries.conf.d', '20-b.conf'), `[[registry]]\nprefix = "example.com"\nlocation = "second.example"\n`);
    await put(path.join(etc, 'registries.conf.d', '10-a.conf'), `[[registry]]\nprefix = "example.com"\nlocation = "first.example"\n`);
    await put(path.join(etc, 'registries.conf.d', 'ignored.txt'), 'not toml at all [[[');
    await mkdir(path.join(etc, 'registries.conf.d', 'sub.conf'));
    const c = await loadRegistriesConf(paths, {});
    assert.deepEqual(c.files, [
      path.join(etc, 'registries.conf'),
      path.join(etc, 'registries.conf.d', '10-a.conf'),
      path.join(etc, 'registries.conf.d', '20-b.conf'),
    ]);
    const e = c.registries.find((x) => x.prefix === 'example.com');
    assert.equal(e?.location, 'second.example');
    assert.equal(e?.mirrors.length, 0);
    assert.equal(e?.file, path.join(etc, 'registries.conf.d', '20-b.conf'));
    assert.ok(c.registries.some((x) => x.prefix === 'quay.io' && x.location === 'quay.io'));
  });

  test('no file at all is no configuration', async () => {
    const r = await root();
    const c = await loadRegistriesConf(resolvePaths({ root: r, env: {} }), {});
    assert.deepEqual(c, { files: [], registries: [] });
  });

  test('CONTAINERS_REGISTRIES_CONF: that file only, and it must exist', async () => {
    const r = await root();
    const paths = resolvePaths({ root: r, env: {} });
    await put(path.join(paths.containersConfDir, 'registries.conf'), '[[registry]]\nlocation = "system.example"\n');
    const own = path.join(r, 'own.conf');
    await put(own, '[[registry]]\nlocation = "own.example"\n');
    const c = await loadRegistriesConf(paths, { CONTAINERS_REGISTRIES_CONF: own });
    assert.deepEqual(c.files, [own]);
    assert.deepEqual(
      c.registries.map((x) => x.prefix),
      ['own.example'],
    );
    await assert.rejects(
      loadRegistriesConf(paths, { CONTAINERS_REGISTRIES_CONF: path.join(r, 'missing.conf') }),
      (e: unknown) => e instanceof DarchError && e.code === 'E_REGISTRIES_CONF' && e.message.includes('missing.conf'),
    );
  });

  test("user mode: the user's registries.conf replaces the system one; without it the user's drop-ins come after the system's", async () => {
    const home = await root();
    const cfg = path.join(home, 'cfg');
    const paths = resolvePaths({ uid: 1000, env: { HOME: home, XDG_CONFIG_HOME: cfg } });
    assert.equal(paths.userContainersConfDir, path.join(cfg, 'containers'));
    const withSystem = { ...paths, containersConfDir: path.join(home, 'system') };
    await put(path.join(withSystem.containersConfDir, 'registries.conf'), '');
    await put(path.join(withSystem.containersConfDir, 'registries.conf.d', 'a.conf'), '');
    await put(path.join(cfg, 'containers', 'registries.conf.d', 'b.conf'), '');
    assert.deepEqual((await registriesConfFiles(withSystem, {})).files, [
      path.join(home, 'system', 'registries.conf'),
      path.join(home, 'system', 'registries.conf.d', 'a.conf'),
      path.join(cfg, 'containers', 'registries.conf.d', 'b.conf'),
    ]);
    await put(path.join(cfg, 'containers', 'registries.conf'), '');
    assert.deepEqual((await registriesConfFiles(withSystem, {})).files, [
      path.join(cfg, 'containers', 'registries.conf'),
      path.join(cfg, 'containers', 'registries.conf.d', 'b.conf'),
    ]);
  });

  const bad: Array<[string, string, RegExp]> = [
    ['TOML syntax', '[[registry]\nprefix = "x"', /registries\.conf: /],
    ['a wrong type', '[[registry]]\nlocation = "a.example"\ninsecure = "yes"', /registry\.0\.insecure/],
    ['neither prefix nor location', '[[registry]]\ninsecure = true', /registry\.0: neither prefix nor location/],
    ['a URL scheme', '[[registry]]\nlocation = "https://a.example"', /registry\.0\.location: .*scheme/],
    ['a wildcard in the middle', '[[registry]]\nprefix = "a.*.example"\nlocation = "x.example"', /registry\.0\.prefix/],
    ['a wildcard with a path', '[[registry]]\nprefix = "*.example.com/foo"', /registry\.0\.prefix/],
    ['a mirror without location', '[[registry]]\nlocation = "a.example"\n[[registry.mirror]]\ninsecure = true', /registry\.0\.mirror\.0\.location/],
    [
      'an unknown pull-from-mirror',
      '[[registry]]\nlocation = "a.example"\n[[registry.mirror]]\nlocation = "m.example"\npull-from-mirror = "sometimes"',
      /pull-from-mirror/,
    ],
    [
      'pull-from-mirror with mirror-by-digest-only',
      '[[registry]]\nlocation = "a.example"\nmirror-by-digest-only = true\n[[registry.mirror]]\nlocation = "m.example"\npull-from-mirror = "all"',
      /mirror-by-digest-only/,
    ],
    ['the same prefix twice in one file', '[[registry]]\nlocation = "a.example"\n[[registry]]\nprefix = "a.example"\nlocation = "b.example"', /defined twice/],
  ];
  for (const [what, text, re] of bad) {
    test(`a malformed file (${what}) is E_REGISTRIES_CONF, exit 78, naming the file`, async () => {
      const r = await root();
      const paths = resolvePaths({ root: r, env: {} });
      const file = path.join(paths.containersConfDir, 'registries.conf');
      await put(file, text);
      await assert.rejects(loadRegistriesConf(paths, {}), (e: unknown) => {
        assert.ok(e instanceof DarchError, String(e));
        assert.equal(e.code, 'E_REGISTRIES_CONF');
        assert.equal(e.exitCode, 78);
        assert.ok(e.message.startsWith(`${file}: `), e.message);
        assert.match(e.message, re);
        return true;
      });
    });
  }

  test('mirror-by-digest-only makes every mirror digest-only', async () => {
    const r = await root();
    const paths = resolvePaths({ root: r, env: {} });
    await put(
      path.join(paths.containersConfDir, 'registries.conf'),
      '[[registry]]\nlocation = "a.example"\nmirror-by-digest-only = true\n[[registry.mirror]]\nlocation = "m.example"\n',
    );
    const c = await loadRegistriesConf(paths, {});
    assert.equal(c.registries[0]?.mirrors[0]?.pullFromMirror, 'digest-only');
    assert.deepEqual(tried('a.example/app:1', c), ['a.example/app:1']);
    assert.deepEqual(tried(`a.example/app@${DIGEST}`, c), [`m.example/app@${DIGEST}`, `a.example/app@${DIGEST}`]);
  });
});

/**
 * Real buildah builds of a three-level chain: an external base imported from a busybox
 * tarball → a Darch-format child → a Containerfile grandchild; then the layer cache, and
 * the original Darch docs' tree shape (common → external, gaming → common) with -t and -p.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { REPO, darch, darchOk } from '../helpers/darch.js';
import { buildahContainers, importBusybox, layerEntries, refNames, storeDir, writeTree } from '../helpers/recipes.js';

interface Inspect {
  digest: string;
  layers: Array<{ digest: string }>;
  config: { Env?: string[]; Labels?: Record<string, string> };
  manifest: { annotations?: Record<string, string> };
}

describe('darch build: external base → Darch recipe → Containerfile', () => {
  let work: string;
  let root: string;
  let recipes: string;
  const inspect = async (img: string): Promise<Inspect> => (await darchOk(['--json', 'images', 'inspect', img], { root })).json<Inspect>();

  after(() => rm(work, { recursive: true, force: true }));
  before(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'darch-build-'));
    root = path.join(work, 'root');
    recipes = path.join(work, 'recipes');
    // A `script` command on PATH (util-linux has one) must not be what runs instead of the recipe's.
    await importBusybox(root, work, 'base/busybox:stable', { 'usr/bin/script': { content: '#!/bin/sh\necho "wrong script"\nexit 9\n', mode: 0o755 } });
    await writeTree(recipes, {
      base: {
        'config.json': '{"inherits": "external:base/busybox:stable"}',
        script:
          '#!/bin/sh\nset -e\necho "setting up the base"\nmkdir -p /opt\necho "base in $(pwd) recipe=$DARCH_RECIPE foo=$FOO" > /opt/base.txt\ncat data.txt ../.shared/lib.txt >> /opt/base.txt\n',
        'data.txt': 'data from the recipe directory\n',
        'recipe.toml': 'env = { GREETING = "hello" }\nlabels = { "org.example.role" = "base" }\ntags = ["stable"]\n',
      },
      '.shared': { 'lib.txt': 'shared helper\n' },
      desktop: {
        Containerfile:
          '# a grandchild in the other format\nFROM darch:base\nRUN echo "desktop sees: $(cat /opt/base.txt | head -1)" > /opt/desktop.txt \\\n && echo greeting=$GREETING >> /opt/desktop.txt\nCOPY motd /etc/motd\n',
        motd: 'welcome to the desktop\n',
      },
    });
  });

  test('lists, orders and draws the tree', async () => {
    const list = await darchOk(['recipes', '-d', recipes, 'list'], { root });
    assert.equal(list.stdout, 'base\ndesktop\n');
    const dep = await darchOk(['recipes', 'build-dep', 'desktop', '-d', recipes], { root });
    assert.equal(dep.stdout, 'base\ndesktop\n');
    const tree = await darchOk(['recipes', 'tree', '-d', recipes], { root });
    assert.equal(tree.stdout, 'external:base/busybox:stable\n└── base\n    └── desktop\n');
    const parents = await darchOk(['recipes', 'parents', 'desktop', '-d', recipes], { root });
    assert.equal(parents.stdout, 'base\nexternal:base/busybox:stable\n');
    const children = await darchOk(['recipes', 'children', 'base', '-d', recipes], { root });
    assert.equal(children.stdout, 'desktop\n');
  });

  test('builds the chain with one new layer per recipe and the right files in each', async () => {
    const r = await darch(['--json', 'build', '-d', recipes, 'desktop', '-e', 'FOO=bar'], { root });
    assert.equal(r.code, 0, r.stderr);
    const res = r.json<{ images: Array<{ recipe: string; status: string; image: string }> }>();
    assert.deepEqual(
      res.images.map((i) => [i.recipe, i.status, i.image]),
      [
        ['base', 'built', 'base:latest'],
        ['desktop', 'built', 'desktop:latest'],
      ],
    );
    // Output streams prefixed with the recipe name.
    assert.match(r.stderr, /^\[base\] setting up the base$/m);
    assert.match(r.stderr, /^\[desktop\] STEP 2\/\d+: RUN/m);

    const ext = await inspect('base/busybox:stable');
    const base = await inspect('base:latest');
    const desktop = await inspect('desktop:latest');
    assert.equal(base.layers.length, ext.layers.length + 1);
    assert.equal(desktop.layers.length, base.layers.length + 1);
    // Parent layers are shared, not re-compressed copies.
    assert.deepEqual(
      base.layers.slice(0, -1).map((l) => l.digest),
      ext.layers.map((l) => l.digest),
    );
    assert.deepEqual(
      desktop.layers.slice(0, -1).map((l) => l.digest),
      base.layers.map((l) => l.digest),
    );
    assert.equal(desktop.manifest.annotations?.['org.opencontainers.image.base.name'], 'base:latest');
    assert.equal(base.manifest.annotations?.['org.opencontainers.image.base.name'], 'base/busybox:stable');

    const baseLayer = layerEntries(root, base.layers.at(-1)!.digest);
    assert.ok(baseLayer.includes('opt/base.txt'), baseLayer.join(','));
    // The mount points buildah made for /recipes, hosts and resolv.conf are not in the layer.
    assert.ok(!baseLayer.some((p) => p === 'recipes' || p.startsWith('recipes/') || p === 'etc/resolv.conf' || p === 'etc/hosts'), baseLayer.join(','));
    const desktopLayer = layerEntries(root, desktop.layers.at(-1)!.digest);
    assert.ok(desktopLayer.includes('opt/desktop.txt') && desktopLayer.includes('etc/motd'), desktopLayer.join(','));
    assert.ok(!desktopLayer.includes('opt/base.txt'));

    // Settings: env persists, -e does not; labels and extra tags apply.
    assert.ok(base.config.Env?.includes('GREETING=hello'), JSON.stringify(base.config.Env));
    assert.ok(!base.config.Env?.some((e) => e.startsWith('FOO=')));
    assert.equal(base.config.Labels?.['org.example.role'], 'base');
    assert.equal(base.config.Labels?.['io.darch.recipe'], 'base');
    assert.ok((await refNames(root)).includes('base:stable'));

    const out = path.join(work, 'unpacked');
    execFileSync('umoci', ['unpack', '--image', `${storeDir(root)}:desktop:latest`, out], { stdio: 'ignore' });
    const baseTxt = await readFile(path.join(out, 'rootfs/opt/base.txt'), 'utf8');
    assert.equal(baseTxt, 'base in /recipes/base recipe=base foo=bar\ndata from the recipe directory\nshared helper\n');
    assert.equal(await readFile(path.join(out, 'rootfs/opt/desktop.txt'), 'utf8'), 'desktop sees: base in /recipes/base recipe=base foo=bar\ngreeting=hello\n');
    assert.equal(await readFile(path.join(out, 'rootfs/etc/motd'), 'utf8'), 'welcome to the desktop\n');
    assert.deepEqual(buildahContainers(root), []);
  });

  test('a second build is a cache hit; changing a recipe rebuilds it and its children only', async () => {
    const before1 = await refNames(root);
    const digests = async () => Object.fromEntries(await Promise.all(['base:latest', 'desktop:latest'].map(async (n) => [n, (await inspect(n)).digest])));
    const d0 = await digests();
    const again = await darchOk(['--json', 'build', '-d', recipes, 'desktop', '-e', 'FOO=bar'], { root });
    assert.deepEqual(
      again.json<{ images: Array<{ status: string }> }>().images.map((i) => i.status),
      ['cached', 'cached'],
    );
    assert.deepEqual(await digests(), d0);
    assert.deepEqual(await refNames(root), before1);

    await writeFile(path.join(recipes, 'desktop/motd'), 'changed\n');
    const r = await darchOk(['--json', 'build', '-d', recipes, 'desktop', '-e', 'FOO=bar'], { root });
    assert.deepEqual(
      r.json<{ images: Array<{ status: string }> }>().images.map((i) => i.status),
      ['cached', 'built'],
    );
    const d1 = await digests();
    assert.equal(d1['base:latest'], d0['base:latest']);
    assert.notEqual(d1['desktop:latest'], d0['desktop:latest']);

    // A changed parent makes the child stale even when the child's own files did not change.
    await writeFile(path.join(recipes, '.shared/lib.txt'), 'new shared helper\n');
    const r2 = await darchOk(['--json', 'build', '-d', recipes, 'desktop', '-e', 'FOO=bar'], { root });
    assert.deepEqual(
      r2.json<{ images: Array<{ status: string }> }>().images.map((i) => i.status),
      ['built', 'built'],
    );

    // --no-cache rebuilds only what it is asked to with --no-deps.
    const r3 = await darchOk(['--json', 'build', '-d', recipes, '--no-deps', '--no-cache', 'desktop', '-e', 'FOO=bar'], { root });
    assert.deepEqual(
      r3.json<{ images: Array<{ recipe: string; status: string }> }>().images.map((i) => [i.recipe, i.status]),
      [['desktop', 'built']],
    );
  });

  test("the original Darch docs' tree (examples/darch-docs: common → external, gaming → common) builds unchanged, with -t and -p", async () => {
    const docs = path.join(REPO, 'examples/darch-docs');
    // Darch: an untagged external parent ("external:example/busybox") takes the build tag.
    await darchOk(['images', 'tag', 'base/busybox:stable', 'example/busybox:v1'], { root });
    const dep = await darchOk(['recipes', 'build-dep', '-d', docs], { root });
    const order = dep.stdout.trim().split('\n');
    assert.deepEqual(order, ['common', 'gaming']);
    await darchOk(['recipes', 'build', '-d', docs, '-t', 'v1,latest', '-p', 'me/darch-', ...order], { root });
    const names = await refNames(root);
    for (const n of ['me/darch-common:v1', 'me/darch-common:latest', 'me/darch-gaming:v1', 'me/darch-gaming:latest'])
      assert.ok(names.includes(n), `${n} in ${names.join(',')}`);
    const gaming = await inspect('me/darch-gaming:v1');
    const common = await inspect('me/darch-common:v1');
    assert.deepEqual(
      gaming.layers.slice(0, -1).map((l) => l.digest),
      common.layers.map((l) => l.digest),
    );
    assert.deepEqual(
      layerEntries(root, gaming.layers.at(-1)!.digest).filter((p) => !['etc', 'run', '.'].includes(p)),
      ['etc/darch-gaming'],
    );
  });
});

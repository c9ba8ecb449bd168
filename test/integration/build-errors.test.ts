/**
 * Bad input to `darch build`: each a clear error before any work starts (no working
 * container, nothing new in the store), and a failing step that tags nothing.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, symlink } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { darch, darchOk } from '../helpers/darch.js';
import { buildahContainers, importBusybox, refNames, writeTree, type Tree } from '../helpers/recipes.js';

describe('darch build: bad input', () => {
  let work: string;
  let root: string;
  let n = 0;
  after(() => rm(work, { recursive: true, force: true }));
  before(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'darch-build-err-'));
    root = path.join(work, 'root');
    await importBusybox(root, work, 'base/busybox:latest');
  });

  /** Build `target` in a fresh tree; assert it fails with `code` and no work was done. */
  async function fails(tree: Tree, target: string[], code: string, message: RegExp, env?: NodeJS.ProcessEnv, extra: string[] = []) {
    const dir = path.join(work, `tree-${++n}`);
    await writeTree(dir, tree);
    const refsBefore = await refNames(root);
    const r = await darch(['--json', 'build', '-d', dir, ...extra, ...target], { root, env });
    assert.notEqual(r.code, 0, r.stderr);
    const err = r.json<{ error: { code: string; message: string; hint?: string } }>().error;
    assert.equal(err.code, code, JSON.stringify(err));
    assert.match(err.message, message);
    assert.ok(err.hint, 'every error carries a hint');
    assert.doesNotMatch(r.stderr, /==> \[1\//, 'no build step started');
    assert.deepEqual(await refNames(root), refsBefore);
    return { r, err, dir };
  }

  const darchRecipe = (inherits: string, script = '#!/bin/sh\ntrue\n') => ({ 'config.json': JSON.stringify({ inherits }), script });

  test('a cycle is printed', async () => {
    const { r } = await fails(
      { a: darchRecipe('c'), b: darchRecipe('a'), c: { Containerfile: 'FROM darch:b\n' }, ok: darchRecipe('external:base/busybox') },
      ['ok'],
      'E_RECIPE_CYCLE',
      /a → c → b → a/,
    );
    assert.equal(r.code, 78);
  });

  test('a missing parent', async () => {
    await fails({ child: darchRecipe('nosuch') }, ['child'], 'E_RECIPE_PARENT_MISSING', /child inherits "nosuch", which is not a recipe/);
    await fails({ child: { Dockerfile: 'FROM darch:nosuch\n' } }, ['child'], 'E_RECIPE_PARENT_MISSING', /FROM darch:nosuch/);
  });

  test('a script that is not executable', async () => {
    const { err } = await fails(
      { a: { 'config.json': '{"inherits":"external:base/busybox"}', script: { content: '#!/bin/sh\n', mode: 0o644 } } },
      ['a'],
      'E_RECIPE_INVALID',
      /script is not executable/,
    );
    assert.match(err.hint ?? '', /chmod \+x/);
  });

  test('a Containerfile that cannot be read', async () => {
    const dir = path.join(work, 'unreadable');
    await mkdir(path.join(dir, 'a', 'Containerfile'), { recursive: true }); // a directory: EISDIR even for root
    const listed = await darchOk(['recipes', 'list', '-d', dir], { root });
    assert.equal(listed.stdout, 'a\n', 'listing still works');
    const r = await darch(['build', '-d', dir, 'a'], { root });
    assert.equal(r.code, 78);
    assert.match(r.stderr, /error: cannot read .*a\/Containerfile: EISDIR/);
  });

  test('an external image that is not in the store', async () => {
    const { err } = await fails(
      { a: darchRecipe('external:nowhere/base:1') },
      ['a'],
      'E_EXTERNAL_MISSING',
      /needs the external image nowhere\/base:1, which is not in the local store/,
    );
    assert.match(err.hint ?? '', /darch images import .* nowhere\/base:1/);
    assert.match(err.hint ?? '', /darch images pull nowhere\/base:1/);
    // --pull asks the registry (issue 4); one that cannot be reached (.invalid never resolves) fails before any work.
    await fails({ a: darchRecipe('external:nowhere.invalid/base:1') }, ['a'], 'E_REGISTRY_UNREACHABLE', /cannot reach nowhere\.invalid/, undefined, ['--pull']);
    // A Containerfile's external FROM is looked up in the store too, never in a registry.
    await fails({ a: { Containerfile: 'FROM docker.io/library/debian:12\nRUN true\n' } }, ['a'], 'E_EXTERNAL_MISSING', /docker\.io\/library\/debian:12/);
    // --no-deps with a local parent that was never built.
    await fails({ a: darchRecipe('external:base/busybox'), b: darchRecipe('a') }, ['b'], 'E_PARENT_NOT_BUILT', /builds on a:latest/, undefined, ['--no-deps']);
  });

  test('no builder installed', async () => {
    const bin = path.join(work, 'bin-without-buildah');
    await mkdir(bin, { recursive: true });
    await symlink('/bin/sh', path.join(bin, 'sh'));
    const tree = { a: darchRecipe('external:base/busybox') };
    const { err } = await fails(tree, ['a'], 'E_TOOL_MISSING', /no builder is usable: buildah not installed/, { PATH: bin });
    assert.match(err.hint ?? '', /apt-get install buildah/);
    await fails(tree, ['a'], 'E_TOOL_MISSING', /builder buildah cannot be used: not installed/, { PATH: bin }, ['--builder', 'buildah']);
    // doctor reports which builders are usable, here and without buildah on PATH.
    type Doctor = { checks: Array<{ name: string; ok: boolean }> };
    const usable = async (env?: NodeJS.ProcessEnv) =>
      (await darchOk(['--json', 'doctor'], { root, env })).json<Doctor>().checks.find((c) => c.name === 'builder: buildah')?.ok;
    assert.equal(await usable(), true);
    assert.equal(await usable({ PATH: bin }), false);
  });

  test('settings with an unknown key name the file and the key', async () => {
    await fails(
      { a: { ...darchRecipe('external:base/busybox'), 'recipe.toml': 'env = { A = "1" }\nlabel = { x = "y" }\n' } },
      ['a'],
      'E_RECIPE_INVALID',
      /a\/recipe\.toml: unknown key label$/,
    );
    await fails(
      { a: { 'config.json': '{"inherits":"external:base/busybox","env":{}}', script: '#!/bin/sh\n' } },
      ['a'],
      'E_RECIPE_INVALID',
      /config\.json: unknown key env/,
    );
    // A bad value: the key and zod's English message (src/lib/zod.ts).
    await fails(
      { a: { ...darchRecipe('external:base/busybox'), 'recipe.toml': 'tags = [1]\n' } },
      ['a'],
      'E_RECIPE_INVALID',
      /a\/recipe\.toml: tags\.0: Invalid input: expected string, received number$/,
    );
  });

  test('a failing script stops the build with recipe, step and exit status; nothing is tagged', async () => {
    const dir = path.join(work, 'failing');
    await writeTree(dir, {
      a: darchRecipe('external:base/busybox', '#!/bin/sh\necho one\nexit 3\n'),
      b: darchRecipe('a'),
      c: { Containerfile: 'FROM base/busybox\nRUN echo fine\nRUN echo failing; exit 4\n' },
    });
    const refsBefore = await refNames(root);
    const r = await darch(['--json', 'build', '-d', dir, 'b'], { root });
    assert.equal(r.code, 1);
    const err = r.json<{ error: { code: string; message: string; details: { exitStatus: number } } }>().error;
    assert.equal(err.code, 'E_BUILD_FAILED');
    assert.equal(err.message, 'recipe a failed at ./script: exit status 3');
    assert.match(r.stderr, /^\[a\] one$/m);
    assert.doesNotMatch(r.stderr, /\[2\/2\] b/, 'the child never started');
    const r2 = await darch(['build', '-d', dir, 'c'], { root });
    assert.equal(r2.code, 1);
    assert.match(r2.stderr, /error: recipe c failed at STEP 3\/\d+: RUN echo failing; exit 4: exit status 4/);
    assert.deepEqual(await refNames(root), refsBefore, 'nothing tagged');
    assert.deepEqual(buildahContainers(root), [], 'no working containers left');

    // A failed rebuild keeps the image that was there before.
    await writeTree(dir, { d: darchRecipe('external:base/busybox', '#!/bin/sh\necho v1 > /v\n') });
    await darchOk(['build', '-d', dir, 'd'], { root });
    const good = (await darchOk(['--json', 'images', 'inspect', 'd'], { root })).json<{ digest: string }>().digest;
    await writeTree(dir, { d: { script: '#!/bin/sh\necho "cannot build v2"\nexit 5\n' } });
    const r3 = await darch(['build', '-d', dir, 'd'], { root });
    assert.equal(r3.code, 1);
    assert.match(r3.stderr, /hint: .*nothing was tagged \(last output: cannot build v2\)$/m);
    assert.equal((await darchOk(['--json', 'images', 'inspect', 'd'], { root })).json<{ digest: string }>().digest, good);
  });
});

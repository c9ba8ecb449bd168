/**
 * `darch recipes kit`: a recipe gets darch's in-image files from the installed darch. Both
 * recipe formats are built with real buildah from the very lines docs/TRIAL-BOOTS.md shows,
 * and every file is checked in the built image: content, mode, owner, the units enabled.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { REPO, darch, darchOk } from '../helpers/darch.js';
import { importBusybox, storeDir, writeTree } from '../helpers/recipes.js';
import { HEALTH_README, KIT_FILES, KIT_UNITS } from '../../src/recipes/kit.js';

/** The fenced block of docs/TRIAL-BOOTS.md in `lang` that mentions darch-kit/install. */
async function docBlock(lang: string): Promise<string> {
  const doc = await readFile(path.join(REPO, 'docs/TRIAL-BOOTS.md'), 'utf8');
  const blocks = [...doc.matchAll(new RegExp('```' + lang + '\\n([^]*?)```', 'g'))].map((m) => m[1]!).filter((b) => b.includes('darch-kit/install'));
  assert.equal(blocks.length, 1, `one ${lang} block with darch-kit/install in docs/TRIAL-BOOTS.md`);
  return blocks[0]!;
}

test('recipes of both formats install darch-kit as the docs say: every file in the image with its mode', async () => {
  const work = await mkdtemp(path.join(os.tmpdir(), 'darch-build-kit-'));
  after(() => rm(work, { recursive: true, force: true }));
  const root = path.join(work, 'root');
  // A stand-in systemctl records what install enables (busybox has none).
  await importBusybox(root, work, 'kit/base:1', {
    'usr/bin/systemctl': { content: '#!/bin/sh\necho "$@" >> /var/log/systemctl.log\n', mode: 0o755 },
  });
  const containerfile = (await docBlock('dockerfile')).replace(/^FROM darch:base$/m, 'FROM kit/base:1');
  assert.match(containerfile, /^FROM kit\/base:1$/m);
  const script = await docBlock('sh');
  const health = { content: '#!/bin/sh\nexit 0\n', mode: 0o755 };
  const recipes = path.join(work, 'recipes');
  await writeTree(recipes, {
    cf: { Containerfile: containerfile, 'health.d/10-ok': health },
    darch: { 'config.json': JSON.stringify({ inherits: 'external:kit/base:1' }), script, 'health.d/10-ok': health },
  });
  // The docs' one command per recipe; it prints the lines the docs show.
  for (const r of ['cf', 'darch']) {
    const out = await darchOk(['recipes', 'kit', path.join(recipes, r)], { root });
    assert.match(out.stdout, /COPY darch-kit\/ \/tmp\/darch-kit\//);
  }
  // Only darch's own kit directory is replaced.
  await writeTree(recipes, { other: { 'darch-kit/mine': 'x' } });
  const refused = await darch(['recipes', 'kit', path.join(recipes, 'other')], { root });
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /error: .*other\/darch-kit exists and was not written by darch recipes kit/);
  await rm(path.join(recipes, 'other'), { recursive: true });
  // Again: the kit is replaced whole, nothing left beside it.
  await darchOk(['recipes', 'kit', path.join(recipes, 'cf')], { root });

  // install into an empty root (DARCH_KIT_ROOT): health.d gets the kit's README.
  const empty = path.join(work, 'empty');
  execFileSync('sh', [path.join(recipes, 'cf/darch-kit/install')], { env: { ...process.env, DARCH_KIT_ROOT: empty }, stdio: 'ignore' });
  assert.equal(await readFile(path.join(empty, 'etc/darch/health.d/README'), 'utf8'), HEALTH_README);
  assert.equal((await stat(path.join(empty, 'etc/darch/health.d/README'))).mode & 0o777, 0o644);
  assert.equal((await stat(path.join(empty, 'usr/lib/darch/darch-commit'))).mode & 0o777, 0o755);

  await darchOk(['build', '-d', recipes, 'cf', 'darch'], { root, timeoutMs: 600_000 });
  for (const r of ['cf', 'darch']) {
    const out = path.join(work, `unpacked-${r}`);
    execFileSync('umoci', ['unpack', '--image', `${storeDir(root)}:${r}:latest`, out], { stdio: 'ignore' });
    const fs = path.join(out, 'rootfs');
    for (const f of KIT_FILES) {
      const st = await stat(path.join(fs, f.path));
      assert.equal(st.mode & 0o7777, f.mode, `${r}: /${f.path} mode ${(st.mode & 0o7777).toString(8)}`);
      assert.equal(st.uid, 0, `${r}: /${f.path} owned by root`);
      assert.deepEqual(await readFile(path.join(fs, f.path)), await readFile(path.join(REPO, 'assets', ...f.asset)), `${r}: /${f.path} content`);
    }
    // The base image has a README of its own there: install keeps what is in health.d.
    assert.match(await readFile(path.join(fs, 'etc/darch/health.d/README'), 'utf8'), /^Executables here are darch health checks/);
    assert.equal((await stat(path.join(fs, 'etc/darch/health.d/10-ok'))).mode & 0o777, 0o755);
    assert.equal(await readFile(path.join(fs, 'var/log/systemctl.log'), 'utf8'), `enable ${KIT_UNITS.join(' ')}\n`, `${r}: units enabled`);
    await assert.rejects(stat(path.join(fs, 'tmp/darch-kit')), /ENOENT/, `${r}: the kit itself is not left in the image`);
  }
});

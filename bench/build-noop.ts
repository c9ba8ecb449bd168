/**
 * No-op rebuild time of `darch build` (every recipe unchanged: the layer cache answers)
 * against two baselines run side by side on the same machine:
 *  - buildah's own layer cache: `buildah build --layers` of the same Containerfile twice;
 *  - a full rebuild: `darch build --no-cache` of the same chain.
 * Run: npm run -s build && npx tsx bench/build-noop.ts [rounds]   (root; needs buildah, busybox-static)
 */
import { execFileSync } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ociStorePath } from '../src/build/builder.js';
import { writeBusyboxRootfs } from '../src/examples/busybox-rootfs.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const BIN = path.join(REPO, 'dist/darch');
const rounds = Number(process.argv[2] ?? 5);

function time(fn: () => void): number {
  const t = performance.now();
  fn();
  return (performance.now() - t) / 1000;
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const work = await mkdtemp(path.join(os.tmpdir(), 'darch-bench-'));
const links: string[] = [];
try {
  const root = path.join(work, 'root');
  const darch = (...args: string[]) =>
    execFileSync(BIN, ['--root', root, '-q', ...args], { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, NO_COLOR: '1' } });
  const tar = path.join(work, 'busybox.tar');
  await writeBusyboxRootfs(createWriteStream(tar));
  darch('images', 'import', tar, 'bench/busybox:latest');

  const recipes = path.join(work, 'recipes');
  const chain: Array<[string, string]> = [
    ['one', 'external:bench/busybox:latest'],
    ['two', 'one'],
  ];
  for (const [name, parent] of chain) {
    await mkdir(path.join(recipes, name), { recursive: true });
    await writeFile(path.join(recipes, name, 'config.json'), JSON.stringify({ inherits: parent }));
    await writeFile(path.join(recipes, name, 'script'), `#!/bin/sh\necho ${name} > /${name}\n`);
    await chmod(path.join(recipes, name, 'script'), 0o755);
  }
  await mkdir(path.join(recipes, 'three'));
  await writeFile(path.join(recipes, 'three', 'Containerfile'), 'FROM darch:two\nRUN echo three > /three\n');

  const first = time(() => darch('build', '-d', recipes, 'three'));
  const noop: number[] = [];
  const full: number[] = [];
  const buildahCached: number[] = [];
  // Baseline: buildah's layer cache on an equivalent three-step Containerfile.
  const storage = path.join(work, 'buildah');
  const bArgs = ['--root', path.join(storage, 'storage'), '--runroot', path.join(storage, 'run')];
  const ctx = path.join(work, 'ctx');
  await mkdir(ctx);
  const storeLink = await ociStorePath(path.join(root, 'var/lib/darch/images'));
  links.push(storeLink);
  await writeFile(
    path.join(ctx, 'Containerfile'),
    `FROM oci:${storeLink}:bench/busybox:latest\nRUN echo one > /one\nRUN echo two > /two\nRUN echo three > /three\n`,
  );
  const buildahBuild = () =>
    execFileSync('buildah', [...bArgs, 'build', '--isolation', 'chroot', '--layers', '--pull-never', '-q', '-t', 'bench/three', ctx], { stdio: 'ignore' });
  buildahBuild();
  for (let i = 0; i < rounds; i++) {
    noop.push(time(() => darch('build', '-d', recipes, 'three')));
    buildahCached.push(time(buildahBuild));
    full.push(time(() => darch('build', '-d', recipes, '--no-cache', 'three')));
  }
  execFileSync('buildah', [...bArgs, 'rmi', '--all', '--force'], { stdio: 'ignore' });
  const m = { noop: median(noop), buildah: median(buildahCached), full: median(full) };
  console.log(`darch build, 3-recipe busybox chain, ${rounds} rounds (median seconds)`);
  console.log(`  first build                        ${first.toFixed(2)}`);
  console.log(`  darch no-op rebuild (cache hit)    ${m.noop.toFixed(2)}`);
  console.log(`  baseline: buildah build --layers   ${m.buildah.toFixed(2)}   ratio darch/buildah ${(m.noop / m.buildah).toFixed(2)}`);
  console.log(`  baseline: darch build --no-cache   ${m.full.toFixed(2)}   ratio no-op/full ${(m.noop / m.full).toFixed(2)}`);
} finally {
  await rm(work, { recursive: true, force: true });
  for (const l of links) if (l.startsWith('/tmp/darch-')) await rm(l, { force: true });
}

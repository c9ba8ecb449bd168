/**
 * `darch status` on this machine (a --root with a stage, an ESP directory and a kernel command
 * line) and on a disk: what booted and how, the boot state, the staged images with their
 * roles, free space; and on a build host with no ESP, where it still works.
 */
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { darch, darchOk, tempDir } from '../helpers/darch.js';
import { fakeStaged } from '../helpers/fakestage.js';

interface Overview {
  schemaVersion: number;
  target: string;
  booted: { stage: string; tags: string[]; trial: boolean; fellBack: boolean } | null;
  boot: { default: { stage: string } | null; trial: { stage: string } | null; triesLeft: number } | null;
  bootStateError: string | null;
  staged: Array<{ id: string; tags: string[]; size: number; created: string | null; roles: string[] }>;
  space: { stage: { path: string; free: number; size: number } | null; boot: { path: string; free: number; size: number } | null };
}

test('this machine: the booted trial, the default, each staged image with its roles, free space', async (t) => {
  const root = await tempDir(t);
  const a = await fakeStaged(root, ['os:a']);
  const b = await fakeStaged(root, ['os:b']);
  await mkdir(path.join(root, 'boot/efi/EFI'), { recursive: true });
  await darchOk(['boot', 'set-default', 'os:a'], { root });
  await darchOk(['boot', 'try', 'os:b', '--tries', '2'], { root });
  const cmdline = path.join(root, 'cmdline');
  await writeFile(cmdline, `BOOT_IMAGE=x darch_stageid=${b} darch.trial=1\n`);
  const env = { DARCH_CMDLINE_FILE: cmdline };

  const o = (await darchOk(['--json', 'status'], { root, env })).json<Overview>();
  assert.equal(o.schemaVersion, 1);
  assert.deepEqual(o.booted, { stage: b, tags: ['os:b'], trial: true, fellBack: false });
  assert.equal(o.boot?.default?.stage, a);
  assert.equal(o.boot?.trial?.stage, b);
  assert.equal(o.boot?.triesLeft, 2);
  assert.deepEqual(Object.fromEntries(o.staged.map((s) => [s.id, s.roles])), { [a]: ['default'], [b]: ['booted', 'trial'] });
  assert.ok(o.staged.every((s) => s.created));
  assert.ok(o.space.stage && o.space.stage.free > 0 && o.space.stage.size >= o.space.stage.free);
  assert.equal(o.space.boot?.path, path.join(root, 'boot/efi'));

  const text = (await darchOk(['status'], { root, env })).stdout;
  assert.match(text, new RegExp(`^booted +os:b \\(${b}\\) as a trial, 2 tries left$`, 'm'));
  assert.match(text, new RegExp(`^default +os:a \\(${a}\\)$`, 'm'));
  assert.match(text, new RegExp(`^os:b +${b} +.* +booted, trial$`, 'm'));
  assert.match(text, /^stage +[\d.]+ \w+ free of [\d.]+ \w+ \(/m);
});

test('a build host without an ESP: status says what it cannot read and still lists the stage', async (t) => {
  const root = await tempDir(t);
  const a = await fakeStaged(root, ['os:a']);
  const r = await darchOk(['--json', 'status'], { root, env: { DARCH_CMDLINE_FILE: '/nonexistent' } });
  const o = r.json<Overview>();
  assert.equal(o.booted, null);
  assert.equal(o.boot, null);
  assert.match(o.bootStateError ?? '', /no EFI system partition found/);
  assert.deepEqual(
    o.staged.map((s) => s.id),
    [a],
  );
  const text = (await darchOk(['status'], { root, env: { DARCH_CMDLINE_FILE: '/nonexistent' } })).stdout;
  assert.match(text, /^booted +not a darch image$/m);
  assert.match(text, /^boot state no EFI system partition found/m);
});

test('--disk: the images on the disk, its boot state and both partitions', async (t) => {
  const root = await tempDir(t);
  const a = await fakeStaged(root, ['os:a']);
  const b = await fakeStaged(root, ['os:b']);
  const disk = path.join(root, 'disk.img');
  await darchOk(['disk', 'create', disk, 'os:a', 'os:b'], { root });
  await darchOk(['boot', 'try', 'os:b', '--disk', disk], { root });
  const o = (await darchOk(['--json', 'status', '--disk', disk], { root })).json<Overview>();
  assert.equal(o.target, disk);
  assert.equal(o.booted, null);
  assert.deepEqual(Object.fromEntries(o.staged.map((s) => [s.id, s.roles])), { [a]: ['default'], [b]: ['trial'] });
  assert.ok(o.staged.every((s) => s.size > 0));
  assert.ok(o.space.stage && o.space.stage.size > o.space.stage.free && o.space.stage.free > 0);
  assert.ok(o.space.boot && o.space.boot.size === 64 * 1024 * 1024);
  assert.match((await darchOk(['status', '--disk', disk], { root })).stdout, new RegExp(`^trial +os:b \\(${b}\\), 3 tries left$`, 'm'));
  // Not a disk: one error, exit 1.
  const r = await darch(['status', '--disk', path.join(root, 'nosuch.img')], { root });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^error: cannot open .*nosuch\.img: /m);
});

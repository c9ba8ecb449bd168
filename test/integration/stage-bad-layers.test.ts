/**
 * Malformed and damaged layers, staged in one pass (the default) and with --two-pass: each
 * fails with an error that names the problem and the layer, nothing is staged, no work
 * directory is left behind, and an image staged earlier is untouched and still listed.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, open, readFile, readdir, rm, truncate, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { darch, darchOk } from '../helpers/darch.js';
import { tarStreamLayer, writeOciLayout } from '../helpers/oci-layout.js';

const KERNEL = [
  { name: 'boot/', type: 'directory' as const },
  { name: 'boot/vmlinuz-6.1.0-test', content: 'not really a kernel' },
  { name: 'etc/', type: 'directory' as const },
  { name: 'etc/hostname', content: 'good\n' },
];

/** Where darch looks for an image's image.json (src/stage/kernel.ts IMAGE_JSON_PATH). */
const IMAGE_JSON_NAME = 'usr/lib/darch/image.json';

const ls = (dir: string) => readdir(dir).catch(() => [] as string[]);
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('stage: damaged and malformed layers', () => {
  let work: string;
  let root: string;
  let goodDir: string;
  let goodSquash: string;

  /** An image of a good base layer and one test layer, imported as NAME:1. */
  async function image(name: string, top: Parameters<typeof tarStreamLayer>[1], compression: 'gzip' | 'none' = 'gzip'): Promise<void> {
    const base = path.join(work, `${name}-base.tar`);
    const upper = path.join(work, `${name}-top.tar`);
    await tarStreamLayer(base, KERNEL);
    await tarStreamLayer(upper, top);
    const layout = path.join(work, `layout-${name}`);
    await writeOciLayout(layout, name, [
      { tar: base, compression: 'gzip' },
      { tar: upper, compression },
    ]);
    await darchOk(['images', 'import', `oci:${layout}:${name}`, `${name}:1`], { root });
  }

  async function assertNothingStaged(stderr: string): Promise<void> {
    const stage = path.join(root, 'var/lib/darch/stage');
    assert.deepEqual(await ls(path.join(stage, 'tmp')), [], `a work directory was left behind:\n${stderr}`);
    const live = await ls(path.join(stage, 'live'));
    assert.deepEqual(live, [path.basename(goodDir)], 'only the good image is staged');
    assert.equal(sha(await readFile(path.join(goodDir, 'rootfs.squash'))), goodSquash, 'the good image was not touched');
    const list = (await darchOk(['--json', 'stage', 'list'], { root })).json();
    assert.deepEqual(
      list.staged.flatMap((s: { tags: string[] }) => s.tags),
      ['good:1'],
    );
  }

  after(() => rm(work, { recursive: true, force: true }));

  before(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'darch-bad-layers-'));
    root = path.join(work, 'root');
    await image('good', [{ name: 'srv/ok', content: 'fine' }]);
    goodDir = (await darchOk(['--json', 'stage', 'upload', 'good:1'], { root })).json().dir;
    goodSquash = sha(await readFile(path.join(goodDir, 'rootfs.squash')));

    await image('escape', [{ name: '../../etc/evil', content: 'outside' }]);
    await image('dangling', [{ name: 'srv/link', type: 'link', linkname: 'srv/nowhere' }]);
    await image('truncated', [{ name: 'srv/big', content: 'x'.repeat(200_000) }], 'none');
    await image('flipped', [{ name: 'srv/data', content: 'y'.repeat(100_000) }]);
    await image('hugejson', [{ name: IMAGE_JSON_NAME, content: `{"kernel":"vmlinuz-6.1.0-test"}${' '.repeat(2 * 1024 * 1024)}` }]);
    // Intact in the store (the digest matches) but not a tar archive at all.
    const junk = path.join(work, 'junk.tar');
    await writeFile(junk, Buffer.alloc(4096, 'not a tar header '));
    await writeOciLayout(path.join(work, 'layout-junk'), 'junk', [
      { tar: path.join(work, 'good-base.tar'), compression: 'gzip' },
      { tar: junk, compression: 'gzip' },
    ]);
    await darchOk(['images', 'import', `oci:${path.join(work, 'layout-junk')}:junk`, 'junk:1'], { root });

    // Damage two blobs after import, the way a failing disk would: the store's copy of
    // the uncompressed layer loses its end, the gzip one gets a flipped byte.
    const blobs = path.join(root, 'var/lib/darch/images/blobs/sha256');
    const topOf = async (name: string) => {
      const inspect = (await darchOk(['--json', 'images', 'inspect', `${name}:1`], { root })).json();
      const layers = inspect.manifest?.layers ?? inspect.layers;
      return path.join(blobs, String(layers[1].digest).slice(7));
    };
    const trunc = await topOf('truncated');
    await truncate(trunc, 100_000);
    const flip = await topOf('flipped');
    const fh = await open(flip, 'r+');
    const at = Math.floor((await fh.stat()).size / 2);
    const b = Buffer.alloc(1);
    await fh.read(b, 0, 1, at);
    b[0] = b[0]! ^ 0xff;
    await fh.write(b, 0, 1, at);
    await fh.close();
  });

  for (const mode of [[], ['--two-pass']]) {
    const how = mode.length ? 'with two passes' : 'in one pass';

    it(`refuses a member outside the root ${how}`, async () => {
      const r = await darch(['stage', 'upload', ...mode, 'escape:1'], { root });
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /error: layer 2 has an entry outside the root: "\.\.\/\.\.\/etc\/evil"/);
      assert.match(r.stderr, /hint: .*malformed or malicious/);
      await assertNothingStaged(r.stderr);
    });

    it(`refuses a hard link to nothing ${how}`, async () => {
      const r = await darch(['stage', 'upload', ...mode, 'dangling:1'], { root });
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /error: layer 2: hard link srv\/link points to srv\/nowhere, which does not exist/);
      await assertNothingStaged(r.stderr);
    });

    for (const [damage, tag] of [
      ['cut short', 'truncated:1'],
      ['with a flipped byte', 'flipped:1'],
    ] as const) {
      it(`refuses a layer blob ${damage} after import ${how}`, async () => {
        const r = await darch(['stage', 'upload', ...mode, tag], { root });
        assert.equal(r.code, 1, r.stderr);
        assert.match(r.stderr, /error: layer 2 does not match its digest sha256:[0-9a-f]{64}: the image store was damaged after import/);
        assert.match(r.stderr, /hint: run `darch images verify`/);
        await assertNothingStaged(r.stderr);
      });
    }

    it(`refuses an image.json too large to be one, before reading it, ${how}`, async () => {
      const r = await darch(['stage', 'upload', ...mode, 'hugejson:1'], { root });
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /error: .*image\.json is not valid JSON \(.*image\.json is 20971\d\d bytes, too large\)/);
      await assertNothingStaged(r.stderr);
    });

    it(`names the layer of an intact blob that is not a tar archive ${how}`, async () => {
      const r = await darch(['stage', 'upload', ...mode, 'junk:1'], { root });
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /error: layer 2 \(sha256:[0-9a-f]{64}\): invalid tar header at byte 0/);
      assert.match(r.stderr, /hint: the layer is not a valid tar archive/);
      await assertNothingStaged(r.stderr);
    });
  }
});

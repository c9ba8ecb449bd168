/**
 * `darch stage upload --verity` with the real veritysetup: the hash tree beside the
 * squashfs, the root hash on both boot loaders' command lines, what darch's initramfs
 * carries to open it, and the same bytes for the same image. A flipped bit fails
 * `veritysetup verify`; the boot side of it (the initramfs refusing the image, the trial
 * falling back) is test/e2e/boot-stage-upload.test.ts.
 */
import assert from 'node:assert/strict';
import { mkdir, open, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { run } from '../../src/lib/proc.js';
import { checkVerity, padToBlocks } from '../../src/stage/verity.js';
import { debianKernel, type TestKernel } from '../helpers/bootimage.js';
import { testImageTree } from '../helpers/bootfixture.js';
import { darch, darchOk, tempDir } from '../helpers/darch.js';

const FS_UUID = '0b6a8f3e-54f1-4c51-a1a7-6d6bcb1a7e11';

interface Staged {
  id: string;
  dir: string;
}

describe('stage upload --verity', () => {
  let kernel: TestKernel;
  before(async () => {
    kernel = await debianKernel();
  });

  async function imported(t: { after(fn: () => Promise<void> | void): void }): Promise<{ root: string; work: string }> {
    const work = await tempDir(t, 'darch-verity-');
    const root = path.join(work, 'root');
    const tree = await testImageTree(path.join(work, 'tree'), kernel, 'V', 'verity');
    const tar = path.join(work, 'root.tar');
    await run('tar', ['-C', tree, '--owner=0', '--group=0', '-cf', tar, '.']);
    await darchOk(['images', 'import', tar, 'verity/busybox:1'], { root });
    await config(root, '');
    return { root, work };
  }

  /** config.toml with `more`, and the stage file system's UUID (a temp dir's may have none). */
  async function config(root: string, more: string): Promise<void> {
    await mkdir(path.join(root, 'etc/darch'), { recursive: true });
    await writeFile(path.join(root, 'etc/darch/config.toml'), `${more}\n[boot]\nbootloader = "grub"\nstage_fs_uuid = "${FS_UUID}"\n`);
  }

  it('writes the hash tree, names it in image.json and meta.json, and puts the root hash on the GRUB menu', async (t) => {
    const { root } = await imported(t);
    const a = (await darchOk(['--json', 'stage', 'upload', 'verity/busybox:1', '--verity', '--compression', 'lz4'], { root })).json<Staged>();
    const image = JSON.parse(await readFile(path.join(a.dir, 'image.json'), 'utf8'));
    assert.match(image.verity.roothash, /^[0-9a-f]{64}$/);
    assert.equal(image.verity.algorithm, 'sha256');
    const sq = path.join(a.dir, 'rootfs.squash');
    assert.equal((await stat(sq)).size, image.verity.blocks * 4096, 'the squashfs is whole 4 KiB blocks');
    const ok = await checkVerity(sq, `${sq}.verity`, image.verity);
    assert.equal(ok.ok, true, ok.message);
    const listed = (await darchOk(['--json', 'stage', 'list'], { root })).json<{ staged: Array<{ id: string; verity: boolean }> }>().staged;
    assert.equal(listed.find((s) => s.id === a.id)?.verity, true, 'stage list says it is verity-protected');
    assert.match((await darchOk(['stage', 'list'], { root })).stdout, /VERITY[\s\S]*\byes\b/);
    const meta = JSON.parse(await readFile(path.join(a.dir, 'meta.json'), 'utf8'));
    assert.ok(meta.sha256['rootfs.squash.verity'], 'meta.json checks the hash tree like every other file');
    // A bundle carries it, and the image staged from the bundle boots through the same root hash.
    const bundle = path.join(root, '..', 'v.darch');
    await darchOk(['stage', 'export', 'verity/busybox:1', '-o', bundle], { root });
    const other = path.join(root, '..', 'other');
    await config(other, '');
    const imp = (await darchOk(['--json', 'stage', 'import', bundle], { root: other })).json<Staged>();
    assert.deepEqual(JSON.parse(await readFile(path.join(imp.dir, 'image.json'), 'utf8')).verity, image.verity);
    assert.deepEqual(await readFile(path.join(imp.dir, 'rootfs.squash.verity')), await readFile(`${sq}.verity`));

    const menu = await readFile(path.join(root, 'etc/darch/grub.cfg'), 'utf8');
    const line = menu.split('\n').find((l) => l.includes(`darch_stageid=${a.id}`));
    assert.ok(line, 'the menu has the image');
    assert.match(
      line,
      new RegExp(`darch_verity=${image.verity.roothash} darch_verity_salt=${image.verity.salt} darch_verity_blocks=${image.verity.blocks}\\b`),
    );

    // darch's initramfs carries what opening it needs: dmsetup with its libraries, dm-verity.
    const list = await run('sh', ['-c', 'gzip -dc "$1" | cpio -t --quiet', 'sh', path.join(a.dir, 'initrd.img')]);
    const files = list.stdout.split('\n');
    assert.ok(files.includes('usr/sbin/dmsetup'), 'dmsetup in the initramfs');
    assert.ok(
      files.some((f) => /^lib\/x86_64-linux-gnu\/libdevmapper\.so/.test(f)),
      'its library too',
    );
    assert.ok(
      files.some((f) => f.endsWith('/dm-verity.ko')),
      'the dm-verity module',
    );

    // The same image staged again: the same hash tree, byte for byte (the salt is the image's config digest).
    const b = (
      await darchOk(['--json', 'stage', 'upload', 'verity/busybox:1', '--verity', '--compression', 'lz4', '-t', 'verity/again'], { root })
    ).json<Staged>();
    const imageB = JSON.parse(await readFile(path.join(b.dir, 'image.json'), 'utf8'));
    assert.equal(imageB.verity.roothash, image.verity.roothash);
    assert.deepEqual(await readFile(path.join(b.dir, 'rootfs.squash.verity')), await readFile(`${sq}.verity`));

    // One byte changed: veritysetup refuses the squashfs.
    const fh = await open(path.join(b.dir, 'rootfs.squash'), 'r+');
    try {
      const buf = Buffer.alloc(1);
      await fh.read(buf, 0, 1, 8);
      buf[0] = buf[0]! ^ 0x01;
      await fh.write(buf, 0, 1, 8);
    } finally {
      await fh.close();
    }
    const bad = await checkVerity(path.join(b.dir, 'rootfs.squash'), path.join(b.dir, 'rootfs.squash.verity'), imageB.verity);
    assert.equal(bad.ok, false, 'a flipped bit fails the check');
  });

  it('without --verity nothing changes: no hash tree, no verity parameters, no dmsetup in the initramfs', async (t) => {
    const { root } = await imported(t);
    const a = (await darchOk(['--json', 'stage', 'upload', 'verity/busybox:1', '--compression', 'lz4'], { root })).json<Staged>();
    const image = JSON.parse(await readFile(path.join(a.dir, 'image.json'), 'utf8'));
    assert.equal(image.verity, undefined);
    await assert.rejects(stat(path.join(a.dir, 'rootfs.squash.verity')));
    assert.equal((await darchOk(['--json', 'stage', 'list'], { root })).json().staged[0].verity, false);
    const menu = await readFile(path.join(root, 'etc/darch/grub.cfg'), 'utf8');
    assert.doesNotMatch(menu, /darch_verity/);
    const list = await run('sh', ['-c', 'gzip -dc "$1" | cpio -t --quiet', 'sh', path.join(a.dir, 'initrd.img')]);
    assert.doesNotMatch(list.stdout, /dmsetup/);
  });

  it('stage.verity in config.toml turns it on; --no-verity turns it off again', async (t) => {
    const { root } = await imported(t);
    await config(root, '[stage]\nverity = true\ncompression = "lz4"');
    const a = (await darchOk(['--json', 'stage', 'upload', 'verity/busybox:1'], { root })).json<Staged>();
    assert.ok(JSON.parse(await readFile(path.join(a.dir, 'image.json'), 'utf8')).verity, 'on from config.toml');
    const b = (await darchOk(['--json', 'stage', 'upload', 'verity/busybox:1', '--no-verity', '-t', 'verity/plain'], { root })).json<Staged>();
    assert.equal(JSON.parse(await readFile(path.join(b.dir, 'image.json'), 'utf8')).verity, undefined, 'off with --no-verity');
  });

  it('refuses an image whose own initramfs cannot open dm-verity, and stages nothing', async (t) => {
    const { root } = await imported(t);
    // boot.initramfs = "image" needs an initramfs in the image: this one has a file by that name.
    await writeFile(path.join(root, 'etc/darch/config.toml'), `[boot]\ninitramfs = "image"\nstage_fs_uuid = "${FS_UUID}"\n[stage]\ncompression = "lz4"\n`);
    const tree = await testImageTree(path.join(root, '..', 'tree2'), kernel, 'W', 'verity');
    await writeFile(path.join(tree, 'boot', `initrd.img-${kernel.release}`), 'not really an initramfs');
    const tar = path.join(root, '..', 'root2.tar');
    await run('tar', ['-C', tree, '--owner=0', '--group=0', '-cf', tar, '.']);
    await darchOk(['images', 'import', tar, 'verity/own:1'], { root });
    const r = await darch(['--json', 'stage', 'upload', 'verity/own:1', '--verity'], { root });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /cannot open dm-verity: it has no darch initramfs-tools hook/);
    assert.match(r.stderr, /initramfs = "darch"/);
    const list = (await darchOk(['--json', 'stage', 'list'], { root })).json<{ staged: unknown[] }>();
    assert.deepEqual(list.staged, [], 'nothing staged');
  });

  it('pads a squashfs that is not whole 4 KiB blocks (squashfs ignores the zeros)', async (t) => {
    const work = await tempDir(t, 'darch-verity-pad-');
    const f = path.join(work, 'x');
    await writeFile(f, Buffer.alloc(5000, 1));
    assert.equal(await padToBlocks(f), 2);
    assert.equal((await stat(f)).size, 8192);
    assert.equal(await padToBlocks(f), 2, 'a second call changes nothing');
  });
});

/**
 * The staged squashfs must hold exactly the root `umoci unpack` makes of the same image:
 * whiteouts, opaque directories, hard links across layers (including one whose target an
 * upper layer replaced and one whose target it deleted), symlinks, a fifo, devices, owners,
 * modes, mtimes, xattrs and file capabilities, with gzip, zstd and uncompressed layers.
 * Both sides are extracted with real tools (umoci, unsquashfs) and compared entry by entry.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmod, chown, link, mkdir, mkdtemp, readFile, readdir, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { darchOk } from '../helpers/darch.js';
import { diffTrees, snapshotTree } from '../helpers/fstree.js';
import { LAYER_MTIME, tarStreamLayer, writeOciLayout } from '../helpers/oci-layout.js';

const MTIME = LAYER_MTIME;
const sh = (cmd: string, args: string[]) => execFileSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] }).toString();

async function file(p: string, content: string | Buffer, mode = 0o644): Promise<void> {
  await mkdir(path.dirname(p), { recursive: true });
  await writeFile(p, content);
  await chmod(p, mode);
  await utimes(p, MTIME, MTIME);
}

/** A layer tar written by GNU tar from a real directory: real xattrs, capabilities, devices, owners. */
function gnuTarLayer(dir: string, out: string): void {
  sh('tar', ['--xattrs', '--xattrs-include=*', '--numeric-owner', '--format=pax', '-C', dir, '-cf', out, '.']);
}

describe('stage: flattening matches umoci unpack', () => {
  let work: string;
  let root: string;
  let stagedDir: string;
  let stagedGzDir: string;
  let tar2sqfsRoot: string;
  let umociRoot: string;
  let sqfsRoot: string;
  let trickyPasses: number;
  const onePass: { passes?: number; root?: string; twoPassRoot?: string; umoci?: string } = {};

  after(() => rm(work, { recursive: true, force: true }));

  before(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'darch-flatten-'));
    root = path.join(work, 'root');
    // Layer 1 (gzip, GNU tar): the base, with everything only a real file system gives.
    const d1 = path.join(work, 'l1');
    await file(`${d1}/etc/passwd`, 'root:x:0:0::/root:/bin/sh\n');
    await file(`${d1}/etc/hosts`, '127.0.0.1 localhost\n');
    await file(`${d1}/bin/ping`, 'ping binary', 0o755);
    await file(`${d1}/bin/su`, 'su binary', 0o755);
    await file(`${d1}/bin/suid`, 'setuid', 0o4755);
    await file(`${d1}/usr/share/doc/a/x`, 'doc a x');
    await file(`${d1}/usr/share/doc/a/y`, 'doc a y');
    await file(`${d1}/usr/share/doc/b/z`, 'doc b z');
    await file(`${d1}/opt/old/1`, 'one');
    await file(`${d1}/opt/old/2`, 'two');
    await file(`${d1}/opt/keep`, 'a file that becomes a directory');
    await file(`${d1}/data/target`, 'original');
    await file(`${d1}/data/rm-target`, 'to be removed');
    await file(`${d1}/home/u/file`, 'user file', 0o600);
    await file(`${d1}/srv/xattr-file`, 'has xattrs');
    await file(`${d1}/var/lib/hl1`, 'hard linked in layer 1');
    await link(`${d1}/var/lib/hl1`, `${d1}/var/lib/hl2`);
    await file(`${d1}/boot/vmlinuz-6.1.0-test`, 'not really a kernel');
    await file(`${d1}/boot/initrd.img-6.1.0-test`, 'not really an initrd');
    await mkdir(`${d1}/dev`, { recursive: true });
    await mkdir(`${d1}/run`, { recursive: true });
    sh('mknod', [`${d1}/dev/null`, 'c', '1', '3']);
    sh('mknod', [`${d1}/dev/sda`, 'b', '8', '0']);
    sh('mkfifo', [`${d1}/run/fifo`]);
    await chown(`${d1}/home/u`, 1000, 1000);
    await chown(`${d1}/home/u/file`, 1000, 1000);
    await chmod(`${d1}/home/u`, 0o700);
    sh('setcap', ['cap_net_raw+ep', `${d1}/bin/ping`]);
    // cap_setuid puts a byte >= 0x80 in the xattr value: it must survive byte for byte.
    sh('setcap', ['cap_setuid,cap_setgid+ep', `${d1}/bin/su`]);
    sh('setfattr', ['-n', 'user.comment', '-v', 'hello world', `${d1}/srv/xattr-file`]);
    sh('setfattr', ['-n', 'trusted.darch', '-v', '0xff00fe80', `${d1}/srv/xattr-file`]);
    gnuTarLayer(d1, `${work}/l1.tar`);

    // Layer 2 (gzip, tar-stream): hard links to layer 1, whiteout, opaque dir, replacements.
    // The changes other than the hard links are shared with the one-pass image below.
    const l2Changes = [
      { name: 'usr/share/doc/.wh.a', content: '' },
      { name: 'opt/old/', type: 'directory' as const, mode: 0o750 },
      { name: 'opt/old/.wh..wh..opq', content: '' },
      { name: 'opt/old/3', content: 'three' },
      { name: 'etc/hosts', content: '10.0.0.1 replaced\n', mode: 0o600 },
      { name: 'usr/lib/', type: 'directory' as const },
      { name: 'usr/lib/libx.so', content: 'lib' },
      { name: 'lib', type: 'symlink' as const, linkname: 'usr/lib' },
      { name: 'data/ünï cødé.txt', content: 'utf-8 name' },
    ];
    const long = `data/${'x'.repeat(60)}/${'y'.repeat(80)}.txt`;
    await tarStreamLayer(`${work}/l2.tar`, [
      { name: 'data/link1', type: 'link', linkname: 'data/target' },
      { name: 'data/link2', type: 'link', linkname: 'data/rm-target' },
      ...l2Changes,
      { name: `data/${'x'.repeat(60)}/`, type: 'directory' },
      { name: long, content: 'long path' },
    ]);

    // Layer 3 (zstd): replace and delete the hard-link targets; link across layers to a linked file.
    await tarStreamLayer(`${work}/l3.tar`, [
      { name: 'data/target', content: 'new content' },
      { name: 'data/.wh.rm-target', content: '' },
      { name: 'var/lib/hl3', type: 'link', linkname: 'var/lib/hl1' },
      { name: 'usr/share/doc/b/.wh.z', content: '' },
      { name: 'etc/.wh.passwd', content: '' },
      { name: 'etc/passwd', content: 'root:x:0:0::/root:/bin/ash\n', mode: 0o640, uid: 0, gid: 42 },
    ]);

    // Layer 4 (uncompressed, GNU tar): a directory becomes a file and a file a directory,
    // re-declared parents with new modes, and the first name of a hard-link group deleted.
    const layer4 = async (dir: string): Promise<void> => {
      await file(`${dir}/usr/share/doc/b`, 'b is a file now');
      await file(`${dir}/opt/keep/inside`, 'keep is a directory now');
      await mkdir(`${dir}/etc`, { recursive: true });
      await chmod(`${dir}/etc`, 0o750);
    };
    const d4 = path.join(work, 'l4');
    await layer4(d4);
    await file(`${d4}/var/lib/.wh.hl1`, '');
    await symlink('../data/target', `${d4}/etc/target-link`);
    gnuTarLayer(d4, `${work}/l4.tar`);

    // The same changes without what one top-down pass cannot express (a hard link whose
    // data an upper layer hid under its first name): this image must stage in one pass.
    await tarStreamLayer(`${work}/l2-one.tar`, [
      ...l2Changes,
      { name: 'usr/lib/hl-same-layer', content: 'linked in its own layer' },
      { name: 'usr/lib/hl-same-layer-2', type: 'link', linkname: 'usr/lib/hl-same-layer' },
    ]);
    const d4one = path.join(work, 'l4-one');
    await layer4(d4one);
    gnuTarLayer(d4one, `${work}/l4-one.tar`);
    const layoutOne = path.join(work, 'layout-one');
    await writeOciLayout(layoutOne, 'one', [
      { tar: `${work}/l1.tar`, compression: 'gzip' },
      { tar: `${work}/l2-one.tar`, compression: 'gzip' },
      { tar: `${work}/l3.tar`, compression: 'gzip' },
      { tar: `${work}/l4-one.tar`, compression: 'none' },
    ]);

    const layout = path.join(work, 'layout');
    await writeOciLayout(layout, 'tricky', [
      { tar: `${work}/l1.tar`, compression: 'gzip' },
      { tar: `${work}/l2.tar`, compression: 'gzip' },
      { tar: `${work}/l3.tar`, compression: 'zstd' },
      { tar: `${work}/l4.tar`, compression: 'none' },
    ]);
    // umoci 0.4.7 cannot read zstd layers: it unpacks the same layers with layer 3 as gzip
    // (same diff_ids, so the same root by definition).
    const layoutGz = path.join(work, 'layout-gz');
    await writeOciLayout(layoutGz, 'tricky', [
      { tar: `${work}/l1.tar`, compression: 'gzip' },
      { tar: `${work}/l2.tar`, compression: 'gzip' },
      { tar: `${work}/l3.tar`, compression: 'gzip' },
      { tar: `${work}/l4.tar`, compression: 'none' },
    ]);
    await darchOk(['images', 'import', `oci:${layout}:tricky`, 'test/tricky:1'], { root });
    await darchOk(['images', 'import', `oci:${layoutGz}:tricky`, 'test/tricky-gz:1'], { root });
    const res = await darchOk(['--json', 'stage', 'upload', 'test/tricky:1'], { root });
    stagedDir = res.json().dir;
    trickyPasses = res.json().meta.passes;
    stagedGzDir = (await darchOk(['--json', 'stage', 'upload', 'test/tricky-gz:1'], { root })).json().dir;
    const t2s = (await darchOk(['--json', 'stage', 'upload', '--writer', 'tar2sqfs', '-t', 'tricky-t2s:1', 'test/tricky:1'], { root })).json().dir;
    tar2sqfsRoot = path.join(work, 'sqfs-tar2sqfs');
    sh('unsquashfs', ['-q', '-d', tar2sqfsRoot, path.join(t2s, 'rootfs.squash')]);

    umociRoot = path.join(work, 'umoci');
    sh('umoci', ['unpack', '--image', `${root}/var/lib/darch/images:test/tricky-gz:1`, umociRoot]);
    sqfsRoot = path.join(work, 'sqfs');
    sh('unsquashfs', ['-q', '-d', sqfsRoot, path.join(stagedDir, 'rootfs.squash')]);

    // Its own root: stage.keep would retire the images above.
    const rootOne = path.join(work, 'root-one');
    await darchOk(['images', 'import', `oci:${layoutOne}:one`, 'test/one:1'], { root: rootOne });
    const one = (await darchOk(['--json', 'stage', 'upload', 'test/one:1'], { root: rootOne })).json();
    onePass.passes = one.meta.passes;
    onePass.root = path.join(work, 'sqfs-one');
    sh('unsquashfs', ['-q', '-d', onePass.root, path.join(one.dir, 'rootfs.squash')]);
    const two = (await darchOk(['--json', 'stage', 'upload', '--two-pass', '-t', 'one-2:1', 'test/one:1'], { root: rootOne })).json();
    assert.equal(two.meta.passes, 2);
    onePass.twoPassRoot = path.join(work, 'sqfs-one-2');
    sh('unsquashfs', ['-q', '-d', onePass.twoPassRoot, path.join(two.dir, 'rootfs.squash')]);
    onePass.umoci = path.join(work, 'umoci-one');
    sh('umoci', ['unpack', '--image', `${rootOne}/var/lib/darch/images:test/one:1`, onePass.umoci]);
  });

  it('stages an image with whiteouts, opaque dirs, replacements and hard links in one pass, with the root umoci unpack gives', () => {
    assert.equal(onePass.passes, 1, 'the image needs nothing one pass cannot do');
    const want = snapshotTree(path.join(onePass.umoci!, 'rootfs'), { mtimes: true });
    const diffs = diffTrees(want, snapshotTree(onePass.root!, { mtimes: true }), ['umoci', 'one pass']);
    assert.deepEqual(diffs, [], diffs.join('\n'));
    assert.ok(
      want.has('usr/lib/hl-same-layer-2') && want.has('var/lib/hl3') && !want.has('opt/old/1'),
      'the fixture has hard links, cross-layer links and an opaque dir',
    );
    const two = diffTrees(want, snapshotTree(onePass.twoPassRoot!, { mtimes: true }), ['umoci', 'two passes']);
    assert.deepEqual(two, [], two.join('\n'));
  });

  it('falls back to two passes for hard links whose data an upper layer hid, and still gets them right', () => {
    assert.equal(trickyPasses, 2);
  });

  it('holds the same paths, types, modes, owners, sizes, mtimes, link targets, devices, xattrs, contents and hard-link groups as umoci unpack', () => {
    const want = snapshotTree(path.join(umociRoot, 'rootfs'), { mtimes: true });
    const got = snapshotTree(sqfsRoot, { mtimes: true });
    const diffs = diffTrees(want, got, ['umoci', 'staged']);
    assert.deepEqual(diffs, [], diffs.join('\n'));
    assert.ok(want.size > 30, `the comparison saw only ${want.size} entries`);
  });

  it('gives the same root with tar2sqfs as the writer', () => {
    const want = snapshotTree(path.join(umociRoot, 'rootfs'), { mtimes: true });
    const diffs = diffTrees(want, snapshotTree(tar2sqfsRoot, { mtimes: true }), ['umoci', 'tar2sqfs']);
    assert.deepEqual(diffs, [], diffs.join('\n'));
  });

  it('gives a byte-identical squashfs whether a layer is zstd or gzip compressed', async () => {
    const a = await readFile(path.join(stagedDir, 'rootfs.squash'));
    const b = await readFile(path.join(stagedGzDir, 'rootfs.squash'));
    assert.ok(a.equals(b));
  });

  it('applied the tricky parts the way a user expects', async () => {
    const read = (p: string) => readFile(path.join(sqfsRoot, p), 'utf8');
    assert.equal(await read('data/link1'), 'original', 'a hard link keeps the content its target had when linked');
    assert.equal(await read('data/target'), 'new content');
    assert.equal(await read('data/link2'), 'to be removed', 'a hard link survives its deleted target');
    assert.deepEqual((await readdir(path.join(sqfsRoot, 'opt/old'))).sort(), ['3'], 'opaque dir hides lower entries');
    assert.deepEqual((await readdir(path.join(sqfsRoot, 'usr/share/doc'))).sort(), ['b'], 'whiteout removes a directory');
    assert.equal(await read('usr/share/doc/b'), 'b is a file now');
    assert.equal(await read('etc/passwd'), 'root:x:0:0::/root:/bin/ash\n', 'a whiteout does not hide an entry of its own layer');
    assert.match(sh('getcap', [path.join(sqfsRoot, 'bin/su')]), /cap_setgid,cap_setuid=ep/);
    assert.match(sh('getcap', [path.join(sqfsRoot, 'bin/ping')]), /cap_net_raw=ep/);
    assert.match(sh('unsquashfs', ['-lln', path.join(stagedDir, 'rootfs.squash')]), /crw-r--r-- 0\/0\s+1,\s+3 .*squashfs-root\/dev\/null/);
    assert.equal(await readFile(path.join(stagedDir, 'vmlinuz'), 'utf8'), 'not really a kernel');
    assert.equal(await readFile(path.join(stagedDir, 'initrd.img'), 'utf8'), 'not really an initrd');
    const r = spawnSync('sqfs2tar', [path.join(stagedDir, 'rootfs.squash')], { maxBuffer: 1 << 26 });
    assert.equal(r.status, 0, 'sqfs2tar reads the staged squashfs');
  });
});

/**
 * `darch delta create` / `darch delta apply` with the real zstd, tar2sqfs and sqfs2tar: the
 * image a machine stages from a delta is byte for byte the one `darch stage upload` stages
 * from the layers (squashfs, kernel, initramfs, image.json, the source digests in
 * meta.json), and a bad delta, a missing or damaged base stages nothing.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { run } from '../../src/lib/proc.js';
import { debianKernel, type TestKernel } from '../helpers/bootimage.js';
import { testImageTree } from '../helpers/bootfixture.js';
import { darch, darchOk, tempDir } from '../helpers/darch.js';
import { tarStreamLayer, writeOciLayout } from '../helpers/oci-layout.js';
import { startRegistry } from '../helpers/registry.js';

const FS_UUID = '0b6a8f3e-54f1-4c51-a1a7-6d6bcb1a7e12';
const sha = async (f: string) =>
  createHash('sha256')
    .update(await readFile(f))
    .digest('hex');

interface Staged {
  id: string;
  dir: string;
  tags: string[];
}

describe('darch delta', () => {
  let kernel: TestKernel;
  let work: string;
  let v1: string;
  let v2: string;
  let deltaFile: string;
  /** The same delta patched in segments (made by the first test). */
  let segFile: string;
  /** The server: both images in its store. */
  let server: string;

  /** A darch root with the images of these layouts imported. */
  async function rootWith(name: string, layouts: Array<[string, string]>): Promise<string> {
    const root = path.join(work, name);
    await mkdir(path.join(root, 'etc/darch'), { recursive: true });
    await writeFile(path.join(root, 'etc/darch/config.toml'), `[boot]\nbootloader = "grub"\nstage_fs_uuid = "${FS_UUID}"\n`);
    for (const [dir, ref] of layouts) await darchOk(['images', 'import', `oci:${dir}:${ref}`, ref], { root });
    return root;
  }

  before(async () => {
    kernel = await debianKernel();
    work = await tempDir({ after: () => undefined }, 'darch-delta-');
    const tree = await testImageTree(path.join(work, 'tree'), kernel, '1', 'delta');
    const base = path.join(work, 'base.tar');
    await run('tar', ['-C', tree, '--owner=0', '--group=0', '--sort=name', '-cf', base, '.']);
    v1 = path.join(work, 'v1');
    await writeOciLayout(v1, 'delta/os:1', [{ tar: base, compression: 'gzip' }]);
    // v2: a second layer over v1's, as a rebuild that changes a few files would make: a
    // changed file, a new one, a removed one (whiteout), and 512 KiB that compress badly.
    const upper = path.join(work, 'upper.tar');
    await tarStreamLayer(upper, [
      { name: 'etc/os-release', content: 'NAME=darch-test\nID=darch-test\nVERSION_ID=2\n' },
      { name: 'opt/', type: 'directory' },
      { name: 'opt/blob', content: randomBytes(384 * 1024).toString('base64') },
      { name: 'etc/.wh.fstab' },
    ]);
    v2 = path.join(work, 'v2');
    await writeOciLayout(v2, 'delta/os:2', [
      { tar: base, compression: 'gzip' },
      { tar: upper, compression: 'gzip' },
    ]);
    server = await rootWith('server', [
      [v1, 'delta/os:1'],
      [v2, 'delta/os:2'],
    ]);
    deltaFile = path.join(work, 'os-1-2.delta');
    await darchOk(['delta', 'create', 'delta/os:1', 'delta/os:2', '-o', deltaFile, '--compression', 'lz4', '--level', '9'], { root: server });
  });

  it('stages from a delta the same bytes `stage upload` stages from the layers, and the delta is a fraction of the image', async () => {
    const info = (await darchOk(['--json', 'delta', 'inspect', deltaFile], { root: server })).json();
    assert.equal(info.to.name, 'delta/os:2');
    assert.equal(info.squashfs.compression, 'lz4');
    const deltaSize = (await stat(deltaFile)).size;
    assert.ok(deltaSize < info.squashfs.size / 2, `the delta (${deltaSize} bytes) is well under the ${info.squashfs.size}-byte squashfs`);

    // The reference: the server stages v2 from its layers.
    const full = (await darchOk(['--json', 'stage', 'upload', 'delta/os:2', '--compression', 'lz4'], { root: server })).json<Staged>();
    // The machine has v1 staged (zstd, as by default: the base's compressor does not matter).
    const machine = await rootWith('machine', [[v1, 'delta/os:1']]);
    const base = (await darchOk(['--json', 'stage', 'upload', 'delta/os:1'], { root: machine })).json<Staged>();
    const applied = (await darchOk(['--json', 'delta', 'apply', deltaFile], { root: machine })).json<Staged & { base: string }>();
    assert.equal(applied.base, base.id, 'found the base by its config digest');
    assert.deepEqual(applied.tags, ['delta/os:2']);
    for (const f of ['rootfs.squash', 'vmlinuz', 'initrd.img', 'image.json']) {
      assert.equal(await sha(path.join(applied.dir, f)), await sha(path.join(full.dir, f)), `${f} is the same as stage upload's`);
    }
    const [a, b] = await Promise.all([applied.dir, full.dir].map(async (d) => JSON.parse(await readFile(path.join(d, 'meta.json'), 'utf8'))));
    assert.deepEqual(a.source, b.source, 'the same image: manifest and config digests, layer count');
    // Every file but the machine's own hook outputs (its machine-id: two roots are two machines).
    const own = (m: Record<string, string>) => Object.fromEntries(Object.entries(m).filter(([k]) => !k.startsWith('hooks/')));
    assert.deepEqual(own(a.sha256), own(b.sha256));
    // The machine's image store never held v2's layers: only v1's manifest, config and layer.
    const blobs = await readdir(path.join(machine, 'var/lib/darch/images/blobs/sha256'));
    assert.equal(blobs.length, 3, `only v1's blobs are in the machine's image store: ${blobs.join(', ')}`);
    assert.deepEqual(await readdir(path.join(machine, 'var/lib/darch/stage/tmp')), [], 'no work left behind');

    // Patched in segments (as a root over twice the default 128 MiB would be): the same bytes.
    segFile = path.join(work, 'os-1-2.seg.delta');
    await darchOk(['delta', 'create', 'delta/os:1', 'delta/os:2', '-o', segFile, '--compression', 'lz4', '--level', '9', '--segment-size', '1'], {
      root: server,
    });
    const seg = (await darchOk(['--json', 'delta', 'inspect', segFile], { root: server })).json();
    assert.ok(seg.patch.segments.length > 2, `${seg.patch.segments.length} segments of a ${seg.to.rootSize}-byte root`);
    assert.ok((await stat(segFile)).size < info.squashfs.size / 2, 'still a fraction of the image');
    const segMachine = await rootWith('machine-seg', [[v1, 'delta/os:1']]);
    await darchOk(['stage', 'upload', 'delta/os:1'], { root: segMachine });
    const bySegments = (await darchOk(['--json', 'delta', 'apply', segFile], { root: segMachine })).json<Staged>();
    for (const f of ['rootfs.squash', 'vmlinuz', 'initrd.img']) {
      assert.equal(await sha(path.join(bySegments.dir, f)), await sha(path.join(full.dir, f)), `${f} from the segmented delta is stage upload's`);
    }
    assert.deepEqual(await readdir(path.join(segMachine, 'var/lib/darch/stage/tmp')), [], 'no work left behind');
  });

  it('stages nothing for a delta whose base is not staged, a truncated or altered delta, or a damaged base', async () => {
    const machine = await rootWith('bad', [[v1, 'delta/os:1']]);
    const listed = async () => (await darchOk(['--json', 'stage', 'list'], { root: machine })).json<{ staged: Staged[] }>().staged.map((s) => s.tags.join(','));
    const tmpLeft = async () => readdir(path.join(machine, 'var/lib/darch/stage/tmp')).catch(() => []);

    let r = await darch(['--json', 'delta', 'apply', deltaFile], { root: machine });
    assert.equal(r.code, 1);
    assert.equal(r.json().error.code, 'E_DELTA_NO_BASE');
    assert.match(r.stderr, /delta\/os:1.*not staged here/);

    await darchOk(['stage', 'upload', 'delta/os:1'], { root: machine });

    const truncated = path.join(work, 'truncated.delta');
    await writeFile(truncated, (await readFile(deltaFile)).subarray(0, (await stat(deltaFile)).size - 4096));
    r = await darch(['--json', 'delta', 'apply', truncated], { root: machine });
    assert.equal(r.code, 1, r.stderr);
    assert.equal(r.json().error.code, 'E_BAD_DELTA', r.stderr);

    const altered = path.join(work, 'altered.delta');
    const bytes = await readFile(deltaFile);
    bytes[bytes.length - 3000] = (bytes[bytes.length - 3000] ?? 0) ^ 0xff;
    await writeFile(altered, bytes);
    r = await darch(['--json', 'delta', 'apply', altered], { root: machine });
    assert.equal(r.code, 1, r.stderr);
    assert.equal(r.json().error.code, 'E_BAD_DELTA', r.stderr);

    // A segmented delta damaged in a middle segment's frame: zstd stops there, nothing is staged.
    const seg = (await darchOk(['--json', 'delta', 'inspect', segFile])).json<{ patch: { size: number; segments: Array<{ frame: number }> } }>();
    const segBytes = await readFile(segFile);
    const k = Math.floor(seg.patch.segments.length / 2);
    const at =
      segBytes.length -
      1024 -
      Math.ceil(seg.patch.size / 512) * 512 +
      seg.patch.segments.slice(0, k).reduce((n, g) => n + g.frame, 0) +
      Math.floor(seg.patch.segments[k]!.frame / 2);
    segBytes[at] = (segBytes[at] ?? 0) ^ 0xff;
    const alteredSeg = path.join(work, 'altered.seg.delta');
    await writeFile(alteredSeg, segBytes);
    r = await darch(['--json', 'delta', 'apply', alteredSeg], { root: machine });
    assert.equal(r.code, 1, r.stderr);
    assert.equal(r.json().error.code, 'E_BAD_DELTA', r.stderr);

    const notDelta = path.join(work, 'not.delta');
    await writeFile(notDelta, 'hello');
    r = await darch(['--json', 'delta', 'apply', notDelta], { root: machine });
    assert.equal(r.json().error.code, 'E_BAD_DELTA', r.stderr);

    // The base's squashfs damaged in the middle: its root reads back wrong (or not at all).
    const baseDir = (await darchOk(['--json', 'stage', 'list'], { root: machine })).json<{ staged: Staged[] }>().staged[0]!.dir;
    const sq = path.join(baseDir, 'rootfs.squash');
    const fh = await open(sq, 'r+');
    const size = (await fh.stat()).size;
    await fh.write(Buffer.from('darch delta test damage'), 0, 23, Math.floor(size / 3));
    await fh.close();
    r = await darch(['--json', 'delta', 'apply', deltaFile], { root: machine });
    assert.equal(r.code, 1, r.stderr);
    assert.equal(r.json().error.code, 'E_DELTA_MISMATCH', r.stderr);

    assert.deepEqual(await listed(), ['delta/os:1'], 'nothing staged by any of them');
    assert.deepEqual(await tmpLeft(), [], 'no work left behind');
  });

  it('update apply --from takes a delta like a stage bundle: signed where the policy wants it, staged and armed once', async () => {
    const machine = await rootWith('offline', [[v1, 'delta/os:1']]);
    await darchOk(['stage', 'upload', 'delta/os:1'], { root: machine });
    await mkdir(path.join(machine, 'boot/efi/EFI'), { recursive: true });
    const followed = 'registry.example/delta/os:stable';
    const cfg = path.join(machine, 'etc/darch/config.toml');
    await writeFile(cfg, `${await readFile(cfg, 'utf8')}[update]\nimage = "${followed}"\n`);
    // From here on the machine takes only what its key signed.
    const keys = path.join(work, 'keys');
    await mkdir(keys, { recursive: true });
    await darchOk(['keygen', path.join(keys, 'k'), '--passphrase-file', '/dev/null']);
    await mkdir(path.join(machine, 'etc/keys'), { recursive: true });
    await writeFile(path.join(machine, 'etc/keys/k.pub'), await readFile(path.join(keys, 'k.pub')));
    await writeFile(
      path.join(machine, 'etc/darch/policy.json'),
      JSON.stringify({
        default: [{ type: 'reject' }],
        transports: { docker: { 'registry.example/delta/os': [{ type: 'sigstoreSigned', keyPath: '/etc/keys/k.pub' }] } },
      }),
    );
    const staged = async () => (await darchOk(['--json', 'stage', 'list'], { root: machine })).json<{ staged: Staged[] }>().staged.length;
    const offline = path.join(work, 'offline.delta');
    await writeFile(offline, await readFile(deltaFile));

    const unsigned = await darch(['update', 'apply', '--from', offline], { root: machine });
    assert.equal(unsigned.code, 1, unsigned.stderr);
    assert.match(unsigned.stderr, /offline\.delta .*is refused by .*: it has no signatures/);
    assert.equal(await staged(), 1, 'nothing staged');

    const signed = (
      await darchOk(['--json', 'sign', followed, '--bundle', offline, '--key', path.join(keys, 'k.key'), '--passphrase-file', '/dev/null'])
    ).json();
    assert.equal(signed.tag, `${offline}.sig`);
    const ok = (await darchOk(['--json', 'update', 'apply', '--from', offline], { root: machine })).json();
    assert.equal(ok.kind, 'delta');
    assert.equal(ok.staged.fresh, true);
    assert.equal(ok.applied.changed, true, 'armed as the next boot’s trial');
    assert.equal(await staged(), 2);
    const again = (await darchOk(['--json', 'update', 'apply', '--from', offline], { root: machine })).json();
    assert.equal(again.check.status, 'armed', 'the second time: already armed, nothing staged again');
    assert.equal(await staged(), 2);
  });

  it('a delta pushed to the registry is what `update stage` takes: found by the staged image, signed or refused for the layers', async () => {
    const reg = await startRegistry();
    try {
      const followed = `${reg.host}/delta/os:stable`;
      const keys = path.join(work, 'regkeys');
      await mkdir(keys, { recursive: true });
      await darchOk(['keygen', path.join(keys, 'k'), '--passphrase-file', '/dev/null']);
      const signImage = () => darchOk(['sign', followed, '--tls-verify=false', '--key', path.join(keys, 'k.key'), '--passphrase-file', '/dev/null']);
      /** A machine following the tag that takes only what the key signed, with what the tag points at staged from the registry. */
      const machine = async (name: string) => {
        const root = path.join(work, name);
        await mkdir(path.join(root, 'etc/darch'), { recursive: true });
        await mkdir(path.join(root, 'etc/keys'), { recursive: true });
        await writeFile(path.join(root, 'etc/keys/k.pub'), await readFile(path.join(keys, 'k.pub')));
        await writeFile(
          path.join(root, 'etc/darch/policy.json'),
          JSON.stringify({
            default: [{ type: 'reject' }],
            transports: { docker: { [`${reg.host}/delta/os`]: [{ type: 'sigstoreSigned', keyPath: '/etc/keys/k.pub' }] } },
          }),
        );
        await writeFile(
          path.join(root, 'etc/darch/config.toml'),
          `[registry]\ninsecure = ["${reg.host}"]\n[boot]\nbootloader = "grub"\nstage_fs_uuid = "${FS_UUID}"\n[stage]\ncompression = "lz4"\n[update]\nimage = "${followed}"\npolicy = "stage"\n`,
        );
        const first = (await darchOk(['--json', 'update', 'stage'], { root })).json();
        assert.equal(first.how, 'layers', 'nothing staged yet: the layers');
        return { root, base: first.id as string };
      };
      await darchOk(['images', 'push', '--tls-verify=false', 'delta/os:1', followed], { root: server });
      await signImage();
      // Two machines with version 1 staged: a takes version 2 before its delta is signed, b after.
      const a = await machine('reg-a');
      const b = await machine('reg-b');
      await darchOk(['images', 'push', '--tls-verify=false', 'delta/os:2', followed], { root: server });
      await signImage();

      // Attached unsigned: the registry keeps it under the referrers tag (docker-registry 2.8 has no referrers API).
      const pushDelta = path.join(work, 'push.delta');
      await writeFile(pushDelta, await readFile(deltaFile));
      const pushed = (await darchOk(['--json', 'delta', 'push', pushDelta, followed, '--tls-verify=false'], { root: server })).json();
      assert.equal(pushed.via, 'tag');
      assert.equal(pushed.signatures, 0);
      const listed = (await darchOk(['--json', 'delta', 'list', followed, '--tls-verify=false'])).json();
      assert.equal(listed.subject, pushed.subject);
      assert.deepEqual(
        listed.deltas.map((d: { digest: string; size: number; fromName: string }) => [d.digest, d.size, d.fromName]),
        [[pushed.digest, (await stat(deltaFile)).size, 'delta/os:1']],
      );
      const info = (await darchOk(['--json', 'delta', 'inspect', deltaFile])).json();
      assert.equal(pushed.from, info.from.config);

      // Unsigned, the machine's policy refuses it: one warning, and the layers instead.
      const unsigned = await darchOk(['--json', 'update', 'stage'], { root: a.root });
      assert.equal(unsigned.json().how, 'layers');
      assert.match(unsigned.stderr, /the delta could not be used \(.*it has no signatures.*\); taking the layers/);

      // Signed for the followed name, pushed again (the same artifact, its signature added).
      await darchOk(['sign', followed, '--bundle', pushDelta, '--key', path.join(keys, 'k.key'), '--passphrase-file', '/dev/null']);
      const again = (await darchOk(['--json', 'delta', 'push', pushDelta, followed, '--tls-verify=false'], { root: server })).json();
      assert.equal(again.digest, pushed.digest);
      assert.equal(again.uploaded, false, 'the delta blob was there already');
      assert.equal(again.signatures, 1);
      const relisted = (await darchOk(['--json', 'delta', 'list', followed, '--tls-verify=false'])).json();
      assert.deepEqual(
        relisted.deltas.map((d: { digest: string }) => d.digest),
        [pushed.digest],
        'pushed twice, listed once',
      );

      const byDelta = (await darchOk(['--json', 'update', 'stage'], { root: b.root })).json();
      assert.equal(byDelta.how, 'delta');
      assert.equal(byDelta.delta.base, b.base, 'from the staged version 1');
      assert.equal(byDelta.delta.bytesDownloaded, (await stat(deltaFile)).size, 'the delta, not the layers, came down');
      const viaLayers = (await darchOk(['--json', 'stage', 'list'], { root: a.root })).json<{ staged: Array<Staged & { image: string }> }>();
      const viaDelta = (await darchOk(['--json', 'stage', 'list'], { root: b.root })).json<{ staged: Array<Staged & { image: string }> }>();
      const v2a = viaLayers.staged.find((s) => s.id === unsigned.json().id)!;
      const v2b = viaDelta.staged.find((s) => s.id === byDelta.id)!;
      assert.equal(await sha(path.join(v2b.dir, 'rootfs.squash')), await sha(path.join(v2a.dir, 'rootfs.squash')), 'the same squashfs as from the layers');
      assert.deepEqual(v2b.tags, v2a.tags, 'under the same update tag');
      // Machine b's image store never held version 2's layers: version 1's three blobs and the delta.
      const blobs = await readdir(path.join(b.root, 'var/lib/darch/images/blobs/sha256'));
      assert.equal(blobs.length, 4, blobs.join(', '));
      const checked = await darch(['--json', 'update', 'check'], { root: b.root });
      assert.equal(checked.json().status, 'staged', 'the check sees the delta-staged image as the update');
    } finally {
      await reg.stop();
    }
  });
});

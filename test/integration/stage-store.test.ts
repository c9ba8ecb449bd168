/**
 * The staged store as a user meets it: kernel discovery, the no-kernel error, tags,
 * retention that never removes the booted image, crash safety (kill -9 mid-stage),
 * export | import through a pipe, corrupt and truncated bundles refused, a full disk
 * refused before writing, and staging as an unprivileged user.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import tar from 'tar-stream';
import { DARCH_BIN, darch, darchOk } from '../helpers/darch.js';
import { tarStreamLayer, writeOciLayout } from '../helpers/oci-layout.js';
import { withTmpfs } from '../helpers/tmpfs.js';
import { listFiles } from '../../src/stage/stage.js';

type Spec = Record<string, string | Buffer | { symlink: string }>;

/** A root file system tarball from a path → content map (parents implied). */
async function rootfsTar(out: string, files: Spec): Promise<void> {
  const pack = tar.pack();
  const done = pipeline(pack, createWriteStream(out));
  const dirs = new Set<string>();
  for (const p of Object.keys(files)) {
    const parts = p.split('/');
    for (let i = 1; i < parts.length; i++) dirs.add(parts.slice(0, i).join('/'));
  }
  const add = (h: Partial<tar.Header> & { name: string }, body?: string | Buffer) =>
    new Promise<void>((res, rej) =>
      pack.entry({ uid: 0, gid: 0, mtime: new Date(1_700_000_000_000), ...h } as tar.Header, body ?? '', (e) => (e ? rej(e) : res())),
    );
  for (const d of [...dirs].sort()) await add({ name: `${d}/`, type: 'directory', mode: 0o755 });
  for (const [p, v] of Object.entries(files)) {
    if (typeof v === 'object' && !Buffer.isBuffer(v)) await add({ name: p, type: 'symlink', linkname: v.symlink, mode: 0o777 });
    else await add({ name: p, type: 'file', mode: 0o644 }, v);
  }
  pack.finalize();
  await done;
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function ls(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir)).sort();
  } catch {
    return [];
  }
}

describe('stage: store, kernels, bundles and safety', () => {
  let work: string;
  let n = 0;
  const fresh = async () => {
    const d = path.join(work, `r${n++}`);
    await mkdir(d);
    return d;
  };
  const importRootfs = async (root: string, name: string, files: Spec) => {
    const t = path.join(work, `${name.replace(/[/:]/g, '_')}-${n++}.tar`);
    await rootfsTar(t, files);
    await darchOk(['images', 'import', t, name], { root });
  };
  const staged = (root: string) => path.join(root, 'var/lib/darch/stage');
  const kernelOnly: Spec = { 'boot/vmlinuz-6.1.0-1': 'kernel 6.1', 'boot/initrd.img-6.1.0-1': 'initrd 6.1', 'etc/os-release': 'ID=test\n' };

  before(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'darch-stage-'));
  });
  after(() => rm(work, { recursive: true, force: true }));

  it('finds the kernel and initramfs the way each distribution lays them out', async () => {
    const root = await fresh();
    const cases: Array<{ name: string; files: Spec; labels?: Record<string, string>; kernel: string; initrd?: string; params?: string }> = [
      {
        name: 'k/debian:1',
        files: {
          'boot/vmlinuz-5.10.0-9-amd64': 'old kernel',
          'boot/vmlinuz-6.1.0-9-amd64': 'kernel 9',
          'boot/vmlinuz-6.1.0-10-amd64': 'kernel 10',
          'boot/initrd.img-6.1.0-10-amd64': 'initrd 10',
          'boot/initrd.img-6.1.0-9-amd64': 'initrd 9',
        },
        kernel: 'kernel 10',
        initrd: 'initrd 10',
      },
      {
        name: 'k/modules:1',
        files: {
          lib: { symlink: 'usr/lib' },
          'usr/lib/modules/6.2.0-arch1/vmlinuz': 'arch kernel',
          'usr/lib/modules/6.2.0-arch1/initramfs.img': 'arch initramfs',
        },
        kernel: 'arch kernel',
        initrd: 'arch initramfs',
      },
      {
        name: 'k/symlinks:1',
        files: {
          vmlinuz: { symlink: 'boot/kernel-7' },
          'initrd.img': { symlink: '/boot/ird-7' },
          'boot/kernel-7': 'linked kernel',
          'boot/ird-7': 'linked initrd',
        },
        kernel: 'linked kernel',
        initrd: 'linked initrd',
      },
      {
        name: 'k/imagejson:1',
        files: {
          'usr/lib/darch/image.json': JSON.stringify({ kernel: '/opt/k/vmlinuz', kernelparams: 'boot=darch quiet', rootfs: 'ignored.squash' }),
          'opt/k/vmlinuz': 'named kernel',
          'boot/vmlinuz-9.9': 'decoy',
        },
        kernel: 'named kernel',
        params: 'boot=darch quiet',
      },
    ];
    for (const c of cases) await importRootfs(root, c.name, c.files);
    // Labels need an image config: an OCI layout.
    const lt = path.join(work, 'labels.tar');
    await rootfsTar(lt, { 'boot/custom/kern': 'labelled kernel', 'opt/ird': 'labelled initrd', 'boot/vmlinuz-9.9': 'decoy' });
    await writeOciLayout(path.join(work, 'labels-layout'), 'l', [{ tar: lt, compression: 'gzip' }], {
      'org.darch.kernel': 'custom/kern',
      'org.darch.initramfs': '/opt/ird',
      'org.darch.kernelparams': 'console=ttyS0',
    });
    await darchOk(['images', 'import', `oci:${path.join(work, 'labels-layout')}:l`, 'k/labels:1'], { root });
    cases.push({ name: 'k/labels:1', files: {}, kernel: 'labelled kernel', initrd: 'labelled initrd', params: 'console=ttyS0' });

    for (const c of cases) {
      const r = (await darchOk(['--json', 'stage', 'upload', c.name], { root })).json();
      assert.equal(await readFile(path.join(r.dir, 'vmlinuz'), 'utf8'), c.kernel, c.name);
      const imageJson = JSON.parse(await readFile(path.join(r.dir, 'image.json'), 'utf8'));
      assert.equal(imageJson.kernel, 'vmlinuz');
      assert.equal(imageJson.rootfs, 'rootfs.squash');
      assert.equal(imageJson.kernelparams, c.params, `${c.name} kernelparams`);
      if (c.initrd) {
        assert.equal(await readFile(path.join(r.dir, 'initrd.img'), 'utf8'), c.initrd, c.name);
        assert.equal(imageJson.initramfs, 'initrd.img');
      } else {
        // No initramfs in the image: darch builds its universal one (issue 6), so the kernel still boots.
        assert.equal(imageJson.initramfs, 'initrd.img', c.name);
        const listing = execFileSync('sh', ['-c', `zcat "${path.join(r.dir, 'initrd.img')}" | cpio -t 2>/dev/null`]).toString();
        assert.match(listing, /^init$/m, `${c.name}: darch's initramfs has /init`);
      }
      const meta = JSON.parse(await readFile(path.join(r.dir, 'meta.json'), 'utf8'));
      assert.equal(meta.sha256['rootfs.squash'], sha(await readFile(path.join(r.dir, 'rootfs.squash'))));
    }
  });

  it('refuses an image without a kernel before compressing anything, says so, and stages nothing', async () => {
    const root = await fresh();
    await importRootfs(root, 'nokernel:1', { 'etc/hostname': 'x\n', 'boot/grub/grub.cfg': '', 'usr/share/big': randomBytes(4 << 20) });
    const r = await darch(['stage', 'upload', 'nokernel:1'], { root });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /error: nokernel:1 has no kernel/);
    assert.match(r.stderr, /hint: install a kernel/);
    // Known from the layers' headers: no squashfs was started.
    assert.doesNotMatch(r.stderr, /writing squashfs/);
    assert.deepEqual(await ls(path.join(staged(root), 'live')), []);
    assert.deepEqual(await ls(path.join(staged(root), 'tmp')), []);
  });

  it("syncs boot menus only where this machine boots darch's menu; elsewhere says nothing about menus", async () => {
    // A build host: no /etc/grub.d/60_darch, no ESP with darch's state, not booted from darch.
    const root = await fresh();
    await importRootfs(root, 'host/os:1', kernelOnly);
    const up = await darchOk(['stage', 'upload', 'host/os:1'], { root });
    assert.doesNotMatch(up.stderr, /menu|grub|UUID/i);
    await assert.rejects(stat(path.join(staged(root), 'grub.cfg')), /ENOENT/);
    await assert.rejects(stat(path.join(root, 'etc/darch/grub.cfg')), /ENOENT/);
    // An ESP without darch's state is not darch's either.
    await mkdir(path.join(root, 'boot/efi/EFI/debian'), { recursive: true });
    assert.doesNotMatch((await darchOk(['stage', 'tag', 'host/os:1', 'host/os:2'], { root })).stderr, /menu|grub|UUID/i);
    await assert.rejects(stat(path.join(staged(root), 'grub.cfg')), /ENOENT/);

    // `darch boot install` was run here (60_darch exists): the menu follows every stage change.
    const machine = await fresh();
    await importRootfs(machine, 'host/os:1', kernelOnly);
    await mkdir(path.join(machine, 'etc/grub.d'), { recursive: true });
    await writeFile(path.join(machine, 'etc/grub.d/60_darch'), '#!/bin/sh\n', { mode: 0o755 });
    await mkdir(path.join(machine, 'etc/darch'), { recursive: true });
    await writeFile(path.join(machine, 'etc/darch/config.toml'), '[boot]\nstage_fs_uuid = "0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9"\n');
    const id = (await darchOk(['--json', 'stage', 'upload', 'host/os:1'], { root: machine })).json().id as string;
    assert.match(await readFile(path.join(staged(machine), 'grub.cfg'), 'utf8'), new RegExp(`darch_stageid=${id}`));

    // Where it should sync and cannot (a stage directory on tmpfs, which GRUB cannot read), it says what to do.
    const shm = await mkdtemp('/dev/shm/darch-test-');
    try {
      await importRootfs(shm, 'host/os:1', kernelOnly);
      await mkdir(path.join(shm, 'etc/grub.d'), { recursive: true });
      await writeFile(path.join(shm, 'etc/grub.d/60_darch'), '#!/bin/sh\n', { mode: 0o755 });
      const r = await darchOk(['stage', 'upload', 'host/os:1'], { root: shm });
      assert.match(r.stderr, /the boot menu was not updated \(this machine boots darch's menu: .*60_darch/);
      assert.match(r.stderr, /run `darch boot sync`/);
    } finally {
      await rm(shm, { recursive: true, force: true });
    }
  });

  it('tags, refuses a second upload without --force, keeps stage.keep images and never the booted one', async () => {
    const root = await fresh();
    await mkdir(path.join(root, 'etc/darch'), { recursive: true });
    await writeFile(path.join(root, 'etc/darch/config.toml'), '[stage]\nkeep = 2\n');
    await importRootfs(root, 'os:1', kernelOnly);
    await importRootfs(root, 'os:2', { ...kernelOnly, 'etc/version': '2' });
    await importRootfs(root, 'os:3', { ...kernelOnly, 'etc/version': '3' });
    const first = (await darchOk(['--json', 'stage', 'upload', 'os:1'], { root })).json().id as string;
    const again = await darch(['stage', 'upload', 'os:1'], { root });
    assert.equal(again.code, 1);
    assert.match(again.stderr, /os:1 is already staged/);
    assert.match(again.stderr, /--force/);

    const cmdline = path.join(root, 'cmdline');
    await writeFile(cmdline, `BOOT_IMAGE=/vmlinuz darch_rootfs=rootfs.squash darch_stageid=${first} quiet\n`);
    const env = { DARCH_CMDLINE_FILE: cmdline };
    const second = (await darchOk(['--json', 'stage', 'upload', 'os:2'], { root, env })).json().id as string;
    const third = (await darchOk(['--json', 'stage', 'upload', 'os:3'], { root, env })).json();
    assert.deepEqual(third.removed, [second], 'retention removes the oldest unprotected image');
    assert.deepEqual(await ls(path.join(staged(root), 'live')), [first, third.id].sort());

    const list = (await darchOk(['--json', 'stage', 'list'], { root, env })).json().staged;
    assert.deepEqual(list.map((s: { tags: string[] }) => s.tags[0]).sort(), ['os:1', 'os:3']);
    assert.equal(list.find((s: { id: string }) => s.id === first).booted, true);
    const table = (await darchOk(['stage', 'list'], { root, env })).stdout;
    assert.match(table, new RegExp(`\\*\\s+os:1\\s+${first}`));
    assert.equal((await darchOk(['stage', 'current'], { root, env })).stdout.trim(), 'os:1');

    await darchOk(['stage', 'tag', 'os:3', 'stable'], { root });
    assert.equal((await darch(['stage', 'tag', 'os:1', 'stable'], { root })).code, 1, 'moving a tag needs --force');
    // Removing the booted image's only tag keeps its files.
    await darchOk(['stage', 'remove', 'os:1'], { root, env });
    assert.ok((await ls(path.join(staged(root), 'live'))).includes(first), 'the booted image stays on disk');
    await darchOk(['stage', 'clean'], { root, env });
    assert.ok((await ls(path.join(staged(root), 'live'))).includes(first), 'clean spares the booted image');
    await darchOk(['stage', 'clean'], { root });
    assert.ok(!(await ls(path.join(staged(root), 'live'))).includes(first), 'once not booted, clean removes the untagged image');
    await darchOk(['stage', 'remove', 'os:3'], { root });
    assert.deepEqual((await darchOk(['--json', 'stage', 'list'], { root })).json().staged[0].tags, ['stable:latest']);
  });

  it('survives kill -9 mid-stage: earlier staged images and images.json are untouched', async () => {
    const root = await fresh();
    await importRootfs(root, 'good:1', kernelOnly);
    await darchOk(['stage', 'upload', 'good:1'], { root });
    const live = path.join(staged(root), 'live');
    const [goodId] = await ls(live);
    const before = await readFile(path.join(staged(root), 'images.json'));
    const goodMeta = JSON.parse(await readFile(path.join(live, goodId!, 'meta.json'), 'utf8'));
    // Big enough (incompressible) that tar2sqfs is still writing when we kill darch.
    await importRootfs(root, 'big:1', { ...kernelOnly, 'big/a': randomBytes(48 << 20), 'big/b': randomBytes(48 << 20) });
    const child = spawn(DARCH_BIN, ['--root', root, 'stage', 'upload', '--compression', 'xz', 'big:1'], {
      stdio: 'ignore',
      env: { ...process.env, DARCH_LOCK_TIMEOUT: '0' },
    });
    const tmp = path.join(staged(root), 'tmp');
    let sawWork = false;
    for (let i = 0; i < 300 && !sawWork; i++) {
      await sleep(50);
      for (const d of await ls(tmp)) {
        const sq = await stat(path.join(tmp, d, 'rootfs.squash')).catch(() => undefined);
        if (sq && sq.size > 0) sawWork = true;
      }
    }
    child.kill('SIGKILL');
    await new Promise((r) => child.once('close', r));
    assert.ok(sawWork, 'the kill happened while the squashfs was being written');
    assert.deepEqual(await ls(live), [goodId]);
    assert.ok((await readFile(path.join(staged(root), 'images.json'))).equals(before));
    for (const [f, h] of Object.entries(goodMeta.sha256 as Record<string, string>)) {
      assert.equal(sha(await readFile(path.join(live, goodId!, f))), h, `${f} of the earlier image is intact`);
    }
    // The next stage sweeps the dead process's work directory and succeeds.
    await darchOk(['stage', 'upload', '--compression', 'lz4', 'big:1'], { root });
    assert.deepEqual(await ls(tmp), []);
    assert.equal((await ls(live)).length, 2);
  });

  it('exports and imports through a pipe; refuses corrupt and truncated bundles without renaming anything into place', async () => {
    const src = await fresh();
    await importRootfs(src, 'carry:1', { ...kernelOnly, 'usr/bin/tool': randomBytes(300_000) });
    const id = (await darchOk(['--json', 'stage', 'upload', 'carry:1'], { root: src })).json().id as string;
    const dst = await fresh();
    const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
    const cmd = `set -o pipefail; ${q(DARCH_BIN)} --root ${q(src)} stage export carry:1 -o - | ${q(DARCH_BIN)} --root ${q(dst)} --json stage import -`;
    const out = execFileSync('bash', ['-c', cmd], { env: { ...process.env, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] }).toString();
    assert.equal(JSON.parse(out).id, id);
    for (const f of await listFiles(path.join(staged(src), 'live', id))) {
      // Hook outputs are each machine's own (machine-id, SSH host keys): bundles leave them out.
      if (f.startsWith('hooks/')) continue;
      const a = await readFile(path.join(staged(src), 'live', id, f));
      const b = await readFile(path.join(staged(dst), 'live', id, f));
      assert.ok(a.equals(b), `${f} arrives byte for byte`);
    }
    assert.deepEqual((await darchOk(['--json', 'stage', 'list'], { root: dst })).json().staged[0].tags, ['carry:1']);

    const bundle = path.join(work, 'carry.darch');
    await darchOk(['stage', 'export', 'carry:1', '-o', bundle], { root: src });
    const bytes = await readFile(bundle);
    assert.doesNotMatch(execFileSync('tar', ['-tf', bundle]).toString(), /^hooks\//m, 'no hook output in a bundle');
    const corrupt = Buffer.from(bytes);
    corrupt[corrupt.length - 4096] = (corrupt[corrupt.length - 4096]! ^ 0xff) & 0xff; // inside rootfs.squash, the last member
    const bad = path.join(work, 'corrupt.darch');
    await writeFile(bad, corrupt);
    const dst2 = await fresh();
    const r = await darch(['stage', 'import', bad], { root: dst2 });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /error: rootfs\.squash does not match its sha256/);
    assert.deepEqual(await ls(path.join(staged(dst2), 'live')), []);
    assert.deepEqual(await ls(path.join(staged(dst2), 'tmp')), []);

    const cut = path.join(work, 'cut.darch');
    await writeFile(cut, bytes.subarray(0, bytes.length - 100_000));
    const r2 = await darch(['stage', 'import', cut], { root: dst2 });
    assert.equal(r2.code, 1);
    assert.match(r2.stderr, /truncated|incomplete|ends unexpectedly/);
    assert.deepEqual(await ls(path.join(staged(dst2), 'live')), []);

    const r3 = await darch(['stage', 'import', '-'], { root: dst2, input: 'this is not a bundle at all'.repeat(50) });
    assert.equal(r3.code, 1);
    assert.match(r3.stderr, /error: .*(bundle|tar)/);
  });

  it('refuses to stage when the stage file system is too small, with the numbers', async (t) => {
    await withTmpfs(t, await fresh(), '6m', async (mnt) => {
      await importRootfs(mnt, 'fat:1', { ...kernelOnly, 'data/blob': randomBytes(3 << 20) });
      const r = await darch(['stage', 'upload', 'fat:1'], { root: mnt });
      assert.equal(r.code, 1);
      assert.match(r.stderr, /error: not enough space for staging fat:1: about [\d.]+ MiB needed, [\d.]+ (MiB|KiB) free/);
      assert.match(r.stderr, /hint: free space/);
      assert.deepEqual(await ls(path.join(staged(mnt), 'live')), []);
      assert.deepEqual(await ls(path.join(staged(mnt), 'tmp')), []);
    });
  });

  it('refuses before copying a kernel that will not fit, though its squashfs did, and re-checks when one pass falls back to two', async (t) => {
    await withTmpfs(t, await fresh(), '6m', async (mnt) => {
      // 8 MiB of zeros: a few KiB in the layer and in the squashfs, 8 MiB once copied out.
      await importRootfs(mnt, 'bigkernel:1', { ...kernelOnly, 'boot/vmlinuz-6.1.0-1': Buffer.alloc(8 << 20) });
      for (const passes of [[], ['--two-pass']]) {
        const r = await darch(['stage', 'upload', 'bigkernel:1', ...passes], { root: mnt });
        assert.equal(r.code, 1, r.stderr);
        assert.match(r.stderr, /error: not enough space for .*bigkernel:1.*: about [\d.]+ MiB needed, [\d.]+ (MiB|KiB) free/, passes.join(' ') || 'one pass');
        assert.deepEqual(await ls(path.join(staged(mnt), 'live')), []);
        assert.deepEqual(await ls(path.join(staged(mnt), 'tmp')), []);
      }
      // One pass gives up on a hard link whose data an upper layer replaced; the two passes
      // it falls back to are checked against the index before they write.
      const kernel = '\0'.repeat(8 << 20);
      const tars = await fresh();
      await tarStreamLayer(path.join(tars, 'l1.tar'), [
        { name: 'boot/', type: 'directory' },
        { name: 'boot/vmlinuz-6.1.0-1', content: kernel },
        { name: 'data/', type: 'directory' },
        { name: 'data/target', content: 'original' },
      ]);
      await tarStreamLayer(path.join(tars, 'l2.tar'), [{ name: 'data/link', type: 'link', linkname: 'data/target' }]);
      await tarStreamLayer(path.join(tars, 'l3.tar'), [{ name: 'data/target', content: 'replaced' }]);
      const layout = path.join(tars, 'layout');
      await writeOciLayout(
        layout,
        'fallback',
        ['l1', 'l2', 'l3'].map((l) => ({ tar: path.join(tars, `${l}.tar`), compression: 'gzip' as const })),
      );
      await darchOk(['images', 'import', `oci:${layout}:fallback`, 'fallback:1'], { root: mnt });
      const r = await darch(['-v', 'stage', 'upload', 'fallback:1'], { root: mnt });
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /one pass cannot flatten this image.*; staging with two passes/);
      assert.match(r.stderr, /error: not enough space for staging fallback:1: about [\d.]+ MiB needed, [\d.]+ (MiB|KiB) free/);
      assert.deepEqual(await ls(path.join(staged(mnt), 'live')), []);
      assert.deepEqual(await ls(path.join(staged(mnt), 'tmp')), []);
    });
  });

  it('stages without root, in the user’s XDG directories', async (t) => {
    if (process.getuid?.() !== 0) {
      t.skip('needs root to switch to an unprivileged user');
      return;
    }
    const home = await fresh();
    await chmod(work, 0o755);
    await chown(home, 65534, 65534);
    const t1 = path.join(home, 'rootfs.tar');
    await rootfsTar(t1, { ...kernelOnly, 'usr/bin/ping': 'ping' });
    await chown(t1, 65534, 65534);
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      HOME: home,
      XDG_DATA_HOME: path.join(home, 'data'),
      XDG_CONFIG_HOME: path.join(home, 'config'),
      XDG_STATE_HOME: path.join(home, 'state'),
      XDG_CACHE_HOME: path.join(home, 'cache'),
      NO_COLOR: '1',
      DARCH_LOCK_TIMEOUT: '0',
    };
    delete env.DARCH_ROOT;
    const asNobody = (args: string[]) =>
      execFileSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', DARCH_BIN, ...args], {
        env,
        cwd: home,
        stdio: ['ignore', 'pipe', 'pipe'],
      }).toString();
    asNobody(['images', 'import', t1, 'mine:1']);
    const res = JSON.parse(asNobody(['--json', 'stage', 'upload', 'mine:1']));
    assert.ok(res.dir.startsWith(path.join(home, 'data/darch/stage/live/')), res.dir);
    const st = await stat(path.join(res.dir, 'rootfs.squash'));
    assert.equal(st.uid, 65534);
    const listing = execFileSync('unsquashfs', ['-lln', path.join(res.dir, 'rootfs.squash')]).toString();
    assert.match(listing, /-rw-r--r-- 0\/0 .*squashfs-root\/usr\/bin\/ping/, 'owners in the image stay root, not the user who staged');
  });
});

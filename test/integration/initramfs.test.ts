/** `darch initramfs build` against Debian's real kernel modules (cached download). */
import assert from 'node:assert/strict';
import { mkdir, readFile, readdir, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { run } from '../../src/lib/proc.js';
import { debianKernel, busyboxBootRoot, type TestKernel } from '../helpers/bootimage.js';
import { darch, darchOk, tempDir } from '../helpers/darch.js';

async function unpack(initrd: string, dir: string): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  // cpio(1) reading our writer's output is the check that it is valid newc.
  await run('sh', ['-c', 'gzip -dc "$1" | (cd "$2" && cpio -idm --quiet --no-absolute-filenames)', 'sh', initrd, dir]);
  const res = await run('sh', ['-c', 'gzip -dc "$1" | cpio -t --quiet', 'sh', initrd]);
  return res.stdout.split('\n').filter(Boolean);
}

describe('darch initramfs build', () => {
  let kernel: TestKernel;
  before(async () => {
    kernel = await debianKernel();
  });

  it('packs busybox, the darch init and the boot modules in dependency order, from a directory or a squashfs', async (t) => {
    const work = await tempDir(t);
    const root = await busyboxBootRoot(path.join(work, 'root'), { kernel });
    const out = path.join(work, 'initrd.img');
    const res = (await darchOk(['--json', 'initramfs', 'build', root, '--kernel', kernel.vmlinuz, '-o', out])).json();
    assert.equal(res.release, kernel.release);
    const files = await unpack(out, path.join(work, 'x'));
    for (const f of ['init', 'bin/busybox', 'bin/sh', 'lib/darch/darch-lib.sh', 'dev/console', 'lib/modules/load.list'])
      assert.ok(files.includes(f), `${f} in the initramfs`);
    const load = (await readFile(path.join(work, 'x/lib/modules/load.list'), 'utf8')).split('\n').filter(Boolean);
    const pos = (m: string) => load.findIndex((l) => l.endsWith(`/${m}.ko`));
    for (const m of ['squashfs', 'overlay', 'loop', 'ext4', 'vfat', 'virtio_blk', 'virtio_pci', 'nvme', 'ahci', 'sd_mod'])
      assert.ok(pos(m) >= 0, `${m} is loaded`);
    assert.ok(pos('virtio_ring') < pos('virtio_blk') && pos('virtio') < pos('virtio_blk'));
    assert.ok(pos('jbd2') < pos('ext4') && pos('mbcache') < pos('ext4'));
    assert.ok(pos('fat') < pos('vfat'));
    assert.equal((await stat(path.join(work, 'x/dev/console'))).isCharacterDevice(), true);
    // Watchdog drivers are carried for trial boots (darch.watchdog=), never loaded at boot.
    const dogs = (await readFile(path.join(work, 'x/lib/modules/watchdog.list'), 'utf8'))
      .split('\n')
      .filter(Boolean)
      .map((l) => l.split(' '));
    const dogFiles = (d: string) => dogs.filter(([name]) => name === d).map(([, f]) => f!);
    assert.deepEqual(
      dogFiles('i6300esb').map((f) => f.split('/').pop()),
      ['watchdog.ko', 'i6300esb.ko'],
      'the core first, then the driver',
    );
    assert.deepEqual(
      dogFiles('softdog').map((f) => f.split('/').pop()),
      ['watchdog.ko', 'softdog.ko'],
    );
    for (const f of dogs.map(([, f]) => f!)) assert.ok(files.includes(`lib/modules/${kernel.release}/${f}`), `${f} in the initramfs`);
    assert.equal(pos('i6300esb'), -1, 'not loaded on every boot');
    assert.equal(pos('softdog'), -1);

    // The same from the image's squashfs, with Debian's merged /usr (lib → usr/lib).
    await mkdir(path.join(root, 'usr/lib'), { recursive: true });
    await rename(path.join(root, 'lib'), path.join(root, 'usr/lib/real'));
    await run('sh', ['-c', `mv "$1"/usr/lib/real/* "$1"/usr/lib/ && rmdir "$1"/usr/lib/real`, 'sh', root]);
    await symlink('usr/lib', path.join(root, 'lib'));
    const squash = path.join(work, 'rootfs.squash');
    await run('mksquashfs', [root, squash, '-quiet', '-no-progress', '-noappend']);
    const out2 = path.join(work, 'initrd2.img');
    const res2 = (await darchOk(['--json', 'initramfs', 'build', squash, '--kernel', kernel.vmlinuz, '-o', out2])).json();
    assert.deepEqual(res2.modules, res.modules);
    // lz4, which Debian 12's unsquashfs cannot read at all ("failed to read id table block").
    const lz4 = path.join(work, 'rootfs-lz4.squash');
    await run('mksquashfs', [root, lz4, '-quiet', '-no-progress', '-noappend', '-comp', 'lz4']);
    const out3 = path.join(work, 'initrd3.img');
    // A build a power cut stopped in another boot left its work directory: the next build sweeps it.
    const droot = path.join(work, 'droot');
    const dead = path.join(droot, 'var/lib/darch/tmp', `initramfs-1-00000000${'ab'.repeat(6)}`);
    await mkdir(dead, { recursive: true });
    const res3 = (await darchOk(['--json', 'initramfs', 'build', lz4, '--kernel', kernel.vmlinuz, '-o', out3], { root: droot })).json();
    assert.deepEqual(res3.modules, res.modules);
    assert.deepEqual(await readdir(path.dirname(dead)), [], 'the dead build’s work directory is gone, and this build left none');
  });

  it('decompresses .ko.xz and .ko.zst modules (busybox insmod cannot)', async (t) => {
    const work = await tempDir(t);
    const root = await busyboxBootRoot(path.join(work, 'root'), { kernel });
    const mdir = path.join(root, 'lib/modules', kernel.release);
    await run('xz', [path.join(mdir, 'kernel/fs/squashfs/squashfs.ko')]);
    await run('zstd', ['-q', '--rm', path.join(mdir, 'kernel/fs/overlayfs/overlay.ko')]);
    await run('depmod', ['-b', root, kernel.release]);
    assert.match(await readFile(path.join(mdir, 'modules.dep'), 'utf8'), /squashfs\.ko\.xz:/);
    const out = path.join(work, 'initrd.img');
    await darchOk(['initramfs', 'build', root, '--kernel', kernel.vmlinuz, '-o', out]);
    const files = await unpack(out, path.join(work, 'x'));
    const sq = files.find((f) => f.includes('squashfs/squashfs.ko'));
    assert.equal(sq, `lib/modules/${kernel.release}/kernel/fs/squashfs/squashfs.ko`);
    assert.ok(files.some((f) => f.endsWith('overlayfs/overlay.ko')));
    const head = (await readFile(path.join(work, 'x', sq!))).subarray(0, 4);
    assert.deepEqual([...head], [0x7f, 0x45, 0x4c, 0x46]);
  });

  it('explains what is wrong with an image it cannot build for, and writes nothing', async (t) => {
    const work = await tempDir(t);
    const out = path.join(work, 'initrd.img');
    const empty = path.join(work, 'empty');
    await mkdir(path.join(empty, 'etc'), { recursive: true });
    // No module tree at all: a kernel with everything built in. Built, with a warning.
    let r = await darch(['initramfs', 'build', empty, '-o', out]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /warning: .* has no \/lib\/modules: the initramfs carries no modules/);
    await rm(out);

    const root = await busyboxBootRoot(path.join(work, 'root'), { kernel });
    const mdir = path.join(root, 'lib/modules', kernel.release);
    const dep = await readFile(path.join(mdir, 'modules.dep'), 'utf8');
    await rm(path.join(mdir, 'modules.dep'));
    r = await darch(['initramfs', 'build', root, '--kernel', kernel.vmlinuz, '-o', out]);
    assert.match(r.stderr, new RegExp(`error: the image has /lib/modules/${kernel.release} but no modules.dep\\nhint: run \`depmod`));

    // A kernel without squashfs (neither module nor built in) cannot boot darch images.
    await writeFile(
      path.join(mdir, 'modules.dep'),
      dep
        .split('\n')
        .filter((l) => !l.startsWith('kernel/fs/squashfs/'))
        .join('\n'),
    );
    r = await darch(['initramfs', 'build', root, '--kernel', kernel.vmlinuz, '-o', out]);
    assert.match(r.stderr, /error: kernel .* has no squashfs \(neither a module nor built in\)/);

    r = await darch(['initramfs', 'build', root, '--release', '9.9.9-nope', '-o', out]);
    assert.match(r.stderr, /error: the image has no \/lib\/modules\/9\.9\.9-nope/);

    const bad = path.join(work, 'bad.squash');
    await writeFile(bad, Buffer.alloc(8192, 7));
    r = await darch(['initramfs', 'build', bad, '--release', kernel.release, '-o', out]);
    assert.match(r.stderr, /error: cannot read .*bad\.squash.*\nhint: the squashfs may be corrupt/);
    await assert.rejects(stat(out));
  });
});

describe('darch initramfs tools-install', () => {
  it('puts the initramfs-tools hook into a root tree, runnable where initramfs-tools looks for it', async (t) => {
    const tree = await tempDir(t);
    const files = (await darchOk(['initramfs', 'tools-install', tree, '--json'])).json<{ files: string[] }>().files;
    assert.ok(files.includes('usr/share/initramfs-tools/hooks/darch'));
    assert.ok(files.includes('usr/share/initramfs-tools/scripts/darch'));
    // initramfs-tools runs hooks only when they are executable; its boot= scripts are sourced.
    assert.equal((await stat(path.join(tree, 'usr/share/initramfs-tools/hooks/darch'))).mode & 0o777, 0o755);
    const script = await readFile(path.join(tree, 'usr/share/initramfs-tools/scripts/darch'), 'utf8');
    assert.match(script, /mountroot\(\)/);
    await run('sh', ['-n', path.join(tree, 'usr/share/initramfs-tools/scripts/darch')]);
  });
});

describe('darch initramfs dracut-install', () => {
  it('puts the dracut module into a root tree where dracut looks for it, and enables it', async (t) => {
    const tree = await tempDir(t);
    const files = (await darchOk(['initramfs', 'dracut-install', tree, '--json'])).json<{ files: string[] }>().files;
    const mod = 'usr/lib/dracut/modules.d/90darch';
    for (const f of ['module-setup.sh', 'parse-darch.sh', 'mount-darch.sh', 'darch-gpt-auto-generator.sh', 'darch-lib.sh', 'darch-record.sh'])
      assert.ok(files.includes(`${mod}/${f}`), f);
    // dracut sources module-setup.sh; it runs hooks it installed with inst_hook by sourcing them too.
    assert.equal((await stat(path.join(tree, mod, 'module-setup.sh'))).mode & 0o777, 0o755);
    assert.match(await readFile(path.join(tree, 'usr/lib/dracut/dracut.conf.d/90-darch.conf'), 'utf8'), /^add_dracutmodules\+=" darch "$/m);
    assert.match(await readFile(path.join(tree, mod, 'module-setup.sh'), 'utf8'), /inst_hook mount 90 "\$moddir\/mount-darch\.sh"/);
    for (const f of ['parse-darch.sh', 'mount-darch.sh', 'darch-gpt-auto-generator.sh', 'darch-lib.sh']) await run('sh', ['-n', path.join(tree, mod, f)]);
    await run('bash', ['-n', path.join(tree, mod, 'module-setup.sh')]);
  });
});

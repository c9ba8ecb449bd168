/** Pure logic of the boot side: globs, module resolution, menu rendering, the cpio writer. */
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import { globMatch } from '../../src/hooks/glob.js';
import { moduleName, parseModulesDep, resolveModules } from '../../src/initramfs/modules.js';
import { cmdlineOf, menuEntries, renderGrubCfg } from '../../src/boot/grub/grubcfg.js';
import { blsEntryFor } from '../../src/boot/sdboot/sdboot-sync.js';
import { parseLdd } from '../../src/initramfs/host-program.js';
import type { BootableImage } from '../../src/boot/shared/staged.js';
import { tagKey } from '../../src/stage/layout.js';
import { matchStaged } from '../../src/stage/store.js';
import { resolveImage } from '../../src/boot/target.js';
import { CpioWriter } from '../../src/initramfs/cpio.js';
import { parseSize } from '../../src/disk/create.js';

describe('hook globs (Darch/gobwas semantics)', () => {
  it('matches like hooks-config.json expects', () => {
    assert.ok(globMatch('*', 'example/busybox:latest'));
    assert.ok(globMatch('*:testing', 'a/b:testing'));
    assert.ok(!globMatch('*:testing', 'a/b:stable'));
    assert.ok(globMatch('build_server:latest', 'build_server:latest'));
    assert.ok(globMatch('example/{a,b}:?', 'example/b:1'));
    assert.ok(!globMatch('example/{a,b}:?', 'example/c:1'));
    assert.ok(globMatch('[!x]*', 'abc') && !globMatch('[!x]*', 'xbc'));
    assert.ok(globMatch('a.b', 'a.b') && !globMatch('a.b', 'axb'));
  });
});

describe('kernel module resolution', () => {
  const dep = [
    'kernel/fs/squashfs/squashfs.ko.xz:',
    'kernel/fs/overlayfs/overlay.ko:',
    'kernel/drivers/virtio/virtio.ko:',
    'kernel/drivers/virtio/virtio_ring.ko:',
    'kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko',
    'kernel/fs/ext4/ext4.ko.zst: kernel/lib/crc16.ko kernel/fs/mbcache.ko kernel/fs/jbd2/jbd2.ko',
    'kernel/lib/crc16.ko:',
    'kernel/fs/mbcache.ko:',
    'kernel/fs/jbd2/jbd2.ko:',
    '',
  ].join('\n');

  it('orders dependencies first, knows built-ins, names what is absent', () => {
    const db = parseModulesDep(dep, 'kernel/drivers/block/loop.ko\n');
    const r = resolveModules(db, '6.1', ['virtio_blk', 'ext4', 'nvme'], ['squashfs', 'overlay', 'loop']);
    assert.deepEqual(r.load, [
      'kernel/fs/squashfs/squashfs.ko.xz',
      'kernel/fs/overlayfs/overlay.ko',
      'kernel/drivers/virtio/virtio_ring.ko',
      'kernel/drivers/virtio/virtio.ko',
      'kernel/drivers/block/virtio_blk.ko',
      'kernel/fs/jbd2/jbd2.ko',
      'kernel/fs/mbcache.ko',
      'kernel/lib/crc16.ko',
      'kernel/fs/ext4/ext4.ko.zst',
    ]);
    assert.deepEqual(r.builtin, ['loop']);
    assert.deepEqual(r.absent, ['nvme']);
    assert.equal(moduleName('kernel/drivers/usb/storage/usb-storage.ko.zst'), 'usb_storage');
  });

  it('skips a wanted module whose files the image lacks, and refuses a missing required one', () => {
    const db = parseModulesDep(dep, 'kernel/drivers/block/loop.ko\n');
    const r = resolveModules(db, '6.1', ['ext4'], ['squashfs'], (f) => !f.includes('jbd2'));
    assert.deepEqual(r.skipped, ['ext4']);
    assert.ok(!r.load.some((f) => f.includes('ext4')));
    assert.throws(() => resolveModules(db, '6.1', [], ['squashfs'], (f) => !f.includes('squashfs')), /E_MODULES_MISSING|does not have that file/);
    assert.throws(() => resolveModules(parseModulesDep('kernel/a.ko:\n'), '6.1', [], ['squashfs']), /has no squashfs/);
  });
});

describe('GRUB menu', () => {
  const img = (id: string, tags: string[], params?: string): BootableImage => ({
    id,
    tags,
    dir: `/x/${id}`,
    image: { kernel: 'vmlinuz', initramfs: 'initrd.img', rootfs: 'rootfs.squash', ...(params ? { kernelparams: params } : {}) },
    created: new Date(),
  });

  it('one entry per tag, Darch parameters, the default first, darch_cmdline and darch_default honoured', () => {
    const loc = { uuid: '11111111-2222-3333-4444-555555555555', path: '/var/lib/darch/stage' };
    const entries = menuEntries([img('aaa', ['x/a:1', 'x/a:latest'], 'boot=darch'), img('bbb', ['x/b:1'])], loc, 'x/b:1');
    assert.deepEqual(
      entries.map((e) => e.id),
      ['darch-x+b@1', 'darch-x+a@1', 'darch-x+a@latest'],
    );
    const cfg = renderGrubCfg(entries, loc);
    assert.match(
      cfg,
      /linux \/var\/lib\/darch\/stage\/live\/aaa\/vmlinuz \$\{darch_trial_cmdline\} boot=darch darch_rootfs=rootfs\.squash darch_dir=UUID=11111111-2222-3333-4444-555555555555:\/var\/lib\/darch\/stage\/live\/aaa darch_stageid=aaa darch_hooks=hooks\/x\+a@1 \$\{darch_cmdline\}/,
    );
    assert.match(cfg, /initrd \/var\/lib\/darch\/stage\/live\/bbb\/initrd\.img/);
    // darch_default now comes from the trial-boot state (issue 7): the trial script sets it.
    assert.match(cfg, /elif \[ -n "\$\{darch_default\}" \]; then\n\tset default="\$\{darch_default\}"/);
    assert.throws(() => menuEntries([img('ccc', ['x:1'])], { uuid: loc.uuid, path: '/with space' }), /cannot carry/);
  });

  it("an image staged with dm-verity carries its root hash, salt and blocks on both loaders' entries; others carry none", () => {
    const loc = { uuid: '11111111-2222-3333-4444-555555555555', path: '/stage' };
    const verity = { roothash: 'a'.repeat(64), salt: 'b'.repeat(64), blocks: 4537, algorithm: 'sha256' as const };
    const v: BootableImage = { ...img('vvv', ['x/v:1']), image: { ...img('vvv', ['x/v:1']).image, verity } };
    const want = `darch_verity=${'a'.repeat(64)} darch_verity_salt=${'b'.repeat(64)} darch_verity_blocks=4537`;
    assert.ok(menuEntries([v], loc)[0]!.cmdline.endsWith(want), menuEntries([v], loc)[0]!.cmdline);
    assert.ok(blsEntryFor(v, loc, 'console=ttyS0').options.endsWith(`${want} console=ttyS0`));
    assert.doesNotMatch(menuEntries([img('aaa', ['x/a:1'])], loc)[0]!.cmdline, /darch_verity/);
    assert.doesNotMatch(blsEntryFor(img('aaa', ['x/a:1']), loc, '').options, /darch_verity/);
  });

  it('ldd output: the libraries and the loader, and a missing library is an error', () => {
    const out = [
      '\tlinux-vdso.so.1 (0x00007ffd)',
      '\tlibdevmapper.so.1.02.1 => /lib/x86_64-linux-gnu/libdevmapper.so.1.02.1 (0x00007fb133820000)',
      '\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007fb13363e000)',
      '\t/lib64/ld-linux-x86-64.so.2 (0x00007fb1338cd000)',
    ].join('\n');
    assert.deepEqual(parseLdd(out), ['/lib/x86_64-linux-gnu/libdevmapper.so.1.02.1', '/lib/x86_64-linux-gnu/libc.so.6', '/lib64/ld-linux-x86-64.so.2']);
    assert.throws(() => parseLdd('\tlibgone.so.1 => not found\n'), /a library is missing: libgone\.so\.1 => not found/);
  });

  it("a disk's kernel arguments are set in its menu, quoted for GRUB, and read back as written", () => {
    const loc = { uuid: '11111111-2222-3333-4444-555555555555', path: '/stage' };
    const entries = menuEntries([img('aaa', ['x/a:1'])], loc);
    assert.equal(cmdlineOf(renderGrubCfg(entries, loc)), undefined);
    for (const args of ['console=ttyS0,115200 quiet', "x='a b' $y \\z", '']) {
      const cfg = renderGrubCfg(entries, loc, args);
      assert.match(cfg, /^search .*\nset darch_cmdline='/m);
      assert.equal(cmdlineOf(cfg), args);
    }
  });

  it('tag keys are reversible and lookups accept tags, ids and id prefixes', () => {
    assert.equal(tagKey('registry:5000/a/b:v1'), 'registry@5000+a+b@v1');
    const list = [img('abcdef0123456789abcdef012', ['x/a:1']), img('zzzzef0123456789abcdef012', ['x/b:latest'])];
    assert.equal(matchStaged(list, 'x/b').image.id, 'zzzzef0123456789abcdef012');
    assert.equal(matchStaged(list, 'abcd').image.id, 'abcdef0123456789abcdef012');
    assert.throws(() => matchStaged(list, 'x/c:1'), /x\/c:1 is not staged/);
  });

  it('every command resolves names alike: registry ports, :latest, short and shared id prefixes', () => {
    const a = img('abcdef0123456789abcdef012', ['localhost:5000/os:latest', 'os:1']);
    const b = img('abcdff0123456789abcdef012', ['os:2']);
    const list = [a, b];
    // A name with a registry port and no tag is NAME:latest, not a tag called "5000/os".
    assert.deepEqual(matchStaged(list, 'localhost:5000/os'), { image: a, tag: 'localhost:5000/os:latest' });
    assert.equal(resolveImage(list, 'localhost:5000/os').stage, a.id);
    assert.equal(resolveImage(list, 'localhost:5000/os').entry, 'darch-localhost@5000+os@latest');
    // A prefix two ids share is ambiguous (it used to be "not staged" for the disk and hook commands).
    assert.throws(
      () => matchStaged(list, 'abcd'),
      (e: Error & { code?: string }) => e.code === 'E_AMBIGUOUS' && /abcd matches 2 staged image ids/.test(e.message),
    );
    assert.throws(
      () => resolveImage(list, 'abcd'),
      (e: Error & { code?: string }) => e.code === 'E_AMBIGUOUS',
    );
    assert.equal(matchStaged(list, 'abcdf').image, b);
    // Three characters are too few to be taken for an id.
    assert.throws(
      () => matchStaged(list, 'abc'),
      (e: Error & { code?: string }) => e.code === 'E_NOT_STAGED',
    );
  });
});

describe('newc cpio writer', () => {
  it('writes headers, 4-byte alignment, device nodes and the trailer', async () => {
    const out = new PassThrough();
    const chunks: Buffer[] = [];
    out.on('data', (b: Buffer) => chunks.push(b));
    const w = new CpioWriter(out);
    await w.add({ type: 'dir', name: 'dev' });
    await w.add({ type: 'chardev', name: 'dev/console', major: 5, minor: 1 });
    await w.add({ type: 'file', name: 'init', mode: 0o755, data: 'abc' });
    await w.finish();
    const buf = Buffer.concat(chunks);
    assert.equal(buf.length % 4, 0);
    assert.equal(buf.subarray(0, 6).toString(), '070701');
    const text = buf.toString('latin1');
    const console = text.indexOf('dev/console');
    const hdr = text.slice(console - 110, console);
    assert.equal(hdr.slice(14, 22), '00002180'); // S_IFCHR | 0600
    assert.equal(hdr.slice(78, 86), '00000005'); // rdevmajor
    assert.equal(hdr.slice(86, 94), '00000001'); // rdevminor
    assert.ok(text.includes('TRAILER!!!'));
  });
});

describe('sizes', () => {
  it('parses human sizes and rejects nonsense', () => {
    assert.equal(parseSize('2G'), 2 * 1024 ** 3);
    assert.equal(parseSize('300M'), 300 * 1024 ** 2);
    assert.equal(parseSize('512MiB'), 512 * 1024 ** 2);
    assert.throws(() => parseSize('lots'), /invalid size/);
  });
});

/**
 * `darch disk add|remove|list` on disks made by `darch disk create`, against real debugfs,
 * mtools and sfdisk: the boot state survives, what does not fit is refused with the numbers,
 * and a change killed half-way leaves the disk booting its default. The boot itself is
 * proven in test/e2e/disk-living.test.ts.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { appendFile, readFile, stat, truncate, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { run } from '../../src/lib/proc.js';
import { DARCH_BIN, darch, darchOk, tempDir } from '../helpers/darch.js';
import { fakeStaged, stageDirOf } from '../helpers/fakestage.js';

async function partitions(disk: string): Promise<{ esp: number; darch: number }> {
  const pt = JSON.parse((await run('sfdisk', ['-J', disk])).stdout).partitiontable;
  return { esp: pt.partitions[0].start * 512, darch: pt.partitions[1].start * 512 };
}

async function debugfs(disk: string, cmd: string): Promise<string> {
  const { darch: off } = await partitions(disk);
  return (await run('debugfs', ['-R', cmd, `${disk}?offset=${off}`])).stdout;
}

const menuTitles = async (disk: string) => [...(await debugfs(disk, 'cat /stage/grub.cfg')).matchAll(/menuentry '([^']+)'/g)].map((m) => m[1]);

interface Listing {
  images: Array<{ id: string; tags: string[]; roles: string[]; bytes: number }>;
  free: { darch: number; esp: number };
  bootloader: string;
}

describe('darch disk add / remove / list', () => {
  it('adds an image to a GRUB disk and removes one, keeping the boot state; --disk commands hint at disk add', async (t) => {
    const root = await tempDir(t);
    const a = await fakeStaged(root, ['os/a:1']);
    const b = await fakeStaged(root, ['os/b:1', 'os/b:latest']);
    const c = await fakeStaged(root, ['os/c:1']);
    const disk = path.join(root, 'disk.img');
    await darchOk(['disk', 'create', disk, 'os/a:1'], { root });

    // Staged here, not on the disk: the boot commands say how to put it there.
    let r = await darch(['boot', 'try', 'os/b:1', '--disk', disk], { root });
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`error: os/b:1 is staged here but not on ${disk}\\nhint: add it to the disk first: darch disk add ${disk} os/b:1`));
    r = await darch(['disk', 'set-default', disk, 'os/nope:1'], { root });
    assert.match(r.stderr, /error: os\/nope:1 is not on .*\nhint: on the disk: os\/a:1/);

    const before = (await darchOk(['--json', 'disk', 'list', disk], { root })).json<Listing>();
    assert.deepEqual(
      before.images.map((i) => [i.id, i.roles]),
      [[a, ['default']]],
    );
    const add = await darchOk(['--json', 'disk', 'add', disk, 'os/b:1', c], { root });
    const res = add.json<{ added: Array<{ id: string; tags: string[] }> }>();
    assert.deepEqual(res.added, [
      { id: b, tags: ['os/b:1'] },
      { id: c, tags: ['os/c:1'] },
    ]);
    assert.match(add.stderr, /try it: darch boot try os\/b:1 --disk/);

    // On the disk: files, images.json, the menu (default first), disk.json; the state untouched.
    const squash = (await stat(path.join(stageDirOf(root), 'live', b, 'rootfs.squash'))).size;
    assert.match(await debugfs(disk, `stat /stage/live/${b}/rootfs.squash`), new RegExp(`Size: ${squash}\\b`));
    assert.deepEqual(Object.keys(JSON.parse(await debugfs(disk, 'cat /stage/images.json')).images).sort(), [a, b, c].sort());
    assert.equal((await menuTitles(disk))[0], 'Darch: os/a:1');
    assert.deepEqual((await menuTitles(disk)).sort(), ['Darch: os/a:1', 'Darch: os/b:1', 'Darch: os/c:1']);
    const after = (await darchOk(['--json', 'disk', 'list', disk], { root })).json<Listing>();
    assert.deepEqual(
      after.images.map((i) => [i.id, i.roles]),
      [
        [a, ['default']],
        [b, []],
        [c, []],
      ],
    );
    assert.ok(after.free.darch < before.free.darch - squash, 'the free space went down by at least the squashfs');
    // Adding again is a no-op; another tag of an image on the disk only tags it.
    const again = (await darchOk(['--json', 'disk', 'add', disk, 'os/b:latest'], { root })).json<{ added: unknown[]; tagged: Array<{ tags: string[] }> }>();
    assert.deepEqual(again.added, []);
    assert.deepEqual(again.tagged[0]?.tags, ['os/b:1', 'os/b:latest']);

    // The boot commands now find it; the trial and the default cannot be removed.
    await darchOk(['boot', 'try', 'os/b:1', '--disk', disk], { root });
    for (const what of ['os/a:1', 'os/b:1']) {
      r = await darch(['disk', 'remove', disk, what], { root });
      assert.equal(r.code, 1);
      assert.match(r.stderr, /error: .* is the (default image|pending trial): the next boot needs it\nhint: /);
    }
    await darchOk(['boot', 'mark-good', '--disk', disk], { root }); // b is the default, a the previous
    await darchOk(['boot', 'mark-bad', 'os/c:1', '--disk', disk], { root });
    const text = (await darchOk(['disk', 'list', disk], { root })).stdout;
    assert.match(text, new RegExp(`os/b:1, os/b:latest +${b} +default`));
    assert.match(text, new RegExp(`os/a:1 +${a} +previous`));
    assert.match(text, /free: .* in the darch partition, .* on the ESP \(grub\)/);

    const rm = (await darchOk(['--json', 'disk', 'remove', disk, 'os/a:1', c], { root })).json<{ removed: Array<{ id: string }> }>();
    assert.deepEqual(
      rm.removed.map((i) => i.id),
      [a, c],
    );
    const status = (await darchOk(['--json', 'boot', 'status', '--disk', disk], { root })).json();
    assert.equal(status.default.stage, b);
    assert.equal(status.previous, null);
    assert.deepEqual(status.bad, []);
    assert.deepEqual(await menuTitles(disk), ['Darch: os/b:1', 'Darch: os/b:latest']);
    assert.doesNotMatch(await debugfs(disk, 'ls -p /stage/live'), new RegExp(`${a}|${c}`));
    const last = (await darchOk(['--json', 'disk', 'list', disk], { root })).json<Listing>();
    assert.deepEqual(
      last.images.map((i) => i.id),
      [b],
    );
    assert.ok(last.free.darch > after.free.darch, 'removing gave the room back');
    r = await darch(['disk', 'remove', disk, 'os/a:1'], { root });
    assert.match(r.stderr, /error: os\/a:1 is not on/);

    // Kernel arguments: set in the menu (what GRUB boots with) and disk.json, shown back.
    assert.equal((await darchOk(['disk', 'kernel-args', disk], { root })).stdout.trim(), 'console=tty0 console=ttyS0,115200');
    assert.match(await debugfs(disk, 'cat /stage/grub.cfg'), /^set darch_cmdline='console=tty0 console=ttyS0,115200'$/m);
    const ka = await darchOk(['disk', 'kernel-args', disk, 'console=ttyS0,115200 quiet'], { root });
    assert.match(ka.stderr, /boots with: console=ttyS0,115200 quiet \(was: console=tty0 console=ttyS0,115200\)/);
    assert.match(await debugfs(disk, 'cat /stage/grub.cfg'), /^set darch_cmdline='console=ttyS0,115200 quiet'$/m);
    assert.equal((await darchOk(['--json', 'disk', 'info', disk], { root })).json().kernelArgs, 'console=ttyS0,115200 quiet');
    // Later menu rewrites keep them.
    await darchOk(['disk', 'add', disk, 'os/a:1'], { root });
    assert.match(await debugfs(disk, 'cat /stage/grub.cfg'), /^set darch_cmdline='console=ttyS0,115200 quiet'$/m);
  });

  it('refuses an image that does not fit, with the numbers, and changes nothing', async (t) => {
    const root = await tempDir(t);
    await fakeStaged(root, ['os/a:1']);
    const big = await fakeStaged(root, ['os/big:1']);
    const disk = path.join(root, 'disk.img');
    await darchOk(['disk', 'create', disk, 'os/a:1', '--size', '160M'], { root });
    const squash = path.join(stageDirOf(root), 'live', big, 'rootfs.squash');
    await truncate(squash, 120 * 1024 * 1024);
    await appendFile(squash, 'x');
    const menu = await debugfs(disk, 'cat /stage/grub.cfg');
    const r = await darch(['disk', 'add', disk, 'os/big:1'], { root });
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /error: os\/big:1 need 12\d(\.\d)? MiB in the darch partition of .*, which has [\d.]+ MiB free\nhint: remove an image from the disk first \(darch disk remove/,
    );
    assert.equal(await debugfs(disk, 'cat /stage/grub.cfg'), menu);
    assert.doesNotMatch(await debugfs(disk, 'ls -p /stage/live'), new RegExp(big));
  });

  it('refuses bad input with one clear error and changes nothing: a tag taken on the disk, a file that is not a darch disk, kernel arguments on two lines, kernels the ESP cannot hold', async (t) => {
    const root = await tempDir(t);
    await fakeStaged(root, ['os/a:1']);
    const disk = path.join(root, 'disk.img');
    await darchOk(['disk', 'create', disk, 'os/a:1'], { root });
    const menu = await debugfs(disk, 'cat /stage/grub.cfg');
    // The same tag, now on another staged image: the disk keeps its own.
    const other = await fakeStaged(root, ['os/a:1']);
    let r = await darch(['disk', 'add', disk, other], { root });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^error: os\/a:1 already names another image on .* \([a-z0-9]{25}\)\nhint: remove that one first \(darch disk remove /m);
    assert.equal(await debugfs(disk, 'cat /stage/grub.cfg'), menu);
    assert.doesNotMatch(await debugfs(disk, 'ls -p /stage/live'), new RegExp(other));

    r = await darch(['disk', 'kernel-args', disk, 'quiet\nsplash'], { root });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^error: kernel arguments are one line\nhint: /);
    assert.equal(await debugfs(disk, 'cat /stage/grub.cfg'), menu);

    const junk = path.join(root, 'junk.img');
    await writeFile(junk, Buffer.alloc(1024 * 1024));
    for (const args of [
      ['add', junk, 'os/a:1'],
      ['remove', junk, 'os/a:1'],
      ['list', junk],
      ['kernel-args', junk, 'quiet'],
    ]) {
      r = await darch(['disk', ...args], { root });
      assert.equal(r.code, 1, args.join(' '));
      assert.match(r.stderr, /^error: .*junk\.img has no partition table sfdisk can read.*\nhint: give a disk made by `darch disk create`/m, args.join(' '));
    }

    // systemd-boot: kernels too big for the ESP are refused before anything is copied.
    const sd = path.join(root, 'sd.img');
    await darchOk(['disk', 'create', sd, 'os/a:1', '--bootloader', 'systemd-boot'], { root });
    const huge = await fakeStaged(root, ['os/huge:1']);
    await truncate(path.join(stageDirOf(root), 'live', huge, 'vmlinuz'), 80 * 1024 * 1024);
    r = await darch(['disk', 'add', sd, 'os/huge:1'], { root });
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /^error: the kernels and initramfs images of 1 staged image\(s\) need 80 MiB on the ESP, but the ESP of .* has [\d.]+ MiB free\nhint: remove an image from the disk first/m,
    );
    assert.doesNotMatch(await debugfs(sd, 'ls -p /stage/live'), new RegExp(huge));
  });

  it('a disk add killed half-way leaves the default bootable, and running it again finishes', async (t) => {
    const root = await tempDir(t);
    const a = await fakeStaged(root, ['os/a:1']);
    const b = await fakeStaged(root, ['os/b:1']);
    // Big enough that the copy is still running when the kill comes.
    await run('dd', ['if=/dev/urandom', `of=${path.join(stageDirOf(root), 'live', b, 'rootfs.squash')}`, 'bs=1M', 'count=300', 'status=none']);
    const disk = path.join(root, 'disk.img');
    await darchOk(['disk', 'create', disk, 'os/a:1', '--size', '1G'], { root });
    const menu = await debugfs(disk, 'cat /stage/grub.cfg');
    const sizeBefore = (await stat(disk)).size;

    const child = spawn(DARCH_BIN, ['--root', root, 'disk', 'add', disk, 'os/b:1'], { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const killed = new Promise<void>((resolve) => child.on('close', () => resolve()));
    while (!/copying os\/b:1/.test(err)) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 400));
    // The whole process group, debugfs too, as a power cut would stop them.
    process.kill(-child.pid!, 'SIGKILL');
    await killed;

    // What boots is untouched: the menu, the default's files, the state, the disk's size.
    assert.equal(await debugfs(disk, 'cat /stage/grub.cfg'), menu);
    assert.equal(await debugfs(disk, `cat /stage/live/${a}/vmlinuz`), 'not a kernel\n');
    assert.equal((await darchOk(['--json', 'boot', 'status', '--disk', disk], { root })).json().default.stage, a);
    assert.equal((await stat(disk)).size, sizeBefore);
    assert.deepEqual(
      (await darchOk(['--json', 'disk', 'list', disk], { root })).json<Listing>().images.map((i) => i.id),
      [a],
    );

    // Again, to the end: the leftover is replaced, and the partition checks clean.
    await darchOk(['disk', 'add', disk, 'os/b:1'], { root });
    assert.deepEqual(
      (await darchOk(['--json', 'disk', 'list', disk], { root })).json<Listing>().images.map((i) => i.id),
      [a, b],
    );
    const size = (await stat(path.join(stageDirOf(root), 'live', b, 'rootfs.squash'))).size;
    assert.match(await debugfs(disk, `stat /stage/live/${b}/rootfs.squash`), new RegExp(`Size: ${size}\\b`));
    const { darch: off } = await partitions(disk);
    const part = path.join(root, 'part.img');
    await run('dd', [`if=${disk}`, `of=${part}`, 'bs=1M', `skip=${off / 1024 / 1024}`, 'status=none']);
    const fsck = await run('e2fsck', ['-fn', part], { allowFailure: true });
    assert.equal(fsck.code, 0, fsck.stdout + fsck.stderr);
  });

  it('adds to and removes from a systemd-boot disk: kernel copies and BLS entries on the ESP', async (t) => {
    const root = await tempDir(t);
    const a = await fakeStaged(root, ['os/a:1']);
    const b = await fakeStaged(root, ['os/b:1']);
    const disk = path.join(root, 'disk.img');
    await darchOk(['disk', 'create', disk, 'os/a:1', '--bootloader', 'systemd-boot'], { root });
    await darchOk(['disk', 'add', disk, 'os/b:1'], { root });
    const { esp } = await partitions(disk);
    const mdir = async (dir: string) =>
      (await run('mdir', ['-b', '-i', `${disk}@@${esp}`, `::/${dir}`], { allowFailure: true, env: { ...process.env, MTOOLS_SKIP_CHECK: '1' } })).stdout;
    assert.match(await mdir('loader/entries'), new RegExp(`darch-${b}\\.conf`));
    assert.match(await mdir(`darch/${b}`), /vmlinuz[\s\S]*initrd|initrd[\s\S]*vmlinuz/);
    const l = (await darchOk(['--json', 'disk', 'list', disk], { root })).json<Listing>();
    assert.equal(l.bootloader, 'systemd-boot');
    assert.deepEqual(
      l.images.map((i) => [i.id, i.roles]),
      [
        [a, ['default']],
        [b, []],
      ],
    );
    await darchOk(['boot', 'try', 'os/b:1', '--disk', disk], { root });
    assert.match(await mdir('loader/entries'), new RegExp(`darch-${b}\\+\\d+(-\\d+)?\\.conf`));
    // New kernel arguments on every entry; the trial keeps its name (its counter) and its trial arguments.
    await darchOk(['disk', 'kernel-args', disk, 'console=ttyS0,115200 loglevel=4'], { root });
    const entries = (await mdir('loader/entries')).trim().split('\n');
    assert.equal(entries.length, 2);
    const trialName = entries.find((e) => e.includes(b))!;
    assert.match(trialName, new RegExp(`darch-${b}\\+\\d+(-\\d+)?\\.conf`));
    const catEntry = async (name: string) => {
      const out = path.join(root, 'entry.conf');
      await run('mcopy', ['-o', '-n', '-i', `${disk}@@${esp}`, name, out], { env: { ...process.env, MTOOLS_SKIP_CHECK: '1' } });
      return readFile(out, 'utf8');
    };
    assert.match(
      await catEntry(trialName),
      /^options .* darch_stageid=\S+ darch_hooks=\S+ console=ttyS0,115200 loglevel=4 darch\.trial=1 panic=\d+ darch\.watchdog=\d+$/m,
    );
    assert.match(await catEntry(entries.find((e) => e.includes(a))!), /^options .* console=ttyS0,115200 loglevel=4$/m);
    await darchOk(['boot', 'set-default', 'os/b:1', '--disk', disk], { root });
    await darchOk(['disk', 'remove', disk, 'os/a:1'], { root });
    assert.doesNotMatch(await mdir('loader/entries'), new RegExp(a));
    assert.equal(await mdir(`darch/${a}`), '');
    assert.equal((await darchOk(['--json', 'boot', 'status', '--disk', disk], { root })).json().default.stage, b);
  });
});

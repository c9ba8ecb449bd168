/** `darch disk create|info|set-default` and `darch boot sync|install` against real sfdisk, mtools, mkfs.ext4, GRUB tools. */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { run } from '../../src/lib/proc.js';
import { renderEmbeddedConfig } from '../../src/disk/layout.js';
import { darch, darchOk, tempDir } from '../helpers/darch.js';
import { mcopyOut, mls } from '../helpers/espfiles.js';
import { fakeStaged, stageDirOf } from '../helpers/fakestage.js';

const MiB = 1024 * 1024;

describe('darch disk create', () => {
  it('lays out GPT, an ESP with GRUB and grubenv, and an ext4 darch partition holding the staged images', async (t) => {
    const root = await tempDir(t);
    const a = await fakeStaged(root, ['demo/a:1'], { kernelparams: 'quiet' });
    const b = await fakeStaged(root, ['demo/b:1', 'demo/b:latest']);
    const disk = path.join(root, 'disk.img');
    const res = (await darchOk(['--json', 'disk', 'create', disk, 'demo/b:1', 'demo/a:1'], { root })).json();
    assert.equal(res.images.length, 2);

    const pt = JSON.parse((await run('sfdisk', ['-J', disk])).stdout).partitiontable;
    assert.equal(pt.label, 'gpt');
    assert.equal(pt.partitions[0].type, 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B');
    assert.equal(pt.partitions[1].type, '0FC63DAF-8483-4772-8E79-3D69D8477DE4');

    const espOff = pt.partitions[0].start * 512;
    assert.deepEqual(await mls(disk, espOff, 'EFI/BOOT'), ['BOOTX64.EFI']);
    const efi = path.join(root, 'BOOTX64.EFI');
    await mcopyOut(disk, espOff, 'EFI/BOOT/BOOTX64.EFI', efi);
    // A PE image for x86-64 with the embedded config that finds the darch partition by UUID.
    const bytes = await readFile(efi);
    assert.equal(bytes.subarray(0, 2).toString('latin1'), 'MZ');

    const darchOff = pt.partitions[1].start * 512;
    const probe = (await run('blkid', ['-p', '-O', String(darchOff), '-o', 'export', disk])).stdout;
    assert.match(probe, /TYPE=ext4/);
    assert.match(probe, new RegExp(`UUID=${res.darchUuid}`));
    const ls = (await run('debugfs', ['-R', 'ls -p /stage/live', `${disk}?offset=${darchOff}`])).stdout;
    assert.match(ls, new RegExp(a));
    assert.match(ls, new RegExp(b));
    const cfg = (await run('debugfs', ['-R', 'cat /stage/grub.cfg', `${disk}?offset=${darchOff}`])).stdout;
    // Named order: demo/b:1 first (the default), and only the tags asked for.
    const titles = [...cfg.matchAll(/menuentry '([^']+)'/g)].map((m) => m[1]);
    assert.deepEqual(titles, ['Darch: demo/b:1', 'Darch: demo/a:1']);
    assert.match(
      cfg,
      new RegExp(
        `linux /stage/live/${a}/vmlinuz \\$\\{darch_trial_cmdline\\} quiet darch_rootfs=rootfs.squash darch_dir=UUID=${res.darchUuid}:/stage/live/${a} darch_stageid=${a} darch_hooks=hooks/demo\\+a@1`,
      ),
    );
    const squash = (await run('debugfs', ['-R', `stat /stage/live/${a}/rootfs.squash`, `${disk}?offset=${darchOff}`])).stdout;
    const size = (await stat(path.join(stageDirOf(root), 'live', a, 'rootfs.squash'))).size;
    assert.match(squash, new RegExp(`Size: ${size}\\b`));

    const info = (await darchOk(['--json', 'disk', 'info', disk], { root })).json();
    assert.equal(info.darchUuid, res.darchUuid);
    const sd = (await darchOk(['--json', 'disk', 'set-default', disk, 'demo/a:1'], { root })).json();
    assert.equal(sd.entry, 'darch-demo+a@1');
    await mcopyOut(disk, espOff, 'EFI/darch/grubenv', path.join(root, 'grubenv'));
    assert.match((await run('grub-editenv', [path.join(root, 'grubenv'), 'list'])).stdout, /^darch_default=darch-demo\+a@1$/m);
  });

  it('refuses what it cannot do with a one-line error, and keeps an existing file when it fails', async (t) => {
    const root = await tempDir(t);
    const disk = path.join(root, 'disk.img');
    let r = await darch(['disk', 'create', disk], { root });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /error: nothing is staged\nhint: stage an image first/);

    await fakeStaged(root, ['demo/a:1']);
    r = await darch(['disk', 'create', disk, 'demo/nope:1'], { root });
    assert.match(r.stderr, /error: demo\/nope:1 is not staged\nhint: staged: demo\/a:1/);

    // A missing directory fails before any work, naming the directory as the user wrote it.
    const cwd = await darch(['disk', 'create', 'nosuch/disk.img'], { root, cwd: root });
    assert.equal(cwd.code, 1);
    assert.match(cwd.stderr, /^error: cannot create nosuch\/disk\.img: the directory nosuch does not exist\nhint: create it first \(mkdir -p nosuch\)/);
    assert.doesNotMatch(cwd.stderr, /GRUB|\.tmp/);

    // An existing file is replaced only with --force, and the error says what would be lost.
    await writeFile(disk, 'keep me');
    r = await darch(['disk', 'create', disk], { root });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /error: .*disk\.img already exists: replacing it would lose its 7 B \(it is not a darch disk\)\nhint: add --force/);
    assert.equal(r.stderr.match(/==>/g), null, 'no work started');
    r = await darch(['disk', 'create', disk, '--size', '10M', '--force'], { root });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /error: 10 MiB is too small: the staged images need \d+ MiB\nhint: give --size at least \d+M/);
    assert.equal(await readFile(disk, 'utf8'), 'keep me');

    r = await darch(['disk', 'set-default', disk, 'demo/a:1'], { root });
    assert.match(r.stderr, /error: .* has no partition table sfdisk can read|has no EFI system partition/);

    const made = await darch(['disk', 'create', disk, '--size', `${300}M`, '--force'], { root });
    assert.equal(made.code, 0, made.stderr);
    assert.equal((await stat(disk)).size, 300 * MiB);
    // A darch disk: the error names its images and its boot state.
    r = await darch(['disk', 'create', disk], { root });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /already exists: replacing it would lose its 1 image\(s\) \(demo\/a:1\) and its boot state \(default demo\/a:1/);
    assert.equal((await darch(['--json', 'disk', 'create', disk], { root })).json().error.code, 'E_DISK_EXISTS');
    r = await darch(['disk', 'set-default', disk, 'demo/other:1'], { root });
    assert.match(r.stderr, /error: demo\/other:1 is not on .*\nhint: on the disk: demo\/a:1/);
  });
});

describe('darch boot sync / install', () => {
  it('writes one menu entry per staged tag, newest image first, to the stage fs and /etc/darch, and a 60_darch that sources it', async (t) => {
    const root = await tempDir(t);
    const old = await fakeStaged(root, ['demo/old:1'], { created: new Date(Date.now() - 60_000) });
    const neu = await fakeStaged(root, ['demo/new:1']);
    // Where findmnt/blkid cannot read the file system's UUID (containers, like this CI), the
    // error says how to tell darch; on a real machine the detected UUID is used.
    let fsUuid = (await run('findmnt', ['-n', '-o', 'UUID', '-T', stageDirOf(root)])).stdout.trim();
    if (!fsUuid) {
      const r = await darch(['boot', 'sync'], { root });
      assert.equal(r.code, 1);
      assert.match(r.stderr, /error: cannot read the UUID of the file system holding .*\nhint: .*set boot\.stage_fs_uuid in config\.toml/);
      fsUuid = '0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9';
      await mkdir(path.join(root, 'etc/darch'), { recursive: true });
      await writeFile(path.join(root, 'etc/darch/config.toml'), `[boot]\nstage_fs_uuid = "${fsUuid}"\n`);
    }
    const res = (await darchOk(['--json', 'boot', 'sync'], { root })).json();
    assert.deepEqual(
      res.entries.map((e: { tag: string }) => e.tag),
      ['demo/new:1', 'demo/old:1'],
    );
    const primary = await readFile(path.join(stageDirOf(root), 'grub.cfg'), 'utf8');
    assert.equal(await readFile(path.join(root, 'etc/darch/grub.cfg'), 'utf8'), primary);
    // The stage directory's path inside its file system: here / is that file system.
    assert.match(primary, new RegExp(`linux ${stageDirOf(root)}/live/${neu}/vmlinuz`));
    assert.match(primary, new RegExp(`darch_dir=UUID=${fsUuid}:[^ ]*/live/${neu} darch_stageid=${neu}`));
    assert.match(primary, new RegExp(`darch_stageid=${old}`));

    const inst = await darchOk(['boot', 'install'], { root });
    assert.match(inst.stderr, /grub-mkconfig/);
    const script = path.join(root, 'etc/grub.d/60_darch');
    assert.ok(((await stat(script)).mode & 0o111) !== 0);
    const out = (await run('sh', [script])).stdout;
    assert.match(out, new RegExp(`search --no-floppy --fs-uuid --set=darch_fs ${fsUuid}`));
    assert.match(out, /source \(\$darch_fs\)\/.*\/stage\/grub\.cfg/);

    // Files GRUB itself accepts: grub-script-check parses the menu and a disk's embedded config.
    const check = await run('grub-script-check', [path.join(stageDirOf(root), 'grub.cfg')], { allowFailure: true });
    assert.equal(check.code, 0, check.stderr);
    const embedded = path.join(root, 'embedded.cfg');
    await writeFile(embedded, renderEmbeddedConfig({ darchUuid: fsUuid, espSerial: 'ABCD-1234', kernelArgs: 'console=ttyS0', timeout: 3 }));
    const check2 = await run('grub-script-check', [embedded], { allowFailure: true });
    assert.equal(check2.code, 0, check2.stderr);
  });

  it('refuses a stage directory GRUB cannot read (tmpfs, overlay) with a hint', async (t) => {
    const shm = await mkdtemp('/dev/shm/darch-test-');
    t.after(() => run('rm', ['-rf', shm]).then(() => undefined));
    await fakeStaged(shm, ['demo/a:1']);
    const r = await darch(['boot', 'sync'], { root: shm });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /error: .*stage is on tmpfs .*GRUB cannot boot from\nhint: inside a booted darch image, mount the darch partition/);
  });
});

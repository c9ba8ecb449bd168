/**
 * systemd-boot disks and `darch boot sync` for systemd-boot entries, against real sfdisk,
 * mtools and mkfs.ext4 (booting them is test/e2e/trial-sdboot-disk.test.ts); and the GRUB
 * disk's own grub.cfg following the default when it changes through --disk.
 */
import assert from 'node:assert/strict';
import { mkdir, readFile, readdir, rename, stat, truncate, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { run } from '../../src/lib/proc.js';
import { DARCH_BIN, darch, darchOk, tempDir } from '../helpers/darch.js';
import { esp, mcat, mcopyOut, mdel, mls } from '../helpers/espfiles.js';
import { fakeStaged, stageDirOf } from '../helpers/fakestage.js';

const MiB = 1024 * 1024;
const SDBOOT = '/usr/lib/systemd/boot/efi/systemd-bootx64.efi';

describe('darch disk create --bootloader systemd-boot', () => {
  it('puts systemd-boot, loader.conf, each image kernel and initramfs and one BLS entry per image on the ESP', async (t) => {
    const root = await tempDir(t);
    const a = await fakeStaged(root, ['demo/a:1'], { kernelparams: 'quiet' });
    const b = await fakeStaged(root, ['demo/b:1', 'demo/b:latest']);
    const disk = path.join(root, 'disk.img');
    const res = (
      await darchOk(
        ['--json', 'disk', 'create', disk, 'demo/a:1', 'demo/b:1', '--bootloader', 'systemd-boot', '--timeout', '5', '--kernel-args', 'console=ttyS0'],
        { root },
      )
    ).json();
    assert.equal(res.bootloader, 'systemd-boot');
    const e = await esp(disk);
    assert.equal(e.size, 64 * MiB, 'small kernels: the default ESP size');
    // The boot loader is Debian's systemd-boot, byte for byte.
    const efi = path.join(root, 'BOOTX64.EFI');
    await mcopyOut(disk, e.off, 'EFI/BOOT/BOOTX64.EFI', efi);
    assert.deepEqual(await readFile(efi), await readFile(SDBOOT));
    assert.equal(await mcat(disk, e.off, 'loader/loader.conf').then((c) => /^timeout 5$/m.test(c) && /^default darch-\*$/m.test(c)), true);
    assert.deepEqual(await mls(disk, e.off, 'loader/entries'), [`darch-${a}.conf`, `darch-${b}.conf`].sort());
    assert.deepEqual(await mls(disk, e.off, 'EFI/darch'), ['disk.json'], 'no grubenv: the entry names are the state');
    const ea = await mcat(disk, e.off, `loader/entries/darch-${a}.conf`);
    assert.match(ea, /^version 20$/m, 'the first image named is the default');
    assert.match(ea, new RegExp(`^linux /darch/${a}/vmlinuz$`, 'm'));
    assert.match(ea, new RegExp(`^initrd /darch/${a}/initrd$`, 'm'));
    assert.match(
      ea,
      new RegExp(
        `^options quiet darch_rootfs=rootfs.squash darch_dir=UUID=${res.darchUuid}:/stage/live/${a} darch_stageid=${a} darch_hooks=hooks/demo\\+a@1 console=ttyS0$`,
        'm',
      ),
    );
    const eb = await mcat(disk, e.off, `loader/entries/darch-${b}.conf`);
    assert.match(eb, /^version 1$/m);
    assert.match(eb, /^title Darch: demo\/b:1$/m);
    // The kernel copies are the staged files.
    const k = path.join(root, 'k');
    await mcopyOut(disk, e.off, `darch/${b}/vmlinuz`, k);
    assert.deepEqual(await readFile(k), await readFile(path.join(stageDirOf(root), 'live', b, 'vmlinuz')));
    // The darch partition still holds the staged images, but no GRUB menu.
    const ls = (await run('debugfs', ['-R', 'ls -p /stage', `${disk}?offset=${e.darchOff}`])).stdout;
    assert.match(ls, /images\.json/);
    assert.doesNotMatch(ls, /grub\.cfg/);

    const info = (await darchOk(['--json', 'disk', 'info', disk], { root })).json();
    assert.equal(info.bootloader, 'systemd-boot');
    let s = (await darchOk(['boot', 'status', '--disk', disk, '--json'])).json();
    assert.deepEqual([s.backend, s.default.stage, s.trial], ['systemd-boot', a, null]);
    // set-default and try through --disk rename and retune the entries.
    await darchOk(['disk', 'set-default', disk, 'demo/b:1'], { root });
    assert.match(await mcat(disk, e.off, `loader/entries/darch-${b}.conf`), /^version 20$/m);
    assert.match(await mcat(disk, e.off, `loader/entries/darch-${a}.conf`), /^version 10$/m);
    await darchOk(['boot', 'try', 'demo/a:1', '--tries', '2', '--disk', disk]);
    assert.deepEqual(await mls(disk, e.off, 'loader/entries'), [`darch-${a}+2.conf`, `darch-${b}.conf`].sort());
    // The trial's entry reboots on a panic and runs under the watchdog by default, after its own arguments.
    assert.match(await mcat(disk, e.off, `loader/entries/darch-${a}+2.conf`), /^options .* console=ttyS0 darch\.trial=1 panic=10 darch\.watchdog=300$/m);
    s = (await darchOk(['boot', 'status', '--disk', disk, '--json'])).json();
    assert.deepEqual([s.trial.stage, s.triesLeft, s.trialTries], [a, 2, 2]);
    await darchOk(['boot', 'rollback', '--disk', disk]);
    s = (await darchOk(['boot', 'status', '--disk', disk, '--json'])).json();
    assert.deepEqual([s.default.stage, s.trial], [b, null]);
    // Once the trial is over its entry carries neither the flag nor the trial's arguments.
    assert.match(await mcat(disk, e.off, `loader/entries/darch-${a}.conf`), /^options .* console=ttyS0$/m);
    // disk.json says systemd-boot: with its entries lost, commands refuse instead of writing a grubenv nothing reads.
    for (const f of await mls(disk, e.off, 'loader/entries')) await mdel(disk, e.off, `loader/entries/${f}`);
    s = (await darchOk(['boot', 'status', '--disk', disk, '--json'])).json();
    assert.deepEqual([s.backend, s.defaultIsFirstEntry, s.trial], ['systemd-boot', true, null]);
    const lost = await darch(['boot', 'set-default', 'demo/a:1', '--disk', disk]);
    assert.equal(lost.code, 1);
    assert.match(lost.stderr, /has no systemd-boot entry .*\nhint: write its entry first/);
    assert.deepEqual(await mls(disk, e.off, 'EFI/darch'), ['disk.json']);
  });

  it('sizes the ESP for the kernels, and refuses with numbers when they do not fit', async (t) => {
    const root = await tempDir(t);
    const a = await fakeStaged(root, ['demo/a:1']);
    // A 50 MiB initramfs (sparse: only its size matters until it is copied).
    await truncate(path.join(stageDirOf(root), 'live', a, 'initrd.img'), 50 * MiB);
    const disk = path.join(root, 'disk.img');
    await writeFile(disk, 'keep me');
    const r = await darch(['disk', 'create', disk, '--bootloader', 'systemd-boot', '--esp-size', '40M', '--force'], { root });
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /error: the kernels and initramfs images of 1 staged image\(s\) need 5\d MiB on the ESP, but an ESP of 40 MiB holds about 38 MiB\nhint: give --esp-size at least 5\dM/,
    );
    assert.equal(await readFile(disk, 'utf8'), 'keep me');
    const u = await darch(['disk', 'create', disk, '--bootloader', 'lilo'], { root });
    assert.equal(u.code, 2);
    assert.match(u.stderr, /--bootloader must be grub or systemd-boot/);
    // Without --esp-size the ESP holds the kernels twice over.
    await darchOk(['disk', 'create', disk, '--bootloader', 'systemd-boot', '--force'], { root });
    const e = await esp(disk);
    assert.ok(e.size >= 100 * MiB && e.size <= 140 * MiB, `ESP of ${e.size / MiB} MiB`);
    const k = path.join(root, 'k');
    await mcopyOut(disk, e.off, `darch/${a}/initrd`, k);
    assert.equal((await stat(k)).size, 50 * MiB);
  });

  it('refuses before writing anything when systemd-boot is not installed', async (t) => {
    const root = await tempDir(t);
    await fakeStaged(root, ['demo/a:1']);
    const disk = path.join(root, 'disk.img');
    await writeFile(disk, 'keep me');
    // An empty directory over Debian's systemd-boot-efi files, in a private mount namespace.
    const script = 'mount -t tmpfs none "$(dirname "$SDBOOT")" && "$@"; echo "rc=$?"';
    const r = await run(
      'unshare',
      ['-rm', 'sh', '-c', script, 'sh', DARCH_BIN, '--root', root, 'disk', 'create', disk, '--bootloader', 'systemd-boot', '--force'],
      {
        allowFailure: true,
        env: { ...process.env, SDBOOT, NO_COLOR: '1', DARCH_LOCK_TIMEOUT: '0' },
      },
    );
    if (/unshare: .*Operation not permitted/.test(r.stderr)) return t.skip('user namespaces are not available here');
    assert.match(r.stdout, /rc=1\n$/, r.stderr);
    assert.match(
      r.stderr,
      /^error: systemd-boot is not installed \(\/usr\/lib\/systemd\/boot\/efi\/systemd-bootx64\.efi: missing\)\nhint: apt-get install systemd-boot-efi/m,
    );
    assert.equal(await readFile(disk, 'utf8'), 'keep me');
    assert.deepEqual(await readdir(path.join(root, 'var/lib/darch/tmp')).catch(() => []), [], 'no work directory is left');
  });
});

describe('darch boot sync with systemd-boot on a running machine', () => {
  it('writes entries and ESP kernels for staged images, keeps the trial counters, and removes what is no longer staged', async (t) => {
    const root = await tempDir(t);
    const uuid = '0f0e0d0c-0000-4000-8000-000000000002';
    await mkdir(path.join(root, 'etc/darch'), { recursive: true });
    await writeFile(
      path.join(root, 'etc/darch/config.toml'),
      `[boot]\nbootloader = "systemd-boot"\nstage_fs_uuid = "${uuid}"\nstage_fs_path = "/var/lib/darch/stage"\nkernel_args = "console=ttyS0"\n`,
    );
    const espDir = path.join(root, 'boot/efi');
    await mkdir(path.join(espDir, 'EFI'), { recursive: true });
    const a = await fakeStaged(root, ['os:a'], { created: new Date(Date.now() - 60_000) });
    const b = await fakeStaged(root, ['os:b']);
    const cmdline = path.join(root, 'cmdline');
    await writeFile(cmdline, `darch_stageid=${a}\n`);
    const env = { DARCH_CMDLINE_FILE: cmdline };
    const entriesDir = path.join(espDir, 'loader/entries');
    const list = async () => (await readdir(entriesDir)).filter((f) => f.endsWith('.conf')).sort();
    const read = (f: string) => readFile(path.join(entriesDir, f), 'utf8');

    const sync = (await darchOk(['--json', 'boot', 'sync'], { root, env })).json();
    assert.equal(sync.bootloader, 'systemd-boot');
    assert.deepEqual(await list(), [`darch-${a}.conf`, `darch-${b}.conf`].sort());
    // The first sync makes the booted image the default, never the newer one.
    assert.match(await read(`darch-${a}.conf`), /^version 20$/m);
    assert.match(await read(`darch-${b}.conf`), /^version 1$/m);
    assert.match(
      await read(`darch-${b}.conf`),
      new RegExp(
        `^options darch_rootfs=rootfs.squash darch_dir=UUID=${uuid}:/var/lib/darch/stage/live/${b} darch_stageid=${b} darch_hooks=hooks/os@b console=ttyS0$`,
        'm',
      ),
    );
    assert.equal(await readFile(path.join(espDir, 'darch', b, 'vmlinuz'), 'utf8'), 'not a kernel\n');
    assert.match(await readFile(path.join(espDir, 'loader/loader.conf'), 'utf8'), /^default darch-\*$/m);
    let s = (await darchOk(['boot', 'status', '--json'], { root, env })).json();
    assert.deepEqual([s.backend, s.default.stage], ['systemd-boot', a]);

    // A trial that systemd-boot has already counted once (it renamed +2 to +1-1).
    await darchOk(['boot', 'try', 'os:b', '--tries', '2'], { root, env });
    await rename(path.join(entriesDir, `darch-${b}+2.conf`), path.join(entriesDir, `darch-${b}+1-1.conf`));
    const trialText = await read(`darch-${b}+1-1.conf`);
    // `boot entries` shows the entries as systemd-boot will try them, and renames nothing.
    const shown = (await darchOk(['--json', 'boot', 'entries'], { root, env })).json();
    assert.equal(shown.bootloader, 'systemd-boot');
    assert.deepEqual(
      shown.entries.map((e: { stage: string; role: string; triesLeft?: number; tags: string[] }) => [e.stage, e.role, e.triesLeft, e.tags]),
      [
        [b, 'trial', 1, ['os:b']],
        [a, 'default', undefined, ['os:a']],
      ],
    );
    assert.deepEqual(await list(), [`darch-${a}.conf`, `darch-${b}+1-1.conf`].sort());
    assert.match((await darchOk(['boot', 'entries'], { root, env })).stdout, new RegExp(`darch-${b}\\+1-1\\.conf\\s+os:b\\s+${b}\\s+trial\\s+1`));

    // Stage changes sync the systemd-boot side: a new image gets an entry (not the default)...
    const c = await fakeStaged(root, ['os:c']);
    await darchOk(['stage', 'tag', 'os:c', 'os:c2'], { root, env });
    assert.deepEqual(await list(), [`darch-${a}.conf`, `darch-${b}+1-1.conf`, `darch-${c}.conf`].sort());
    assert.match(await read(`darch-${c}.conf`), /^version 1$/m);
    assert.match(await read(`darch-${c}.conf`), /^title Darch: os:c, os:c2$/m);
    assert.equal(await read(`darch-${b}+1-1.conf`), trialText, 'the trial entry keeps its name, version and darch.trial=1');
    s = (await darchOk(['boot', 'status', '--json'], { root, env })).json();
    assert.deepEqual([s.default.stage, s.trial.stage, s.triesLeft], [a, b, 1]);
    // ...and a removed image loses its entry and its kernel copies.
    await darchOk(['stage', 'remove', 'os:c', 'os:c2'], { root, env });
    assert.deepEqual(await list(), [`darch-${a}.conf`, `darch-${b}+1-1.conf`].sort());
    await assert.rejects(stat(path.join(espDir, 'darch', c)), /ENOENT/);
    await stat(path.join(espDir, 'darch', a, 'initrd'));

    // systemd-bless-boot commits by renaming only: the next sync drops the stale darch.trial=1.
    await rename(path.join(entriesDir, `darch-${b}+1-1.conf`), path.join(entriesDir, `darch-${b}.conf`));
    // Before darch touches it, `boot entries` already reads B as the default, as status does.
    const committed = (await darchOk(['--json', 'boot', 'entries'], { root, env })).json();
    assert.deepEqual(
      committed.entries.map((e: { stage: string; role: string }) => [e.stage, e.role]),
      [
        [b, 'default'],
        [a, 'previous'],
      ],
    );
    await darchOk(['boot', 'sync'], { root, env });
    assert.doesNotMatch(await read(`darch-${b}.conf`), /darch\.trial=1/);
    assert.match(await read(`darch-${b}.conf`), /^version 30$/m);
    s = (await darchOk(['boot', 'status', '--json'], { root, env })).json();
    assert.deepEqual([s.default.stage, s.previous.stage, s.trial], [b, a, null]);
  });
});

describe('darch boot commands inside a machine booted with systemd-boot', () => {
  it('mark-good commits only on the trial boot itself; rollback and mark-bad rename and retune entries', async (t) => {
    const root = await tempDir(t);
    await mkdir(path.join(root, 'etc/darch'), { recursive: true });
    await writeFile(
      path.join(root, 'etc/darch/config.toml'),
      `[boot]\nbootloader = "systemd-boot"\nstage_fs_uuid = "0f0e0d0c-0000-4000-8000-000000000004"\nstage_fs_path = "/var/lib/darch/stage"\n`,
    );
    await mkdir(path.join(root, 'boot/efi/EFI'), { recursive: true });
    const a = await fakeStaged(root, ['os:a'], { created: new Date(Date.now() - 60_000) });
    const b = await fakeStaged(root, ['os:b']);
    const cmdline = path.join(root, 'cmdline');
    const boot = async (c: string) => {
      await writeFile(cmdline, `${c}\n`);
      return { DARCH_CMDLINE_FILE: cmdline };
    };
    const dir = path.join(root, 'boot/efi/loader/entries');
    const list = async () => (await readdir(dir)).filter((f) => f.endsWith('.conf')).sort();
    await darchOk(['boot', 'sync'], { root, env: await boot(`darch_stageid=${a}`) });
    await darchOk(['boot', 'try', 'os:b', '--tries', '3'], { root, env: await boot(`darch_stageid=${a}`) });
    // systemd-boot lowered the counter and booted B; a mark-good on another boot changes nothing.
    await rename(path.join(dir, `darch-${b}+3.conf`), path.join(dir, `darch-${b}+2-1.conf`));
    let r = await darchOk(['--json', 'boot', 'mark-good'], { root, env: await boot(`darch_stageid=${a}`) });
    assert.equal(r.json().changed, false);
    assert.deepEqual(await list(), [`darch-${a}.conf`, `darch-${b}+2-1.conf`].sort());
    r = await darchOk(['--json', 'boot', 'mark-good'], { root, env: await boot(`darch_stageid=${b} darch.trial=1`) });
    assert.equal(r.json().changed, true);
    assert.deepEqual(await list(), [`darch-${a}.conf`, `darch-${b}.conf`].sort());
    const eb = await readFile(path.join(dir, `darch-${b}.conf`), 'utf8');
    assert.match(eb, /^version 20$/m);
    assert.doesNotMatch(eb, /darch\.trial=1/);
    assert.match(await readFile(path.join(dir, `darch-${a}.conf`), 'utf8'), /^version 10$/m);
    const s = r.json().status;
    assert.deepEqual([s.backend, s.default.stage, s.previous.stage, s.booted.stage], ['systemd-boot', b, a, b]);
    // Back to A, then mark B bad: it gets the +0 name systemd-boot sorts last.
    await darchOk(['boot', 'rollback'], { root, env: await boot(`darch_stageid=${b}`) });
    assert.match(await readFile(path.join(dir, `darch-${a}.conf`), 'utf8'), /^version 20$/m);
    await darchOk(['boot', 'mark-bad', 'os:b'], { root, env: await boot(`darch_stageid=${a}`) });
    assert.deepEqual(await list(), [`darch-${a}.conf`, `darch-${b}+0.conf`].sort());
    const t2 = await darch(['boot', 'try', 'os:b'], { root, env: await boot(`darch_stageid=${a}`) });
    assert.equal(t2.code, 1);
    assert.match(t2.stderr, /marked bad/);
  });
});

describe('darch boot sync with systemd-boot on a full ESP', () => {
  it('refuses with the bytes needed and free before it copies or writes anything', async (t) => {
    const root = await tempDir(t);
    await mkdir(path.join(root, 'etc/darch'), { recursive: true });
    await writeFile(
      path.join(root, 'etc/darch/config.toml'),
      `[boot]\nbootloader = "systemd-boot"\nstage_fs_uuid = "0f0e0d0c-0000-4000-8000-000000000003"\nstage_fs_path = "/var/lib/darch/stage"\n`,
    );
    const a = await fakeStaged(root, ['os:a']);
    await truncate(path.join(stageDirOf(root), 'live', a, 'initrd.img'), 8 * MiB);
    const espDir = path.join(root, 'boot/efi');
    await mkdir(espDir, { recursive: true });
    // A 4 MiB ESP: a tmpfs in a private mount namespace (no root needed where user namespaces work).
    const script = 'mount -t tmpfs -o size=4m esp "$ESP" && mkdir "$ESP/EFI" && "$@"; echo "rc=$?"; ls -A "$ESP"';
    const r = await run('unshare', ['-rm', 'sh', '-c', script, 'sh', DARCH_BIN, '--root', root, 'boot', 'sync'], {
      allowFailure: true,
      env: { ...process.env, ESP: espDir, NO_COLOR: '1', DARCH_LOCK_TIMEOUT: '0' },
    });
    if (/unshare: .*(Operation not permitted|No space)/.test(r.stderr)) return t.skip('user namespaces are not available here');
    assert.match(
      r.stderr,
      /error: the kernels and initramfs images of 1 staged image\(s\) need 10 MiB on the ESP, but .*boot\/efi has 4(\.0)? MiB free\nhint: remove staged images .*nothing was changed/,
    );
    assert.match(r.stdout, /rc=1\nEFI\n$/, 'nothing but the EFI directory that was there');
  });
});

describe("--disk on a GRUB disk reorders the disk's own grub.cfg", () => {
  it('set-default, rollback and mark-good put the new default first in /stage/grub.cfg (what a lost state boots)', async (t) => {
    const root = await tempDir(t);
    await fakeStaged(root, ['demo/a:1']);
    await fakeStaged(root, ['demo/b:1']);
    const disk = path.join(root, 'disk.img');
    await darchOk(['disk', 'create', disk, 'demo/a:1', 'demo/b:1'], { root });
    const { darchOff } = await esp(disk);
    const cfg = async () => (await run('debugfs', ['-R', 'cat /stage/grub.cfg', `${disk}?offset=${darchOff}`])).stdout;
    const first = async () => /^menuentry .* --id (\S+) \{/m.exec(await cfg())?.[1];
    assert.equal(await first(), 'darch-demo+a@1');
    await darchOk(['boot', 'set-default', 'demo/b:1', '--disk', disk]);
    assert.equal(await first(), 'darch-demo+b@1');
    // The trial script's fallback names the first entry too.
    assert.match(await cfg(), /set default="darch-demo\+b@1"/);
    await darchOk(['boot', 'rollback', '--disk', disk]);
    assert.equal(await first(), 'darch-demo+a@1');
    await darchOk(['boot', 'try', 'demo/b:1', '--disk', disk]);
    assert.equal(await first(), 'darch-demo+a@1', 'arming a trial does not move the default');
    await darchOk(['boot', 'mark-good', '--disk', disk]);
    assert.equal(await first(), 'darch-demo+b@1');
    await darchOk(['disk', 'set-default', disk, 'demo/a:1'], { root });
    assert.equal(await first(), 'darch-demo+a@1');
    // debugfs's edits leave a clean file system.
    const part = path.join(root, 'part.img');
    await run('dd', [`if=${disk}`, `of=${part}`, 'bs=1M', `skip=${darchOff / MiB}`, 'status=none']);
    const fsck = await run('e2fsck', ['-fn', part], { allowFailure: true });
    assert.equal(fsck.code, 0, fsck.stdout + fsck.stderr);
  });
});

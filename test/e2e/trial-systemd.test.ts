/**
 * SLOW (about 8 minutes: seven systemd boots under TCG; the first run also debootstraps
 * into /var/cache/darch-test). The units darch ships, in a real systemd boot: a Debian
 * image with darch-health.service and darch-mark-good.service installed the way
 * docs/TRIAL-BOOTS.md says. A trial whose health check fails reboots from
 * darch-health.service and the boot loader falls back to the default; a healthy trial is
 * committed by darch-mark-good.service after boot-complete.target. Both on a GRUB disk and
 * on a systemd-boot disk (where the counter is the entry's `+N` name, counted down by
 * systemd-boot itself; the image mounts the ESP at /efi, so systemd-bless-boot commits the
 * trial and darch-commit, after it, drops the trial flag from the entry).
 */
import assert from 'node:assert/strict';
import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { run } from '../../src/lib/proc.js';
import { debianSystemdTree } from '../helpers/bootimage.js';
import { REPO, darchOk, tempDir } from '../helpers/darch.js';
import { esp, mcat, mls } from '../helpers/espfiles.js';
import { Vm } from '../helpers/qemu.js';
import { stageTree, stageVariant } from '../helpers/staged.js';

const HEALTH = '#!/bin/sh\n# fails when the kernel command line asks it to\nif grep -q darch.test=health-fail /proc/cmdline; then echo "test check: failing on purpose"; exit 1; fi\nexit 0\n';
// bless: systemd-bless-boot.service (pulled in only when systemd-boot booted a counted entry);
// commit: what darch-commit said (darch-mark-good.service runs it, the image has no darch CLI).
// printf, not dash's echo: systemd-boot's command line has initrd=\darch\<id>\initrd, and echo
// turns "\n…" into a line break and "\c…" into the end of the line ("%%" is systemd's "%").
const REPORT =
  '[Unit]\nDescription=report the boot to the test console\nAfter=darch-mark-good.service boot-complete.target\n' +
  '[Service]\nType=simple\nExecStart=/bin/sh -c \'s=$(systemctl is-system-running --wait); ' +
  'c=$(journalctl -b -o cat -u darch-mark-good.service | grep "^darch" | tr "\\n" "|"); w=$(cat /sys/class/watchdog/watchdog0/state 2>/dev/null || echo none); ' +
  'printf "%%s\\n" "DARCH-REPORT: state=$s good=$(systemctl is-active darch-mark-good.service) bless=$(systemctl is-active systemd-bless-boot.service) wd=$w commit=[$c] cmdline=$(cat /proc/cmdline) END" >/dev/ttyS0\'\n' +
  '[Install]\nWantedBy=multi-user.target\n';
const REPORT_LINE = /DARCH-REPORT: state=(\w+) good=(\S+) bless=(\S+) wd=(\S+) commit=\[([^\]]*)\] cmdline=(.*) END$/m;
/** Trial boots arm q35's iTCO (at most 613 s) from the initramfs-tools script; systemd under TCG needs minutes. */
const WATCHDOG = 'darch.watchdog=600';
/** systemd-bless-boot finds the ESP only where it is mounted (/efi, /boot, /boot/efi); darch disks label it DARCHESP. */
const FSTAB_ESP = 'LABEL=DARCHESP /efi vfat umask=0077,nofail,x-systemd.device-timeout=30s,x-systemd.before=systemd-bless-boot.service 0 2\n';

let root: string;
let work: string;
const ids: Record<string, string> = {};
const cleanups: Array<() => Promise<void> | void> = [];
const disks: Record<string, string> = {};

before(async () => {
    work = await tempDir({ after: (fn) => void cleanups.push(fn) }, 'darch-trial-systemd-');
    root = path.join(work, 'root');
    const tree = path.join(work, 'tree');
    await run('cp', ['-a', await debianSystemdTree(), tree]);
    await darchOk(['initramfs', 'tools-install', tree], { root });
    await run('chroot', [tree, 'update-initramfs', '-u', '-k', 'all']);
    // What docs/TRIAL-BOOTS.md tells an image to do.
    await mkdir(path.join(tree, 'usr/lib/darch'), { recursive: true });
    for (const f of ['darch-grubenv.sh', 'darch-health', 'darch-commit']) await copyFile(path.join(REPO, 'assets/trial', f), path.join(tree, 'usr/lib/darch', f));
    await run('chmod', ['755', path.join(tree, 'usr/lib/darch/darch-health'), path.join(tree, 'usr/lib/darch/darch-commit')]);
    for (const u of ['darch-health.service', 'darch-mark-good.service']) await copyFile(path.join(REPO, 'assets/systemd', u), path.join(tree, 'etc/systemd/system', u));
    await mkdir(path.join(tree, 'etc/darch/health.d'), { recursive: true });
    await writeFile(path.join(tree, 'etc/darch/health.d/10-test'), HEALTH, { mode: 0o755 });
    await writeFile(path.join(tree, 'etc/systemd/system/darch-test-report.service'), REPORT);
    await writeFile(path.join(tree, 'etc/fstab'), FSTAB_ESP, { flag: 'a' });
    await run('chroot', [tree, 'systemctl', 'enable', 'darch-health.service', 'darch-mark-good.service', 'darch-test-report.service']);
    ids.a = await stageTree(root, tree, ['debian/a:1'], { initramfs: 'image', kernelparams: 'boot=darch', exclude: ['var/cache/apt/archives'] });
    // The trials are the same squashfs with other kernel parameters.
    ids.good = await stageVariant(root, ids.a, 'good', 'debian/b:good', 'boot=darch darch.test=good');
    ids.bad = await stageVariant(root, ids.a, 'bad', 'debian/b:bad', 'boot=darch darch.test=health-fail');
});
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

type Loader = 'grub' | 'systemd-boot';

/** One disk per boot loader, made on first use; each test boots its own sparse copy. */
async function diskCopy(loader: Loader, name: string): Promise<string> {
  if (!disks[loader]) {
    const disk = path.join(work, `disk-${loader}.img`);
    await darchOk(['disk', 'create', disk, 'debian/a:1', 'debian/b:good', 'debian/b:bad', '--bootloader', loader, '--kernel-args', `console=ttyS0,115200 ${WATCHDOG}`, '--timeout', '0'], { root, timeoutMs: 600_000 });
    disks[loader] = disk;
  }
  const d = path.join(work, `${loader}-${name}.img`);
  await run('cp', ['--sparse=always', disks[loader]!, d]);
  return d;
}

describe('trial boots with the shipped systemd units (Debian image, GRUB)', () => {

  it('a failing health.d check reboots the trial and GRUB falls back to the default', async () => {
    const d = await diskCopy('grub', 'bad');
    await darchOk(['boot', 'try', 'debian/b:bad', '--tries', '1', '--disk', d], { root });
    const vm = Vm.disk({ name: 'trial-systemd-bad', disk: d, root, memoryMiB: 1024 });
    try {
      // The trial boot runs darch-health.service, whose failure reboots; GRUB then says the
      // trial ran out of tries and boots the default.
      const started = await vm.waitFor(/Starting darch-health\.serv/, 420_000);
      const gaveUp = await vm.waitFor(new RegExp(`trial ${ids.bad} ran out of tries`), 420_000, started.end);
      assert.doesNotMatch(vm.log.slice(0, gaveUp.end), /DARCH-REPORT/, 'the failed trial never completed its boot');
      const fallback = await vm.waitFor(REPORT_LINE, 420_000, gaveUp.end);
      assert.match(fallback.match[6]!, new RegExp(`darch_stageid=${ids.a}\\b`), 'the default booted after the failed trial');
      assert.match(fallback.match[6]!, /darch\.fell_back=1/);
      assert.doesNotMatch(fallback.match[6]!, /darch\.trial=1/);
    } finally {
      await vm.stop();
    }
    const st = (await darchOk(['--json', 'boot', 'status', '--disk', d], { root })).json();
    assert.equal(st.default.stage, ids.a);
    assert.equal(st.trial, null);
    assert.equal(st.fellBack, true);
    assert.ok(JSON.stringify(st.bad).includes(ids.bad!), `the trial is marked bad: ${JSON.stringify(st.bad)}`);
  });

  it('a healthy trial is committed by darch-mark-good.service and becomes the default', async () => {
    const d = await diskCopy('grub', 'good');
    await darchOk(['boot', 'try', 'debian/b:good', '--tries', '2', '--disk', d], { root });
    const vm = Vm.disk({ name: 'trial-systemd-good', disk: d, root, memoryMiB: 1024 });
    try {
      const r = await vm.waitFor(REPORT_LINE, 420_000);
      assert.match(r.match[6]!, new RegExp(`darch_stageid=${ids.good}\\b`));
      assert.match(r.match[6]!, /darch\.trial=1/);
      assert.equal(r.match[2], 'active', 'darch-mark-good.service ran');
      assert.match(r.match[1]!, /^(running|degraded)$/);
      assert.match(r.match[5]!, /is good: it is now the default/);
      assert.equal(r.match[3], 'inactive', 'systemd-bless-boot has nothing to do under GRUB');
      // initramfs-tools' darch script armed the watchdog from the image's modules; the commit stopped it.
      assert.match(vm.log, /darch: trial boot: watchdog armed \(iTCO_wdt, 600s\)/);
      assert.match(r.match[5]!, /the trial's watchdog \(\/dev\/watchdog0\) is stopped/);
      assert.equal(r.match[4], 'inactive', 'the watchdog no longer runs');
    } finally {
      await vm.stop();
    }
    const st = (await darchOk(['--json', 'boot', 'status', '--disk', d], { root })).json();
    assert.equal(st.default.stage, ids.good);
    assert.equal(st.trial, null);
    assert.equal(st.previous.stage, ids.a);
  });
});

describe('trial boots with the shipped systemd units (Debian image, systemd-boot)', () => {
  it('a failing health.d check reboots the trial, systemd-boot counts it out and boots the default', async () => {
    const d = await diskCopy('systemd-boot', 'bad');
    await darchOk(['boot', 'try', 'debian/b:bad', '--tries', '1', '--disk', d], { root });
    const vm = Vm.disk({ name: 'trial-systemd-sdboot-bad', disk: d, root, memoryMiB: 1024 });
    try {
      // The kernel prints its command line first thing: the trial booted, then the default.
      const trial = await vm.waitFor(new RegExp(`Command line: .*darch_stageid=${ids.bad}\\b`), 420_000);
      // The only try is used up: systemd-boot renamed the entry to +0-1 and boots the default.
      const report = await vm.waitFor(REPORT_LINE, 420_000, trial.end);
      assert.match(report.match[6]!, new RegExp(`darch_stageid=${ids.a}\\b`), 'the default booted after the failed trial');
      assert.doesNotMatch(report.match[6]!, /darch\.trial=1/);
      assert.match(vm.log.slice(trial.end, report.end), new RegExp(`Command line: .*darch_stageid=${ids.a}\\b`), 'a second boot, of the default');
    } finally {
      await vm.stop();
    }
    const st = (await darchOk(['--json', 'boot', 'status', '--disk', d], { root })).json();
    assert.equal(st.backend, 'systemd-boot');
    assert.equal(st.default.stage, ids.a);
    assert.equal(st.trial, null);
    assert.equal(st.fellBack, true);
    assert.ok(JSON.stringify(st.bad).includes(ids.bad!), `the trial is marked bad: ${JSON.stringify(st.bad)}`);
  });

  it('a healthy trial is committed by systemd-bless-boot, then darch-mark-good.service drops its trial flag; it becomes the default', async () => {
    const d = await diskCopy('systemd-boot', 'good');
    await darchOk(['boot', 'try', 'debian/b:good', '--tries', '2', '--disk', d], { root });
    const vm = Vm.disk({ name: 'trial-systemd-sdboot-good', disk: d, root, memoryMiB: 1024 });
    try {
      const r = await vm.waitFor(REPORT_LINE, 420_000);
      assert.match(r.match[6]!, new RegExp(`darch_stageid=${ids.good}\\b`));
      assert.match(r.match[6]!, /darch\.trial=1/);
      assert.equal(r.match[2], 'active', 'darch-mark-good.service ran');
      // Both commit, one after the other: systemd-bless-boot renamed the entry first (it found
      // the ESP at /efi), so darch-commit found it committed and only rewrote its options.
      assert.equal(r.match[3], 'active', 'systemd-bless-boot.service ran and succeeded');
      assert.match(r.match[5]!, /committed by systemd-bless-boot: dropped darch\.trial=1/);
      assert.match(vm.log, /darch: trial boot: watchdog armed \(iTCO_wdt, 600s\)/);
      assert.equal(r.match[4], 'inactive', 'the commit stopped the watchdog');
    } finally {
      await vm.stop();
    }
    const { off } = await esp(d);
    const names = (await mls(d, off, 'loader/entries')).filter((f) => f.startsWith(`darch-${ids.good}`));
    assert.deepEqual(names, [`darch-${ids.good}.conf`], 'one entry, without a counter');
    const entry = await mcat(d, off, `loader/entries/darch-${ids.good}.conf`);
    assert.match(entry, new RegExp(`^options .*darch_stageid=${ids.good}\\b`, 'm'));
    assert.doesNotMatch(entry, /darch\.trial=1/, 'its next boots are not trial boots');
    const st = (await darchOk(['--json', 'boot', 'status', '--disk', d], { root })).json();
    assert.equal(st.default.stage, ids.good);
    assert.equal(st.trial, null);
    assert.equal(st.fellBack, false);
  });
});

/**
 * The trial-boot failure matrix on systemd-boot, with disks made by darch itself:
 * `darch disk create --bootloader systemd-boot` from real staged busybox images (Debian's
 * kernel, darch's universal initramfs, busybox init). OVMF → systemd-boot (the entries and
 * kernel copies darch wrote on the ESP) → kernel → initramfs → busybox init, which runs
 * `/usr/lib/darch/darch-health --commit` (the documented no-systemd path): on systemd-boot,
 * darch-commit commits by renaming the entry on the ESP, as systemd-bless-boot would.
 *
 * Image A is the default; image B is staged as variants that are good, panic, miss their
 * init, fail a health.d check or hang. Each case arms B with `darch boot try --disk` on a
 * sparse copy of one disk and reads every boot from the serial console. systemd-boot cannot
 * add darch.fell_back=1 to the boot that falls back: the `+0` entry name is how
 * `darch boot status` knows. A hang is reset by the harness when the console stays silent
 * (standing in for a hardware watchdog, as in trial-linux.test.ts).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { darch, darchOk, REPO, tempDir } from '../helpers/darch.js';
import { busyboxBootRoot, debianKernel } from '../helpers/bootimage.js';
import { stageTree, stageVariant } from '../helpers/staged.js';
import { SerialVm } from '../helpers/serialvm.js';

const sh = promisify(execFile);
// no_timer_check: under a loaded TCG host the kernel's IO-APIC timer check can fail and panic.
const KARGS = 'console=ttyS0,115200 loglevel=3 panic=2 no_timer_check';
const BOOTED = 'SDTRIAL-BOOTED';

const RCS = `#!/bin/sh
mount -t proc proc /proc 2>/dev/null
mount -t sysfs sysfs /sys 2>/dev/null
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t tmpfs tmpfs /tmp 2>/dev/null
mount -t tmpfs tmpfs /run 2>/dev/null
. /etc/os-release
cmd=" $(cat /proc/cmdline) "
case "$cmd" in
*" darch.test=panic "*) echo "TRIAL-TEST: panic"; echo 1 > /proc/sys/kernel/sysrq; echo c > /proc/sysrq-trigger ;;
*" darch.test=hang "*) echo "TRIAL-TEST: hang"; while :; do sleep 3600; done ;;
esac
/usr/lib/darch/darch-health --commit
case "$cmd" in *" darch.trial=1 "*) t=1 ;; *) t=0 ;; esac
id=$(tr ' ' '\\n' < /proc/cmdline | sed -n 's/^darch_stageid=//p')
echo "${BOOTED} version=$VERSION_ID stage=$id trial=$t"
`;

const HEALTH = `#!/bin/sh
case " $(cat /proc/cmdline) " in *" darch.test=health-fail "*) echo "disk check failed"; exit 1 ;; esac
exit 0
`;

interface Boot {
  booted?: { version: string; stage: string; trial: boolean };
  text: string;
}

describe('systemd-boot trial boots of real images on a disk made by darch', () => {
  let work: string;
  let root: string;
  let disk: string;
  let espOffset: number;
  const ids: Record<string, string> = {};
  const cleanups: Array<() => Promise<void> | void> = [];

  before(async () => {
    work = await tempDir({ after: (fn) => void cleanups.push(fn) }, 'darch-trial-sdboot-disk-');
    root = path.join(work, 'root');
    const kernel = await debianKernel();
    const lib = path.join(REPO, 'assets/trial');
    const extra = async (version: string) => ({
      'etc/init.d/rcS': { content: RCS, mode: 0o755 },
      'etc/inittab': '::sysinit:/etc/init.d/rcS\nttyS0::respawn:-/bin/sh\n',
      'etc/darch/health.d/10-test': { content: HEALTH, mode: 0o755 },
      'usr/lib/darch/darch-grubenv.sh': await readFile(path.join(lib, 'darch-grubenv.sh'), 'utf8'),
      'usr/lib/darch/darch-commit': { content: await readFile(path.join(lib, 'darch-commit'), 'utf8'), mode: 0o755 },
      'usr/lib/darch/darch-health': { content: await readFile(path.join(lib, 'darch-health'), 'utf8'), mode: 0o755 },
      'etc/os-release': `VERSION_ID=${version}\n`,
    });
    const treeA = await busyboxBootRoot(path.join(work, 'a'), { kernel, version: 'A', extraFiles: await extra('A') });
    const treeB = await busyboxBootRoot(path.join(work, 'b'), { kernel, version: 'B', extraFiles: await extra('B') });
    ids.a = await stageTree(root, treeA, ['test/a:1']);
    ids.good = await stageTree(root, treeB, ['test/b:good']);
    const variants: Record<string, string> = { panic: 'darch.test=panic', noinit: 'init=/sbin/no-such-init', health: 'darch.test=health-fail', hang: 'darch.test=hang' };
    for (const [name, params] of Object.entries(variants)) ids[name] = await stageVariant(root, ids.good, name, `test/b:${name}`, params);
    disk = path.join(work, 'disk.img');
    const made = (
      await darchOk(
        ['--json', 'disk', 'create', disk, 'test/a:1', 'test/b:good', 'test/b:panic', 'test/b:noinit', 'test/b:health', 'test/b:hang', '--bootloader', 'systemd-boot', '--kernel-args', KARGS, '--timeout', '0'],
        { root, timeoutMs: 600_000 },
      )
    ).json();
    assert.equal(made.bootloader, 'systemd-boot');
    espOffset = made.espOffset;
  });
  after(async () => {
    for (const c of cleanups.reverse()) await c();
  });

  async function diskCopy(name: string): Promise<string> {
    const d = path.join(work, `${name}.img`);
    await sh('cp', ['--sparse=always', disk, d]);
    return d;
  }

  const entries = async (d: string): Promise<string[]> =>
    (await sh('mdir', ['-b', '-i', `${d}@@${espOffset}`, '::/loader/entries'], { env: { ...process.env, MTOOLS_SKIP_CHECK: '1' } })).stdout
      .split('\n')
      .map((l) => l.trim().split('/').pop() ?? '')
      .filter((f) => f.endsWith('.conf'))
      .sort();
  const entryOf = async (d: string, variant: string): Promise<string | undefined> => (await entries(d)).find((f) => f.startsWith(`darch-${ids[variant]}`));
  const status = async (d: string): Promise<any> => (await darchOk(['boot', 'status', '--disk', d, '--json'])).json();

  /** Boot until `count` boots happened and the last one reached userspace; reset a silent (hung) guest. */
  async function boots(name: string, d: string, count: number, silentMs = 40_000): Promise<Boot[]> {
    const vm = await SerialVm.start({ name, disk: d, memoryMiB: 512 });
    const deadline = Date.now() + count * 120_000;
    try {
      for (;;) {
        const segs = vm.text.split(/BdsDxe: starting Boot/).slice(1);
        const last = segs[count - 1];
        if (last !== undefined && (last.includes(BOOTED) || segs.length > count)) break;
        if (vm.exited) throw new Error(`${name}: qemu exited\n${vm.tail()}`);
        if (Date.now() > deadline) throw new Error(`${name}: ${count} boots did not finish in time (log ${vm.logFile})\n${vm.tail()}`);
        if (Date.now() - vm.lastOutput > silentMs) await vm.reset();
        await new Promise((r) => setTimeout(r, 500));
      }
      return vm.text.split(/BdsDxe: starting Boot/).slice(1, count + 1).map((seg): Boot => {
        const m = new RegExp(`${BOOTED} version=(\\w+) stage=([a-z0-9]+) trial=(\\d)`).exec(seg);
        return { text: seg, ...(m ? { booted: { version: m[1]!, stage: m[2]!, trial: m[3] === '1' } } : {}) };
      });
    } finally {
      await vm.stop();
    }
  }

  async function assertFallsBack(variant: string, tries: number, perBoot: (b: Boot) => void): Promise<void> {
    const d = await diskCopy(variant);
    await darchOk(['boot', 'try', `test/b:${variant}`, '--tries', String(tries), '--disk', d]);
    assert.equal(await entryOf(d, variant), `darch-${ids[variant]}+${tries}.conf`);
    const list = await boots(`trial-sdboot-disk-${variant}`, d, tries + 1);
    for (const b of list.slice(0, tries)) {
      // A failing health check reboots in the background, so rcS may still report the trial boot.
      if (b.booted) assert.deepEqual(b.booted, { version: 'B', stage: ids[variant], trial: true }, `${variant}: every boot before the fallback is the trial`);
      perBoot(b);
    }
    // The boot after the last try is A, the default, and not a trial.
    assert.deepEqual(list[tries]!.booted, { version: 'A', stage: ids.a, trial: false });
    // systemd-boot counted B down to +0 by itself; nothing else changed.
    assert.equal(await entryOf(d, variant), `darch-${ids[variant]}+0-${tries}.conf`);
    assert.equal(await entryOf(d, 'a'), `darch-${ids.a}.conf`);
    const s = await status(d);
    assert.equal(s.backend, 'systemd-boot');
    assert.equal(s.default.stage, ids.a);
    assert.equal(s.trial, null);
    assert.equal(s.fellBack, true, 'status reports the fallback from the +0 entry');
    assert.equal(s.fellBackFrom, ids[variant]);
    assert.deepEqual(s.bad, [ids[variant]]);
    const again = await darch(['boot', 'try', `test/b:${variant}`, '--disk', d]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /marked bad/);
  }

  it('a fresh disk boots the default image A', async () => {
    const list = await boots('trial-sdboot-disk-fresh', await diskCopy('fresh'), 1);
    assert.deepEqual(list[0]!.booted, { version: 'A', stage: ids.a, trial: false });
  });

  it('a good trial commits itself in the guest (darch-commit renames its entry): after one boot it is the default', async () => {
    const d = await diskCopy('good');
    await darchOk(['boot', 'try', 'test/b:good', '--tries', '3', '--disk', d]);
    const vm = await SerialVm.start({ name: 'trial-sdboot-disk-good', disk: d, memoryMiB: 512 });
    try {
      const first = await vm.waitFor(new RegExp(`${BOOTED} version=B stage=${ids.good} trial=1`), 180_000);
      assert.match(vm.text, /darch-commit: [a-z0-9]{25} is good: it is now the default/);
      vm.send('reboot -f');
      const second = await vm.waitFor(new RegExp(`${BOOTED} version=(\\w) stage=([a-z0-9]+) trial=(\\d)`), 180_000, first.end);
      assert.deepEqual([second.match[1], second.match[2], second.match[3]], ['B', ids.good, '0'], 'the second boot is B as the default, not a trial');
      assert.match(vm.text.slice(first.end), /not a trial boot: nothing to do/);
    } finally {
      await vm.stop();
    }
    assert.equal(await entryOf(d, 'good'), `darch-${ids.good}.conf`);
    const s = await status(d);
    assert.equal(s.default.stage, ids.good);
    assert.equal(s.previous.stage, ids.a);
    assert.equal(s.trial, null);
    assert.equal(s.fellBack, false);
    assert.deepEqual(s.bad, []);
  });

  it('a failing health.d check reboots the trial until its 2 tries are used, then A boots', async () => {
    await assertFallsBack('health', 2, (b) => {
      assert.match(b.text, /darch-health: FAILED: 10-test/);
      assert.match(b.text, /rebooting so the counter runs down/);
    });
  });

  it('a kernel panic (panic=2 reboots) falls back to A', async () => {
    await assertFallsBack('panic', 1, (b) => assert.match(b.text, /TRIAL-TEST: panic[^]*Kernel panic/));
  });

  it('a missing init falls back to A', async () => {
    await assertFallsBack('noinit', 1, (b) => assert.match(b.text, /no-such-init/));
  });

  it('a hang is reset (as a watchdog would) and falls back to A', async () => {
    await assertFallsBack('hang', 1, (b) => assert.match(b.text, /TRIAL-TEST: hang[^]*harness watchdog/));
  });
});

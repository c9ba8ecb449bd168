/**
 * The busybox trial images that trial-linux (GRUB) and trial-sdboot-disk (systemd-boot)
 * boot: A, the good default, and B staged as a good image and as variants that panic, miss
 * their init, fail a health.d check or hang. Both run the documented no-systemd path from
 * rcS (`/usr/lib/darch/darch-health --commit`) and report each boot on the console as
 * `TRIAL-BOOTED version=… stage=… trial=0|1 fell_back=0|1`. Further variants die as init,
 * or lose their squashfs on the disk.
 */
import assert from 'node:assert/strict';
import { mkdir, open, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { readPartitions } from '../../src/boot/shared/esp.js';
import { Ext4Image } from '../../src/disk/ext4.js';
import { LINUX_TYPE } from '../../src/disk/layout.js';
import { run } from '../../src/lib/proc.js';
import { REPO } from './darch.js';
import { busyboxBootRoot, debianKernel } from './bootimage.js';
import { stageTree, stageVariant } from './staged.js';
import { Vm } from './qemu.js';

export const BOOTED = 'TRIAL-BOOTED';

// What a user types: a serial console, nothing that makes failures reboot (trial boots get
// panic= and darch.watchdog= from darch's defaults). loglevel keeps the console readable;
// no_timer_check: under a loaded TCG host the kernel's IO-APIC timer check can fail and
// panic, which is qemu's problem, not the image's.
export const TRIAL_KARGS = 'console=ttyS0,115200 loglevel=3 no_timer_check';
/** The default `[boot] trial_watchdog` (300 s; Intel's TCO counts it down twice). */
export const DEFAULT_WATCHDOG_SECONDS = 300;
/**
 * The hang cases set `[boot] trial_watchdog` to this (a good busybox trial commits in about
 * 10 s under TCG): waiting out the default 300 s (600 on Intel's TCO) per case would cost
 * CI most of its time. Nothing else in the tests changes darch's defaults.
 */
export const HANG_WATCHDOG_SECONDS = 45;

/** Run `fn` with `[boot] trial_watchdog = seconds` in root's config.toml (what a user would write). */
export async function withTrialWatchdog<T>(root: string, seconds: number, fn: () => Promise<T>): Promise<T> {
  const file = path.join(root, 'etc/darch/config.toml');
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, `[boot]\ntrial_watchdog = ${seconds}\n`);
  try {
    return await fn();
  } finally {
    await rm(file, { force: true });
  }
}

/** Remove a file of the darch partition (ext4) of a disk made by `darch disk create`, e.g. a staged squashfs. */
export async function removeFromDarchPartition(disk: string, file: string): Promise<void> {
  const part = (await readPartitions(disk)).find((p) => p.type === LINUX_TYPE);
  assert.ok(part, `${disk} has a darch partition`);
  const fs = new Ext4Image(disk, part.offset);
  await fs.remove(file);
  assert.equal(await fs.readText(file), undefined, `${file} is gone`);
}

/**
 * Flip one bit of a file in the darch partition, in place, where the file's bytes are on the
 * disk (debugfs maps the block): what a failing disk or an attacker with the disk does.
 */
export async function flipBitInDarchPartition(disk: string, file: string, offset: number): Promise<void> {
  const part = (await readPartitions(disk)).find((p) => p.type === LINUX_TYPE);
  assert.ok(part, `${disk} has a darch partition`);
  const spec = `${path.resolve(disk)}?offset=${part.offset}`;
  const bs = Number(/Block size:\s+(\d+)/.exec((await run('debugfs', ['-R', 'stats -h', spec])).stdout)?.[1]);
  const block = Number((await run('debugfs', ['-R', `bmap ${file} ${Math.floor(offset / bs)}`, spec])).stdout.trim());
  assert.ok(bs > 0 && block > 0, `${file} has a block ${Math.floor(offset / bs)} on ${disk}`);
  const at = part.offset + block * bs + (offset % bs);
  const fh = await open(disk, 'r+');
  try {
    const b = Buffer.alloc(1);
    await fh.read(b, 0, 1, at);
    b[0] = b[0]! ^ 0x01;
    await fh.write(b, 0, 1, at);
  } finally {
    await fh.close();
  }
}

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
case "$cmd" in *" darch.fell_back=1 "*) f=1 ;; *) f=0 ;; esac
id=$(tr ' ' '\\n' < /proc/cmdline | sed -n 's/^darch_stageid=//p')
echo "${BOOTED} version=$VERSION_ID stage=$id trial=$t fell_back=$f"
`;

/** A check that fails when the kernel command line asks it to (the "bad update" of the tests). */
const HEALTH = `#!/bin/sh
case " $(cat /proc/cmdline) " in *" darch.test=health-fail "*) echo "disk check failed"; exit 1 ;; esac
exit 0
`;

/** The bad variants are B's squashfs with other kernel parameters. */
// initexit: init dies (the kernel panics: "Attempted to kill init"); nosquash: the tests
// delete its rootfs.squash from the disk.
const VARIANTS: Record<string, string> = {
  panic: 'darch.test=panic',
  noinit: 'init=/sbin/no-such-init',
  health: 'darch.test=health-fail',
  hang: 'darch.test=hang',
  initexit: 'init=/bin/false',
  nosquash: 'darch.test=nosquash',
};

/** Every tag stageTrialImages stages, A first (what `disk create` makes the default). */
export const TRIAL_TAGS = ['test/a:1', 'test/b:good', ...Object.keys(VARIANTS).map((v) => `test/b:${v}`)];

/** Stage A, B and B's variants into `root`; returns the staged ids by name (a, good, panic, noinit, health, hang). */
export async function stageTrialImages(root: string, work: string): Promise<Record<string, string>> {
  const kernel = await debianKernel();
  const lib = path.join(REPO, 'assets/trial');
  const extra = async (version: string) => ({
    'etc/init.d/rcS': { content: RCS, mode: 0o755 },
    'etc/inittab': '::sysinit:/etc/init.d/rcS\nttyS0::respawn:-/bin/sh\n',
    'etc/darch/health.d/10-test': { content: HEALTH, mode: 0o755 },
    'usr/lib/darch/darch-grubenv.sh': await readFile(path.join(lib, 'darch-grubenv.sh'), 'utf8'),
    'usr/lib/darch/darch-record.sh': await readFile(path.join(lib, 'darch-record.sh'), 'utf8'),
    'usr/lib/darch/darch-commit': { content: await readFile(path.join(lib, 'darch-commit'), 'utf8'), mode: 0o755 },
    'usr/lib/darch/darch-health': { content: await readFile(path.join(lib, 'darch-health'), 'utf8'), mode: 0o755 },
    'etc/os-release': `VERSION_ID=${version}\n`,
  });
  const treeA = await busyboxBootRoot(path.join(work, 'a'), { kernel, version: 'A', extraFiles: await extra('A') });
  const treeB = await busyboxBootRoot(path.join(work, 'b'), { kernel, version: 'B', extraFiles: await extra('B') });
  const ids: Record<string, string> = {};
  ids.a = await stageTree(root, treeA, ['test/a:1']);
  ids.good = await stageTree(root, treeB, ['test/b:good']);
  for (const [name, params] of Object.entries(VARIANTS)) ids[name] = await stageVariant(root, ids.good, name, `test/b:${name}`, params);
  return ids;
}

export interface TrialBoot {
  /** The console of this boot, from the firmware starting the boot loader. */
  text: string;
  /** What the guest reported, if it got that far. */
  booted?: { version: string; stage: string; trial: boolean; fellBack: boolean };
}

/**
 * Boot until `count` boots happened and the last one reached userspace. Nothing here resets
 * the VM: a hung trial is reset by the guest's own watchdog (darch.watchdog=, i6300esb).
 */
export async function trialBoots(name: string, disk: string, count: number, extraArgs: string[] = []): Promise<TrialBoot[]> {
  const vm = await Vm.qemu({ name, disk, memoryMiB: 512, extraArgs });
  // Generous: under CI two qemu guests share two cores, and TCG slows to half speed.
  const deadline = Date.now() + count * 240_000;
  // The whole line, newline included: the serial console delivers it in pieces, and stopping
  // at the marker alone once read a boot whose fields had not arrived yet.
  const line = new RegExp(`${BOOTED} version=(\\w+) stage=([a-z0-9]+) trial=(\\d) fell_back=(\\d)\\r?\\n`);
  try {
    for (;;) {
      const segs = vm.text.split(/BdsDxe: starting Boot/).slice(1);
      const last = segs[count - 1];
      if (last !== undefined && (line.test(last) || segs.length > count)) break;
      if (vm.exited) throw new Error(`${name}: qemu exited\n${vm.tail()}`);
      if (Date.now() > deadline) throw new Error(`${name}: ${count} boots did not finish in time (log ${vm.logFile})\n${vm.tail()}`);
      await new Promise((r) => setTimeout(r, 500));
    }
    return vm.text
      .split(/BdsDxe: starting Boot/)
      .slice(1, count + 1)
      .map((seg): TrialBoot => {
        const m = line.exec(seg);
        return { text: seg, ...(m ? { booted: { version: m[1]!, stage: m[2]!, trial: m[3] === '1', fellBack: m[4] === '1' } } : {}) };
      });
  } finally {
    await vm.stop();
  }
}

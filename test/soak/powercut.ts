/**
 * The power-cut campaign (issue 19): a busybox machine that carries the darch executable
 * follows an image in a registry on the host's 127.0.0.1 (qemu user networking,
 * `restrict=on`, one `guestfwd` rule) with darch's update agent, and qemu is killed
 * (SIGKILL, the disk opened with `cache=unsafe`) at a random moment of the update cycle,
 * again and again. Every qemu start is both the check of the previous cut (what came up:
 * the previous good image, the new one, or nothing; `darch images verify`; the next update
 * run) and the subject of the next cut.
 *
 * The cycle a cut falls in, uniformly: from the moment the machine is up and has checked its
 * store, through `darch update run` (check, download, stage, boot-entry sync, arming the
 * trial, the reboot it asks for), the trial boot (firmware, boot loader, kernel, initramfs)
 * and the busybox commit (`darch-health --commit`), to the end of the commit. Its length is
 * measured once per campaign by a round without a cut (round 0).
 *
 * The machine (rcS, below) prints markers on the console; the phase a cut fell in is the
 * last marker or darch progress line before the kill. What is lost: the guest's page cache
 * and anything qemu had not yet handed to the host (cache=unsafe ignores the guest's
 * flushes); what qemu wrote to the image file before the kill stays, as on a disk that
 * honours writes it acknowledged.
 *
 *   npm run -s soak:powercut -- --bootloader grub|systemd-boot --rounds 100 --seed 1
 *
 * docs/RELIABILITY.md has the figures and how to replay a round.
 */
import { randomBytes } from 'node:crypto';
import { appendFile, chmod, copyFile, cp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { diskStageFs } from '../../src/disk/menu.js';
import { run } from '../../src/lib/proc.js';
import { busyboxBootRoot, debianKernel } from '../helpers/bootimage.js';
import { darchOk, REPO } from '../helpers/darch.js';
import { writeOciLayout } from '../helpers/oci-layout.js';
import { ARTIFACTS, Vm } from '../helpers/qemu.js';
import { startRegistry, type RegistryServer } from '../helpers/registry.js';

export type Bootloader = 'grub' | 'systemd-boot';

/** Where the guest reaches the registry (qemu's guestfwd). */
const GUEST_REGISTRY = '10.0.2.100:5000';
const REPOSITORY = 'os/cut';
/** Random bytes in each version's own layer: the download is a phase of its own. */
const VERSION_PAYLOAD = 2 * 1024 * 1024;
/** Programs darch runs while it updates, copied into the image with their libraries. */
const GUEST_TOOLS = ['tar2sqfs', 'rdsquashfs', 'unsquashfs', 'findmnt', 'blkid', 'sfdisk', 'mtools'];
/** What an extra boot may take to show what came up before it counts as "nothing" (TCG). */
const BOOT_TIMEOUT_MS = 300_000;
export const KARGS = 'console=ttyS0,115200 loglevel=3 no_timer_check';

/**
 * The machine's boot script. The network is qemu's user network (fixed addresses), the ESP
 * and the stage file system are mounted where a distribution's fstab puts them (darch makes
 * the stage file system writable itself), then: report, commit a trial, verify, update.
 */
const RCS = `#!/bin/sh
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc 2>/dev/null
mount -t sysfs sysfs /sys 2>/dev/null
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t tmpfs tmpfs /tmp 2>/dev/null
. /etc/os-release
cmd=" $(cat /proc/cmdline) "
case "$cmd" in *" darch.trial=1 "*) t=1 ;; *) t=0 ;; esac
case "$cmd" in *" darch.fell_back=1 "*) f=1 ;; *) f=0 ;; esac
id=$(tr ' ' '\\n' < /proc/cmdline | sed -n 's/^darch_stageid=//p')
echo "CUT-BOOTED version=$VERSION_ID stage=$id trial=$t fell_back=$f"
/usr/lib/darch/darch-health --commit
echo "CUT-COMMIT rc=$? trial=$t"
mkdir -p /boot/efi /var/lib/darch
mount -t vfat -o umask=0077 /dev/vda1 /boot/efi
mount -t ext4 -o ro /dev/vda2 /var/lib/darch
modprobe virtio_net
ip link set lo up
ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0
ip route add default via 10.0.2.2
darch images verify >/dev/null 2>/tmp/verify.err
rc=$?
echo "CUT-VERIFY rc=$rc"
[ $rc = 0 ] || cat /tmp/verify.err
`;

/**
 * The agent, as the timer would run it, but back to back: an init "once" action, so init's
 * main loop (which the reboot darch asks for signals) is running.
 */
const UPDATE_LOOP = `#!/bin/sh
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
while :; do
  echo "CUT-UPDATE-START"
  darch -v --json update run >/tmp/update.json
  rc=$?
  echo "CUT-UPDATE rc=$rc outcome=$(sed -n 's/^  "outcome": "\\([a-z-]*\\)".*/\\1/p' /tmp/update.json)"
  # What runs leave behind: work directories of the stage and the image store, space used.
  echo "CUT-STORE tmp=$(ls -A /var/lib/darch/stage/tmp /var/lib/darch/tmp 2>/dev/null | grep -vc ':$\\|^$') staged=$(ls /var/lib/darch/stage/live 2>/dev/null | wc -l) used_kib=$(df -k /var/lib/darch | awk 'NR==2{print $3}')"
  sleep 3
done
`;

/** Every tool's shared libraries (ldd), copied to the same paths in the tree. */
async function copyWithLibraries(tree: string, programs: string[]): Promise<void> {
  const libs = new Set<string>();
  for (const p of programs) {
    const out = (await run('ldd', [p], { allowFailure: true })).stdout;
    for (const m of out.matchAll(/(?:=>\s*)?(\/\S+)\s+\(0x/g)) libs.add(m[1]!);
  }
  for (const lib of libs) {
    const dest = path.join(tree, lib);
    await mkdir(path.dirname(dest), { recursive: true });
    await copyFile(lib, dest);
  }
}

async function which(cmd: string): Promise<string> {
  const r = await run('sh', ['-c', `command -v ${cmd}`], { allowFailure: true });
  if (r.code !== 0) throw new Error(`${cmd} is not installed (needed inside the campaign's image)`);
  return r.stdout.trim();
}

/** The campaign's base layer: busybox, the Debian kernel and the modules a boot needs, darch and the tools it runs. */
async function baseTree(work: string): Promise<string> {
  const kernel = await debianKernel();
  const lib = path.join(REPO, 'assets/trial');
  const files: Record<string, string | { content: string; mode: number }> = {
    'etc/init.d/rcS': { content: RCS, mode: 0o755 },
    'etc/init.d/update-loop': { content: UPDATE_LOOP, mode: 0o755 },
    'etc/inittab': '::sysinit:/etc/init.d/rcS\n::once:/etc/init.d/update-loop\nttyS0::respawn:-/bin/sh\n',
    'usr/lib/darch/darch-grubenv.sh': await readFile(path.join(lib, 'darch-grubenv.sh'), 'utf8'),
    'usr/lib/darch/darch-record.sh': await readFile(path.join(lib, 'darch-record.sh'), 'utf8'),
    'usr/lib/darch/darch-commit': { content: await readFile(path.join(lib, 'darch-commit'), 'utf8'), mode: 0o755 },
    'usr/lib/darch/darch-health': { content: await readFile(path.join(lib, 'darch-health'), 'utf8'), mode: 0o755 },
    'etc/os-release': 'VERSION_ID=0\n',
    // The machine's darch: the registry over plain HTTP; lz4 because zstd under TCG would
    // make each staging minutes long; a reboot window of the whole day, so the agent
    // reboots into the trial it armed. Everything else is darch's default.
    'etc/darch/config.toml': `[registry]\ninsecure = ["${GUEST_REGISTRY}"]\n[stage]\ncompression = "lz4"\n[update]\nimage = "${GUEST_REGISTRY}/${REPOSITORY}:stable"\nreboot = "00:00-24:00"\n`,
    'etc/machine-id': `${randomBytes(16).toString('hex')}\n`,
  };
  const tree = await busyboxBootRoot(path.join(work, 'tree'), { kernel, version: 'campaign', extraFiles: files });
  // The network driver (virtio-net), which the boot modules do not include.
  const mdir = path.join(tree, 'lib/modules', kernel.release);
  for (const rel of ['kernel/net/core/failover.ko', 'kernel/drivers/net/net_failover.ko', 'kernel/drivers/net/virtio_net.ko']) {
    await mkdir(path.dirname(path.join(mdir, rel)), { recursive: true });
    await copyFile(path.join(kernel.modulesDir, rel), path.join(mdir, rel));
  }
  const darch = process.env.DARCH_BIN ?? path.join(REPO, 'dist/darch');
  const tools = await Promise.all(GUEST_TOOLS.map(which));
  await mkdir(path.join(tree, 'usr/bin'), { recursive: true });
  await copyFile(darch, path.join(tree, 'usr/bin/darch'));
  await chmod(path.join(tree, 'usr/bin/darch'), 0o755);
  for (const t of tools) await copyFile(t, path.join(tree, 'usr/bin', path.basename(t)));
  for (const m of ['mcopy', 'mdir', 'mdel', 'mmd', 'mdeltree', 'mattrib', 'mformat']) await run('ln', ['-sf', 'mtools', path.join(tree, 'usr/bin', m)]);
  await copyWithLibraries(tree, [darch, ...tools]);
  await cp(path.join(REPO, 'assets'), path.join(tree, 'usr/share/darch/assets'), { recursive: true });
  await mkdir(path.join(tree, 'boot/efi'), { recursive: true });
  await mkdir(path.join(tree, 'var/lib/darch'), { recursive: true });
  return tree;
}

export interface CampaignMachine {
  work: string;
  bootloader: Bootloader;
  /** The disk as made (v1 staged, its blobs in the store): every replacement after a failed round starts from it. */
  template: string;
  disk: string;
  reg: RegistryServer;
  host: string;
  /** The newest version in the registry. */
  pushed: number;
  stop(): Promise<void>;
}

/** The host side: a registry with v1, the host's darch root, and a disk with v1 staged and its blobs in the store. */
export async function makeMachine(work: string, bootloader: Bootloader, report: (s: string) => void = () => undefined): Promise<CampaignMachine> {
  await mkdir(work, { recursive: true });
  const host = path.join(work, 'host');
  const reg = await startRegistry();
  try {
    report('making the image (busybox, the Debian kernel, darch and its tools)');
    const tree = await baseTree(work);
    const base = path.join(work, 'base.tar');
    await run('tar', ['-C', tree, '--owner=0', '--group=0', '-cf', base, '.']);
    await rm(tree, { recursive: true, force: true });
    await mkdir(path.join(host, 'etc/darch'), { recursive: true });
    await writeFile(
      path.join(host, 'etc/darch/config.toml'),
      `[registry]\ninsecure = ["${reg.host}"]\n[stage]\ncompression = "lz4"\n[update]\nimage = "${reg.host}/${REPOSITORY}:stable"\n`,
    );
    const m: CampaignMachine = {
      work,
      bootloader,
      template: path.join(work, 'template.img'),
      disk: path.join(work, 'disk.img'),
      reg,
      host,
      pushed: 0,
      stop: () => reg.stop(),
    };
    await publish(m);
    report('staging v1 and making the disk');
    const v1 = JSON.parse((await darchOk(['--json', 'update', 'stage'], { root: host })).stdout);
    await darchOk(['disk', 'create', m.template, v1.tag, '--size', '3G', '--bootloader', bootloader, '--kernel-args', KARGS, '--timeout', '0'], { root: host });
    await (await diskStageFs(m.template)).putTree(path.join(host, 'var/lib/darch/images'), '/images');
    await run('cp', ['--sparse=always', m.template, m.disk]);
    return m;
  } catch (e) {
    await reg.stop();
    throw e;
  }
}

/** Push the next version: the base layer and a layer of its own (its number and random bytes). */
export async function publish(m: CampaignMachine): Promise<number> {
  const n = m.pushed + 1;
  const dir = path.join(m.work, `v${n}`);
  await mkdir(path.join(dir, 'etc'), { recursive: true });
  await mkdir(path.join(dir, 'usr/share/cut'), { recursive: true });
  await writeFile(path.join(dir, 'etc/os-release'), `VERSION_ID=${n}\n`);
  await writeFile(path.join(dir, 'usr/share/cut/payload'), randomBytes(VERSION_PAYLOAD));
  const tar = path.join(m.work, `v${n}.tar`);
  await run('tar', ['-C', dir, '--owner=0', '--group=0', '-cf', tar, '.']);
  const layout = path.join(m.work, `layout-${n}`);
  await writeOciLayout(
    layout,
    `${REPOSITORY}:${n}`,
    [
      { tar: path.join(m.work, 'base.tar'), compression: 'gzip' },
      { tar, compression: 'gzip' },
    ],
    { 'org.opencontainers.image.version': String(n) },
  );
  await darchOk(['images', 'import', `oci:${layout}:${REPOSITORY}:${n}`, `${REPOSITORY}:${n}`], { root: m.host });
  await darchOk(['images', 'push', '--tls-verify=false', `${REPOSITORY}:${n}`, `${m.reg.host}/${REPOSITORY}:stable`], { root: m.host });
  await darchOk(['images', 'remove', `${REPOSITORY}:${n}`], { root: m.host }).catch(() => undefined);
  await rm(layout, { recursive: true, force: true });
  await rm(dir, { recursive: true, force: true });
  await rm(tar, { force: true });
  m.pushed = n;
  return n;
}

// ---------------------------------------------------------------------------------------
// One round.

/** The phases of the cycle, in order, and the console text that starts each (darch's step lines under -v, the boot's own). */
const PHASES: Array<[string, RegExp]> = [
  ['verify', /CUT-VERIFY rc=/g],
  ['update: check', /CUT-UPDATE-START|==> checking /g],
  ['update: download', /==> pulling /g],
  ['update: squashfs', /==> writing squashfs/g],
  // After the squashfs: the stage steps (darch's initramfs, the hooks), then the stage's
  // commit, the boot side's sync and the arming, which print nothing until the reboot.
  ['update: kernel and initramfs', /stage step: |==> (copying the kernel|building darch's initramfs)/g],
  ['update: boot entries and arming', /darch initramfs: kernel \S+, \d+ modules|==> (syncing|arming|updating the boot)/g],
  ['reboot', /==> rebooting into the update/g],
  ['shutdown', /The system is going down/g],
  ['trial boot: firmware', /BdsDxe: loading/g],
  ['trial boot: boot loader', /BdsDxe: starting|Welcome to GRUB/g],
  ['trial boot: kernel and initramfs', /Loading \S+ \(|EFI stub|darch initramfs \d/g],
  ['trial boot: init', /CUT-BOOTED version=\S+ stage=\S+ trial=1/g],
  ['commit', /darch-health: all checks passed/g],
  ['after the commit', /CUT-COMMIT rc=\d+ trial=1/g],
];

/** The phase the console was in at a position: the latest marker before it (and after `from`). */
export function phaseAt(text: string, from: number): string {
  let best = { at: -1, name: 'boot' };
  const seg = text.slice(from);
  for (const [name, re] of PHASES) {
    re.lastIndex = 0;
    let last = -1;
    for (const m of seg.matchAll(re)) last = m.index ?? last;
    if (last >= best.at && last >= 0) best = { at: last, name };
  }
  return best.name;
}

interface Booted {
  version: number;
  stage: string;
  trial: boolean;
  fellBack: boolean;
}

export interface RoundReport {
  round: number;
  /** The campaign's seed; with the round number it fixes `fraction`. */
  seed: number;
  /** Where in the cycle the cut was aimed (0–1; round 0 has none) and when it came (s after the check). */
  fraction: number;
  cutAtSec: number;
  /** The good version before this boot and the newer one in flight, as the previous rounds left them. */
  expected: MachineState;
  /** What came up after the previous cut (absent: nothing within the boot timeout). */
  cameUp?: Booted;
  /** previous: the last good image; new: the version in flight; nothing; other: neither. */
  verdict: 'previous' | 'new' | 'nothing' | 'other';
  /** `darch images verify`'s exit status on the machine that came up. */
  verify?: number;
  /** Update runs of this round, `rc/outcome`. */
  updates: string[];
  /** Update runs that failed (rc ≠ 0): a leftover that blocks the next update. */
  updateFailures: number;
  /** The phase of the cycle the cut fell in. */
  phase: string;
  /** After the round's last finished update run: leftover work entries, staged images, KiB used on the stage fs. */
  store?: { tmp: number; staged: number; usedKiB: number };
  seconds: number;
  consoleLog: string;
  /** A copy of the disk kept when the round failed (boot it again: docs/RELIABILITY.md). */
  savedDisk?: string;
  /** The cut this round's boot checked: the previous round's (round 0's is the kill after its commit). */
  checked?: { round: number; phase: string; cutAtSec: number };
  /** The campaign's last boot: it only checks the last cut (its own kill right after the check is no cut). */
  check?: true;
  /** No progress (no commit, no new version taken) for STALL_ROUNDS rounds: updates are stuck. */
  stalled?: true;
}

export interface MachineState {
  /** The version the machine runs committed (what a fallback boots). */
  good: number;
  /** A newer version pushed and not committed yet. */
  newer?: number;
}

export const failed = (r: RoundReport) =>
  r.verdict === 'nothing' || r.verdict === 'other' || (r.verify ?? 0) !== 0 || r.updateFailures > 0 || r.stalled === true;

/**
 * Rounds without a version committed or a new one taken before the machine counts as stuck:
 * an update that never gets further blocks it as surely as one that fails. A round finishes a
 * cycle's first half about every other time, so 12 rounds in a row without progress is a
 * stuck machine, not bad luck.
 */
export const STALL_ROUNDS = 12;

/** A small seeded generator (mulberry32): the same seed gives the same cut fractions. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const BOOTED_RE = /CUT-BOOTED version=(\d+) stage=(\S*) trial=(\d) fell_back=(\d)/g;

/** The machine's committed version after a console: the last boot that was no trial, or a trial that committed. */
export function committedAfter(text: string, before: number): number {
  let good = before;
  for (const b of text.matchAll(BOOTED_RE)) {
    const rest = text.slice((b.index ?? 0) + b[0].length);
    const next = rest.search(/CUT-BOOTED /);
    const own = next < 0 ? rest : rest.slice(0, next);
    // A trial counts once its commit says so: a boot that ran as a trial of the wrong image
    // ("not the pending trial") committed nothing.
    if (b[3] === '0' || (/CUT-COMMIT rc=0 trial=1/.test(own) && / is good: it is now the default/.test(own))) good = Number(b[1]);
  }
  return good;
}

/**
 * Boot the disk; once the machine is up and has verified its store, keep an update coming
 * (push a version whenever the machine has nothing to do) and pull the plug after
 * `fraction × cycleMs`. Without cycleMs (round 0) the round ends when the next version's
 * trial committed, and its length is the cycle.
 */
export async function round(
  m: CampaignMachine,
  state: MachineState,
  opts: { round: number; seed: number; fraction: number; cycleMs?: number; name: string },
): Promise<{ report: RoundReport; cycleMs?: number }> {
  const t0 = Date.now();
  const vm = await Vm.qemu({
    name: opts.name,
    disk: m.disk,
    memoryMiB: 1024,
    cache: 'unsafe',
    nic: `user,model=virtio-net-pci,restrict=on,guestfwd=tcp:${GUEST_REGISTRY}-cmd:nc -N 127.0.0.1 ${m.reg.port}`,
  });
  const report: RoundReport = {
    round: opts.round,
    seed: opts.seed,
    fraction: opts.fraction,
    cutAtSec: 0,
    expected: { ...state },
    verdict: 'nothing',
    updates: [],
    updateFailures: 0,
    phase: 'boot',
    seconds: 0,
    consoleLog: vm.logFile,
  };
  let cycleMs: number | undefined;
  try {
    const up = await vm.waitFor(new RegExp(BOOTED_RE.source), BOOT_TIMEOUT_MS).catch(() => undefined);
    if (!up) return { report };
    const [, v, stage, trial, fellBack] = up.match;
    report.cameUp = { version: Number(v), stage: stage!, trial: trial === '1', fellBack: fellBack === '1' };
    report.verdict = report.cameUp.version === state.good ? 'previous' : report.cameUp.version === state.newer ? 'new' : 'other';
    const verify = await vm.waitFor(/CUT-VERIFY rc=(\d+)/, 240_000, up.end).catch(() => undefined);
    if (!verify) return { report: { ...report, phase: 'verify' } };
    report.verify = Number(verify.match[1]);
    const checkedAt = Date.now();
    const mark = verify.end - verify.match[0].length;
    const deadline = opts.cycleMs === undefined ? undefined : checkedAt + opts.fraction * opts.cycleMs;
    // Outcome lines after `seen` have not been looked at. A run that started before the last
    // push finished may not have seen it: only a run started after it can ask for another.
    let seen = verify.end;
    let pushedOnce = false;
    let pushDoneAt = 0;
    for (;;) {
      if (vm.exited) break;
      const text = vm.text;
      for (const st of text.slice(seen).matchAll(/CUT-STORE tmp=(\d+) staged=(\d+) used_kib=(\d+)/g))
        report.store = { tmp: Number(st[1]), staged: Number(st[2]), usedKiB: Number(st[3]) };
      const u = /CUT-UPDATE rc=(\d+) outcome=(\S*)/.exec(text.slice(seen));
      if (u) {
        seen += u.index + u[0].length;
        report.updates.push(`${u[1]}/${u[2]}`);
        if (u[1] !== '0') {
          report.updateFailures++;
          if (opts.cycleMs === undefined) throw new Error(`${opts.name}: darch update run failed in round 0 (exit ${u[1]})\n${vm.tail(4000)}`);
        }
        const startedAt = text.lastIndexOf('CUT-UPDATE-START', seen);
        if ((u[2] === 'up-to-date' || u[2] === 'failed-trial') && startedAt > pushDoneAt) {
          if (opts.cycleMs === undefined && pushedOnce) throw new Error(`${opts.name}: the machine did not take v${m.pushed} (${u[2]})\n${vm.tail()}`);
          state.newer = await publish(m);
          pushedOnce = true;
          pushDoneAt = vm.text.length;
        }
        continue;
      }
      if (opts.cycleMs === undefined) {
        if (pushedOnce && /CUT-COMMIT rc=0 trial=1/.test(text.slice(mark))) {
          cycleMs = Date.now() - checkedAt;
          break;
        }
        if (Date.now() - checkedAt > 1_800_000) throw new Error(`${opts.name}: no update cycle finished in 30 minutes\n${vm.tail()}`);
      } else if (Date.now() >= deadline!) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    report.phase = phaseAt(vm.text, mark);
    report.cutAtSec = Math.round((Date.now() - checkedAt) / 100) / 10;
  } finally {
    await vm.kill();
    report.seconds = Math.round((Date.now() - t0) / 100) / 10;
    // What this round's console says the machine committed; the next round checks it.
    state.good = committedAfter(vm.text, state.good);
    if (state.newer !== undefined && state.newer <= state.good) delete state.newer;
  }
  return { report, ...(cycleMs === undefined ? {} : { cycleMs }) };
}

export interface CampaignOptions {
  bootloader: Bootloader;
  rounds: number;
  seed: number;
  work: string;
  /** Where the report goes (JSON lines, one per round, then a summary line). */
  reportFile: string;
  log?: (s: string) => void;
}

export interface CampaignSummary {
  bootloader: Bootloader;
  seed: number;
  rounds: number;
  /** Cuts a boot checked: round 0's kill after its commit, then one per round. */
  cuts: number;
  cycleSec: number;
  /** What came up after the cuts. */
  cameUp: Record<string, number>;
  failedRounds: number[];
  /** The phases the checked cuts fell in, and what came up after each. */
  phases: Record<string, number>;
  byPhase: Record<string, Record<string, number>>;
  versionsCommitted: number;
  /** The stage fs after the last round: leftovers, staged images, KiB used (and the most any round saw). */
  store?: { tmp: number; staged: number; usedKiB: number; maxUsedKiB: number };
  seconds: number;
}

function storeSummary(rounds: RoundReport[]): Pick<CampaignSummary, 'store'> {
  const seen = rounds.flatMap((r) => (r.store ? [r.store] : []));
  const last = seen.at(-1);
  return last ? { store: { ...last, maxUsedKiB: Math.max(...seen.map((s) => s.usedKiB)) } } : {};
}

/** What came up after the cuts of each phase. */
export function byPhase(rounds: RoundReport[]): Record<string, Record<string, number>> {
  const out: Record<string, Record<string, number>> = {};
  for (const r of rounds) {
    const p = (out[r.checked?.phase ?? '?'] ??= {});
    p[r.verdict] = (p[r.verdict] ?? 0) + 1;
  }
  return out;
}

/** Round 0 measures the cycle; rounds 1..N cut it at random. A failed round keeps its disk and the next starts from the template. */
export async function campaign(o: CampaignOptions): Promise<{ summary: CampaignSummary; rounds: RoundReport[] }> {
  const log = o.log ?? (() => undefined);
  const t0 = Date.now();
  await mkdir(path.dirname(o.reportFile), { recursive: true });
  await writeFile(o.reportFile, '');
  const m = await makeMachine(path.join(o.work, o.bootloader), o.bootloader, log);
  const rounds: RoundReport[] = [];
  try {
    const state: MachineState = { good: 1 };
    const name = (k: number) => `powercut-${o.bootloader}-${o.seed}-${k}`;
    log('round 0: one update cycle without a cut, to measure it');
    const first = await round(m, state, { round: 0, seed: o.seed, fraction: 1, name: name(0) });
    if (first.cycleMs === undefined || failed(first.report)) throw new Error(`round 0 did not finish an update cycle: ${JSON.stringify(first.report)}`);
    const cycleMs = first.cycleMs;
    log(`round 0: the cycle takes ${(cycleMs / 1000).toFixed(0)} s`);
    await appendFile(o.reportFile, `${JSON.stringify(first.report)}\n`);
    const next = rng(o.seed);
    let prev = first.report;
    let progressAt = 0;
    let progress = JSON.stringify(state);
    // Each boot checks the cut before it; one more boot after the last round checks the last cut.
    for (let k = 1; k <= o.rounds + 1; k++) {
      const check = k > o.rounds;
      if (check) log('a last boot to check the last cut');
      const fraction = check ? 0 : next();
      const { report } = await round(m, state, { round: k, seed: o.seed, fraction, cycleMs: check ? 0 : cycleMs, name: name(k) });
      report.checked = { round: prev.round, phase: prev.phase, cutAtSec: prev.cutAtSec };
      if (check) report.check = true;
      prev = report;
      if (JSON.stringify(state) !== progress) {
        progress = JSON.stringify(state);
        progressAt = k;
      } else if (k - progressAt >= STALL_ROUNDS) report.stalled = true;
      if (failed(report)) {
        progressAt = k;
        report.savedDisk = path.join(ARTIFACTS, `${name(k)}.img`);
        await run('cp', ['--sparse=always', m.disk, report.savedDisk]);
        await run('cp', ['--sparse=always', m.template, m.disk]);
        state.good = 1;
        if (m.pushed > 1) state.newer = m.pushed;
      }
      rounds.push(report);
      await appendFile(o.reportFile, `${JSON.stringify(report)}\n`);
      log(
        `round ${k}: after the cut in ${report.checked.phase} came up: ${report.verdict}${report.cameUp ? ` v${report.cameUp.version}${report.cameUp.trial ? ' (trial)' : ''}${report.cameUp.fellBack ? ' (fell back)' : ''}` : ''}` +
          `, verify ${report.verify ?? '-'}, updates ${report.updates.join(' ') || '-'}` +
          `${report.store ? `, stage fs ${(report.store.usedKiB / 1024).toFixed(0)} MiB, ${report.store.staged} staged, ${report.store.tmp} leftovers` : ''}${report.stalled ? `  STUCK (no progress in ${STALL_ROUNDS} rounds)` : ''}${failed(report) ? '  FAILED' : ''}` +
          (check ? '' : `; cut at ${report.cutAtSec} s (${report.phase})`),
      );
    }
    const count = (f: (r: RoundReport) => string) => {
      const out: Record<string, number> = {};
      for (const r of rounds) out[f(r)] = (out[f(r)] ?? 0) + 1;
      return out;
    };
    const summary: CampaignSummary = {
      bootloader: o.bootloader,
      seed: o.seed,
      rounds: rounds.length,
      cuts: rounds.length,
      cycleSec: Math.round(cycleMs / 1000),
      cameUp: count((r) => r.verdict),
      failedRounds: rounds.filter(failed).map((r) => r.round),
      phases: count((r) => r.checked?.phase ?? '?'),
      byPhase: byPhase(rounds),
      versionsCommitted: state.good,
      ...storeSummary(rounds),
      seconds: Math.round((Date.now() - t0) / 1000),
    };
    await appendFile(o.reportFile, `${JSON.stringify({ summary })}\n`);
    return { summary, rounds };
  } finally {
    await m.stop();
  }
}

/**
 * Boot reads (issue 16, benchmark 2): one Debian bookworm + systemd image (darch installed
 * from its .deb, booted by GRUB and its own initramfs with darch's hook), its squashfs written
 * two ways, side by side in one run:
 *
 *   unsorted  the baseline: the files in the image's own order (`stage upload --no-order`)
 *   sorted    in the order a traced boot of the image read them (the first boot of the
 *             unsorted image records it; `darch boot trace` keeps it; `stage upload --order`),
 *             and the initramfs reads that run and the squashfs's tables ahead (the default)
 *   sorted-no-readahead  the same squashfs booted with `darch.readahead=0`: the layout alone
 *
 * Each is booted in qemu (TCG) from a disk throttled like a hard disk (qemu's
 * `throttling.iops-total`, `throttling.bps-total`: every request waits its turn, as a seek
 * does), with tracing off (`darch.trace=0`). Reported per boot: read operations and bytes the
 * guest asked of the disk (qemu's `query-blockstats` over QMP, once the system is up) and the
 * seconds from qemu's start to `systemctl is-system-running --wait` returning in the guest;
 * and the reads from darch's first hook (the squashfs is mounted) on, the part a layout can change.
 * Goals: at least 2× fewer read operations and 25 % less time when sorted. The same GRUB,
 * kernel and initramfs reads are in both.
 *
 * Usage, as root:
 *   npm run -s build && node --import tsx bench/boot-order.ts [--runs 2] [--iops 150] [--mbps 100] [--bootloader grub|systemd-boot] [--work DIR]
 *
 * --bootloader: the boot loader of the three disks (the traced boot uses GRUB either way).
 * GRUB loads the kernel and initramfs in 32 KiB requests; systemd-boot's firmware FAT driver
 * reads them from the ESP in long ones, so the squashfs's part of the boot stands out.
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import path from 'node:path';
import { diskStageFs } from '../src/disk/menu.js';
import { run } from '../src/lib/proc.js';
import { debianSystemdTree, installDarchPackage, serialAutologin } from '../test/helpers/bootimage.js';
import { darchOk } from '../test/helpers/darch.js';
import { Vm } from '../test/helpers/qemu.js';

const arg = (name: string, def: string) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? (process.argv[i + 1] ?? def) : def;
};
const WORK = arg('--work', '/var/tmp/darch-bench-boot');
const RUNS = Number(arg('--runs', '2'));
const IOPS = Number(arg('--iops', '150'));
const MBPS = Number(arg('--mbps', '100'));
const BOOTLOADER = arg('--bootloader', 'grub');
const COMPLETE = /DARCH-BOOT-COMPLETE (\w+)/;

/** query-blockstats of the VM's QMP socket: the virtio disk's read operations and bytes. */
async function blockStats(sock: string): Promise<{ ops: number; bytes: number; waitNs: number }> {
  return new Promise((resolve, reject) => {
    const c = connect(sock);
    let buf = '';
    let step = 0;
    c.on('data', (d) => {
      buf += d.toString();
      for (;;) {
        const nl = buf.indexOf('\n');
        if (nl < 0) return;
        const msg = JSON.parse(buf.slice(0, nl)) as { QMP?: unknown; return?: unknown; error?: unknown };
        buf = buf.slice(nl + 1);
        if (msg.error) return reject(new Error(JSON.stringify(msg.error)));
        if (msg.QMP && step === 0) {
          step = 1;
          c.write('{"execute":"qmp_capabilities"}\n');
        } else if (msg.return !== undefined && step === 1) {
          step = 2;
          c.write('{"execute":"query-blockstats"}\n');
        } else if (msg.return !== undefined && step === 2) {
          const devs = msg.return as Array<{
            device?: string;
            qdev?: string;
            stats: { rd_operations: number; rd_bytes: number; rd_total_time_ns: number };
          }>;
          const disk = devs.reduce((a, b) => (b.stats.rd_bytes > a.stats.rd_bytes ? b : a));
          c.end();
          return resolve({ ops: disk.stats.rd_operations, bytes: disk.stats.rd_bytes, waitNs: disk.stats.rd_total_time_ns });
        }
      }
    });
    c.on('error', reject);
  });
}

/** The image: Debian + systemd, darch from its package, a line on the console once the system is up. */
async function imageTar(): Promise<string> {
  const out = path.join(WORK, 'image.tar');
  const tree = path.join(WORK, 'tree');
  await rm(tree, { recursive: true, force: true });
  await run('cp', ['-a', await debianSystemdTree(), tree]);
  await installDarchPackage(tree, WORK);
  await writeFile(path.join(tree, 'etc/hostname'), 'bench\n');
  // The first (traced) boot keeps its trace on the darch partition.
  await writeFile(path.join(tree, 'etc/fstab'), '/dev/vda1 /boot/efi vfat umask=0077 0 0\n/dev/vda2 /var/lib/darch ext4 defaults 0 0\n');
  await mkdir(path.join(tree, 'boot/efi'), { recursive: true });
  await mkdir(path.join(tree, 'var/lib/darch'), { recursive: true });
  await writeFile(
    path.join(tree, 'etc/systemd/system/darch-bench-report.service'),
    '[Unit]\nDescription=report when the system is up\n[Service]\nType=simple\nExecStart=/bin/sh -c \'echo "DARCH-BOOT-COMPLETE $(systemctl is-system-running --wait)" >/dev/ttyS0\'\n[Install]\nWantedBy=multi-user.target\n',
  );
  await run('chroot', [tree, 'systemctl', 'enable', 'darch-bench-report.service']);
  // A root shell on the console: the traced boot waits there for darch-boot-trace.service.
  await serialAutologin(tree);
  await run('tar', ['-C', tree, '--owner=0', '--group=0', '-cf', out, '.']);
  await rm(tree, { recursive: true, force: true });
  return out;
}

interface BootResult {
  seconds: number;
  ops: number;
  bytes: number;
  /**
   * Seconds the guest's reads took, summed over the reads (qemu's rd_total_time_ns: each
   * request from its arrival to its completion, the throttle's queue included): the time a
   * boot waits for its disk, which TCG's emulated CPU hides in the boot's total.
   */
  readSeconds: number;
  state: string;
  /** Before the initramfs: the firmware, GRUB, the kernel's and initramfs's loading. */
  loadOps: number;
  loadBytes: number;
  /** From darch's first hook (the squashfs mounted) on. */
  rootOps: number;
  rootBytes: number;
}

async function boot(name: string, disk: string, throttled: boolean, after?: (vm: Vm) => Promise<void>): Promise<BootResult> {
  const qmp = path.join(WORK, `${name}.qmp`);
  await rm(qmp, { force: true });
  const vm = await Vm.qemu({
    name,
    disk,
    memoryMiB: 1024,
    cache: 'unsafe',
    ...(throttled ? { drive: `throttling.iops-total=${IOPS},throttling.bps-total=${MBPS * 1024 * 1024}` } : {}),
    extraArgs: ['-qmp', `unix:${qmp},server=on,wait=off`],
  });
  const t0 = Date.now();
  try {
    // Where the root's reads start: darch's hooks run right after the squashfs is mounted.
    // Before it: the firmware, GRUB, the kernel and initramfs, the stage file system; the
    // same in both layouts.
    // The initramfs starts: what came before is the firmware, GRUB, and GRUB's loading of the
    // kernel and initramfs.
    const init = await vm.waitFor(/Loading, please wait/, 900_000);
    const atInit = await blockStats(qmp);
    const hooks = await vm.waitFor(/darch: hook \w+: /, 900_000, init.end);
    const atRoot = await blockStats(qmp);
    const m = await vm.waitFor(COMPLETE, 900_000, hooks.end);
    const seconds = (Date.now() - t0) / 1000;
    const stats = await blockStats(qmp);
    await after?.(vm);
    return {
      seconds,
      ops: stats.ops,
      bytes: stats.bytes,
      readSeconds: Number((stats.waitNs / 1e9).toFixed(2)),
      state: m.match[1] as string,
      loadOps: atInit.ops,
      loadBytes: atInit.bytes,
      rootOps: stats.ops - atRoot.ops,
      rootBytes: stats.bytes - atRoot.bytes,
    };
  } finally {
    await vm.stop();
  }
}

async function main(): Promise<void> {
  await mkdir(WORK, { recursive: true });
  const root = path.join(WORK, 'host');
  await rm(root, { recursive: true, force: true });
  await mkdir(path.join(root, 'etc/darch'), { recursive: true });
  process.stderr.write('building the image (debootstrap is cached)…\n');
  await darchOk(['images', 'import', await imageTar(), 'bench/debian:1'], { root });
  const unsorted = (await darchOk(['--json', 'stage', 'upload', 'bench/debian:1', '--no-order'], { root })).json<{ id: string; tags: string[] }>();
  const args = 'console=ttyS0,115200';
  const traceDisk = path.join(WORK, 'trace.img');
  await darchOk(['disk', 'create', traceDisk, 'bench/debian:1', '--size', '3G', '--kernel-args', args, '--timeout', '1', '--force'], { root });
  process.stderr.write('the traced boot (unthrottled)…\n');
  const traced = await boot('boot-order-trace', traceDisk, false, async (vm) => {
    // The trace is kept once the boot is up: wait for its unit, then for the disk.
    vm.send('\n');
    await vm.waitFor(/root@bench:~# /, 120_000);
    await vm.ok('while systemctl -q is-active darch-boot-trace.service || [ -e /run/darch/trace ]; do sleep 2; done; sync', 900_000);
    process.stderr.write(`${await vm.ok('journalctl -u darch-boot-trace.service -o cat --no-pager | tail -5')}\n`);
  });
  const traceText = await (await diskStageFs(traceDisk)).readText(`/stage/traces/${unsorted.id}.json`);
  if (!traceText) throw new Error(`the traced boot kept no trace (state ${traced.state}); see the console log`);
  const traceFile = path.join(WORK, 'trace.json');
  await writeFile(traceFile, traceText);
  const trace = JSON.parse(traceText) as { files: string[]; events: number; full?: boolean };
  await darchOk(['stage', 'upload', 'bench/debian:1', '--tag', 'bench/debian:sorted', '--order', traceFile], { root });
  const VARIANTS = ['unsorted', 'sorted-no-readahead', 'sorted'] as const;
  type Variant = (typeof VARIANTS)[number];
  const disks = Object.fromEntries(VARIANTS.map((k) => [k, path.join(WORK, `${k}.img`)])) as Record<Variant, string>;
  for (const [k, tag, extra] of [
    ['unsorted', 'bench/debian:1', ''],
    ['sorted-no-readahead', 'bench/debian:sorted', ' darch.readahead=0'],
    ['sorted', 'bench/debian:sorted', ''],
  ] as const)
    await darchOk(
      [
        'disk',
        'create',
        disks[k],
        tag,
        '--size',
        '3G',
        '--bootloader',
        BOOTLOADER,
        '--kernel-args',
        `${args} darch.trace=0${extra}`,
        '--timeout',
        '1',
        '--force',
      ],
      { root },
    );
  const results = Object.fromEntries(VARIANTS.map((k) => [k, []])) as unknown as Record<Variant, BootResult[]>;
  for (let r = 0; r < RUNS; r++) {
    for (const k of VARIANTS) {
      process.stderr.write(`run ${r + 1}/${RUNS}: ${k} (${IOPS} IOPS, ${MBPS} MB/s)…\n`);
      results[k].push(await boot(`boot-order-${k}`, disks[k], true));
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
  const sum = (k: Variant) => ({
    seconds: median(results[k].map((x) => x.seconds)),
    readOps: median(results[k].map((x) => x.ops)),
    readBytes: median(results[k].map((x) => x.bytes)),
    readSeconds: median(results[k].map((x) => x.readSeconds)),
    loadReadOps: median(results[k].map((x) => x.loadOps)),
    loadReadBytes: median(results[k].map((x) => x.loadBytes)),
    rootReadOps: median(results[k].map((x) => x.rootOps)),
    rootReadBytes: median(results[k].map((x) => x.rootBytes)),
    states: results[k].map((x) => x.state),
  });
  const u = sum('unsorted');
  const s = sum('sorted');
  const l = sum('sorted-no-readahead');
  const report = {
    bench: 'boot-order',
    throttle: { iops: IOPS, mbps: MBPS },
    bootloader: BOOTLOADER,
    runs: RUNS,
    trace: { files: trace.files.length, events: trace.events, full: trace.full ?? false },
    unsorted: u,
    sorted: s,
    sortedNoReadahead: l,
    ratios: {
      readOpsUnsortedToSorted: Number((u.readOps / s.readOps).toFixed(2)),
      rootReadOpsUnsortedToSorted: Number((u.rootReadOps / s.rootReadOps).toFixed(2)),
      timeSortedToUnsorted: Number((s.seconds / u.seconds).toFixed(3)),
      readTimeSortedToUnsorted: Number((s.readSeconds / u.readSeconds).toFixed(3)),
      readOpsUnsortedToSortedNoReadahead: Number((u.readOps / l.readOps).toFixed(2)),
      rootReadOpsUnsortedToSortedNoReadahead: Number((u.rootReadOps / l.rootReadOps).toFixed(2)),
      timeSortedNoReadaheadToUnsorted: Number((l.seconds / u.seconds).toFixed(3)),
    },
    goalsMet: u.readOps / s.readOps >= 2 && s.seconds / u.seconds <= 0.75,
    all: results,
  };
  process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  process.stderr.write(
    `unsorted: ${u.readOps} reads, ${(u.readBytes / 1e6).toFixed(1)} MB (${u.readSeconds} s of reads), ${u.seconds.toFixed(1)} s\n` +
      `sorted, no readahead: ${l.readOps} reads, ${(l.readBytes / 1e6).toFixed(1)} MB (${l.readSeconds} s of reads), ${l.seconds.toFixed(1)} s\n` +
      `sorted:   ${s.readOps} reads, ${(s.readBytes / 1e6).toFixed(1)} MB (${s.readSeconds} s of reads), ${s.seconds.toFixed(1)} s\n` +
      `from darch's first hook on: unsorted ${u.rootReadOps} reads, sorted without readahead ${l.rootReadOps}, sorted ${s.rootReadOps} (${report.ratios.rootReadOpsUnsortedToSorted}× fewer)\n` +
      `reads ${report.ratios.readOpsUnsortedToSorted}× fewer, time ×${report.ratios.timeSortedToUnsorted}: ${report.goalsMet ? 'PASS' : 'goal not met'}\n`,
  );
}

await main();

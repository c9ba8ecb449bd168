/**
 * A tiny bootable root file system made from the host's busybox-static: no network, no
 * registry, reproducible (fixed mtimes and owners, sorted entries). It is darch's built-in
 * example image and the base for tests that need a real root file system.
 */
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import type { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { run } from '../lib/proc.js';
import { assetPath } from '../lib/assets.js';
import { findStaticBusybox } from '../initramfs/busybox.js';

/** 2024-01-01T00:00:00Z: a fixed time so the same busybox gives the same image digest. */
export const EXAMPLE_MTIME = new Date(1704067200 * 1000);

export interface BusyboxRootfsOptions {
  hostname?: string;
  /** Extra files to add: path (no leading slash) → content. */
  extraFiles?: Record<string, string | { content: string; mode: number }>;
  /** Text of /etc/os-release VERSION_ID, to tell example images apart. */
  version?: string;
}

const RCS = `#!/bin/sh
mount -t proc proc /proc 2>/dev/null
mount -t sysfs sysfs /sys 2>/dev/null
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts && mount -t devpts devpts /dev/pts 2>/dev/null
mount -t tmpfs tmpfs /tmp 2>/dev/null
mount -t tmpfs tmpfs /run 2>/dev/null
[ -f /etc/hostname ] && hostname -F /etc/hostname
echo "darch example: booted $(cat /etc/os-release | grep PRETTY_NAME | cut -d= -f2)"
`;

// The no-systemd equivalent of darch-health.service + darch-mark-good.service (trial boots,
// docs/TRIAL-BOOTS.md): run /etc/darch/health.d/* once the system is up; on a healthy trial
// boot commit it, on an unhealthy one reboot so GRUB's counter runs down.
/** `darch demo` boots unattended: report what booted, then power off (after the trial commit). */
const DEMO_POWEROFF = `#!/bin/sh
grep -q 'darch.demo=poweroff' /proc/cmdline || exit 0
echo "darch demo: running $(grep PRETTY_NAME /etc/os-release | cut -d= -f2), / is $(grep ' / ' /proc/mounts | cut -d' ' -f1,3)"
for w in darch_stageid darch.trial darch.fell_back; do grep -o "$w=[^ ]*" /proc/cmdline; done | sed 's/^/darch demo: /'
echo "darch demo: powering off"
sync
poweroff -f
`;

const INITTAB = `::sysinit:/etc/init.d/rcS
::once:/bin/sh -c '/usr/lib/darch/darch-health --commit; /usr/lib/darch/demo-poweroff'
::respawn:-/bin/sh
ttyS0::respawn:-/bin/sh
::ctrlaltdel:/sbin/reboot
::shutdown:/bin/umount -a -r
`;

const HEALTH_README = `Executables here are darch health checks: each runs once the system is up, in name
order; if any fails on a trial boot the machine reboots and, once the trial's tries are used,
boots the last good image again (see darch's docs/TRIAL-BOOTS.md).
`;

/** Write the example root file system as a tar stream into `out`. */
export async function writeBusyboxRootfs(out: Writable, opts: BusyboxRootfsOptions = {}): Promise<void> {
  const busybox = await findStaticBusybox();
  const list = await run(busybox, ['--list-full']);
  const applets = list.stdout
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && l !== 'bin/busybox');
  const size = (await stat(busybox)).size;
  const version = opts.version ?? '1';
  const files: Record<string, { content: string; mode: number }> = {
    'etc/passwd': { content: 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n', mode: 0o644 },
    'etc/group': { content: 'root:x:0:\nnogroup:x:65534:\n', mode: 0o644 },
    'etc/shadow': { content: 'root::19000:0:99999:7:::\n', mode: 0o600 },
    'etc/hostname': { content: `${opts.hostname ?? 'darch-example'}\n`, mode: 0o644 },
    'etc/os-release': {
      content: `NAME="darch example"\nID=darch-example\nVERSION_ID=${version}\nPRETTY_NAME="darch example ${version} (busybox)"\n`,
      mode: 0o644,
    },
    'etc/inittab': { content: INITTAB, mode: 0o644 },
    'etc/init.d/rcS': { content: RCS, mode: 0o755 },
    'etc/fstab': { content: '# darch example: / is an overlay made by the initramfs\n', mode: 0o644 },
  };
  for (const [name, mode] of [
    ['darch-grubenv.sh', 0o644],
    ['darch-record.sh', 0o644],
    ['darch-health', 0o755],
    ['darch-commit', 0o755],
  ] as const) {
    files[`usr/lib/darch/${name}`] = { content: await readFile(assetPath('trial', name), 'utf8'), mode };
  }
  files['etc/darch/health.d/README'] = { content: HEALTH_README, mode: 0o644 };
  files['usr/lib/darch/demo-poweroff'] = { content: DEMO_POWEROFF, mode: 0o755 };
  for (const [p, v] of Object.entries(opts.extraFiles ?? {})) files[p] = typeof v === 'string' ? { content: v, mode: 0o644 } : v;

  const dirs = new Set(['bin', 'sbin', 'usr', 'usr/bin', 'usr/sbin', 'etc', 'etc/init.d', 'proc', 'sys', 'dev', 'tmp', 'run', 'root', 'var', 'var/log', 'mnt']);
  for (const p of [...applets, ...Object.keys(files)]) {
    const parts = p.split('/');
    for (let i = 1; i < parts.length; i++) dirs.add(parts.slice(0, i).join('/'));
  }
  const pack = tar.pack();
  const done = pipeline(pack, out);
  const common = { uid: 0, gid: 0, uname: 'root', gname: 'root', mtime: EXAMPLE_MTIME };
  const add = (header: Partial<tar.Header> & { name: string }, content?: string | Buffer) =>
    new Promise<void>((resolve, reject) => pack.entry({ ...common, ...header } as tar.Header, content ?? '', (e) => (e ? reject(e) : resolve())));
  for (const d of [...dirs].sort()) await add({ name: `${d}/`, type: 'directory', mode: d === 'tmp' ? 0o1777 : d === 'root' ? 0o700 : 0o755 });
  await new Promise<void>((resolve, reject) => {
    const entry = pack.entry({ ...common, name: 'bin/busybox', size, mode: 0o755, type: 'file' }, (e) => (e ? reject(e) : resolve()));
    createReadStream(busybox).on('error', reject).pipe(entry);
  });
  for (const a of applets.sort()) {
    const depth = a.split('/').length - 1;
    // bin/ls → busybox; sbin/init → ../bin/busybox (a bare "busybox" would dangle there).
    const linkname = a.startsWith('bin/') && depth === 1 ? 'busybox' : `${'../'.repeat(depth)}bin/busybox`;
    await add({ name: a, type: 'symlink', linkname, mode: 0o777 });
  }
  for (const [p, f] of Object.entries(files).sort(([a], [b]) => a.localeCompare(b))) await add({ name: p, type: 'file', mode: f.mode }, f.content);
  pack.finalize();
  await done;
}

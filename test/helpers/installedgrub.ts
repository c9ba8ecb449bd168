/**
 * A machine installed the way the original Darch's users had one: a Debian root with its
 * own GRUB (grub-efi-amd64) on a GPT disk image, ESP + ext4 root, with `grub-install` and
 * `update-grub` run inside it (chroot), as the distribution's installer would. Needs root
 * (loop devices, mount, chroot).
 */
import { mkdir, readFile, rmdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { run } from '../../src/lib/proc.js';
import { debianSystemdTree } from './bootimage.js';

const ESP_TYPE = 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B';
const LINUX_TYPE = '0FC63DAF-8483-4772-8E79-3D69D8477DE4';
const ESP_MIB = 64;

/** The installed system's GRUB settings: a serial console (the tests read it) and a short menu. */
const DEFAULT_GRUB = `GRUB_DEFAULT=0
GRUB_TIMEOUT=2
GRUB_TIMEOUT_STYLE=menu
GRUB_DISTRIBUTOR=\`lsb_release -i -s 2> /dev/null || echo Debian\`
GRUB_CMDLINE_LINUX_DEFAULT=""
GRUB_CMDLINE_LINUX="console=ttyS0,115200"
GRUB_TERMINAL=serial
GRUB_SERIAL_COMMAND="serial --unit=0 --speed=115200"
GRUB_DISABLE_OS_PROBER=true
`;

export interface MountedInstall {
  /** The installed root, mounted, with its ESP at boot/efi and /dev /proc /sys bound in. */
  root: string;
  rootDev: string;
  espDev: string;
  /** Run a command inside the installed system. */
  chroot(cmd: string, args: string[]): Promise<{ stdout: string; stderr: string }>;
  unmount(): Promise<void>;
}

interface Part {
  offset: number;
  size: number;
}

async function partitions(disk: string): Promise<{ esp: Part; root: Part }> {
  const t = JSON.parse((await run('sfdisk', ['--json', disk])).stdout) as {
    partitiontable: { sectorsize?: number; partitions: { start: number; size: number }[] };
  };
  const sector = t.partitiontable.sectorsize ?? 512;
  const [esp, root] = t.partitiontable.partitions.map((p) => ({ offset: p.start * sector, size: p.size * sector }));
  if (!esp || !root) throw new Error(`${disk}: expected an ESP and a root partition`);
  return { esp, root };
}

/**
 * One loop device per partition, not `losetup -P`: the kernels these tests run on do not
 * always scan loop partitions, and GRUB's tools cannot place a loop partition in its disk
 * (no HDIO_GETGEO on loop devices). To grub-probe each is then a whole disk.
 */
async function attach(disk: string, p: Part): Promise<string> {
  return (await run('losetup', ['--show', '-f', '-o', String(p.offset), '--sizelimit', String(p.size), disk])).stdout.trim();
}

/**
 * The ESP: the kernel's vfat where it has one, else fusefat as a block-device FUSE mount
 * (fuseblk, source = the loop device), which grub-install's check that the EFI directory is
 * on a FAT file system still sees through.
 */
async function mountFat(dev: string, dir: string): Promise<void> {
  const vfat = (await readFile('/proc/filesystems', 'utf8')).split('\n').some((l) => l.trim() === 'vfat');
  if (vfat) await run('mount', ['-t', 'vfat', '-o', 'umask=0077', dev, dir]);
  else await run('fusefat', ['-o', `rw+,blkdev,fsname=${dev}`, dev, dir]);
}

/**
 * Attach `disk` and mount its root partition at `mnt` (ESP at boot/efi), with /dev, /proc and
 * /sys bound in so grub-install and grub-probe work in a chroot. unmount() undoes every step
 * that was done, also after a failure half-way.
 */
export async function mountInstall(disk: string, mnt: string): Promise<MountedInstall> {
  const undo: Array<() => Promise<unknown>> = [];
  const unmount = async (): Promise<void> => {
    let first: unknown;
    for (const u of undo.splice(0).reverse()) {
      try {
        await u();
      } catch (err) {
        first ??= err;
      }
    }
    if (first) throw first;
  };
  try {
    const parts = await partitions(disk);
    const rootDev = await attach(disk, parts.root);
    undo.push(() => run('losetup', ['-d', rootDev]));
    const espDev = await attach(disk, parts.esp);
    undo.push(() => run('losetup', ['-d', espDev]));
    await mkdir(mnt, { recursive: true });
    await run('mount', [rootDev, mnt]);
    undo.push(() => run('umount', [mnt]));
    const esp = path.join(mnt, 'boot/efi');
    await mkdir(esp, { recursive: true });
    await mountFat(espDev, esp);
    undo.push(() => run('umount', [esp]));
    for (const [src, dst, type] of [
      ['/dev', 'dev', ''],
      ['proc', 'proc', 'proc'],
      ['sysfs', 'sys', 'sysfs'],
    ] as const) {
      const target = path.join(mnt, dst);
      await mkdir(target, { recursive: true });
      await run('mount', type ? ['-t', type, src, target] : ['--bind', src, target]);
      undo.push(() => run('umount', [target]));
    }
    undo.push(() => run('sync', []));
    return {
      root: mnt,
      rootDev,
      espDev,
      chroot: (cmd, args) =>
        run('chroot', [mnt, cmd, ...args], { env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C', DEBIAN_FRONTEND: 'noninteractive' } }),
      unmount,
    };
  } catch (err) {
    await unmount().catch(() => undefined);
    throw err;
  }
}

/** Mount `disk`, run `fn` on it, and unmount whatever happens. */
export async function withInstall<T>(disk: string, mnt: string, fn: (m: MountedInstall) => Promise<T>): Promise<T> {
  const m = await mountInstall(disk, mnt);
  try {
    return await fn(m);
  } finally {
    await m.unmount();
    await rmdir(mnt).catch(() => undefined);
  }
}

/**
 * A GPT disk image with the cached Debian root installed on it and its GRUB installed to the
 * ESP's removable path (no NVRAM: the VM's firmware finds EFI/BOOT/BOOTX64.EFI by itself),
 * configured by update-grub. Returns the disk; mount it again with withInstall.
 */
export async function installedDebianDisk(work: string, sizeMiB = 2048): Promise<string> {
  const tree = await debianSystemdTree();
  const disk = path.join(work, 'installed.img');
  await run('truncate', ['-s', `${sizeMiB}M`, disk]);
  await run('sfdisk', ['-q', disk], { input: `label: gpt\nsize=${ESP_MIB}MiB, type=${ESP_TYPE}, name=ESP\ntype=${LINUX_TYPE}, name=root\n` });
  const parts = await partitions(disk);
  for (const [p, mkfs] of [
    [parts.esp, ['mkfs.fat', '-F', '32', '-n', 'ESP']],
    [parts.root, ['mkfs.ext4', '-q', '-L', 'debian']],
  ] as const) {
    const dev = await attach(disk, p);
    try {
      await run(mkfs[0], [...mkfs.slice(1), dev]);
    } finally {
      await run('losetup', ['-d', dev]);
    }
  }
  await withInstall(disk, path.join(work, 'mnt'), async (m) => {
    await run('cp', ['-a', `${tree}/.`, m.root]);
    const uuid = async (dev: string) => (await run('blkid', ['-s', 'UUID', '-o', 'value', dev])).stdout.trim();
    await writeFile(
      path.join(m.root, 'etc/fstab'),
      `UUID=${await uuid(m.rootDev)} / ext4 errors=remount-ro 0 1\nUUID=${await uuid(m.espDev)} /boot/efi vfat umask=0077 0 1\n`,
    );
    await writeFile(path.join(m.root, 'etc/default/grub'), DEFAULT_GRUB);
    // Debian's 10_linux writes no entry for a root on a loop device backed by a file, which
    // is what this root is while it is being installed; a real disk's root is its own
    // device. The drop-in is read after grub-mkconfig has probed the device, so it wins.
    await mkdir(path.join(m.root, 'etc/default/grub.d'), { recursive: true });
    await writeFile(path.join(m.root, 'etc/default/grub.d/zz-test-loop-root.cfg'), `GRUB_DEVICE=/dev/disk/by-uuid/${await uuid(m.rootDev)}\n`);
    // part_gpt: grub-install sees the root's loop device as a whole disk (see attach), so it
    // would leave out the partition table module the real disk needs at boot.
    await m.chroot('grub-install', ['--target=x86_64-efi', '--removable', '--efi-directory=/boot/efi', '--no-nvram', '--modules=part_gpt']);
    await m.chroot('update-grub', []);
  });
  return disk;
}

/** The distribution's grub.cfg, as update-grub left it. */
export function distGrubCfg(m: MountedInstall): Promise<string> {
  return readFile(path.join(m.root, 'boot/grub/grub.cfg'), 'utf8');
}

/**
 * Where GRUB finds the stage directory: the UUID of its file system and its path inside it.
 * Asked of findmnt (and blkid) rather than grub-probe, which cannot see through the
 * overlay root of a booted darch image ("failed to get canonical path of 'overlay'").
 */
import path from 'node:path';
import { DarchError } from '../../lib/errors.js';
import { run } from '../../lib/proc.js';

/** File systems GRUB can read a kernel from. */
const GRUB_READABLE = new Set([
  'ext2',
  'ext3',
  'ext4',
  'vfat',
  'msdos',
  'btrfs',
  'xfs',
  'f2fs',
  'jfs',
  'reiserfs',
  'hfsplus',
  'exfat',
  'ntfs',
  'zfs',
  'iso9660',
  'udf',
]);

/** Where the stage directory is, as a boot loader names it. */
export interface StageLocation {
  /** File-system UUID of the file system holding the stage directory. */
  uuid: string;
  /** Path of the stage directory inside that file system, starting with '/'. */
  path: string;
}

export interface LocationOverride {
  uuid?: string;
  path?: string;
}

export async function detectStageLocation(stageDir: string, override: LocationOverride = {}): Promise<StageLocation> {
  if (override.uuid && override.path) return { uuid: override.uuid, path: override.path };
  const res = await run('findmnt', ['-n', '-J', '-o', 'TARGET,SOURCE,FSTYPE,UUID,FSROOT', '-T', stageDir], { allowFailure: true });
  if (res.code !== 0) {
    throw new DarchError('E_BOOT_LOCATION', `cannot tell which file system holds ${stageDir}`, {
      hint: 'findmnt (util-linux) must be installed and the directory must exist',
    });
  }
  const fs = (JSON.parse(res.stdout) as { filesystems: { target: string; source: string; fstype: string; uuid: string | null; fsroot: string }[] })
    .filesystems[0];
  if (!fs) throw new DarchError('E_BOOT_LOCATION', `findmnt found no file system for ${stageDir}`);
  if (!GRUB_READABLE.has(fs.fstype)) {
    throw new DarchError('E_BOOT_LOCATION', `${stageDir} is on ${fs.fstype} (${fs.source}), which GRUB cannot boot from`, {
      hint:
        fs.fstype === 'overlay' || fs.fstype === 'tmpfs'
          ? 'inside a booted darch image, mount the darch partition at /var/lib/darch (the fstab hook does this) so staged images survive a reboot'
          : 'keep /var/lib/darch on ext4, vfat, btrfs or xfs',
    });
  }
  let uuid = override.uuid || fs.uuid || '';
  if (!uuid) {
    const b = await run('blkid', ['-s', 'UUID', '-o', 'value', fs.source.replace(/\[.*\]$/, '')], { allowFailure: true });
    uuid = b.stdout.trim();
  }
  if (!uuid) {
    throw new DarchError('E_BOOT_LOCATION', `cannot read the UUID of the file system holding ${stageDir} (${fs.source})`, {
      hint: 'run as root on the machine itself, or set boot.stage_fs_uuid in config.toml (blkid shows it)',
    });
  }
  // A btrfs subvolume or bind mount shows up in FSROOT: GRUB sees paths from the real root.
  const inside = path.posix.join(fs.fsroot.replace(/\[.*\]$/, '') || '/', path.relative(fs.target, path.resolve(stageDir)));
  return { uuid, path: override.path || inside };
}

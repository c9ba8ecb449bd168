/**
 * Finding the EFI system partition, where the boot state (two grubenv copies) lives:
 * either mounted on this machine (/boot/efi, /efi, /boot), or inside a disk image file or
 * block device made by `darch disk create`, which we reach with mtools at the partition's
 * byte offset, so acting on a disk needs no mount, no loop device and no root.
 */
import { open, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { DarchError, fsError, isErrno } from '../../lib/errors.js';
import { run } from '../../lib/proc.js';
import { makeWorkDir } from '../../lib/scratch.js';
import type { DarchPaths } from '../../lib/paths.js';
import type { SmallFiles } from '../../lib/smallfs.js';

export const ESP_TYPE_GUID = 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B';
/** The directory on the ESP that holds darch's grubenv copies (and, for GRUB, nothing else). */
export const ESP_DARCH_DIR = 'EFI/darch';

/** What `MtoolsFat.readFile` reads unless told: a grubenv block (1024 bytes) and one more, to see it is too long. */
const SMALL_FILE_MAX = 1024 + 1;

export interface PartitionInfo {
  index: number;
  /** Byte offset of the partition in the disk. */
  offset: number;
  size: number;
  type: string;
  uuid?: string;
}

interface SfdiskJson {
  partitiontable?: {
    label?: string;
    sectorsize?: number;
    partitions?: Array<{ node: string; start: number; size: number; type: string; uuid?: string }>;
  };
}

/** The partitions of a GPT disk image or device, read with `sfdisk --json`. */
export async function readPartitions(device: string): Promise<PartitionInfo[]> {
  try {
    await stat(device);
  } catch (err) {
    throw fsError(err, `cannot open ${device}`);
  }
  const res = await run('sfdisk', ['--json', device], { allowFailure: true, env: { ...process.env, LC_ALL: 'C' } });
  if (res.code !== 0) {
    throw new DarchError(
      'E_NO_PARTITION_TABLE',
      `${device} has no partition table sfdisk can read${res.stderr.trim() ? `: ${res.stderr.trim().split('\n')[0]}` : ''}`,
      {
        hint: 'give a disk made by `darch disk create` (a GPT with an EFI system partition)',
      },
    );
  }
  const json = JSON.parse(res.stdout) as SfdiskJson;
  const table = json.partitiontable;
  const sector = table?.sectorsize ?? 512;
  return (table?.partitions ?? []).map((p, i) => ({
    index: i + 1,
    offset: p.start * sector,
    size: p.size * sector,
    type: p.type.toUpperCase(),
    uuid: p.uuid,
  }));
}

export async function findEsp(device: string): Promise<PartitionInfo> {
  const parts = await readPartitions(device);
  const esp = parts.find((p) => p.type === ESP_TYPE_GUID);
  if (!esp) {
    throw new DarchError('E_NO_ESP', `${device} has no EFI system partition`, {
      hint: 'give a disk made by `darch disk create`; its first partition is the ESP',
    });
  }
  return esp;
}

const MTOOLS_ENV = { MTOOLS_SKIP_CHECK: '1', MTOOLS_NO_VFAT: '0', LC_ALL: 'C' };

/** `mtools` commands against the FAT file system at `offset` inside `device`. */
export class MtoolsFat implements SmallFiles {
  constructor(
    readonly device: string,
    readonly offset: number,
  ) {}

  get where(): string {
    return `${this.device} (ESP)`;
  }

  read(fatPath: string, maxBytes?: number): Promise<Buffer | undefined> {
    return this.readFile(fatPath.replace(/^\/+/, ''), maxBytes ?? 1024 * 1024);
  }

  /** FAT has no atomic replace: mcopy overwrites, and the device is fsynced before we return. */
  write(fatPath: string, data: Buffer | string): Promise<void> {
    return this.writeFile(fatPath.replace(/^\/+/, ''), Buffer.from(data));
  }

  async list(fatDir: string): Promise<string[]> {
    const r = await this.exec('mdir', ['-b', `::/${fatDir.replace(/^\/+/, '')}`], true);
    if (r.code !== 0) return [];
    return r.stdout
      .split('\n')
      .map((l) => l.trim().replace(/\/+$/, '').split('/').pop() ?? '')
      .filter(Boolean);
  }

  async remove(fatPath: string): Promise<void> {
    await this.exec('mdel', [`::/${fatPath.replace(/^\/+/, '')}`], true);
  }

  private get target(): string {
    return `${this.device}@@${this.offset}`;
  }

  async exec(cmd: string, args: string[], allowFailure = false): Promise<{ code: number; stdout: string; stderr: string }> {
    const res = await run(cmd, ['-i', this.target, ...args], { allowFailure: true, env: { ...process.env, ...MTOOLS_ENV } });
    if (res.code !== 0 && !allowFailure) {
      throw new DarchError('E_ESP_IO', `${cmd} on the ESP of ${this.device} failed: ${res.stderr.trim().split('\n')[0] ?? ''}`, {
        hint: 'check that the disk is a darch disk and not mounted or in use by a running VM',
      });
    }
    return res;
  }

  /** Bytes free on the FAT (mdir's last line: "41 281 024 bytes free"). */
  async freeBytes(): Promise<number> {
    const r = await this.exec('mdir', ['::/']);
    const m = /([\d ]+) bytes free/.exec(r.stdout);
    if (!m?.[1]) throw new DarchError('E_ESP_IO', `cannot read the free space of the ESP of ${this.device}`, { hint: 'check the ESP (fsck.vfat)' });
    return Number(m[1].replace(/ /g, ''));
  }

  /** Copy a host file into the FAT (large files too), replacing one of that name. */
  async put(src: string, fatPath: string): Promise<void> {
    await this.mkdirs(path.posix.dirname(fatPath));
    const res = await this.exec('mcopy', ['-D', 'o', src, `::/${fatPath}`], true);
    if (res.code !== 0) {
      throw new DarchError('E_ESP_IO', `cannot copy ${src} to ${fatPath} on the ESP of ${this.device}: ${res.stderr.trim().split('\n').slice(-1)[0] ?? ''}`, {
        hint: /full|space/i.test(res.stderr)
          ? 'the ESP is full: remove an image from the disk first (darch disk remove)'
          : 'check that the disk is writable and not in use by a running VM',
      });
    }
  }

  /** Remove a directory and what it holds; one that is not there is fine. */
  async removeTree(fatDir: string): Promise<void> {
    await this.exec('mdeltree', [`::/${fatDir.replace(/^\/+/, '')}`], true);
  }

  /** fsync the image or device, so what mtools wrote is on disk. */
  async sync(): Promise<void> {
    const fh = await open(this.device, 'r+');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  }

  /** Copy a file out of the FAT; undefined when it does not exist. Files are small here. */
  async readFile(fatPath: string, maxBytes = SMALL_FILE_MAX): Promise<Buffer | undefined> {
    const dir = await makeWorkDir(os.tmpdir(), 'darchesp');
    try {
      const out = path.join(dir, 'f');
      const res = await this.exec('mcopy', ['-n', `::/${fatPath}`, out], true);
      if (res.code !== 0) {
        if (/not found/i.test(res.stderr)) return undefined;
        throw new DarchError('E_ESP_IO', `cannot read ${fatPath} on the ESP of ${this.device}: ${res.stderr.trim().split('\n')[0] ?? ''}`, {
          hint: 'check that the disk is a darch disk (`sfdisk -l`), readable by you',
        });
      }
      const fh = await open(out, 'r');
      try {
        const buf = Buffer.alloc(maxBytes);
        const { bytesRead } = await fh.read(buf, 0, maxBytes, 0);
        return buf.subarray(0, bytesRead);
      } finally {
        await fh.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  async mkdirs(fatDir: string): Promise<void> {
    const parts = fatDir.split('/').filter(Boolean);
    for (let i = 1; i <= parts.length; i++) {
      const d = parts.slice(0, i).join('/');
      const res = await this.exec('mmd', [`::/${d}`], true);
      if (res.code !== 0 && !/exists/i.test(res.stderr)) {
        // mmd says nothing useful when the directory exists on some versions: check.
        const ls = await this.exec('mdir', ['-b', `::/${d}`], true);
        if (ls.code !== 0) throw new DarchError('E_ESP_IO', `cannot create ${d} on the ESP of ${this.device}: ${res.stderr.trim()}`);
      }
    }
  }

  /** Write a file into the FAT, then fsync the image or device so it is on disk when we return. */
  async writeFile(fatPath: string, data: Buffer): Promise<void> {
    const dir = await makeWorkDir(os.tmpdir(), 'darchesp');
    try {
      const src = path.join(dir, 'f');
      await writeFile(src, data);
      await this.mkdirs(path.posix.dirname(fatPath));
      await this.exec('mcopy', ['-D', 'o', src, `::/${fatPath}`]);
      await this.sync();
    } catch (err) {
      throw fsError(err, `cannot write ${fatPath} on the ESP of ${this.device}`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
}

/** Where the ESP is mounted on this machine: the config's boot.esp, else the usual places. */
export async function localEspDir(paths: DarchPaths, configured: string | undefined): Promise<string> {
  const under = (p: string) => path.join(paths.root, p);
  if (configured) return under(configured);
  const candidates = ['/boot/efi', '/efi', '/boot'];
  for (const c of candidates) {
    try {
      if ((await stat(path.join(under(c), 'EFI'))).isDirectory()) return under(c);
    } catch (err) {
      if (!isErrno(err, 'ENOENT') && !isErrno(err, 'ENOTDIR')) throw fsError(err, `cannot look at ${under(c)}`);
    }
  }
  throw new DarchError('E_NO_ESP', `no EFI system partition found at ${candidates.map(under).join(', ')}`, {
    hint: 'mount the ESP (it holds an EFI/ directory), set boot.esp in config.toml, or use --disk FILE',
  });
}

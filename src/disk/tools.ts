/** mtools and sfdisk on an image file or device, addressed by byte offset (no loop devices). */
import { DarchError } from '../lib/errors.js';
import { run, type RunOptions } from '../lib/proc.js';

const MTOOLS_ENV = { ...process.env, MTOOLS_SKIP_CHECK: '1', MTOOLS_NO_VFAT: '0' };

export function mtarget(disk: string, offset: number): string {
  return `${disk}@@${offset}`;
}

export async function mtools(cmd: string, args: string[], opts: RunOptions = {}) {
  return run(cmd, args, { ...opts, env: MTOOLS_ENV });
}

export interface GptPartition {
  node: string;
  start: number;
  size: number;
  type: string;
  uuid?: string;
  name?: string;
}

export async function readGpt(disk: string): Promise<{ label: string; partitions: GptPartition[]; sectorsize: number }> {
  const res = await run('sfdisk', ['-J', disk], { allowFailure: true });
  if (res.code !== 0) {
    throw new DarchError('E_DISK_FORMAT', `${disk} has no partition table sfdisk can read`, {
      hint: 'is this a disk made by `darch disk create`?',
    });
  }
  const pt = (JSON.parse(res.stdout) as { partitiontable: { label: string; partitions?: GptPartition[]; sectorsize?: number } }).partitiontable;
  return { label: pt.label, partitions: pt.partitions ?? [], sectorsize: pt.sectorsize ?? 512 };
}

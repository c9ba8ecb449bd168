/** Reading a darch disk's ESP from outside it, with mtools (no mount, no root). */
import { run } from '../../src/lib/proc.js';

const MT = { env: { ...process.env, MTOOLS_SKIP_CHECK: '1' } };

/** Byte offsets and size of the ESP (partition 1) and the darch partition (2). */
export async function esp(disk: string): Promise<{ off: number; size: number; darchOff: number }> {
  const pt = JSON.parse((await run('sfdisk', ['-J', disk])).stdout).partitiontable;
  return { off: pt.partitions[0].start * 512, size: pt.partitions[0].size * 512, darchOff: pt.partitions[1].start * 512 };
}

/** File names in one ESP directory, sorted; none when it does not exist. */
export async function mls(disk: string, off: number, dir: string): Promise<string[]> {
  const r = await run('mdir', ['-b', '-i', `${disk}@@${off}`, `::/${dir}`], { ...MT, allowFailure: true });
  return r.stdout
    .split('\n')
    .map((l) => l.trim().split('/').pop() ?? '')
    .filter(Boolean)
    .sort();
}

export async function mcat(disk: string, off: number, file: string): Promise<string> {
  return (await run('mtype', ['-i', `${disk}@@${off}`, `::/${file}`], MT)).stdout;
}

export async function mcopyOut(disk: string, off: number, file: string, to: string): Promise<void> {
  await run('mcopy', ['-i', `${disk}@@${off}`, `::/${file}`, to], MT);
}

export async function mdel(disk: string, off: number, file: string): Promise<void> {
  await run('mdel', ['-i', `${disk}@@${off}`, `::/${file}`], MT);
}

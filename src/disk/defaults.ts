/** Choosing which entry a darch disk boots by default: darch_default in the ESP's grubenv. */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { DarchError } from '../lib/errors.js';
import { run } from '../lib/proc.js';
import { backendOf, diskTarget, resolveImage } from '../boot/target.js';
import { applyState, readEntries, requireEntry, stateFromEntries } from '../boot/sdboot.js';
import { ui } from '../lib/ui.js';
import { reorderDiskMenu } from './menu.js';
import { loadState, saveState, setDefault } from '../boot/state.js';
import { DISK_INFO_PATH, ESP_TYPE, GRUBENV_PATH, type DiskInfo } from './layout.js';
import { mtarget, mtools, readGpt } from './tools.js';

export async function espOffset(disk: string): Promise<number> {
  const gpt = await readGpt(disk);
  const esp = gpt.partitions.find((p) => p.type.toUpperCase() === ESP_TYPE);
  if (!esp) throw new DarchError('E_DISK_FORMAT', `${disk} has no EFI system partition`, { hint: 'is this a disk made by `darch disk create`?' });
  return esp.start * gpt.sectorsize;
}

export async function readDiskInfo(disk: string): Promise<DiskInfo & { espOffset: number }> {
  const off = await espOffset(disk);
  const res = await mtools('mtype', ['-i', mtarget(disk, off), `::/${DISK_INFO_PATH}`], { allowFailure: true });
  if (res.code !== 0) throw new DarchError('E_DISK_FORMAT', `${disk} has no ${DISK_INFO_PATH} on its ESP`, { hint: 'is this a disk made by `darch disk create`?' });
  try {
    return { ...(JSON.parse(res.stdout) as DiskInfo), espOffset: off };
  } catch {
    throw new DarchError('E_DISK_FORMAT', `${disk}: ${DISK_INFO_PATH} is corrupt`, { hint: 'create the disk again' });
  }
}

/** Read, change and write back the ESP's grubenv (grub-editenv on a copy, mcopy back). */
export async function editDiskGrubenv(disk: string, tmpDir: string, set: Record<string, string>, unset: string[] = []): Promise<Record<string, string>> {
  const off = await espOffset(disk);
  const target = mtarget(disk, off);
  const work = await mkdtemp(path.join(tmpDir, 'grubenv-'));
  try {
    const env = path.join(work, 'grubenv');
    const got = await mtools('mcopy', ['-n', '-i', target, `::/${GRUBENV_PATH}`, env], { allowFailure: true });
    if (got.code !== 0) await run('grub-editenv', [env, 'create']);
    const sets = Object.entries(set).map(([k, v]) => `${k}=${v}`);
    if (sets.length) await run('grub-editenv', [env, 'set', ...sets]);
    if (unset.length) await run('grub-editenv', [env, 'unset', ...unset]);
    await mtools('mcopy', ['-o', '-i', target, env, `::/${GRUBENV_PATH}`]);
    const list = await run('grub-editenv', [env, 'list']);
    const out: Record<string, string> = {};
    for (const line of list.stdout.split('\n')) {
      const i = line.indexOf('=');
      if (i > 0) out[line.slice(0, i)] = line.slice(i + 1);
    }
    await readFile(env);
    return out;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

export async function setDiskDefault(disk: string, _tmpDir: string, what: string): Promise<{ tag: string; id: string; entry: string }> {
  // The default is part of the trial-boot state (issue 7): sealed, in both grubenv copies.
  const t = await diskTarget(disk, 10);
  return t.withLock(async () => {
    const images = await t.images();
    let target: ReturnType<typeof resolveImage>;
    try {
      target = resolveImage(images, what);
    } catch (err) {
      if (!(err instanceof DarchError) || err.code !== 'E_NOT_STAGED') throw err;
      throw new DarchError('E_NOT_STAGED', `${what} is not on ${disk}`, { hint: `on the disk: ${images.flatMap((i) => i.tags).join(', ')}` });
    }
    if ((await backendOf(t)) === 'systemd-boot') {
      const entries = await readEntries(t.entries);
      requireEntry(entries, target.stage);
      const tr = setDefault(stateFromEntries(entries), target);
      if (tr.changed) await applyState(t.entries, entries, tr.state);
      return { tag: target.tag, id: target.stage, entry: target.entry };
    }
    const { state } = await loadState(t.storage);
    const tr = setDefault(state.default ? state : { ...state, default: await t.firstEntry() }, target);
    if (tr.changed) await saveState(t.storage, tr.state);
    // What a lost state boots: the disk's first menu entry follows the default.
    try {
      await reorderDiskMenu(disk, target.entry);
    } catch (err) {
      ui.warn(`the default is saved, but the grub.cfg of ${disk} was not reordered: ${(err as Error).message}`);
    }
    return { tag: target.tag, id: target.stage, entry: target.entry };
  });
}

/**
 * Regenerate darch's GRUB file from the staged store. Called after every stage change
 * (upload, tag, remove) and by `darch boot sync`; both copies are written atomically.
 */
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { writeFileAtomic } from '../../lib/scratch.js';
import { fsError } from '../../lib/errors.js';
import type { Config } from '../../lib/config.js';
import type { DarchPaths } from '../../lib/paths.js';
import { cmdlineOf, entryId, menuEntries, renderGrubCfg, type MenuEntry } from './grubcfg.js';
import { localEspDir } from '../shared/esp.js';
import { mountedDiskKernelArgs } from '../shared/disk-json.js';
import { type StageLocation, detectStageLocation } from '../shared/location.js';
import { localDefaultEntry } from './default.js';
import { listStaged } from '../shared/staged.js';
import { GRUB_CFG } from '../../stage/layout.js';

export interface SyncResult {
  location: StageLocation;
  entries: MenuEntry[];
  written: string[];
}

export interface SyncOptions {
  /** Skip detection (a disk being assembled knows its own UUID and layout). */
  location?: StageLocation;
  /** Also write the copy in the config directory (Darch's /etc/darch/grub.cfg). */
  configCopy?: boolean;
  defaultTag?: string;
  config?: Config;
}

export function grubCfgPaths(paths: DarchPaths): { primary: string; copy: string } {
  return { primary: path.join(paths.stageDir, GRUB_CFG), copy: path.join(paths.configDir, GRUB_CFG) };
}

export async function writeGrubCfgFor(stageDir: string, loc: StageLocation, targets: string[], defaultTag?: string, cmdline?: string): Promise<SyncResult> {
  const images = await listStaged(stageDir);
  const entries = menuEntries(images, loc, defaultTag);
  const text = renderGrubCfg(entries, loc, cmdline);
  for (const t of targets) {
    try {
      await mkdir(path.dirname(t), { recursive: true });
      await writeFileAtomic(t, text, 0o644);
    } catch (err) {
      throw fsError(err, `cannot write ${t}`);
    }
  }
  return { location: loc, entries, written: targets };
}

/** The menu syncBootConfig would write, without writing it (`darch boot entries`). */
export async function bootMenu(paths: DarchPaths, opts: SyncOptions = {}): Promise<{ location: StageLocation; entries: MenuEntry[]; defaultTag?: string }> {
  const boot = opts.config?.boot;
  const location = opts.location ?? (await detectStageLocation(paths.stageDir, { uuid: boot?.stage_fs_uuid, path: boot?.stage_fs_path }));
  const images = await listStaged(paths.stageDir);
  // Trial boots (issue 7): the default of the boot state stays the first entry.
  let defaultTag = opts.defaultTag;
  if (defaultTag === undefined) {
    const entry = await localDefaultEntry(paths, boot?.esp);
    if (entry) defaultTag = images.flatMap((i) => i.tags).find((t) => entryId(t) === entry);
  }
  return { location, entries: menuEntries(images, location, defaultTag), ...(defaultTag ? { defaultTag } : {}) };
}

export async function syncBootConfig(paths: DarchPaths, opts: SyncOptions = {}): Promise<SyncResult> {
  await mkdir(paths.stageDir, { recursive: true });
  const { location, defaultTag } = await bootMenu(paths, opts);
  const { primary, copy } = grubCfgPaths(paths);
  return writeGrubCfgFor(
    paths.stageDir,
    location,
    opts.configCopy === false ? [primary] : [primary, copy],
    defaultTag,
    await diskCmdline(paths, opts.config?.boot.esp, primary),
  );
}

/**
 * On a booted darch disk, the kernel arguments its menu sets: disk.json's on the mounted ESP,
 * else what the menu being replaced set (an ESP that is not mounted must not undo a
 * `darch disk kernel-args`). Undefined elsewhere: no line, as before.
 */
async function diskCmdline(paths: DarchPaths, esp: string | undefined, menu: string): Promise<string | undefined> {
  const dir = await localEspDir(paths, esp).catch(() => undefined);
  const fromDisk = dir ? await mountedDiskKernelArgs(dir) : undefined;
  if (fromDisk !== undefined) return fromDisk;
  const current = await readFile(menu, 'utf8').catch(() => undefined);
  return current === undefined ? undefined : cmdlineOf(current);
}

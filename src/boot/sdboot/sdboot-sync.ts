/**
 * systemd-boot's side of the staged store: one Boot Loader Specification entry per staged
 * image (`loader/entries/darch-<id>[+LEFT[-DONE]].conf`) and a copy of its kernel and
 * initramfs on the ESP (`/darch/<id>/vmlinuz`, `/darch/<id>/initrd`), because systemd-boot
 * reads files only from the ESP. Written by `darch disk create --bootloader systemd-boot`
 * (into a directory tree that goes onto the new ESP) and by `darch boot sync` on a running
 * machine (the mounted ESP).
 *
 * A sync never changes an existing entry's name or `version`: those are the trial state
 * (sdboot.ts) that systemd-boot and systemd-bless-boot change by renaming. It writes new
 * files before it removes old ones, and removes an entry before the kernel it points to.
 */
import { mkdir, readFile, readdir, rm, stat, statfs } from 'node:fs/promises';
import path from 'node:path';
import { copyFileAtomic, sweepDeadOwners, writeFileAtomic } from '../../lib/scratch.js';
import type { Config } from '../../lib/config.js';
import { DarchError, fsError, isErrno } from '../../lib/errors.js';
import { withLock } from '../../lib/lock.js';
import type { DarchPaths } from '../../lib/paths.js';
import { formatBytes } from '../../lib/format.js';
import { silentReporter, type Reporter } from '../../lib/report.js';
import { readCmdline } from '../../stage/protect.js';
import { localEspDir } from '../shared/esp.js';
import { mountedDiskKernelArgs } from '../shared/disk-json.js';
import { hooksRel, liveRel } from '../../stage/layout.js';
import { verityKernelArgs } from '../../stage/image-json.js';
import { type StageLocation, detectStageLocation } from '../shared/location.js';
import {
  DirEntryFiles,
  ENTRIES_DIR,
  entryName,
  parseEntryName,
  readEntries,
  renderBlsEntry,
  retune,
  trialArgsOf,
  stateFromEntries,
  VERSION,
  type BlsEntryInput,
} from './sdboot.js';
import { listStaged, type BootableImage } from '../shared/staged.js';
import { bootedFrom, trialKernelArgs } from '../trial/state.js';

/** Debian's package systemd-boot-efi. */
export const SDBOOT_EFI = '/usr/lib/systemd/boot/efi/systemd-bootx64.efi';
export const LOADER_CONF = 'loader/loader.conf';
/** Where the kernels and initramfs images live on the ESP: /darch/<staged id>/. */
export const ESP_IMAGE_DIR = 'darch';
/** FAT clusters, directory entries and the entry files: kept free beyond the kernels' bytes. */
export const ESP_SLACK = 2 * 1024 * 1024;

const SAFE = /^[A-Za-z0-9._+@:/=,-]+$/;

export function espFilesOf(id: string): { linux: string; initrd: string } {
  return { linux: `/${ESP_IMAGE_DIR}/${id}/vmlinuz`, initrd: `/${ESP_IMAGE_DIR}/${id}/initrd` };
}

/** The entry for a staged image: the same kernel parameters as its GRUB menu entry. */
export function blsEntryFor(img: BootableImage, loc: StageLocation, extraArgs: string): BlsEntryInput {
  const rel = `${loc.path.replace(/\/+$/, '')}/${liveRel(img.id)}`;
  if (!SAFE.test(rel)) {
    throw new DarchError('E_BOOT_PATH', `the stage directory path ${rel} has characters a kernel command line cannot carry`, {
      hint: 'keep the stage directory on a path of letters, digits and . _ - /',
    });
  }
  // One entry per image (the trial state is per image); its hooks are those of its first tag.
  const tag = [...img.tags].sort()[0];
  const options = [
    img.image.kernelparams?.trim(),
    `darch_rootfs=${img.image.rootfs}`,
    `darch_dir=UUID=${loc.uuid}:${rel}`,
    `darch_stageid=${img.id}`,
    tag ? `darch_hooks=${hooksRel(tag)}` : undefined,
    ...verityKernelArgs(img.image),
    extraArgs.trim(),
  ].filter(Boolean);
  return { stage: img.id, title: `Darch: ${img.tags.join(', ') || img.id}`, ...espFilesOf(img.id), options: options.join(' ') };
}

export function renderLoaderConf(timeout: number): string {
  return `# written by darch: boot the darch entry with the highest version (the trial, else the default)\ntimeout ${timeout}\ndefault darch-*\n`;
}

/** The kernel and initramfs of an image as (source on the stage fs, name on the ESP, size). */
export async function espCopiesOf(img: BootableImage): Promise<Array<{ src: string; name: 'vmlinuz' | 'initrd'; size: number }>> {
  const out: Array<{ src: string; name: 'vmlinuz' | 'initrd'; size: number }> = [];
  for (const [field, name] of [
    ['kernel', 'vmlinuz'],
    ['initramfs', 'initrd'],
  ] as const) {
    const src = path.join(img.dir, img.image[field]);
    try {
      out.push({ src, name, size: (await stat(src)).size });
    } catch (err) {
      throw new DarchError('E_STAGE_CORRUPT', `staged image ${img.id}: cannot read ${src}: ${(err as Error).message}`, { hint: 'stage the image again' });
    }
  }
  return out;
}

export async function espBytesFor(images: BootableImage[]): Promise<number> {
  let n = 0;
  for (const img of images) for (const c of await espCopiesOf(img)) n += c.size;
  return n;
}

export function espTooSmall(need: number, count: number, but: string, hint: string): DarchError {
  return new DarchError('E_ESP_FULL', `the kernels and initramfs images of ${count} staged image(s) need ${formatBytes(need)} on the ESP, but ${but}`, {
    hint,
  });
}

/** Which boot loader `darch boot sync` writes for on this machine. */
export async function localBootloader(paths: DarchPaths, config: Config): Promise<'grub' | 'systemd-boot'> {
  if (config.boot.bootloader !== 'auto') return config.boot.bootloader;
  let esp: string;
  try {
    esp = await localEspDir(paths, config.boot.esp);
  } catch {
    return 'grub';
  }
  return (await new DirEntryFiles(path.join(esp, ENTRIES_DIR)).list()).some((f) => parseEntryName(f)) ? 'systemd-boot' : 'grub';
}

export interface SdbootEntryRow {
  file: string;
  stage: string;
  tags: string[];
  /** Tries left on a trial entry, 0 for one that failed; absent for a good entry. */
  triesLeft?: number;
  version: number;
  role: 'trial' | 'default' | 'previous' | 'bad' | 'other';
}

/** darch's entries on the mounted ESP, highest version (what systemd-boot boots first) first. */
export async function listSdbootEntries(paths: DarchPaths, config: Config): Promise<{ esp: string; entries: SdbootEntryRow[] }> {
  const esp = await localEspDir(paths, config.boot.esp);
  const tags = new Map((await listStaged(paths.stageDir)).map((i) => [i.id, i.tags]));
  const entries = await readEntries(new DirEntryFiles(path.join(esp, ENTRIES_DIR)));
  // Roles as `darch boot status` reads them (a trial systemd-bless-boot committed keeps version 30).
  const state = stateFromEntries(entries);
  const roleOf = (stage: string): SdbootEntryRow['role'] =>
    state.trial?.stage === stage
      ? 'trial'
      : state.bad.includes(stage)
        ? 'bad'
        : state.default?.stage === stage
          ? 'default'
          : state.previous?.stage === stage
            ? 'previous'
            : 'other';
  const rows = entries.map(
    (e): SdbootEntryRow => ({
      file: e.file,
      stage: e.stage,
      tags: tags.get(e.stage) ?? [],
      ...(e.left !== undefined ? { triesLeft: e.left } : {}),
      version: e.version,
      role: roleOf(e.stage),
    }),
  );
  return { esp, entries: rows.sort((a, b) => b.version - a.version || a.file.localeCompare(b.file)) };
}

/**
 * Why the armed trial could not boot from the mounted ESP as it stands, or [] when it can:
 * an entry a power cut left without its `linux`/`initrd` lines, or a kernel or initramfs
 * copy that is missing or cut short. (FAT keeps no journal: a cut can leave either.)
 */
export async function sdbootTrialProblems(paths: DarchPaths, config: Config): Promise<string[]> {
  const esp = await localEspDir(paths, config.boot.esp);
  const entries = await readEntries(new DirEntryFiles(path.join(esp, ENTRIES_DIR)));
  const trial = entries.find((e) => e.left !== undefined && e.left > 0);
  if (!trial) return [];
  const problems: string[] = [];
  for (const key of ['linux', 'initrd']) if (!new RegExp(`^${key}\\s+\\S`, 'm').test(trial.text)) problems.push(`${trial.file} has no ${key} line`);
  const img = (await listStaged(paths.stageDir)).find((i) => i.id === trial.stage);
  if (!img) return [...problems, `${trial.stage} is not staged`];
  for (const c of await espCopiesOf(img)) {
    const have = await stat(path.join(esp, ESP_IMAGE_DIR, img.id, c.name)).then(
      (st) => st.size,
      () => -1,
    );
    if (have !== c.size) problems.push(`${ESP_IMAGE_DIR}/${img.id}/${c.name} is ${have < 0 ? 'missing' : `${have} bytes, not ${c.size}`}`);
  }
  return problems;
}

export interface SdbootSyncResult {
  esp: string;
  location: StageLocation;
  entries: Array<{ file: string; stage: string; tags: string[] }>;
  written: string[];
  removed: string[];
  copiedBytes: number;
}

/**
 * Bring the mounted ESP in line with the staged store: kernels first, then entries (new or
 * with changed options; an existing entry keeps its file name and version), then entries and
 * kernels of images that are no longer staged.
 */
export async function syncSdbootLocal(
  paths: DarchPaths,
  config: Config,
  lockTimeoutSec: number,
  opts: { location?: StageLocation; report?: Reporter } = {},
): Promise<SdbootSyncResult> {
  const esp = await localEspDir(paths, config.boot.esp);
  await mkdir(paths.stateDir, { recursive: true });
  return withLock(path.join(paths.stateDir, 'boot.lock'), 'the boot state', lockTimeoutSec, async () => {
    const loc = opts.location ?? (await detectStageLocation(paths.stageDir, { uuid: config.boot.stage_fs_uuid, path: config.boot.stage_fs_path }));
    const images = await listStaged(paths.stageDir);
    const extra = config.boot.kernel_args ?? (await mountedDiskKernelArgs(esp)) ?? '';
    const files = new DirEntryFiles(path.join(esp, ENTRIES_DIR));
    const entries = await readEntries(files);
    const inputs = images.map((img) => blsEntryFor(img, loc, extra));

    // 0. Temp copies a crash or power cut left (their owner is gone): the room they take is
    // what the copies below may need.
    await sweepDeadOwners(path.join(esp, ENTRIES_DIR)).catch(() => 0);
    for (const d of await readdir(path.join(esp, ESP_IMAGE_DIR)).catch(() => [] as string[])) {
      await sweepDeadOwners(path.join(esp, ESP_IMAGE_DIR, d)).catch(() => 0);
    }

    // 1. Kernels and initramfs images: refuse before writing anything if they cannot fit.
    const copies: Array<{ src: string; dst: string; size: number }> = [];
    for (const img of images) {
      for (const c of await espCopiesOf(img)) {
        const dst = path.join(esp, ESP_IMAGE_DIR, img.id, c.name);
        const have = await stat(dst).then(
          (s) => s.size,
          () => -1,
        );
        if (have !== c.size) copies.push({ src: c.src, dst, size: c.size });
      }
    }
    const need = copies.reduce((n, c) => n + c.size, 0);
    if (need > 0) {
      const fs = await statfs(esp);
      const free = fs.bavail * fs.bsize;
      if (need + ESP_SLACK > free) {
        const count = new Set(copies.map((c) => path.basename(path.dirname(c.dst)))).size;
        throw espTooSmall(
          need + ESP_SLACK,
          count,
          `${esp} has ${formatBytes(free)} free`,
          'remove staged images (darch stage remove) or make the ESP bigger; nothing was changed',
        );
      }
    }
    for (const c of copies) await copyFileAtomic(c.src, c.dst);

    // 2. Entries. With no good entry yet (a first sync), the booted image or the newest is the default.
    const anyGood = entries.some((e) => e.left === undefined);
    const booted = bootedFrom(await readCmdline()).stage;
    const firstDefault = anyGood ? undefined : (images.find((i) => i.id === booted) ?? images[0])?.id;
    const written: string[] = [];
    const result: SdbootSyncResult['entries'] = [];
    for (const [i, img] of images.entries()) {
      const input = inputs[i]!;
      const ex = entries.find((e) => e.stage === img.id);
      let file: string;
      let text: string;
      if (ex) {
        // The name and version are the trial state: kept. A stale darch.trial=1 on an entry
        // that lost its counter (systemd-bless-boot committed it) goes away.
        file = ex.file;
        // A trial's own arguments come from its entry; one a power cut left without its
        // options line gets darch's defaults again.
        const trialArgs = /^options\s/m.test(ex.text) ? (trialArgsOf(ex.text) ?? '') : trialKernelArgs(config.boot);
        text = retune(renderBlsEntry(input, ex.version), ex.version, ex.left !== undefined && ex.left > 0 ? trialArgs : undefined);
      } else {
        file = entryName(img.id);
        text = renderBlsEntry(input, img.id === firstDefault ? VERSION.default : VERSION.other);
      }
      if (!ex || ex.text !== text) {
        await files.write(file, text);
        written.push(file);
      }
      result.push({ file, stage: img.id, tags: img.tags });
    }

    // 3. What is no longer staged: the entry first, then the files it pointed to.
    const staged = new Set(images.map((i) => i.id));
    const removed: string[] = [];
    for (const e of entries) {
      if (staged.has(e.stage)) continue;
      await files.remove(e.file);
      removed.push(e.file);
    }
    const kdir = path.join(esp, ESP_IMAGE_DIR);
    for (const d of await readdir(kdir).catch(() => [] as string[])) {
      if (/^[a-z0-9]{25}$/.test(d) && !staged.has(d)) {
        await rm(path.join(kdir, d), { recursive: true, force: true });
        removed.push(`${ESP_IMAGE_DIR}/${d}/`);
      }
    }

    const loaderConf = path.join(esp, LOADER_CONF);
    let conf: string | undefined;
    try {
      conf = await readFile(loaderConf, 'utf8');
    } catch (err) {
      if (!isErrno(err, 'ENOENT')) throw fsError(err, `cannot read ${loaderConf}`);
    }
    if (conf === undefined) {
      await mkdir(path.dirname(loaderConf), { recursive: true });
      await writeFileAtomic(loaderConf, renderLoaderConf(3));
      written.push(LOADER_CONF);
    } else if (!/^\s*default\s+darch-\*\s*$/m.test(conf)) {
      (opts.report ?? silentReporter).warn(`${loaderConf} has no \`default darch-*\` line: systemd-boot may not boot darch's default or trial`);
    }
    return { esp, location: loc, entries: result, written, removed, copiedBytes: need };
  });
}

/**
 * `darch disk create`: a bootable UEFI disk (image file or block device) holding staged
 * images, made from plain files: sfdisk writes the GPT, mtools the ESP, and
 * `mkfs.ext4 -d` fills the darch partition at a byte offset. No loop device, no mount,
 * so it also works rootless.
 */
import { constants as fsConstants } from 'node:fs';
import { access, copyFile, lstat, mkdir, open, readFile, readdir, readlink, rm, stat, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { commitFile, fsyncFile, linkOrCopy, makeWorkDir, randomHex, tempName } from '../lib/scratch.js';
import { DarchError, fsError, isErrno } from '../lib/errors.js';
import type { DarchPaths } from '../lib/paths.js';
import { run } from '../lib/proc.js';
import { formatBytes } from '../lib/format.js';
import { silentReporter, type Reporter } from '../lib/report.js';
import { listStaged, type BootableImage } from '../boot/shared/staged.js';
import { matchStaged } from '../stage/store.js';
import { writeGrubCfgFor } from '../boot/grub/sync.js';
import { entryId } from '../boot/grub/grubcfg.js';
import { DirEnvStorage, ENV_BACKUP, ENV_PRIMARY, GRUBENV_BAK_PATH, GRUBENV_PATH } from '../boot/grub/grubenv.js';
import { emptyState } from '../boot/trial/state.js';
import { saveState } from '../boot/grub/envstate.js';
import { readState } from '../boot/bootstate.js';
import { tagsOf, type KnownImage } from '../boot/target.js';
import { diskTarget } from './target.js';
import { DARCH_LABEL, ESP_LABEL, ESP_SIZE, ESP_START, ESP_TYPE, GPT_TAIL, LINUX_TYPE, MiB, SECTOR, STAGE_PATH, renderEmbeddedConfig } from './layout.js';
import { writeDiskJson, type NewDiskInfo } from '../boot/shared/disk-json.js';
import { ESP_DARCH_DIR, MtoolsFat } from '../boot/shared/esp.js';
import { DirFiles } from '../lib/smallfs.js';
import { writeImagesFile } from '../stage/images-json.js';
import { GRUB_CFG, LIVE_DIR, liveRel } from '../stage/layout.js';
import { readMeta, writeMetaIn } from '../stage/meta-json.js';
import { mtarget, mtools } from './tools.js';
import {
  blsEntryFor,
  espBytesFor,
  espCopiesOf,
  espTooSmall,
  ESP_IMAGE_DIR,
  ESP_SLACK,
  LOADER_CONF,
  renderLoaderConf,
  SDBOOT_EFI,
} from '../boot/sdboot/sdboot-sync.js';
import { ENTRIES_DIR, entryName, renderBlsEntry, VERSION } from '../boot/sdboot/sdboot.js';

export const DEFAULT_KERNEL_ARGS = 'console=tty0 console=ttyS0,115200';

export interface CreateDiskOptions {
  target: string;
  /** Staged tags or ids; all staged images when empty. */
  images: string[];
  /** Total size in bytes for an image file (default: what the images need plus headroom). */
  size?: number;
  kernelArgs?: string;
  /** GRUB menu timeout in seconds. */
  timeout?: number;
  /** Required to overwrite a block device. */
  force?: boolean;
  /** The boot loader on the ESP (default GRUB). */
  bootloader?: 'grub' | 'systemd-boot';
  /** Size of the ESP in bytes (default: 64 MiB, or room for the kernels twice over with systemd-boot). */
  espSize?: number;
  report?: Reporter;
}

/** mformat makes FAT32 only from about 33 MiB on; below that the ESP is refused. */
export const MIN_ESP_SIZE = 36 * MiB;

export interface CreateDiskResult extends NewDiskInfo {
  target: string;
  size: number;
  device: boolean;
}

const GRUB_MODULES = [
  'part_gpt',
  'part_msdos',
  'fat',
  'ext2',
  'btrfs',
  'xfs',
  'search',
  'search_fs_uuid',
  'search_fs_file',
  'search_label',
  'normal',
  'linux',
  'echo',
  'test',
  'loadenv',
  'serial',
  'terminal',
  'gzio',
  'xzio',
  'zstd',
  'regexp',
  'configfile',
  'all_video',
  'efi_gop',
  'halt',
  'reboot',
  'sleep',
  'cat',
  'ls',
  'minicmd',
  'true',
  'keystatus',
  'chain',
];

export function parseSize(s: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([KMGT]i?B?|B)?$/i.exec(s.trim());
  if (!m) throw new DarchError('E_USAGE', `invalid size "${s}"`, { hint: 'use a number with K, M, G or T, e.g. 2G' });
  const unit = (m[2] ?? 'B').toUpperCase()[0] ?? 'B';
  const mult = { B: 1, K: 1024, M: MiB, G: 1024 * MiB, T: 1024 * 1024 * MiB }[unit] ?? 1;
  return Math.floor(Number(m[1]) * mult);
}

/** Hardlink a staged directory into the disk tree (same file system), copying if it is not. */
async function linkTree(src: string, dst: string): Promise<number> {
  await mkdir(dst, { recursive: true });
  let bytes = 0;
  for (const ent of await readdir(src, { withFileTypes: true })) {
    const s = path.join(src, ent.name);
    const d = path.join(dst, ent.name);
    if (ent.isDirectory()) bytes += await linkTree(s, d);
    else if (ent.isSymbolicLink()) await symlink(await readlink(s), d);
    else if (ent.isFile()) {
      bytes += (await lstat(s)).size;
      await linkOrCopy(s, d);
    }
  }
  return bytes;
}

async function isBlockDevice(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isBlockDevice();
  } catch {
    return false;
  }
}

async function assertNotMounted(dev: string): Promise<void> {
  const mounts = await readFile('/proc/mounts', 'utf8').catch(() => '');
  const real = dev;
  for (const line of mounts.split('\n')) {
    const src = line.split(' ')[0] ?? '';
    if (src === real || (src.startsWith(real) && /^\d|^p\d/.test(src.slice(real.length)))) {
      throw new DarchError('E_DISK_BUSY', `${src} is mounted`, { hint: `unmount every partition of ${dev} first` });
    }
  }
}

async function deviceSize(dev: string): Promise<number> {
  const res = await run('blockdev', ['--getsize64', dev]);
  return Number(res.stdout.trim());
}

async function sdbootEfiSize(): Promise<number> {
  try {
    return (await stat(SDBOOT_EFI)).size;
  } catch (err) {
    throw new DarchError('E_TOOL_MISSING', `systemd-boot is not installed (${SDBOOT_EFI}: ${isErrno(err, 'ENOENT') ? 'missing' : (err as Error).message})`, {
      hint: 'apt-get install systemd-boot-efi, or make the disk with --bootloader grub',
    });
  }
}

/**
 * Before any work: the target's directory exists and is writable, and an existing file is
 * replaced only with --force. Errors name the path as the user wrote it, and what an
 * existing darch disk holds (its images and boot state), which replacing it would lose.
 */
async function checkTargetFile(target: string, force: boolean): Promise<void> {
  const dir = path.dirname(target);
  let dirStat;
  try {
    dirStat = await stat(dir);
  } catch (err) {
    if (isErrno(err, 'ENOENT') || isErrno(err, 'ENOTDIR')) {
      throw new DarchError('E_FS_ENOENT', `cannot create ${target}: the directory ${dir} does not exist`, {
        hint: `create it first (mkdir -p ${dir}) or write the disk elsewhere`,
      });
    }
    throw fsError(err, `cannot create ${target}`);
  }
  if (!dirStat.isDirectory()) throw new DarchError('E_FS_ENOENT', `cannot create ${target}: ${dir} is not a directory`);
  try {
    await access(dir, fsConstants.W_OK);
  } catch {
    throw new DarchError('E_FS_EACCES', `cannot create ${target}: the directory ${dir} is not writable`, {
      hint: 'write the disk where you may create files, or run as a user who may',
    });
  }
  let existing;
  try {
    existing = await stat(target);
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return;
    throw fsError(err, `cannot look at ${target}`);
  }
  if (existing.isDirectory())
    throw new DarchError('E_USAGE', `cannot create ${target}: it is a directory`, { hint: 'name a file in it, e.g. ' + path.join(target, 'disk.img') });
  if (force) return;
  throw new DarchError('E_DISK_EXISTS', `${target} already exists: replacing it would lose ${await whatWouldBeLost(target, existing.size)}`, {
    hint: 'add --force to replace it, or choose another file name',
  });
}

/** What a file holds, in words: a darch disk's images and boot state, else its size. */
async function whatWouldBeLost(file: string, size: number): Promise<string> {
  let images: KnownImage[];
  let read: Awaited<ReturnType<typeof readState>> | undefined;
  try {
    const t = await diskTarget(file, 0);
    images = await t.images();
    read = await readState(t).catch(() => undefined);
  } catch {
    return `its ${formatBytes(size)} (it is not a darch disk)`;
  }
  const name = (id: string) => tagsOf(images, id).join(',') || id;
  const held = `its ${images.length} image(s) (${images.map((i) => i.tags.join(',') || i.id).join('; ')})`;
  if (!read) return `${held} and its boot state`;
  const { state } = read;
  const parts = [
    state.default ? `default ${name(state.default.stage)}` : 'no default yet',
    ...(state.trial ? [`trial ${name(state.trial.stage)} with ${state.tries} ${state.tries === 1 ? 'try' : 'tries'} left`] : []),
    ...(state.previous ? [`previous ${name(state.previous.stage)}`] : []),
    ...(state.bad.length ? [`bad ${state.bad.map(name).join(', ')}`] : []),
  ];
  return `${held} and its boot state (${parts.join('; ')})`;
}

export async function createDisk(paths: DarchPaths, opts: CreateDiskOptions): Promise<CreateDiskResult> {
  const report = opts.report ?? silentReporter;
  const all = await listStaged(paths.stageDir);
  let chosen: BootableImage[];
  if (opts.images.length === 0) {
    if (all.length === 0) throw new DarchError('E_NOT_STAGED', 'nothing is staged', { hint: 'stage an image first: darch stage upload NAME:TAG' });
    chosen = all;
  } else {
    const byId = new Map<string, BootableImage>();
    const tagsFor = new Map<string, Set<string>>();
    for (const what of opts.images) {
      const { image, tag } = matchStaged(all, what);
      byId.set(image.id, image);
      const set = tagsFor.get(image.id) ?? new Set<string>();
      for (const t of tag ? [tag] : image.tags) set.add(t);
      tagsFor.set(image.id, set);
    }
    // Keep the order the user named them in: the first one is the default entry.
    chosen = [...byId.values()].map((i) => ({ ...i, tags: [...(tagsFor.get(i.id) ?? [])] }));
  }

  const device = await isBlockDevice(opts.target);
  if (device) {
    if (!opts.force) {
      throw new DarchError('E_DISK_DEVICE', `${opts.target} is a block device: everything on it will be erased`, {
        hint: 'add --force if that is what you want',
      });
    }
    await assertNotMounted(opts.target);
  }

  if (!device) await checkTargetFile(opts.target, opts.force ?? false);

  const bootloader = opts.bootloader ?? 'grub';
  // Before anything is collected or written: without it there is no disk to make.
  const sdbootSize = bootloader === 'systemd-boot' ? await sdbootEfiSize() : 0;

  const work = await makeWorkDir(paths.tmpDir, 'disk');
  let out: string | undefined;
  try {
    const tree = path.join(work, 'darch');
    const stageTree = path.join(tree, STAGE_PATH);
    await mkdir(path.join(stageTree, LIVE_DIR), { recursive: true });
    report.step(`collecting ${chosen.length} staged image(s)`);
    let bytes = 0;
    for (const img of chosen) bytes += await linkTree(img.dir, path.join(stageTree, liveRel(img.id)));
    // Newest-first order in listStaged is by creation time; give the disk's images
    // creation order that matches the order chosen (first = default).
    const now = Date.now();
    const stageFiles = new DirFiles(stageTree);
    await writeImagesFile(stageFiles, { version: 1, images: Object.fromEntries(chosen.map((i) => [i.id, { tags: i.tags }])) });
    for (const [n, img] of chosen.entries()) {
      const meta = await readMeta(stageFiles, img.id).catch(() => undefined);
      // Written under a temp name and renamed: the host's hardlinked meta.json stays untouched.
      await writeMetaIn(new DirFiles(path.join(stageTree, liveRel(img.id))), { ...meta, id: img.id, created: new Date(now - n * 1000).toISOString() });
    }

    // systemd-boot reads kernels only from the ESP: it holds a copy of each image's kernel and
    // initramfs, with room to stage as much again later.
    const espNeed = bootloader === 'systemd-boot' ? (await espBytesFor(chosen)) + ESP_SLACK + sdbootSize : 0;
    const espSize = opts.espSize !== undefined ? Math.floor(opts.espSize / MiB) * MiB : Math.max(ESP_SIZE, Math.ceil((espNeed * 2 + 16 * MiB) / MiB) * MiB);
    if (espSize < MIN_ESP_SIZE) {
      throw new DarchError('E_USAGE', `--esp-size ${formatBytes(espSize)} is too small for a FAT32 ESP`, { hint: `give at least ${MIN_ESP_SIZE / MiB}M` });
    }
    if (espNeed > espSize - 2 * MiB) {
      throw espTooSmall(
        espNeed,
        chosen.length,
        `an ESP of ${formatBytes(espSize)} holds about ${formatBytes(espSize - 2 * MiB)}`,
        `give --esp-size at least ${Math.ceil((espNeed + 2 * MiB) / MiB)}M, or fewer images`,
      );
    }
    const DARCH_START = ESP_START + espSize;
    const darchUuid = process.getBuiltinModule('node:crypto').randomUUID();
    const serial = randomHex(4).toUpperCase();
    const espSerial = `${serial.slice(0, 4)}-${serial.slice(4)}`;
    const kernelArgs = opts.kernelArgs ?? DEFAULT_KERNEL_ARGS;
    if (bootloader === 'grub') await writeGrubCfgFor(stageTree, { uuid: darchUuid, path: STAGE_PATH }, [path.join(stageTree, GRUB_CFG)], undefined, kernelArgs);

    // Sizes: the images, ext4 metadata (~5%) and headroom to stage one more image like them.
    const need = Math.ceil((bytes * 1.1 + 64 * MiB) / MiB) * MiB;
    let total: number;
    if (device) total = await deviceSize(opts.target);
    else total = opts.size ?? DARCH_START + Math.max(need * 2, 256 * MiB) + GPT_TAIL;
    total = Math.floor(total / MiB) * MiB;
    const darchSize = total - DARCH_START - GPT_TAIL;
    if (darchSize < need) {
      throw new DarchError('E_DISK_TOO_SMALL', `${formatBytes(total)} is too small: the staged images need ${formatBytes(need + DARCH_START + GPT_TAIL)}`, {
        hint: device ? 'use a bigger device or fewer images' : `give --size at least ${Math.ceil((need + DARCH_START + GPT_TAIL) / MiB)}M`,
      });
    }

    const efi = path.join(work, 'BOOTX64.EFI');
    const envDir = path.join(work, 'env');
    const espTree = path.join(work, 'esp');
    if (bootloader === 'grub') {
      // GRUB for UEFI with its config built in.
      report.step('building GRUB for UEFI');
      const embedded = path.join(work, 'embedded.cfg');
      await writeFile(embedded, renderEmbeddedConfig({ darchUuid, espSerial, kernelArgs, timeout: opts.timeout ?? 3 }));
      await run('grub-mkstandalone', [
        '-O',
        'x86_64-efi',
        '-o',
        efi,
        `--install-modules=${GRUB_MODULES.join(' ')}`,
        '--modules=part_gpt part_msdos fat ext2',
        '--locales=',
        '--fonts=',
        '--themes=',
        `boot/grub/grub.cfg=${embedded}`,
      ]);
      // The boot state (issue 7): two sealed grubenv copies naming the first image the default.
      const firstTag = chosen[0]?.tags[0];
      const initial = firstTag && chosen[0] ? { ...emptyState(), default: { entry: entryId(firstTag), stage: chosen[0].id } } : emptyState();
      await saveState(new DirEnvStorage(envDir), initial);
    } else {
      // systemd-boot: the state is the entries' names and versions; the first image is the default.
      await copyFile(SDBOOT_EFI, efi);
      await mkdir(path.join(espTree, ENTRIES_DIR), { recursive: true });
      await writeFile(path.join(espTree, LOADER_CONF), renderLoaderConf(opts.timeout ?? 3));
      const loc = { uuid: darchUuid, path: STAGE_PATH };
      for (const [n, img] of chosen.entries()) {
        const dir = path.join(espTree, ESP_IMAGE_DIR, img.id);
        await mkdir(dir, { recursive: true });
        for (const c of await espCopiesOf(img)) await linkOrCopy(c.src, path.join(dir, c.name));
        const entry = renderBlsEntry(blsEntryFor(img, loc, kernelArgs), n === 0 ? VERSION.default : VERSION.other);
        await writeFile(path.join(espTree, ENTRIES_DIR, entryName(img.id)), entry);
      }
    }
    const info: NewDiskInfo = {
      version: 1,
      darchUuid,
      espSerial,
      espOffset: ESP_START,
      darchOffset: DARCH_START,
      darchSize,
      kernelArgs,
      bootloader,
      espSize,
      created: new Date().toISOString(),
      images: chosen.map((i) => ({ id: i.id, tags: i.tags })),
    };

    report.step(`writing ${opts.target} (${formatBytes(total)})`);
    // An image file is assembled under a temporary name: a failure leaves any old file as it was.
    out = device ? opts.target : tempName(path.resolve(opts.target));
    if (!device) {
      try {
        const fh = await open(out, 'wx');
        await fh.truncate(total);
        await fh.close();
      } catch (err) {
        throw fsError(err, `cannot create ${out}`);
      }
    }
    const s = (b: number) => b / SECTOR;
    const table = [
      'label: gpt',
      'unit: sectors',
      `first-lba: ${s(ESP_START)}`,
      `start=${s(ESP_START)}, size=${s(espSize)}, type=${ESP_TYPE}, name="EFI system"`,
      `start=${s(DARCH_START)}, size=${s(darchSize)}, type=${LINUX_TYPE}, name="${DARCH_LABEL}"`,
      '',
    ].join('\n');
    await run('sfdisk', ['-q', '--wipe', 'always', out], { input: table });
    const esp = mtarget(out, ESP_START);
    await mtools('mformat', ['-i', esp, '-T', String(s(espSize)), '-H', String(s(ESP_START)), '-N', serial, '-v', ESP_LABEL, '-F', '::']);
    await mtools('mmd', ['-i', esp, '::/EFI', '::/EFI/BOOT', `::/${ESP_DARCH_DIR}`]);
    await mtools('mcopy', ['-i', esp, efi, '::/EFI/BOOT/BOOTX64.EFI']);
    if (bootloader === 'grub') {
      await mtools('mcopy', ['-i', esp, path.join(envDir, ENV_PRIMARY), `::/${GRUBENV_PATH}`]);
      await mtools('mcopy', ['-i', esp, path.join(envDir, ENV_BACKUP), `::/${GRUBENV_BAK_PATH}`]);
    } else {
      const res = await mtools('mcopy', ['-s', '-i', esp, path.join(espTree, 'loader'), path.join(espTree, ESP_IMAGE_DIR), '::/'], { allowFailure: true });
      if (res.code !== 0) {
        throw new DarchError('E_DISK_WRITE', `cannot fill the ESP: ${res.stderr.trim().split('\n').slice(-1)[0] ?? ''}`, {
          hint: /full|space/i.test(res.stderr) ? 'the ESP is too small: give a bigger --esp-size' : undefined,
        });
      }
    }
    await writeDiskJson(new MtoolsFat(out, ESP_START), info);
    const mkfs = await run(
      'mkfs.ext4',
      ['-q', '-F', '-b', '4096', '-L', DARCH_LABEL, '-U', darchUuid, '-d', tree, '-E', `offset=${DARCH_START}`, out, `${darchSize / 1024}k`],
      { allowFailure: true },
    );
    if (mkfs.code !== 0) {
      throw new DarchError('E_DISK_WRITE', `mkfs.ext4 failed: ${mkfs.stderr.trim().split('\n').slice(-1)[0] ?? ''}`, {
        hint: /space|No space|too big|Could not allocate/i.test(mkfs.stderr) ? 'the disk is too small: give a bigger --size' : undefined,
      });
    }
    if (device) await run('partx', ['-u', out], { allowFailure: true });
    else {
      // mkfs.ext4 and mtools leave the bytes in the page cache: on disk before the name.
      await fsyncFile(out);
      await commitFile(out, opts.target);
    }
    return { ...info, target: opts.target, size: total, device };
  } catch (err) {
    if (!device && out) await rm(out, { force: true }).catch(() => undefined);
    throw err;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

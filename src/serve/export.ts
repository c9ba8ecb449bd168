/**
 * `darch serve --export DIR`: what the server answers, as files, for any web or TFTP server
 * (docs/NETBOOT.md). The same paths: boot scripts, bootx64.efi, `live/<id>/…` (hard links to
 * the staged files where the file system allows), hooks tars per tag and per machine.
 * Exporting again brings DIR up to date: new images added, removed ones deleted, scripts
 * rewritten atomically (a client reading them mid-export sees the old or the new).
 */
import { mkdir, readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { fsError } from '../lib/errors.js';
import { linkOrCopy, tempName, writeFileAtomic, commitFile } from '../lib/scratch.js';
import { isStageId } from '../stage/store.js';
import { LIVE_DIR } from '../stage/layout.js';
import { FIRST_STAGE_REL, GRUB_MENU_REL, INDEX_REL, IPXE_REL, renderGrubMenu, renderIpxe } from './boot-scripts.js';
import { hooksTarRel, netEntries, servedImages } from './catalog.js';
import { hooksTar, normalizeMac } from './hooks-tar.js';
import { indexOf, type ServeOptions } from './server.js';

export interface ExportResult {
  dir: string;
  images: string[];
  /** Files written or linked in this export (relative to dir). */
  files: string[];
  /** Staged image directories removed because they are no longer served. */
  removed: string[];
  /** Machine directories (or hooks in them) that were ignored, with why. */
  warnings: string[];
}

async function sameSize(a: string, b: string): Promise<boolean> {
  const [x, y] = await Promise.all([stat(a).catch(() => undefined), stat(b).catch(() => undefined)]);
  return Boolean(x && y && x.size === y.size);
}

export async function exportServed(dir: string, opts: ServeOptions): Promise<ExportResult> {
  const images = await servedImages(opts.stageDir, opts.select, true);
  const files: string[] = [];
  const warnings: string[] = [];
  const write = async (rel: string, data: string | Uint8Array) => {
    const dest = path.join(dir, rel);
    await mkdir(path.dirname(dest), { recursive: true });
    await writeFileAtomic(dest, data);
    files.push(rel);
  };
  const machines: { mac: string; dir: string }[] = [];
  if (opts.machinesDir) {
    const dirs = await readdir(opts.machinesDir, { withFileTypes: true }).catch(() => []);
    for (const n of dirs
      .filter((d) => d.isDirectory())
      .map((d) => d.name)
      .sort()) {
      const mac = normalizeMac(n);
      if (mac) machines.push({ mac, dir: path.join(opts.machinesDir, n) });
      else warnings.push(`${path.join(opts.machinesDir, n)}: not a MAC address, ignored`);
    }
  }
  try {
    for (const img of images) {
      for (const f of [img.kernel, img.initramfs, img.rootfs]) {
        const dest = path.join(dir, f.rel);
        // Staged files never change under their id: one already there is this one.
        if (await sameSize(f.local, dest)) continue;
        await mkdir(path.dirname(dest), { recursive: true });
        const tmp = tempName(dest);
        await linkOrCopy(f.local, tmp);
        await commitFile(tmp, dest);
        files.push(f.rel);
      }
      for (const tag of img.tags) {
        const own = await hooksTar(img.dir, tag);
        if (own) await write(`${LIVE_DIR}/${img.id}/${hooksTarRel(tag)}`, own.data);
        for (const m of machines) {
          const t = await hooksTar(img.dir, tag, m.dir);
          if (!t) continue;
          for (const i of t.ignored) warnings.push(`${path.join(m.dir, i)}: no hook of ${tag} is called ${i}, and it has no hook file: ignored`);
          await write(`${LIVE_DIR}/${img.id}/${hooksTarRel(tag, m.mac)}`, t.data);
        }
      }
    }
    const entries = netEntries(images, opts.baseUrl, opts.kernelArgs);
    await write(GRUB_MENU_REL, renderGrubMenu(entries, opts));
    await write(IPXE_REL, renderIpxe(entries, opts));
    if (opts.firstStage) await write(FIRST_STAGE_REL, opts.firstStage);
    await write(INDEX_REL, `${JSON.stringify(indexOf(images, opts), null, 2)}\n`);
  } catch (err) {
    throw fsError(err, `cannot export to ${dir}`);
  }
  // Images no longer served: after the new menu is in place, so no menu names a removed file.
  const removed: string[] = [];
  const served = new Set(images.map((i) => i.id));
  for (const n of await readdir(path.join(dir, LIVE_DIR)).catch(() => [] as string[])) {
    if (!isStageId(n) || served.has(n)) continue;
    await rm(path.join(dir, LIVE_DIR, n), { recursive: true, force: true });
    removed.push(n);
  }
  return { dir, images: images.map((i) => i.id), files, removed, warnings: [...new Set(warnings)] };
}

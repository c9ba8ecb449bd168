/**
 * What `darch serve` offers (docs/NETBOOT.md): the staged images a network boot may run, one
 * menu entry per tag, newest first, and the URL of every file a client fetches. Read from
 * the stage's contract modules on every request, so an image staged or tagged while the
 * server runs is what the next client boots.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { DarchError, fsError } from '../lib/errors.js';
import { listStaged, type BootableImage } from '../boot/shared/staged.js';
import { hooksRel, liveRel, tagKey } from '../stage/layout.js';
import { matchStaged } from '../stage/store.js';

export interface ServedFile {
  /** Path under the server's base URL (`live/<id>/<name>`). */
  rel: string;
  /** The staged file on this machine. */
  local: string;
  sha256?: string;
}

export interface ServedImage {
  id: string;
  tags: string[];
  created: Date;
  kernel: ServedFile;
  initramfs: ServedFile;
  rootfs: ServedFile & { sha256: string };
  kernelparams?: string;
  /** The staged image's directory (its hook output is in `hooks/<tag-key>/`). */
  dir: string;
}

export interface NetEntry {
  /** A name safe in menus and labels: `darch-<tag-key>`. */
  id: string;
  title: string;
  tag: string;
  stageId: string;
  kernelUrl: string;
  initrdUrl: string;
  /** The kernel command line, URLs absolute. */
  cmdline: string;
}

// Staged files never change under their id: a digest computed once stays true.
const digests = new Map<string, Promise<string>>();

/** sha256 of a staged file meta.json does not list (images staged by the original Darch). */
function digestOf(file: string, size: number, mtime: number): Promise<string> {
  const key = `${file}\0${size}\0${mtime}`;
  let p = digests.get(key);
  if (!p) {
    const h = createHash('sha256');
    p = pipeline(createReadStream(file), h).then(() => h.digest('hex'));
    p.catch(() => digests.delete(key));
    digests.set(key, p);
  }
  return p;
}

async function servedFile(img: BootableImage, name: string): Promise<ServedFile> {
  const sha256 = img.meta?.sha256?.[name];
  return { rel: liveRel(img.id, name), local: path.join(img.dir, name), ...(sha256 ? { sha256 } : {}) };
}

/**
 * The staged images to serve: all of them, or those `select` names (tags or ids, as every
 * stage command takes them). An unknown name is an error at start; later, an image removed
 * from the stage simply drops out of the menu.
 */
export async function servedImages(stageDir: string, select: readonly string[] = [], strict = false): Promise<ServedImage[]> {
  let staged: BootableImage[];
  try {
    staged = await listStaged(stageDir);
  } catch (err) {
    if (err instanceof DarchError) throw err;
    throw fsError(err, `cannot read the staged images in ${stageDir}`);
  }
  let chosen = staged;
  if (select.length > 0) {
    const ids = new Set<string>();
    for (const s of select) {
      try {
        ids.add(matchStaged(staged, s).image.id);
      } catch (err) {
        if (strict) throw err;
      }
    }
    chosen = staged.filter((i) => ids.has(i.id));
  }
  const out: ServedImage[] = [];
  for (const img of chosen) {
    const rootfs = await servedFile(img, img.image.rootfs);
    let sha256 = rootfs.sha256;
    if (!sha256) {
      try {
        const st = await stat(rootfs.local);
        sha256 = await digestOf(rootfs.local, st.size, st.mtimeMs);
      } catch (err) {
        throw fsError(err, `cannot read ${rootfs.local}`);
      }
    }
    out.push({
      id: img.id,
      tags: img.tags,
      created: img.created,
      kernel: await servedFile(img, img.image.kernel),
      initramfs: await servedFile(img, img.image.initramfs),
      rootfs: { ...rootfs, sha256 },
      ...(img.image.kernelparams?.trim() ? { kernelparams: img.image.kernelparams.trim() } : {}),
      dir: img.dir,
    });
  }
  return out;
}

/** `http://host[:port][/prefix]` with no trailing slash: what every served URL starts with. */
export function normalizeBaseUrl(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new DarchError('E_USAGE', `--url ${url} is not a URL`, { hint: 'for example --url http://192.168.1.10:8080' });
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:')
    throw new DarchError('E_USAGE', `--url ${url}: clients fetch over http or https, not ${u.protocol.replace(/:$/, '')}`, {
      hint: 'for example --url http://192.168.1.10:8080',
    });
  if (u.search || u.hash || u.username || u.password)
    throw new DarchError('E_USAGE', `--url ${url} has a query, fragment or credentials: clients cannot use them`, {
      hint: 'give scheme, host, port and path only',
    });
  // Kernel command lines split at spaces, GRUB and iPXE expand $ and quote with '.
  if (/[\s'"$;\\]/.test(decodeURI(u.pathname)))
    throw new DarchError('E_USAGE', `--url ${url} has characters a kernel command line cannot carry`, { hint: 'use a path of letters, digits and / . _ -' });
  return `${u.protocol}//${u.host}${u.pathname.replace(/\/+$/, '')}`;
}

/** The hooks tar of a tag, relative to the image's URL directory (`hooks/<tag-key>.tar`), and a machine's. */
export function hooksTarRel(tag: string, mac?: string): string {
  return `${hooksRel(tag)}${mac ? `.${mac}` : ''}.tar`;
}

/** Menu entries for the served images: one per tag, newest image first (what a client boots by default). */
export function netEntries(images: readonly ServedImage[], baseUrl: string, kernelArgs?: string): NetEntry[] {
  const entries: NetEntry[] = [];
  for (const img of images) {
    for (const tag of [...img.tags].sort()) {
      const params = [
        img.kernelparams,
        `darch_rootfs=${baseUrl}/${img.rootfs.rel}`,
        `darch_rootfs_sha256=${img.rootfs.sha256}`,
        `darch_stageid=${img.id}`,
        `darch_hooks=${hooksRel(tag)}`,
        kernelArgs?.trim(),
      ].filter(Boolean);
      entries.push({
        id: `darch-${tagKey(tag)}`,
        title: `Darch: ${tag}`,
        tag,
        stageId: img.id,
        kernelUrl: `${baseUrl}/${img.kernel.rel}`,
        initrdUrl: `${baseUrl}/${img.initramfs.rel}`,
        cmdline: params.join(' '),
      });
    }
  }
  return entries;
}

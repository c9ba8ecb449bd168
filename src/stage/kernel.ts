/**
 * Find the kernel and initramfs inside an image, from the flattened index alone (nothing
 * from the image runs). In order of precedence:
 *
 * 1. image labels `org.darch.kernel`, `org.darch.initramfs`, `org.darch.kernelparams`;
 * 2. `/usr/lib/darch/image.json` in the image, with Darch's fields `kernel`, `initramfs`,
 *    `kernelparams` (`rootfs` is ignored: darch makes the squashfs itself);
 * 3. `/boot/vmlinuz-<ver>` (highest version) with `/boot/initrd.img-<ver>`,
 *    `/boot/initramfs-<ver>.img` or `/boot/initrd-<ver>[.img]`;
 * 4. `/usr/lib/modules/<ver>/vmlinuz` with `/usr/lib/modules/<ver>/initramfs.img` or the
 *    /boot names above;
 * 5. `/boot/vmlinuz` or `/vmlinuz` (Debian's symlinks) with `/boot/initrd.img` or `/initrd.img`.
 *
 * Relative paths in labels and image.json are relative to /boot. Symlinks are followed
 * inside the image, never on the host.
 */
import { DarchError } from '../lib/errors.js';
import type { Descriptor } from '../oci/mediatypes.js';
import type { ImageStore } from '../oci/store.js';
import { type FlatIndex, layerOfKey } from '../layers/flatten.js';
import { openLayer } from '../layers/open.js';
import { ByteReader, readTar } from '../layers/tar.js';

export const LABEL_KERNEL = 'org.darch.kernel';
export const LABEL_INITRAMFS = 'org.darch.initramfs';
export const LABEL_KERNELPARAMS = 'org.darch.kernelparams';
export const IMAGE_JSON_PATH = '/usr/lib/darch/image.json';

export interface FoundFile {
  /** Path in the image as named (before symlinks). */
  path: string;
  /** Data entry key in the flattened index. */
  key: number;
  size: number;
}

export interface BootFiles {
  kernel: FoundFile & { version?: string };
  initramfs?: FoundFile;
  kernelparams?: string;
  /** How they were found: label, image.json, /boot, modules, symlink. */
  from: string;
}

/** Compare kernel versions: numeric runs numerically, the rest as text. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split(/(\d+)/).filter(Boolean);
  const pb = b.split(/(\d+)/).filter(Boolean);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = pa[i];
    const y = pb[i];
    if (x === undefined) return -1;
    if (y === undefined) return 1;
    const nx = /^\d+$/.test(x);
    const ny = /^\d+$/.test(y);
    if (nx && ny && Number(x) !== Number(y)) return Number(x) - Number(y);
    if (!(nx && ny) && x !== y) return x < y ? -1 : 1;
  }
  return 0;
}

function fileAt(index: FlatIndex, p: string): FoundFile | undefined {
  const r = index.lookup(p);
  if (r?.type !== 'file' || r.key === undefined) return undefined;
  return { path: p.startsWith('/') ? p : `/${p}`, key: r.key, size: r.size ?? 0 };
}

function resolveNamed(p: string): string {
  return p.startsWith('/') ? p : `/boot/${p}`;
}

function initrdFor(index: FlatIndex, version: string): FoundFile | undefined {
  for (const c of [
    `/boot/initrd.img-${version}`,
    `/boot/initramfs-${version}.img`,
    `/boot/initrd-${version}`,
    `/boot/initrd-${version}.img`,
    `/usr/lib/modules/${version}/initramfs.img`,
  ]) {
    const f = fileAt(index, c);
    if (f) return f;
  }
  return undefined;
}

/** Read a small file of the flattened image (one targeted pass over the layer holding it). */
export async function readImageFile(store: ImageStore, index: FlatIndex, key: number, max = 1024 * 1024): Promise<Buffer> {
  const layer = layerOfKey(key);
  const ordinal = Math.floor(key / 8) % 2 ** 32;
  const opened = await openLayer(store, index.layers[layer]!, layer);
  try {
    for await (const e of readTar(new ByteReader(opened.tar))) {
      if (e.ordinal !== ordinal) continue;
      if (e.header.size > max) throw new DarchError('E_BAD_IMAGE', `${e.header.name} is ${e.header.size} bytes, too large`);
      const parts: Buffer[] = [];
      for await (const c of e.body()) parts.push(Buffer.from(c));
      return Buffer.concat(parts);
    }
  } finally {
    opened.close();
  }
  throw new DarchError('E_INTERNAL', 'indexed entry not found on the second read');
}

interface NamedBoot {
  kernel?: string;
  initramfs?: string;
  kernelparams?: string;
}

/** Reads a small file of the image by its entry key (default: a targeted pass over its layer). */
export type ImageFileReader = (key: number) => Promise<Buffer>;

/** image.json is a few lines; the index knows its size before anything is read. */
const MAX_IMAGE_JSON = 1024 * 1024;

export async function findBootFiles(
  store: ImageStore,
  index: FlatIndex,
  labels: Record<string, string> = {},
  imageName = 'the image',
  read: ImageFileReader = (key) => readImageFile(store, index, key, MAX_IMAGE_JSON),
): Promise<BootFiles> {
  const named = async (n: NamedBoot, from: string): Promise<BootFiles | undefined> => {
    if (!n.kernel) return undefined;
    const kp = resolveNamed(n.kernel);
    const kernel = fileAt(index, kp);
    if (!kernel) {
      throw new DarchError('E_NO_KERNEL', `${imageName}: ${from} names kernel ${kp}, which is not a file in the image`, {
        hint: 'fix the path (relative paths are under /boot), or remove it to let darch find the kernel',
      });
    }
    let initramfs: FoundFile | undefined;
    if (n.initramfs) {
      const ip = resolveNamed(n.initramfs);
      initramfs = fileAt(index, ip);
      if (!initramfs) throw new DarchError('E_NO_KERNEL', `${imageName}: ${from} names initramfs ${ip}, which is not a file in the image`);
    }
    const version = /vmlinuz-(.+)$/.exec(kp)?.[1];
    return { kernel: { ...kernel, ...(version ? { version } : {}) }, initramfs, kernelparams: n.kernelparams, from };
  };

  // 1. labels
  const fromLabels = await named(
    { kernel: labels[LABEL_KERNEL], initramfs: labels[LABEL_INITRAMFS], kernelparams: labels[LABEL_KERNELPARAMS] },
    `label ${LABEL_KERNEL}`,
  );
  if (fromLabels) return fromLabels;
  const kernelparamsLabel = labels[LABEL_KERNELPARAMS];

  // 2. image.json
  const ij = index.lookup(IMAGE_JSON_PATH);
  let ijParams: string | undefined;
  if (ij?.type === 'file' && ij.key !== undefined) {
    let doc: NamedBoot;
    try {
      if ((ij.size ?? 0) > MAX_IMAGE_JSON) throw new Error(`${IMAGE_JSON_PATH} is ${ij.size} bytes, too large`);
      doc = JSON.parse((await read(ij.key)).toString('utf8')) as NamedBoot;
      if (!doc || typeof doc !== 'object') throw new Error('not an object');
    } catch (err) {
      throw new DarchError('E_BAD_IMAGE', `${imageName}: ${IMAGE_JSON_PATH} is not valid JSON (${(err as Error).message})`, {
        hint: 'it must be an object like {"kernel":"vmlinuz-6.1.0","initramfs":"initrd.img-6.1.0","kernelparams":"quiet"}',
      });
    }
    const r = await named(doc, IMAGE_JSON_PATH);
    if (r) return { ...r, kernelparams: kernelparamsLabel ?? r.kernelparams };
    ijParams = doc.kernelparams;
  }
  const params = kernelparamsLabel ?? ijParams;

  // 3. /boot/vmlinuz-<ver>
  const boot = index
    .list('/boot')
    .filter((e) => e.name.startsWith('vmlinuz-') && !e.name.endsWith('.old') && !e.name.endsWith('.sig'))
    .map((e) => e.name.slice('vmlinuz-'.length))
    .filter((v) => fileAt(index, `/boot/vmlinuz-${v}`))
    .sort(compareVersions);
  const bootVer = boot[boot.length - 1];
  if (bootVer !== undefined) {
    const kernel = fileAt(index, `/boot/vmlinuz-${bootVer}`)!;
    const initramfs = initrdFor(index, bootVer) ?? (bootVer === 'linux' ? fileAt(index, '/boot/initramfs-linux.img') : undefined);
    return { kernel: { ...kernel, version: bootVer }, initramfs, kernelparams: params, from: '/boot' };
  }

  // 4. /usr/lib/modules/<ver>/vmlinuz
  const mods = index
    .list('/usr/lib/modules')
    .filter((e) => e.type === 'dir' && fileAt(index, `/usr/lib/modules/${e.name}/vmlinuz`))
    .map((e) => e.name)
    .sort(compareVersions);
  const modVer = mods[mods.length - 1];
  if (modVer !== undefined) {
    const kernel = fileAt(index, `/usr/lib/modules/${modVer}/vmlinuz`)!;
    return { kernel: { ...kernel, version: modVer }, initramfs: initrdFor(index, modVer), kernelparams: params, from: '/usr/lib/modules' };
  }

  // 5. Debian's top-level symlinks
  for (const [k, i] of [
    ['/boot/vmlinuz', '/boot/initrd.img'],
    ['/vmlinuz', '/initrd.img'],
  ] as const) {
    const kernel = fileAt(index, k);
    if (kernel) return { kernel, initramfs: fileAt(index, i), kernelparams: params, from: k };
  }

  throw noKernel(imageName);
}

function noKernel(imageName: string): DarchError {
  return new DarchError('E_NO_KERNEL', `${imageName} has no kernel: looked for /boot/vmlinuz-*, /usr/lib/modules/*/vmlinuz, /boot/vmlinuz and /vmlinuz`, {
    hint: `install a kernel in the image (linux-image-amd64 on Debian), or name it with the ${LABEL_KERNEL} label or ${IMAGE_JSON_PATH}`,
  });
}

/** A path in a layer that could be (or name) the kernel the rules above find. */
function kernelCandidate(name: string): boolean {
  const p = name.replace(/^(\.\/|\/)+/, '').replace(/\/+$/, '');
  const base = p.slice(p.lastIndexOf('/') + 1);
  return base.startsWith('vmlinu') || `/${p}` === IMAGE_JSON_PATH;
}

/**
 * Before one pass compresses anything: refuse an image that cannot have a kernel, known from
 * the layers' headers alone (no layer has a `vmlinu*` path or image.json, and no label names
 * one). Layers are read from the base up (kernels usually come with the base, and a derived
 * image's big upper layers are then never read twice) and the scan stops at the first
 * candidate, so an image with a kernel pays only until its kernel's header, headers only,
 * no squashfs work; whether a candidate really is the kernel is
 * findBootFiles' business after the pass. A layer that cannot be read is left to the pass
 * itself to report.
 */
export async function refuseWithoutKernel(
  store: ImageStore,
  layers: Descriptor[],
  labels: Record<string, string>,
  imageName: string,
  signal?: AbortSignal,
): Promise<void> {
  if (labels[LABEL_KERNEL]) return;
  for (let i = 0; i < layers.length; i++) {
    signal?.throwIfAborted();
    let opened;
    try {
      opened = await openLayer(store, layers[i]!, i);
    } catch {
      return;
    }
    try {
      for await (const { header } of readTar(new ByteReader(opened.tar))) {
        if (kernelCandidate(header.name) || (header.type === 'link' && kernelCandidate(header.linkname))) return;
        signal?.throwIfAborted();
      }
    } catch {
      return;
    } finally {
      opened.close();
    }
  }
  throw noKernel(imageName);
}

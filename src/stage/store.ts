/**
 * The staged store (docs/ARCHITECTURE.md, "Staged images"):
 *
 *   <stage>/images.json        {"version":1,"images":{"<id>":{"tags":[…]}}}   replaced atomically
 *   <stage>/live/<id>/         a complete staged image, renamed into place whole
 *   <stage>/tmp/<kind>-<pid>-<rand>/   work in progress, same file system as live/
 *
 * A staged image exists once its directory is in live/; images.json only names it. So a
 * crash between the rename and the images.json update leaves an untagged image that
 * `stage clean` removes, never a tag pointing at half a directory.
 */
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { fsyncDir, makeWorkDir, ownedTempName, randomHex, sweepDeadOwners } from '../lib/scratch.js';
import { DarchError, fsError, isErrno } from '../lib/errors.js';
import { withLock } from '../lib/lock.js';
import { normalizeRef } from '../oci/reference.js';
import { removeBootOrder } from './boot-order.js';
import { removeFailure } from './failures.js';
import { IMAGES_JSON, readImagesFile, writeImagesFile, type ImagesFile } from './images-json.js';
import { LIVE_DIR, TMP_DIR } from './layout.js';
import { readMeta, type StagedMeta } from './meta-json.js';
import { DirFiles } from '../lib/smallfs.js';
import { bootedId } from './protect.js';

export { IMAGE_JSON, INITRD_FILE, KERNEL_FILE, ROOTFS_FILE } from './image-json.js';
export { META_JSON, type StagedMeta } from './meta-json.js';

export interface StagedImage {
  id: string;
  tags: string[];
  dir: string;
  meta?: StagedMeta;
  /** Set when meta.json is missing or unreadable (a damaged entry is listed, not hidden). */
  problem?: string;
}

const ID_RE = /^[a-z0-9]{25}$/;

/** Shortest id prefix that names a staged image: shorter ones match too much by accident. */
const MIN_ID_PREFIX = 4;

/**
 * The one way every command names a staged image: a tag as written or normalized
 * (`os` is `os:latest`, `localhost:5000/os` is `localhost:5000/os:latest`), else its id or
 * a unique prefix of at least four characters of it. `tag` is the tag that matched.
 */
export function matchStaged<T extends { id: string; tags: readonly string[] }>(list: readonly T[], what: string): { image: T; tag?: string } {
  let norm: string | undefined;
  try {
    norm = normalizeRef(what);
  } catch {
    norm = undefined;
  }
  for (const tag of norm !== undefined && norm !== what ? [what, norm] : [what]) {
    const image = list.find((i) => i.tags.includes(tag));
    if (image) return { image, tag };
  }
  const byId = list.filter((i) => i.id === what || (what.length >= MIN_ID_PREFIX && i.id.startsWith(what)));
  if (byId.length === 1 && byId[0]) return { image: byId[0] };
  if (byId.length > 1)
    throw new DarchError('E_AMBIGUOUS', `${what} matches ${byId.length} staged image ids`, { hint: 'give more characters of the id, or a tag' });
  const tags = list.flatMap((i) => i.tags);
  throw new DarchError('E_NOT_STAGED', `${what} is not staged`, {
    hint: tags.length
      ? `staged: ${tags.slice(0, 10).join(', ')}${tags.length > 10 ? ', …' : ''} (darch stage list)`
      : 'stage an image first: darch stage upload NAME:TAG',
  });
}

export function newStageId(): string {
  // 25 base-36 characters like the original Darch (about 129 bits).
  let s = '';
  while (s.length < 25) s += BigInt(`0x${randomHex(16)}`).toString(36);
  return s.slice(0, 25);
}

export function isStageId(s: string): boolean {
  return ID_RE.test(s);
}

/** Ids a store must keep besides the booted one (the CLI's: the boot state's default, previous and trial). */
export type ProtectionSource = (store: StageStore) => Promise<string[]>;

/**
 * Staged images that must never be removed by retention, `clean` or `remove`: the one the
 * machine booted (darch_stageid= on the kernel command line), and whatever the sources the
 * store was opened with name.
 */
export async function protectedIds(store: StageStore): Promise<Set<string>> {
  const ids = new Set<string>();
  const booted = await bootedId();
  if (booted) ids.add(booted);
  for (const src of store.protection) for (const id of await src(store)) ids.add(id);
  return ids;
}

export class StageStore {
  readonly lockFile: string;

  constructor(
    readonly dir: string,
    readonly lockTimeoutSec = 10,
    /** Ids retention, `remove` and `clean` keep besides the booted one (protectedIds). */
    readonly protection: ProtectionSource[] = [],
    /** Runs before the first write (a booted machine remounts its read-only stage file system). */
    private readonly beforeWrite?: () => Promise<unknown>,
  ) {
    this.lockFile = `${dir.replace(/\/+$/, '')}.lock`;
  }

  get imagesFile(): string {
    return path.join(this.dir, IMAGES_JSON);
  }
  get liveDir(): string {
    return path.join(this.dir, LIVE_DIR);
  }
  get tmpDir(): string {
    return path.join(this.dir, TMP_DIR);
  }
  imageDir(id: string): string {
    return path.join(this.liveDir, id);
  }

  async init(): Promise<void> {
    await this.beforeWrite?.();
    try {
      await mkdir(this.liveDir, { recursive: true });
      await mkdir(this.tmpDir, { recursive: true });
    } catch (err) {
      throw fsError(err, `cannot create the stage directory ${this.dir}`);
    }
  }

  /** Writers hold this lock; readers never need it (images.json is replaced atomically). */
  async withLock<T>(fn: () => Promise<T>): Promise<T> {
    await this.init();
    return withLock(this.lockFile, `the stage ${this.dir}`, this.lockTimeoutSec, fn);
  }

  /** A fresh work directory in tmp/ whose name carries our pid, so sweeps know when it is abandoned. */
  async makeWorkDir(kind: string): Promise<string> {
    await this.init();
    return makeWorkDir(this.tmpDir, kind, 0o755);
  }

  /** Remove work directories of processes that are gone (a crash or kill -9). */
  sweepTemp(): Promise<number> {
    return sweepDeadOwners(this.tmpDir);
  }

  /** The stage directory's own files, for the contract modules. */
  get files(): DirFiles {
    return new DirFiles(this.dir);
  }

  readImages(): Promise<ImagesFile> {
    return readImagesFile(this.files);
  }

  private writeImages(doc: ImagesFile): Promise<void> {
    return writeImagesFile(this.files, doc);
  }

  async liveIds(): Promise<string[]> {
    try {
      return (await readdir(this.liveDir)).filter(isStageId);
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return [];
      throw fsError(err, `cannot read ${this.liveDir}`);
    }
  }

  readMeta(id: string): Promise<StagedMeta> {
    return readMeta(this.files, id);
  }

  /** Every staged image in live/ (tagged or not), newest first. */
  async list(): Promise<StagedImage[]> {
    const doc = await this.readImages();
    const out: StagedImage[] = [];
    for (const id of await this.liveIds()) {
      const img: StagedImage = { id, tags: [...(doc.images[id]?.tags ?? [])].sort(), dir: this.imageDir(id) };
      try {
        img.meta = await this.readMeta(id);
      } catch (err) {
        img.problem = (err as Error).message;
      }
      out.push(img);
    }
    return out.sort((a, b) => (b.meta?.created ?? '').localeCompare(a.meta?.created ?? '') || a.id.localeCompare(b.id));
  }

  /** Find a staged image by tag (a missing tag means :latest), by id, or by a unique id prefix. */
  async get(ref: string): Promise<StagedImage> {
    return matchStaged(await this.list(), ref).image;
  }

  /** Which id a tag points at, if any. */
  async idOfTag(tag: string): Promise<string | undefined> {
    const doc = await this.readImages();
    const t = normalizeRef(tag);
    return Object.entries(doc.images).find(([, v]) => v.tags.includes(t))?.[0];
  }

  /**
   * Point tags at an id (moving them off any other id). Caller holds the lock.
   * Ids that lose their last tag stay in live/ until clean or retention removes them.
   */
  async setTags(id: string, tags: string[]): Promise<void> {
    const doc = await this.readImages();
    const norm = tags.map((t) => normalizeRef(t));
    for (const v of Object.values(doc.images)) v.tags = v.tags.filter((t) => !norm.includes(t));
    const cur = doc.images[id]?.tags ?? [];
    doc.images[id] = { tags: [...new Set([...cur, ...norm])].sort() };
    for (const [k, v] of Object.entries(doc.images)) if (v.tags.length === 0) delete doc.images[k];
    await this.writeImages(doc);
  }

  async untag(tag: string): Promise<string | undefined> {
    const doc = await this.readImages();
    const t = normalizeRef(tag);
    let from: string | undefined;
    for (const [id, v] of Object.entries(doc.images)) {
      if (v.tags.includes(t)) {
        from = id;
        v.tags = v.tags.filter((x) => x !== t);
        if (v.tags.length === 0) delete doc.images[id];
      }
    }
    if (from) await this.writeImages(doc);
    return from;
  }

  private async dropId(id: string): Promise<void> {
    const doc = await this.readImages();
    if (doc.images[id]) {
      delete doc.images[id];
      await this.writeImages(doc);
    }
  }

  /**
   * Delete a staged directory: first renamed out of live/ (one atomic step, so boot code
   * never sees half a directory), then removed. Caller holds the lock and has checked
   * protection.
   */
  async deleteImage(id: string): Promise<void> {
    await this.dropId(id);
    const aside = path.join(this.tmpDir, ownedTempName('removing'));
    try {
      await rename(this.imageDir(id), aside);
      await fsyncDir(this.liveDir);
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return;
      throw fsError(err, `cannot remove staged image ${id}`);
    }
    await rm(aside, { recursive: true, force: true });
    await removeFailure(this.dir, id).catch(() => undefined);
    await removeBootOrder(this.dir, id).catch(() => undefined);
  }

  /** Move a complete work directory into live/<id>. */
  async commit(work: string, id: string): Promise<string> {
    const dest = this.imageDir(id);
    try {
      await stat(dest);
      throw new DarchError('E_EXISTS', `staged image ${id} already exists`);
    } catch (err) {
      if (!isErrno(err, 'ENOENT')) throw err;
    }
    try {
      await fsyncDir(work);
      await rename(work, dest);
      await fsyncDir(this.liveDir);
    } catch (err) {
      throw fsError(err, `cannot move the staged image into ${dest}`);
    }
    return dest;
  }

  /**
   * Retention: keep at most `keep` staged images. Untagged ones go first, then the oldest;
   * protected ids (booted, default, pending trial) and `alsoKeep` are never removed.
   * Caller holds the lock. Returns the removed ids.
   */
  async applyRetention(keep: number, alsoKeep: string[] = []): Promise<string[]> {
    const all = await this.list();
    if (all.length <= keep) return [];
    const prot = new Set([...(await protectedIds(this)), ...alsoKeep]);
    const candidates = all
      .filter((i) => !prot.has(i.id))
      .sort((a, b) => (a.tags.length === 0 ? 0 : 1) - (b.tags.length === 0 ? 0 : 1) || (a.meta?.created ?? '').localeCompare(b.meta?.created ?? ''));
    const removed: string[] = [];
    let count = all.length;
    for (const c of candidates) {
      if (count <= keep) break;
      await this.deleteImage(c.id);
      removed.push(c.id);
      count--;
    }
    return removed;
  }
}

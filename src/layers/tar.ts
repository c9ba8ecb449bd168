/**
 * A small streaming tar reader and header writer, byte-faithful where tar-stream is not:
 * tar-stream decodes pax values as UTF-8, which corrupts binary xattrs such as
 * `security.capability` for capabilities whose bits land on a byte >= 0x80 (cap_setuid,
 * cap_ipc_owner, cap_sys_nice…). Here names are kept as latin1 "binary strings" (one char
 * per byte) and pax values as Buffers, so whatever bytes a layer holds are what we write.
 *
 * Reads ustar, GNU (long names 'L'/'K', base-256 numbers) and pax ('x', 'g') archives.
 * GNU sparse files are refused with a clear error rather than silently mangled.
 */
import { DarchError } from '../lib/errors.js';

export type EntryType = 'file' | 'link' | 'symlink' | 'char' | 'block' | 'dir' | 'fifo';

export interface TarHeader {
  /** Path as a binary (latin1) string, exactly as in the archive (not normalised). */
  name: string;
  type: EntryType;
  mode: number;
  uid: number;
  gid: number;
  uname: string;
  gname: string;
  size: number;
  /** Seconds since the epoch (squashfs keeps whole seconds). */
  mtime: number;
  linkname: string;
  devmajor: number;
  devminor: number;
  /** Extended attributes from SCHILY.xattr.* pax records: name → raw value. */
  xattrs?: Map<string, Buffer>;
}

const BLOCK = 512;

/** Pulls exact byte counts out of an async iterable of chunks without copying more than needed. */
export class ByteReader {
  private buf: Buffer = Buffer.alloc(0);
  private readonly it: AsyncIterator<Buffer>;
  private ended = false;
  /** Bytes consumed so far (for error messages). */
  offset = 0;

  constructor(src: AsyncIterable<Buffer>) {
    this.it = src[Symbol.asyncIterator]();
  }

  private async next(): Promise<Buffer | undefined> {
    if (this.ended) return undefined;
    const r = await this.it.next();
    if (r.done) {
      this.ended = true;
      return undefined;
    }
    return Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value as Uint8Array);
  }

  private async fill(): Promise<boolean> {
    const chunk = await this.next();
    if (!chunk) return false;
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    return true;
  }

  /**
   * Exactly n bytes, or fewer only at end of input. Only the n bytes are copied when they
   * straddle chunks: concatenating whole chunks would copy every layer once more.
   */
  async read(n: number): Promise<Buffer> {
    if (this.buf.length >= n) {
      const out = this.buf.subarray(0, n);
      this.buf = this.buf.subarray(n);
      this.offset += n;
      return out;
    }
    const parts: Buffer[] = this.buf.length ? [this.buf] : [];
    let have = this.buf.length;
    this.buf = Buffer.alloc(0);
    while (have < n) {
      const c = await this.next();
      if (!c) break;
      const take = Math.min(c.length, n - have);
      parts.push(take === c.length ? c : c.subarray(0, take));
      if (take < c.length) this.buf = c.subarray(take);
      have += take;
    }
    this.offset += have;
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts, have);
  }

  /** Yields the next n bytes as they arrive; throws if the input ends first. */
  async *chunks(n: number): AsyncGenerator<Buffer> {
    let left = n;
    while (left > 0) {
      if (this.buf.length === 0 && !(await this.fill())) throw truncated(this.offset);
      const take = Math.min(left, this.buf.length);
      const out = this.buf.subarray(0, take);
      this.buf = this.buf.subarray(take);
      this.offset += take;
      left -= take;
      yield out;
    }
  }

  async skip(n: number): Promise<void> {
    for await (const _ of this.chunks(n)) void _;
  }

  /** Read and discard whatever remains (so a producer such as a decompressor can finish). */
  async drain(): Promise<void> {
    this.buf = Buffer.alloc(0);
    while (await this.fill()) this.buf = Buffer.alloc(0);
  }
}

function truncated(at: number): DarchError {
  return new DarchError('E_TRUNCATED', `tar stream ends unexpectedly at byte ${at}`, { hint: 'the layer is truncated or corrupt' });
}

function badHeader(at: number, why: string): DarchError {
  return new DarchError('E_BAD_LAYER', `invalid tar header at byte ${at}: ${why}`, { hint: 'the layer is not a valid tar archive' });
}

function cstr(b: Buffer, start: number, len: number): string {
  const s = b.subarray(start, start + len);
  const nul = s.indexOf(0);
  return (nul < 0 ? s : s.subarray(0, nul)).toString('latin1');
}

function num(b: Buffer, start: number, len: number, at: number): number {
  const f = b.subarray(start, start + len);
  if (f[0] !== undefined && f[0] & 0x80) {
    // GNU base-256: big-endian two's complement with the top bit as a flag.
    let v = f[0] & 0x7f;
    for (let i = 1; i < f.length; i++) v = v * 256 + (f[i] ?? 0);
    return v;
  }
  const s = cstr(f, 0, len).trim();
  if (s === '') return 0;
  if (!/^[0-7]+$/.test(s)) throw badHeader(at, `bad number field "${s}"`);
  return parseInt(s, 8);
}

function checksumOk(b: Buffer): boolean {
  const stored = cstr(b, 148, 8).trim();
  if (!/^[0-7]+$/.test(stored)) return false;
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : (b[i] ?? 0);
  return sum === parseInt(stored, 8);
}

function parsePax(data: Buffer, at: number): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  let p = 0;
  while (p < data.length) {
    const sp = data.indexOf(0x20, p);
    if (sp < 0) break;
    const len = parseInt(data.subarray(p, sp).toString('latin1'), 10);
    if (!Number.isFinite(len) || len <= 0 || p + len > data.length) throw badHeader(at, 'corrupt pax record');
    const rec = data.subarray(sp + 1, p + len - 1); // without the trailing newline
    const eq = rec.indexOf(0x3d);
    if (eq < 0) throw badHeader(at, 'corrupt pax record');
    out.set(rec.subarray(0, eq).toString('utf8'), Buffer.from(rec.subarray(eq + 1)));
    p += len;
  }
  return out;
}

const TYPES: Record<string, EntryType> = {
  '0': 'file',
  '\0': 'file',
  '': 'file',
  '7': 'file',
  '1': 'link',
  '2': 'symlink',
  '3': 'char',
  '4': 'block',
  '5': 'dir',
  '6': 'fifo',
};

export interface TarEntry {
  header: TarHeader;
  /** Index of the entry within its archive (0-based), counting only real entries. */
  ordinal: number;
}

/**
 * Iterate a tar stream's entries. The caller must consume or skip each entry's body
 * (`reader.chunks(header.size)` / `reader.skip`) before asking for the next one; if it
 * does neither, the body is skipped for it.
 */
export async function* readTar(reader: ByteReader): AsyncGenerator<TarEntry & { body: () => AsyncGenerator<Buffer> }> {
  let global = new Map<string, Buffer>();
  let local = new Map<string, Buffer>();
  let longName: string | undefined;
  let longLink: string | undefined;
  let ordinal = 0;
  for (;;) {
    const at = reader.offset;
    const b = await reader.read(BLOCK);
    if (b.length === 0) return; // some writers omit the end-of-archive blocks
    if (b.length < BLOCK) throw truncated(reader.offset);
    if (b.every((x) => x === 0)) {
      await reader.drain();
      return;
    }
    if (!checksumOk(b)) throw badHeader(at, 'checksum mismatch');
    const flag = String.fromCharCode(b[156] ?? 0);
    let size = num(b, 124, 12, at);
    const padded = (n: number) => Math.ceil(n / BLOCK) * BLOCK;
    if (flag === 'x' || flag === 'g' || flag === 'L' || flag === 'K') {
      if (size > 64 * 1024 * 1024) throw badHeader(at, `metadata record of ${size} bytes`);
      const data = await reader.read(padded(size));
      if (data.length < padded(size)) throw truncated(reader.offset);
      const body = data.subarray(0, size);
      if (flag === 'x') local = new Map([...local, ...parsePax(body, at)]);
      else if (flag === 'g') global = new Map([...global, ...parsePax(body, at)]);
      else {
        const nul = body.indexOf(0);
        const s = (nul < 0 ? body : body.subarray(0, nul)).toString('latin1');
        if (flag === 'L') longName = s;
        else longLink = s;
      }
      continue;
    }
    const type = TYPES[flag];
    if (!type) {
      if (flag === 'S')
        throw new DarchError('E_UNSUPPORTED', `GNU sparse file in layer at byte ${at} (${cstr(b, 0, 100)})`, { hint: 'rebuild the layer without --sparse' });
      // Unknown vendor records (GNU 'D' dump dirs, 'V' volume labels…) carry no file: skip.
      await reader.skip(padded(size));
      local = new Map();
      longName = longLink = undefined;
      continue;
    }
    const pax = new Map([...global, ...local]);
    const magic = cstr(b, 257, 6);
    const prefix = magic.startsWith('ustar') && b[345] !== 0 ? cstr(b, 345, 155) : '';
    let name = longName ?? (prefix ? `${prefix}/${cstr(b, 0, 100)}` : cstr(b, 0, 100));
    let linkname = longLink ?? cstr(b, 157, 100);
    const pv = (k: string) => pax.get(k)?.toString('latin1');
    if (pax.has('path')) name = pv('path')!;
    if (pax.has('linkpath')) linkname = pv('linkpath')!;
    if (pax.has('size')) size = Number(pv('size'));
    let xattrs: Map<string, Buffer> | undefined;
    for (const [k, v] of pax) {
      if (k.startsWith('SCHILY.xattr.')) (xattrs ??= new Map()).set(k.slice('SCHILY.xattr.'.length), v);
    }
    // Old tars mark directories only by a trailing slash on a regular-file entry.
    const realType: EntryType = type === 'file' && name.endsWith('/') ? 'dir' : type;
    const header: TarHeader = {
      name,
      type: realType,
      mode: num(b, 100, 8, at) & 0o7777,
      uid: pax.has('uid') ? Number(pv('uid')) : num(b, 108, 8, at),
      gid: pax.has('gid') ? Number(pv('gid')) : num(b, 116, 8, at),
      uname: pax.has('uname') ? pax.get('uname')!.toString('latin1') : cstr(b, 265, 32),
      gname: pax.has('gname') ? pax.get('gname')!.toString('latin1') : cstr(b, 297, 32),
      size: realType === 'file' ? size : 0,
      mtime: pax.has('mtime') ? Math.floor(Number(pv('mtime'))) : num(b, 136, 12, at),
      linkname,
      devmajor: num(b, 329, 8, at),
      devminor: num(b, 337, 8, at),
      ...(xattrs ? { xattrs } : {}),
    };
    local = new Map();
    longName = longLink = undefined;
    // A hard link or other non-file entry may still declare a size; its bytes are skipped.
    const bodyBytes = padded(size);
    let consumed = false;
    const dataSize = header.size;
    const body = async function* (): AsyncGenerator<Buffer> {
      consumed = true;
      yield* reader.chunks(dataSize);
      await reader.skip(bodyBytes - dataSize);
    };
    yield { header, ordinal: ordinal++, body };
    if (!consumed) await reader.skip(bodyBytes);
  }
}

// ---- writing -----------------------------------------------------------------

const TYPEFLAG: Record<EntryType, string> = { file: '0', link: '1', symlink: '2', char: '3', block: '4', dir: '5', fifo: '6' };

function putStr(b: Buffer, s: string, start: number, len: number): void {
  b.write(s.slice(0, len), start, len, 'latin1');
}

function putOctal(b: Buffer, v: number, start: number, len: number): void {
  putStr(b, v.toString(8).padStart(len - 1, '0'), start, len - 1);
  b[start + len - 1] = 0;
}

function fitsOctal(v: number, len: number): boolean {
  return v >= 0 && v < 8 ** (len - 1);
}

function paxRecord(key: string, value: Buffer): Buffer {
  const rest = Buffer.concat([Buffer.from(` ${key}=`, 'utf8'), value, Buffer.from('\n')]);
  // The length prefix counts itself; settle it by iteration.
  let len = rest.length + 1;
  while (String(len).length + rest.length !== len) len = String(len).length + rest.length;
  return Buffer.concat([Buffer.from(String(len), 'latin1'), rest]);
}

function ustarBlock(h: TarHeader, name: string, prefix: string, typeflag: string, size: number, linkname: string): Buffer {
  const b = Buffer.alloc(BLOCK);
  putStr(b, name, 0, 100);
  putOctal(b, h.mode & 0o7777, 100, 8);
  putOctal(b, fitsOctal(h.uid, 8) ? h.uid : 0, 108, 8);
  putOctal(b, fitsOctal(h.gid, 8) ? h.gid : 0, 116, 8);
  putOctal(b, fitsOctal(size, 12) ? size : 0, 124, 12);
  putOctal(b, fitsOctal(h.mtime, 12) ? h.mtime : 0, 136, 12);
  b.fill(0x20, 148, 156);
  putStr(b, typeflag, 156, 1);
  putStr(b, linkname, 157, 100);
  putStr(b, 'ustar\u000000', 257, 8);
  putStr(b, h.uname, 265, 32);
  putStr(b, h.gname, 297, 32);
  putOctal(b, h.devmajor, 329, 8);
  putOctal(b, h.devminor, 337, 8);
  putStr(b, prefix, 345, 155);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += b[i] ?? 0;
  putStr(b, sum.toString(8).padStart(6, '0'), 148, 6);
  b[154] = 0;
  b[155] = 0x20;
  return b;
}

function splitUstar(name: string): { name: string; prefix: string } | undefined {
  if (name.length <= 100) return { name, prefix: '' };
  for (let i = name.indexOf('/'); i >= 0; i = name.indexOf('/', i + 1)) {
    if (i <= 155 && name.length - i - 1 <= 100 && name.length - i - 1 > 0) return { prefix: name.slice(0, i), name: name.slice(i + 1) };
  }
  return undefined;
}

function pad(n: number): Buffer {
  const r = n % BLOCK;
  return Buffer.alloc(r === 0 ? 0 : BLOCK - r);
}

/** The header block(s) for an entry: plain ustar when it fits, a pax record first when not. */
export function encodeHeader(h: TarHeader): Buffer {
  const name = h.type === 'dir' && !h.name.endsWith('/') ? `${h.name}/` : h.name;
  const size = h.type === 'file' ? h.size : 0;
  const split = splitUstar(name);
  const records: Buffer[] = [];
  if (!split) records.push(paxRecord('path', Buffer.from(name, 'latin1')));
  if (h.linkname.length > 100) records.push(paxRecord('linkpath', Buffer.from(h.linkname, 'latin1')));
  if (!fitsOctal(size, 12)) records.push(paxRecord('size', Buffer.from(String(size))));
  if (!fitsOctal(h.uid, 8)) records.push(paxRecord('uid', Buffer.from(String(h.uid))));
  if (!fitsOctal(h.gid, 8)) records.push(paxRecord('gid', Buffer.from(String(h.gid))));
  if (!fitsOctal(h.mtime, 12)) records.push(paxRecord('mtime', Buffer.from(String(h.mtime))));
  for (const [k, v] of h.xattrs ?? []) records.push(paxRecord(`SCHILY.xattr.${k}`, v));
  const main = ustarBlock(h, split?.name ?? name.slice(0, 100), split?.prefix ?? '', TYPEFLAG[h.type], size, h.linkname.slice(0, 100));
  if (records.length === 0) return main;
  const pax = Buffer.concat(records);
  const paxHead = ustarBlock({ ...h, mode: 0o644 }, 'PaxHeader', '', 'x', pax.length, '');
  return Buffer.concat([paxHead, pax, pad(pax.length), main]);
}

/** Padding after `size` bytes of file data. */
export function bodyPadding(size: number): Buffer {
  return pad(size);
}

/** Two zero blocks end an archive. */
export const END_OF_ARCHIVE = Buffer.alloc(BLOCK * 2);

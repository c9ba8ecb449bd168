/**
 * Describe an extracted directory tree (paths, types, modes, owners, sizes, mtimes, link
 * targets, device numbers, xattrs, content hashes, hard-link groups) so two extractions of
 * the same root — umoci's and unsquashfs's — can be compared entry by entry.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { lstatSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import path from 'node:path';

export interface FsEntry {
  type: string;
  mode: string;
  uid: number;
  gid: number;
  size?: number;
  mtime?: number;
  link?: string;
  dev?: string;
  sha256?: string;
  xattrs?: Record<string, string>;
  /** Other paths sharing this inode (hard links), sorted. */
  links?: string[];
}

function typeOf(st: import('node:fs').Stats): string {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isCharacterDevice()) return 'char';
  if (st.isBlockDevice()) return 'block';
  if (st.isFIFO()) return 'fifo';
  if (st.isSocket()) return 'socket';
  return 'other';
}

/** All xattrs under root, via getfattr (one process for the whole tree). */
function xattrsOf(root: string): Map<string, Record<string, string>> {
  const r = spawnSync('getfattr', ['-R', '-P', '-h', '-d', '-m', '-', '-e', 'hex', '--absolute-names', root], { encoding: 'utf8', maxBuffer: 1 << 28 });
  const out = new Map<string, Record<string, string>>();
  let cur: Record<string, string> | undefined;
  for (const line of r.stdout.split('\n')) {
    if (line.startsWith('# file: ')) {
      cur = {};
      out.set(path.relative(root, line.slice(8)), cur);
    } else if (cur && line.includes('=')) {
      const i = line.indexOf('=');
      cur[line.slice(0, i)] = line.slice(i + 1);
    }
  }
  return out;
}

export function snapshotTree(root: string, opts: { mtimes?: boolean } = {}): Map<string, FsEntry> {
  const out = new Map<string, FsEntry>();
  const inodes = new Map<number, string[]>();
  const xattrs = xattrsOf(root);
  const walk = (rel: string) => {
    for (const name of readdirSync(path.join(root, rel)).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      const abs = path.join(root, r);
      const st = lstatSync(abs);
      const type = typeOf(st);
      const e: FsEntry = { type, mode: (st.mode & 0o7777).toString(8), uid: st.uid, gid: st.gid };
      if (type === 'file') {
        e.size = st.size;
        e.sha256 = createHash('sha256').update(readFileSync(abs)).digest('hex');
        if (st.nlink > 1) {
          const l = inodes.get(st.ino) ?? [];
          l.push(r);
          inodes.set(st.ino, l);
        }
      }
      if (type === 'symlink') e.link = readlinkSync(abs);
      if (type === 'char' || type === 'block') e.dev = `${Math.floor(st.rdev / 256)},${st.rdev % 256}`;
      if (opts.mtimes && type !== 'symlink' && type !== 'dir') e.mtime = Math.floor(st.mtimeMs / 1000);
      const x = xattrs.get(r);
      if (x && Object.keys(x).length) e.xattrs = x;
      if (type === 'symlink') e.mode = '777';
      out.set(r, e);
      if (type === 'dir') walk(r);
    }
  };
  walk('');
  for (const paths of inodes.values()) {
    if (paths.length < 2) continue;
    for (const p of paths) out.get(p)!.links = paths.filter((x) => x !== p).sort();
  }
  return out;
}

/** Human-readable differences between two snapshots (empty when equal). */
export function diffTrees(a: Map<string, FsEntry>, b: Map<string, FsEntry>, names = ['a', 'b']): string[] {
  const diffs: string[] = [];
  for (const [p, ea] of a) {
    const eb = b.get(p);
    if (!eb) {
      diffs.push(`${p}: only in ${names[0]}`);
      continue;
    }
    const ja = JSON.stringify(ea);
    const jb = JSON.stringify(eb);
    if (ja !== jb) diffs.push(`${p}:\n  ${names[0]}: ${ja}\n  ${names[1]}: ${jb}`);
  }
  for (const p of b.keys()) if (!a.has(p)) diffs.push(`${p}: only in ${names[1]}`);
  return diffs;
}

/**
 * Hooks for network-booted machines (docs/NETBOOT.md): a staged image's hook output for one
 * tag as a tar, which the initramfs unpacks and runs as it runs a disk's, and per machine
 * (by MAC) the same tar with that machine's own files laid over it: its hostname, its SSH
 * host keys. A machine directory holds one directory per hook, named like the hook
 * (`hostname/hostname`, `ssh/ssh_host_ed25519_key`); a directory for a hook the image does
 * not have, with a `hook` file of its own, runs after the image's.
 */
import { lstat, readdir, readFile, readlink } from 'node:fs/promises';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { pack as tarPack } from 'tar-stream';
import { DarchError, fsError, isErrno } from '../lib/errors.js';
import { hooksRel } from '../stage/layout.js';

/** Hook output is a few small files; more than this is a mistake, not hooks. */
const MAX_HOOKS_BYTES = 16 * 2 ** 20;

/** `52-54-00-12-34-56` from any common spelling of a MAC address, else undefined. */
export function normalizeMac(s: string): string | undefined {
  const hex = s.toLowerCase().replace(/[:.-]/g, '');
  if (!/^[0-9a-f]{12}$/.test(hex)) return undefined;
  return hex.match(/../g)!.join('-');
}

interface Entry {
  name: string;
  type: 'file' | 'directory' | 'symlink';
  mode: number;
  data?: Buffer;
  linkname?: string;
}

async function walk(dir: string, prefix: string, out: Entry[], budget: { left: number }): Promise<void> {
  let names: string[];
  try {
    names = (await readdir(dir)).sort();
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return;
    throw fsError(err, `cannot read ${dir}`);
  }
  for (const n of names) {
    const p = path.join(dir, n);
    const name = prefix ? `${prefix}/${n}` : n;
    const st = await lstat(p);
    if (st.isDirectory()) {
      out.push({ name, type: 'directory', mode: st.mode & 0o7777 });
      await walk(p, name, out, budget);
    } else if (st.isSymbolicLink()) {
      out.push({ name, type: 'symlink', mode: 0o777, linkname: await readlink(p) });
    } else if (st.isFile()) {
      budget.left -= st.size;
      if (budget.left < 0)
        throw new DarchError('E_SERVE_HOOKS', `the hooks under ${dir} are over ${MAX_HOOKS_BYTES / 2 ** 20} MiB`, {
          hint: 'hooks carry small per-machine files (hostname, keys, fstab)',
        });
      out.push({ name, type: 'file', mode: st.mode & 0o7777, data: await readFile(p) });
    }
  }
}

/** The staged hook directory names of an image's tag, by hook name (`00000002_hostname` → hostname). */
async function stagedHookNames(tagDir: string): Promise<Map<string, string>> {
  const map = new Map<string, string>();
  const names = await readdir(tagDir).catch(() => [] as string[]);
  for (const n of names) {
    const m = /^\d+_(.+)$/.exec(n);
    if (m?.[1]) map.set(m[1], n);
  }
  return map;
}

export interface HooksTar {
  data: Buffer;
  etag: string;
  /** Machine directories' hooks that matched no hook of the image and have no `hook` file (ignored). */
  ignored: string[];
}

/**
 * The tar for `imageDir`'s hooks of `tag`, with `machineDir`'s files laid over them when given.
 * Undefined when there is nothing to send (no hook output, no machine directory): a 404.
 */
export async function hooksTar(imageDir: string, tag: string, machineDir?: string): Promise<HooksTar | undefined> {
  const tagDir = path.join(imageDir, hooksRel(tag));
  const entries: Entry[] = [];
  const budget = { left: MAX_HOOKS_BYTES };
  await walk(tagDir, '', entries, budget);
  const ignored: string[] = [];
  if (machineDir) {
    const staged = await stagedHookNames(tagDir);
    let names: string[];
    try {
      names = (await readdir(machineDir, { withFileTypes: true }))
        .filter((d) => d.isDirectory())
        .map((d) => d.name)
        .sort();
    } catch (err) {
      throw fsError(err, `cannot read ${machineDir}`);
    }
    for (const n of names) {
      let target = staged.get(n);
      if (!target) {
        const own = await lstat(path.join(machineDir, n, 'hook')).then(
          (s) => s.isFile(),
          () => false,
        );
        if (!own) {
          ignored.push(n);
          continue;
        }
        // After every hook of the image: a machine's own hook may rely on theirs.
        target = `99999999_${n}`;
        entries.push({ name: target, type: 'directory', mode: 0o755 });
      }
      await walk(path.join(machineDir, n), target, entries, budget);
    }
  }
  if (entries.length === 0) return undefined;
  const p = tarPack();
  const chunks: Buffer[] = [];
  p.on('data', (c: unknown) => void chunks.push(c as Buffer));
  const ended = new Promise<void>((resolve, reject) => {
    p.on('end', resolve);
    p.on('error', reject);
  });
  for (const e of entries) {
    // Fixed owner and time: the same hooks give the same bytes, so the ETag says "unchanged".
    const header = { name: e.name, type: e.type, mode: e.mode, mtime: new Date(0), uid: 0, gid: 0 };
    if (e.type === 'file') p.entry({ ...header, size: e.data!.length }, e.data!);
    else if (e.type === 'symlink') p.entry({ ...header, linkname: e.linkname! });
    else p.entry(header);
  }
  p.finalize();
  await ended;
  const data = Buffer.concat(chunks);
  return { data, etag: `"${createHash('sha256').update(data).digest('hex')}"`, ignored };
}

/**
 * Small files inside the ext4 darch partition of a disk image or device, through debugfs
 * at the partition's byte offset: no mount, no loop device, no root. debugfs exits 0 even
 * when a command fails, so its stderr is what tells.
 */
import { lstat, readdir, readlink, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { DarchError } from '../lib/errors.js';
import { run } from '../lib/proc.js';
import { makeWorkDir } from '../lib/scratch.js';
import { MAX_SMALL_FILE, type SmallFiles } from '../lib/smallfs.js';

const BANNER = /^debugfs [\d.]+ \(.*\)$/;

function problems(stderr: string): string[] {
  return stderr
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !BANNER.test(l));
}

export class Ext4Image implements SmallFiles {
  constructor(
    readonly device: string,
    readonly offset: number,
  ) {}

  get where(): string {
    return `${this.device} (darch partition)`;
  }

  async read(file: string, maxBytes = MAX_SMALL_FILE): Promise<Buffer | undefined> {
    const text = await this.readText(file);
    if (text === undefined) return undefined;
    const buf = Buffer.from(text);
    return buf.length > maxBytes ? buf.subarray(0, maxBytes) : buf;
  }

  write(file: string, data: Buffer | string): Promise<void> {
    return this.replaceText(file, data.toString());
  }

  /** Names in a directory (`ls -p` lines are /inode/mode/uid/gid/name/size/). */
  async list(dir: string): Promise<string[]> {
    const res = await run('debugfs', ['-R', `ls -p ${dir}`, this.spec], { allowFailure: true });
    if (problems(res.stderr).length || res.code !== 0) return [];
    return res.stdout
      .split('\n')
      .map((l) => l.split('/')[5] ?? '')
      .filter((n) => n && n !== '.' && n !== '..');
  }

  // Absolute: putTree runs debugfs from inside the directory it copies.
  private get spec(): string {
    return `${path.resolve(this.device)}?offset=${this.offset}`;
  }

  /** A small file's text; undefined when it does not exist. */
  async readText(file: string): Promise<string | undefined> {
    const res = await run('debugfs', ['-R', `cat ${file}`, this.spec], { allowFailure: true });
    const errs = problems(res.stderr);
    if (errs.some((l) => /not found/i.test(l))) return undefined;
    if (res.code !== 0 || errs.length) {
      throw new DarchError('E_DISK_FORMAT', `cannot read ${file} in the darch partition of ${this.device}: ${errs[0] ?? `debugfs exit ${res.code}`}`, {
        hint: 'is this a disk made by `darch disk create`, and not in use by a running VM?',
      });
    }
    return res.stdout;
  }

  /** Remove a file; a file that is not there is fine. */
  async remove(file: string): Promise<void> {
    const res = await run('debugfs', ['-w', '-R', `rm ${file}`, this.spec], { allowFailure: true });
    const errs = problems(res.stderr).filter((l) => !/not found/i.test(l));
    if (res.code !== 0 || errs.length) {
      throw new DarchError('E_DISK_WRITE', `cannot remove ${file} in the darch partition of ${this.device}: ${errs[0] ?? `debugfs exit ${res.code}`}`, {
        hint: 'check that the disk is writable and not in use by a running VM',
      });
    }
  }

  /**
   * Replace a file: the new content is written under another name first and linked into
   * place in the same debugfs run, so the old file is gone only once the new one is whole.
   */
  async replaceText(file: string, text: string): Promise<void> {
    const work = await makeWorkDir(os.tmpdir(), 'darchext');
    try {
      const src = path.join(work, 'content');
      await writeFile(src, text);
      const tmp = `${file}.darch-new`;
      const cmds = path.join(work, 'cmds');
      // `ln`/`unlink` leave link counts alone: the new inode has one link before and after.
      await writeFile(cmds, [`rm ${tmp}`, `write ${src} ${tmp}`, `rm ${file}`, `ln ${tmp} ${file}`, `unlink ${tmp}`, ''].join('\n'));
      const res = await run('debugfs', ['-w', '-f', cmds, this.spec], { allowFailure: true });
      // The first `rm` of a leftover temp file may fail harmlessly; anything else may not.
      const errs = problems(res.stderr).filter((l) => !/^rm:.*not found/i.test(l));
      const wrote = await this.readText(file);
      if (res.code !== 0 || wrote !== text) {
        throw new DarchError('E_DISK_WRITE', `cannot write ${file} in the darch partition of ${this.device}: ${errs[0] ?? 'the file read back differs'}`, {
          hint: 'check that the disk is writable and not in use by a running VM',
        });
      }
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  }

  /** Free bytes for files (ext4 keeps its reserved blocks for root; darch writes as root or not, so they do not count). */
  async freeBytes(): Promise<number> {
    const res = await run('debugfs', ['-R', 'stats', this.spec], { allowFailure: true });
    const num = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+)`, 'm').exec(res.stdout)?.[1] ?? NaN);
    const free = num('Free blocks') - num('Reserved block count');
    const block = num('Block size');
    if (res.code !== 0 || !Number.isFinite(free) || !Number.isFinite(block)) {
      throw new DarchError(
        'E_DISK_FORMAT',
        `cannot read the free space of the darch partition of ${this.device}: ${problems(res.stderr)[0] ?? 'debugfs printed no stats'}`,
        {
          hint: 'is this a disk made by `darch disk create`?',
        },
      );
    }
    return Math.max(0, free) * block;
  }

  /**
   * Check and repair the file system (e2fsck -fy). debugfs writes without a journal, so a
   * change killed half-way can leave allocation bitmaps behind the directory tree; the next
   * change repairs first. What e2fsck reconnects goes to /lost+found, which the caller sweeps.
   * Returns whether anything was repaired.
   */
  async repair(): Promise<boolean> {
    const res = await run('e2fsck', ['-fy', this.spec], { allowFailure: true, env: { ...process.env, LC_ALL: 'C' } });
    if (res.code >= 4) {
      throw new DarchError(
        'E_DISK_FORMAT',
        `the darch partition of ${this.device} has errors e2fsck cannot repair (exit ${res.code}): ${res.stdout.trim().split('\n').slice(-2).join(' | ')}`,
        {
          hint: 'is the disk in use by a running VM? If not, copy off what you need and create the disk again',
        },
      );
    }
    return res.code !== 0;
  }

  /** Whether a path exists (file or directory). */
  async exists(p: string): Promise<boolean> {
    const res = await run('debugfs', ['-R', `stat ${p}`, this.spec], { allowFailure: true });
    return res.code === 0 && !problems(res.stderr).length;
  }

  /** Every path under `dir` (directories after what they hold), relative to `dir`. */
  private async walk(dir: string): Promise<Array<{ rel: string; dir: boolean; size: number }>> {
    const res = await run('debugfs', ['-R', `ls -p ${dir}`, this.spec], { allowFailure: true });
    if (problems(res.stderr).length || res.code !== 0) return [];
    const out: Array<{ rel: string; dir: boolean; size: number }> = [];
    for (const line of res.stdout.split('\n')) {
      const f = line.split('/');
      const name = f[5] ?? '';
      if (!name || name === '.' || name === '..') continue;
      const isDir = (Number.parseInt(f[2] ?? '0', 8) & 0o170000) === 0o040000;
      if (isDir) for (const sub of await this.walk(`${dir}/${name}`)) out.push({ ...sub, rel: `${name}/${sub.rel}` });
      out.push({ rel: name, dir: isDir, size: isDir ? 0 : Number(f[6] ?? 0) || 0 });
    }
    return out;
  }

  /** Bytes in the files under a directory (0 when it does not exist). */
  async treeBytes(dir: string): Promise<number> {
    return (await this.walk(dir)).reduce((n, e) => n + e.size, 0);
  }

  /** Remove a directory and everything in it; one that is not there is fine. */
  async removeTree(dir: string): Promise<void> {
    if (!(await this.exists(dir))) return;
    const cmds = (await this.walk(dir)).map((e) => `${e.dir ? 'rmdir' : 'rm'} ${dir}/${e.rel}`);
    await this.script([...cmds, `rmdir ${dir}`], `remove ${dir}`);
  }

  /**
   * Copy a host directory into `dest` (which must not exist), modes and symlinks kept, in one
   * debugfs run from inside `src` so the host path may hold any character. Names inside are
   * darch's own (ids, tag keys): anything a debugfs command line could misread is refused.
   */
  async putTree(src: string, dest: string): Promise<void> {
    const cmds: string[] = [`mkdir ${dest}`];
    const visit = async (rel: string): Promise<void> => {
      for (const ent of (await readdir(path.join(src, rel), { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))) {
        const r = rel ? `${rel}/${ent.name}` : ent.name;
        if (!SAFE_NAME.test(r))
          throw new DarchError('E_DISK_WRITE', `cannot copy ${path.join(src, r)} into ${this.device}: its name has characters debugfs cannot take`);
        if (ent.isDirectory()) {
          cmds.push(`mkdir ${dest}/${r}`);
          await visit(r);
        } else if (ent.isSymbolicLink()) {
          const to = await readlink(path.join(src, r));
          if (!SAFE_NAME.test(to))
            throw new DarchError(
              'E_DISK_WRITE',
              `cannot copy the symlink ${path.join(src, r)} into ${this.device}: its target has characters debugfs cannot take`,
            );
          cmds.push(`symlink ${dest}/${r} ${to}`);
        } else if ((await lstat(path.join(src, r))).isFile()) cmds.push(`write ${r} ${dest}/${r}`);
      }
    };
    await visit('');
    await this.script(cmds, `copy ${src} to ${dest}`, src);
  }

  /** Run debugfs commands in one read-write session; any complaint is an error that names the first. */
  private async script(cmds: string[], what: string, cwd?: string): Promise<void> {
    const work = await makeWorkDir(os.tmpdir(), 'darchext');
    try {
      const file = path.join(work, 'cmds');
      await writeFile(file, `${cmds.join('\n')}\n`);
      const res = await run('debugfs', ['-w', '-f', file, this.spec], { allowFailure: true, ...(cwd ? { cwd } : {}) });
      // debugfs echoes each command as "debugfs: …" on stdout and reports what went wrong on stderr.
      const errs = problems(res.stderr).filter((l) => !/^Allocated inode/.test(l));
      if (res.code !== 0 || errs.length) {
        const full = /No free space|Could not allocate|No space/i.test(errs.join('\n'));
        throw new DarchError('E_DISK_WRITE', `cannot ${what} in the darch partition of ${this.device}: ${errs[0] ?? `debugfs exit ${res.code}`}`, {
          hint: full
            ? 'the darch partition is full: remove an image from the disk first (darch disk remove)'
            : 'check that the disk is writable and not in use by a running VM',
        });
      }
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  }
}

/** Path names debugfs's command parser reads as one word. */
const SAFE_NAME = /^[A-Za-z0-9._+@:,=/-]+$/;

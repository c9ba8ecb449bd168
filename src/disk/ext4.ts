/**
 * Small files inside the ext4 darch partition of a disk image or device, through debugfs
 * at the partition's byte offset: no mount, no loop device, no root. debugfs exits 0 even
 * when a command fails, so its stderr is what tells.
 */
import { rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { DarchError } from '../lib/errors.js';
import { run } from '../lib/proc.js';
import { makeWorkDir } from '../lib/scratch.js';
import { MAX_SMALL_FILE, type SmallFiles } from '../lib/smallfs.js';

const BANNER = /^debugfs [\d.]+ \(.*\)$/;

function problems(stderr: string): string[] {
  return stderr.split('\n').map((l) => l.trim()).filter((l) => l && !BANNER.test(l));
}

export class Ext4Image implements SmallFiles {
  constructor(readonly device: string, readonly offset: number) {}

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

  private get spec(): string {
    return `${this.device}?offset=${this.offset}`;
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
}

/**
 * A streaming writer for the "newc" cpio format the kernel unpacks as an initramfs.
 * Written here rather than spawning cpio(1) so device nodes (dev/console) need no root
 * and file data streams straight from disk into gzip without a staging tree.
 */
import { createReadStream } from 'node:fs';
import type { Writable } from 'node:stream';
import { once } from 'node:events';

export type CpioEntry =
  | { type: 'dir'; name: string; mode?: number }
  | { type: 'file'; name: string; mode?: number; data: string | Buffer }
  | { type: 'diskfile'; name: string; mode?: number; path: string; size: number }
  | { type: 'symlink'; name: string; target: string }
  | { type: 'chardev'; name: string; mode?: number; major: number; minor: number };

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;

function hex8(n: number): string {
  return n.toString(16).padStart(8, '0');
}

function header(ino: number, mode: number, size: number, name: string, rdev: [number, number] = [0, 0], mtime = 0): Buffer {
  const nameBuf = Buffer.from(`${name}\0`, 'utf8');
  const fields = [ino, mode, 0, 0, 1, mtime, size, 0, 0, rdev[0], rdev[1], nameBuf.length, 0];
  const head = Buffer.from(`070701${fields.map(hex8).join('')}`, 'ascii');
  const pad = (4 - ((head.length + nameBuf.length) % 4)) % 4;
  return Buffer.concat([head, nameBuf, Buffer.alloc(pad)]);
}

function dataPad(size: number): Buffer {
  return Buffer.alloc((4 - (size % 4)) % 4);
}

export class CpioWriter {
  private ino = 1;
  constructor(private readonly out: Writable) {}

  private async write(buf: Buffer): Promise<void> {
    if (!this.out.write(buf)) await once(this.out, 'drain');
  }

  async add(e: CpioEntry): Promise<void> {
    const ino = this.ino++;
    const name = e.name.replace(/^\/+/, '');
    switch (e.type) {
      case 'dir':
        return this.write(header(ino, S_IFDIR | (e.mode ?? 0o755), 0, name));
      case 'chardev':
        return this.write(header(ino, S_IFCHR | (e.mode ?? 0o600), 0, name, [e.major, e.minor]));
      case 'symlink': {
        const t = Buffer.from(e.target, 'utf8');
        return this.write(Buffer.concat([header(ino, S_IFLNK | 0o777, t.length, name), t, dataPad(t.length)]));
      }
      case 'file': {
        const d = typeof e.data === 'string' ? Buffer.from(e.data, 'utf8') : e.data;
        return this.write(Buffer.concat([header(ino, S_IFREG | (e.mode ?? 0o644), d.length, name), d, dataPad(d.length)]));
      }
      case 'diskfile': {
        await this.write(header(ino, S_IFREG | (e.mode ?? 0o644), e.size, name));
        let n = 0;
        for await (const chunk of createReadStream(e.path)) {
          n += (chunk as Buffer).length;
          await this.write(chunk as Buffer);
        }
        if (n !== e.size) throw new Error(`${e.path} changed size while being archived (${e.size} → ${n})`);
        return this.write(dataPad(e.size));
      }
    }
  }

  /** The trailer; the caller ends the stream. */
  async finish(): Promise<void> {
    await this.write(header(0, 0, 0, 'TRAILER!!!'));
  }
}

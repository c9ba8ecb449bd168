/**
 * The layout of docs/BOOT.md's "An encrypted stage partition": a darch disk made with
 * systemd-boot (each kernel and initramfs on the ESP, where the firmware's boot loader reads
 * them), whose darch partition is then put inside LUKS2 as a user would convert theirs:
 * shrink the ext4 by the header's room, format the partition, write the file system back
 * into the encrypted area. The file system keeps its UUID, so the entries' darch_dir=UUID=…
 * still finds it once the initramfs has unlocked it.
 *
 * A user writes the file system back through `cryptsetup open` (dm-crypt). The machines that
 * run the tests have no device-mapper in their kernel, so the helper encrypts in user space
 * what dm-crypt would write: aes-xts-plain64 with the volume key `cryptsetup luksDump
 * --dump-volume-key` gives, 512-byte sectors, each sector's IV its number in the data segment
 * (64-bit little-endian). cryptsetup itself writes the header and keyslot; the guest's
 * dm-crypt reading the file system back is what proves the two agree.
 */
import assert from 'node:assert/strict';
import { createCipheriv } from 'node:crypto';
import { open, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { readPartitions } from '../../src/boot/shared/esp.js';
import { LINUX_TYPE } from '../../src/disk/layout.js';
import { run } from '../../src/lib/proc.js';

const SECTOR = 512;

/** What the tests type at the initramfs's passphrase prompt. */
export const LUKS_PASSPHRASE = 'darch test passphrase';

/**
 * Encrypt the darch partition of `disk` in place. pbkdf2 with few iterations: argon2's
 * default wants 1 GiB of memory and seconds of CPU, which a 1 GiB VM under TCG has not;
 * a real machine keeps cryptsetup's defaults.
 */
export async function encryptDarchPartition(disk: string, opts: { uuid: string; passphrase: string; work: string }): Promise<void> {
  const part = (await readPartitions(disk)).find((p) => p.type === LINUX_TYPE);
  assert.ok(part, `${disk} has a darch partition`);
  const fsImage = path.join(opts.work, 'darch-partition.ext4');
  const keyFile = path.join(opts.work, 'luks-passphrase');
  await writeFile(keyFile, opts.passphrase, { mode: 0o600 });
  const mib = 1024 * 1024;
  const loop = (await run('losetup', ['--find', '--show', '--offset', String(part.offset), '--sizelimit', String(part.size), disk])).stdout.trim();
  try {
    await run('dd', [`if=${loop}`, `of=${fsImage}`, `bs=${mib}`, 'conv=sparse', 'status=none']);
    await run('cryptsetup', [
      'luksFormat',
      '--batch-mode',
      '--type',
      'luks2',
      '--uuid',
      opts.uuid,
      '--sector-size',
      String(SECTOR),
      '--pbkdf',
      'pbkdf2',
      '--pbkdf-force-iterations',
      '1000',
      '--key-file',
      keyFile,
      loop,
    ]);
    const dump = (await run('cryptsetup', ['luksDump', '--dump-volume-key', '--batch-mode', '--key-file', keyFile, loop])).stdout;
    const info = (await run('cryptsetup', ['luksDump', loop])).stdout;
    assert.match(info, /cipher: aes-xts-plain64/);
    assert.match(info, new RegExp(`sector: ${SECTOR} \\[bytes\\]`));
    const dataOffset = Number(/offset: (\d+) \[bytes\]/.exec(info.slice(info.indexOf('Data segments')))?.[1]);
    const key = Buffer.from(/MK dump:\s*([0-9a-f\s]+)/.exec(dump)?.[1]?.replace(/\s+/g, '') ?? '', 'hex');
    assert.equal(key.length, 64, 'a 512-bit xts key');
    assert.ok(dataOffset > 0 && dataOffset % SECTOR === 0, `the data segment starts at ${dataOffset}`);
    await run('e2fsck', ['-fy', fsImage], { allowFailure: true });
    await run('resize2fs', [fsImage, `${(part.size - dataOffset) / 1024}K`]);
    await encryptInto(fsImage, disk, part.offset + dataOffset, key);
  } finally {
    await run('losetup', ['-d', loop], { allowFailure: true });
    await rm(fsImage, { force: true });
    await rm(keyFile, { force: true });
  }
  const probe = await run('blkid', ['-p', '-o', 'value', '-s', 'TYPE', '-O', String(part.offset), disk], { allowFailure: true });
  assert.equal(probe.stdout.trim(), 'crypto_LUKS', 'the darch partition is LUKS now');
}

/** What dm-crypt writes for `plain` at sector 0 of a LUKS2 aes-xts-plain64 segment that starts at `at` in `disk`. */
async function encryptInto(plain: string, disk: string, at: number, key: Buffer): Promise<void> {
  const src = await open(plain, 'r');
  const dst = await open(disk, 'r+');
  try {
    const chunk = Buffer.alloc(4 * 1024 * 1024);
    const iv = Buffer.alloc(16);
    let pos = 0;
    for (;;) {
      const { bytesRead } = await src.read(chunk, 0, chunk.length, pos);
      if (bytesRead === 0) break;
      assert.equal(bytesRead % SECTOR, 0);
      for (let o = 0; o < bytesRead; o += SECTOR) {
        iv.writeBigUInt64LE(BigInt((pos + o) / SECTOR), 0);
        const c = createCipheriv('aes-256-xts', key, iv);
        c.update(chunk.subarray(o, o + SECTOR)).copy(chunk, o);
        c.final();
      }
      await dst.write(chunk, 0, bytesRead, at + pos);
      pos += bytesRead;
    }
    await dst.sync();
  } finally {
    await src.close();
    await dst.close();
  }
}

/**
 * The layout of docs/BOOT.md's "An encrypted stage partition": a darch disk made with
 * systemd-boot (each kernel and initramfs on the ESP, where the firmware's boot loader reads
 * them), whose darch partition is then put inside LUKS2 as a user would convert theirs:
 * shrink the ext4 by the header's room, format the partition, write the file system back
 * into the mapping. The file system keeps its UUID, so the entries' darch_dir=UUID=… still
 * finds it once the initramfs has unlocked it.
 */
import assert from 'node:assert/strict';
import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { readPartitions } from '../../src/boot/shared/esp.js';
import { LINUX_TYPE } from '../../src/disk/layout.js';
import { run } from '../../src/lib/proc.js';

/** LUKS2's default header and keyslot area at the front of the partition. */
const HEADER_BYTES = 16 * 1024 * 1024;

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
  const bs = 1024 * 1024;
  await run('dd', [`if=${disk}`, `of=${fsImage}`, `bs=${bs}`, `skip=${part.offset / bs}`, `count=${part.size / bs}`, 'conv=sparse', 'status=none']);
  await run('e2fsck', ['-fy', fsImage], { allowFailure: true });
  await run('resize2fs', [fsImage, `${(part.size - HEADER_BYTES) / 1024}K`]);
  const loop = (await run('losetup', ['--find', '--show', '--offset', String(part.offset), '--sizelimit', String(part.size), disk])).stdout.trim();
  const name = `darch-test-${path.basename(opts.work).replace(/[^\w-]/g, '')}`;
  try {
    await run('cryptsetup', [
      'luksFormat',
      '--batch-mode',
      '--type',
      'luks2',
      '--uuid',
      opts.uuid,
      '--pbkdf',
      'pbkdf2',
      '--pbkdf-force-iterations',
      '1000',
      '--key-file',
      keyFile,
      loop,
    ]);
    await run('cryptsetup', ['open', '--key-file', keyFile, loop, name]);
    try {
      await run('dd', [`if=${fsImage}`, `of=/dev/mapper/${name}`, `bs=${bs}`, 'conv=fsync', 'status=none']);
    } finally {
      await run('cryptsetup', ['close', name]);
    }
  } finally {
    await run('losetup', ['-d', loop], { allowFailure: true });
    await rm(fsImage, { force: true });
    await rm(keyFile, { force: true });
  }
  const probe = await run('blkid', ['-p', '-o', 'value', '-s', 'TYPE', '-O', String(part.offset), disk], { allowFailure: true });
  assert.equal(probe.stdout.trim(), 'crypto_LUKS', 'the darch partition is LUKS now');
}

/** The contract modules: one schema per file, a clear error naming a damaged file, minimal files still read. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { readDiskJson } from '../../src/boot/shared/disk-json.js';
import type { SmallFiles } from '../../src/lib/smallfs.js';
import { readImageJson } from '../../src/stage/image-json.js';
import { readImagesFile, writeImagesFile } from '../../src/stage/images-json.js';
import { readMeta } from '../../src/stage/meta-json.js';

function mem(files: Record<string, string>): SmallFiles & { files: Record<string, string> } {
  return {
    files,
    where: 'mem',
    read: async (f) => (f in files ? Buffer.from(files[f]!) : undefined),
    write: async (f, d) => {
      files[f] = d.toString();
    },
    list: async () => Object.keys(files),
    remove: async (f) => {
      delete files[f];
    },
  };
}

const ID = 'a'.repeat(25);

test('images.json: missing is empty, round-trips, a damaged one names the file', async () => {
  const fs = mem({});
  assert.deepEqual(await readImagesFile(fs), { version: 1, images: {} });
  await writeImagesFile(fs, { version: 1, images: { [ID]: { tags: ['os:1'] } } });
  assert.deepEqual((await readImagesFile(fs)).images[ID], { tags: ['os:1'] });
  await assert.rejects(
    readImagesFile(mem({ 'images.json': '{"images":[1]}' })),
    (e: any) => e.code === 'E_STAGE_CORRUPT' && /mem\/images\.json is corrupt/.test(e.message),
  );
  await assert.rejects(readImagesFile(mem({ 'images.json': '{' })), (e: any) => e.code === 'E_STAGE_CORRUPT');
});

test('image.json: initramfs is optional, a path is not a file name; meta.json needs only id and created', async () => {
  const dir = `live/${ID}`;
  const ok = mem({
    [`${dir}/image.json`]: '{"kernel":"vmlinuz","rootfs":"rootfs.squash","extra":1}',
    [`${dir}/meta.json`]: `{"id":"${ID}","created":"2026-01-01T00:00:00Z"}`,
  });
  const img = await readImageJson(ok, ID);
  assert.equal(img.initramfs, undefined);
  assert.equal((img as Record<string, unknown>).extra, 1, "fields of the original Darch's tools are kept");
  assert.equal((await readMeta(ok, ID)).id, ID);
  await assert.rejects(
    readImageJson(mem({ [`${dir}/image.json`]: '{"kernel":"../x","rootfs":"r"}' }), ID),
    (e: any) => e.code === 'E_STAGE_CORRUPT' && /at kernel/.test(e.message),
  );
  await assert.rejects(readMeta(mem({}), ID), (e: any) => e.code === 'E_STAGE_CORRUPT' && /has no meta\.json/.test(e.message));
});

test('disk.json: only the image list is needed to read; a damaged one is not a darch disk', async () => {
  const info = await readDiskJson(mem({ 'EFI/darch/disk.json': `{"version":1,"images":[{"id":"${ID}","tags":["os:1"]}]}` }));
  assert.deepEqual(info.images, [{ id: ID, tags: ['os:1'] }]);
  assert.equal(info.bootloader, undefined);
  await assert.rejects(readDiskJson(mem({})), (e: any) => e.code === 'E_NOT_DARCH_DISK');
  await assert.rejects(
    readDiskJson(mem({ 'EFI/darch/disk.json': '{"images":{}}' })),
    (e: any) => e.code === 'E_NOT_DARCH_DISK' && /disk\.json is corrupt/.test(e.message),
  );
});

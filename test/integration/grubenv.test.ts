/**
 * grubenv blocks against the real grub-editenv (both directions, byte for byte), the two
 * copies surviving a torn or failed write, and the copies inside a disk image via mtools.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import {
  DirEnvStorage,
  ENV_BACKUP,
  ENV_PRIMARY,
  GRUBENV_SIZE,
  parseGrubEnv,
  readEnvPair,
  serializeGrubEnv,
  writeEnvPair,
  type EnvStorage,
  diskEnvStorage,
} from '../../src/boot/grub/grubenv.js';
import { findEsp, MtoolsFat } from '../../src/boot/shared/esp.js';
import { DarchError } from '../../src/lib/errors.js';
import { tempDir } from '../helpers/darch.js';

const sh = promisify(execFile);
const editenv = (...args: string[]) => sh('grub-editenv', args);

const TRICKY: Array<[string, string]> = [
  ['darch_default', 'a1b2c3d4e5f6g7h8i9j0k1l2m'],
  ['empty', ''],
  ['with_eq', 'x=y=z'],
  ['hash', '#not a comment'],
  ['spaces', 'two words  and more'],
  ['backslash', 'C:\\path\\to'],
  ['newline', 'line one\nline two'],
  ['both', 'end with backslash\\\nand newline'],
];

test('a block grub-editenv writes is byte-identical to ours, and we read it back', async (t) => {
  const dir = await tempDir(t);
  const f = path.join(dir, 'env');
  await editenv(f, 'create');
  await editenv(f, 'set', ...TRICKY.map(([k, v]) => `${k}=${v}`));
  const theirs = await readFile(f);
  assert.equal(theirs.length, GRUBENV_SIZE);
  assert.deepEqual(serializeGrubEnv(TRICKY), theirs, 'serialized bytes differ from grub-editenv');
  assert.deepEqual([...parseGrubEnv(theirs)], TRICKY);
  // grub-editenv replaces a value in place and appends new names: so does our ordered map.
  await editenv(f, 'set', 'spaces=short', 'added=1');
  const vars = new Map(TRICKY);
  vars.set('spaces', 'short');
  vars.set('added', '1');
  assert.deepEqual(serializeGrubEnv(vars), await readFile(f));
});

test('grub-editenv reads and edits a block we wrote', async (t) => {
  const dir = await tempDir(t);
  const f = path.join(dir, 'env');
  const simple: Array<[string, string]> = [
    ['a', '1'],
    ['darch_trial', 'zzzzzzzzzzzzzzzzzzzzzzzzz'],
    ['x', 'has=equals and #hash'],
  ];
  await writeFile(f, serializeGrubEnv(simple));
  const listed = (await editenv(f, 'list')).stdout;
  assert.equal(listed, simple.map(([k, v]) => `${k}=${v}\n`).join(''));
  await editenv(f, 'unset', 'a');
  assert.deepEqual([...parseGrubEnv(await readFile(f))], simple.slice(1));
});

test('damaged blocks are reported as corrupt, never half-read', () => {
  const good = serializeGrubEnv([['a', '1']]);
  const cases: Array<[string, Buffer]> = [
    ['short', good.subarray(0, 1000)],
    ['long', Buffer.concat([good, Buffer.from('#')])],
    ['no signature', Buffer.concat([Buffer.from('# GRUB Environment Blocc\n'), good.subarray(25)])],
    ['zeros', Buffer.alloc(GRUBENV_SIZE)],
    ['garbage name', Buffer.from(good.toString('latin1').replace('a=1', 'a\u0000=1'), 'latin1')],
  ];
  for (const [what, buf] of cases) {
    assert.throws(
      () => parseGrubEnv(buf, what),
      (e: unknown) => e instanceof DarchError && e.code === 'E_GRUBENV_CORRUPT' && Boolean(e.hint),
      what,
    );
  }
  assert.throws(
    () => serializeGrubEnv([['big', 'x'.repeat(2000)]]),
    (e: unknown) => e instanceof DarchError && e.code === 'E_GRUBENV_FULL',
  );
});

test('two copies: a corrupt, torn or missing primary falls back to the backup', async (t) => {
  const dir = await tempDir(t);
  const st = new DirEnvStorage(path.join(dir, 'EFI/darch'));
  assert.equal((await readEnvPair(st)).source, 'none');
  await writeEnvPair(st, new Map([['darch_default', 'old']]));
  const oldBlock = await readFile(path.join(st.dir, ENV_PRIMARY));
  const seq = await writeEnvPair(
    st,
    new Map([
      ['darch_default', 'new'],
      ['darch_trial', 'b'.repeat(25)],
    ]),
  );
  assert.equal(seq, '2');
  const newBlock = await readFile(path.join(st.dir, ENV_PRIMARY));
  assert.deepEqual(await readFile(path.join(st.dir, ENV_BACKUP)), newBlock);
  // Both copies are plain GRUB blocks.
  assert.match((await editenv(path.join(st.dir, ENV_BACKUP), 'list')).stdout, /darch_default=new/);

  // Torn: the first 150 bytes of the new write landed, the rest is the old block.
  const torn = Buffer.concat([newBlock.subarray(0, 150), oldBlock.subarray(150)]);
  await writeFile(path.join(st.dir, ENV_PRIMARY), torn);
  await writeFile(path.join(st.dir, ENV_BACKUP), oldBlock);
  let pair = await readEnvPair(st);
  assert.match(pair.status.primary, /^(torn|corrupt)$/);
  assert.equal(pair.source, 'backup');
  assert.equal(pair.vars.get('darch_default'), 'old');

  await writeFile(path.join(st.dir, ENV_PRIMARY), Buffer.alloc(GRUBENV_SIZE, 0xff));
  pair = await readEnvPair(st);
  assert.equal(pair.status.primary, 'corrupt');
  assert.equal(pair.vars.get('darch_default'), 'old');
  assert.equal(pair.problems.length, 1);

  // The next write repairs both copies.
  await writeEnvPair(st, pair.vars);
  pair = await readEnvPair(st);
  assert.deepEqual(pair.status, { primary: 'ok', backup: 'ok' });
});

test('a write interrupted in the primary leaves the old state; in the backup, the new one', async (t) => {
  const dir = await tempDir(t);
  const inner = new DirEnvStorage(dir);
  await writeEnvPair(inner, new Map([['v', 'old']]));
  /** Writes the first 110 bytes of a block to `failOn` and then fails, like a power cut mid-write. */
  const failing = (failOn: string): EnvStorage => ({
    where: dir,
    read: (n) => inner.read(n),
    async write(n, data) {
      if (n === failOn) {
        const cur = (await inner.read(n)) ?? Buffer.alloc(GRUBENV_SIZE, '#');
        await writeFile(path.join(dir, n), Buffer.concat([data.subarray(0, 110), cur.subarray(110)]));
        throw new Error('power cut');
      }
      await inner.write(n, data);
    },
  });
  await assert.rejects(writeEnvPair(failing(ENV_PRIMARY), new Map([['v', 'new-value-that-is-longer']])), /power cut/);
  assert.equal((await readEnvPair(inner)).vars.get('v'), 'old');
  await assert.rejects(writeEnvPair(failing(ENV_BACKUP), new Map([['v', 'new-value-that-is-longer']])), /power cut/);
  const pair = await readEnvPair(inner);
  assert.equal(pair.source, 'primary');
  assert.equal(pair.vars.get('v'), 'new-value-that-is-longer');
});

test('copies on the ESP of a disk image, through mtools, no mount', async (t) => {
  const dir = await tempDir(t);
  const img = path.join(dir, 'disk.img');
  await sh('truncate', ['-s', '48M', img]);
  await sh('sh', ['-c', `printf 'label: gpt\\n,32M,U\\n,,L\\n' | sfdisk -q "${img}"`]);
  const esp = await findEsp(img);
  assert.equal(esp.offset, 1048576);
  await sh('mformat', ['-i', `${img}@@${esp.offset}`, '-F', '-v', 'ESP', '::']);
  const st = await diskEnvStorage(img);
  assert.equal((await readEnvPair(st)).source, 'none');
  await writeEnvPair(st, new Map([['darch_default', 'abc']]));
  const pair = await readEnvPair(st);
  assert.deepEqual(pair.status, { primary: 'ok', backup: 'ok' });
  assert.equal(pair.vars.get('darch_default'), 'abc');
  // The file on the FAT is a real grubenv.
  const out = path.join(dir, 'copy');
  await sh('mcopy', ['-i', `${img}@@${esp.offset}`, '::/EFI/darch/grubenv', out]);
  assert.match((await editenv(out, 'list')).stdout, /^darch_seq=1\ndarch_default=abc\ndarch_seal=1\n$/);
  // Corrupt the primary in place; the backup still answers.
  await new MtoolsFat(img, esp.offset).writeFile('EFI/darch/grubenv', Buffer.alloc(GRUBENV_SIZE, 0));
  const after = await readEnvPair(st);
  assert.equal(after.status.primary, 'corrupt');
  assert.equal(after.vars.get('darch_default'), 'abc');
  // A file that is not a partitioned disk gets a clear error.
  await writeFile(path.join(dir, 'plain'), 'hello');
  await assert.rejects(
    diskEnvStorage(path.join(dir, 'plain')),
    (e: unknown) => e instanceof DarchError && /E_NO_PARTITION_TABLE|E_NO_ESP/.test(e.code) && Boolean(e.hint),
  );
});

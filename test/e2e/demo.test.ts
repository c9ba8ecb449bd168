/**
 * `darch demo`, the README's first command, end to end: example images, staging, a disk,
 * three real boots in qemu (version 1, version 2 as a trial that commits, version 1 after
 * the rollback), each checked by darch from the console.
 */
import assert from 'node:assert/strict';
import { stat } from 'node:fs/promises';
import { test } from 'node:test';
import { CACHE } from '../helpers/bootimage.js';
import { darchOk, tempDir } from '../helpers/darch.js';

test('darch demo: image → stage → disk → boot → trial update → rollback', async (t) => {
  const root = await tempDir(t);
  const env = { DARCH_KERNEL_CACHE: CACHE };
  const r = await darchOk(['--json', 'demo', '--accel', process.env.DARCH_TEST_ACCEL ?? 'tcg'], { root, env, timeoutMs: 900_000 });
  const doc = r.json();
  assert.equal(doc.image.name, 'example/busybox:latest');
  assert.deepEqual(
    doc.boots.map((b: { version: string; trial: boolean }) => [b.version, b.trial]),
    [
      ['1', false],
      ['2', true],
      ['1', false],
    ],
  );
  assert.notEqual(doc.boots[0].stageId, doc.boots[1].stageId);
  assert.equal(doc.boots[2].stageId, doc.boots[0].stageId);
  assert.ok((await stat(doc.disk)).size > 0);
  // The console was shown to the user as it booted.
  assert.match(r.stderr, /Welcome to GRUB!/);
  assert.match(r.stderr, /\$ darch boot try example\/bootable:2/);
  // After the rollback the disk's state names version 1 as the default and no trial is pending.
  const status = (await darchOk(['--json', 'boot', 'status', '--disk', doc.disk], { root, env })).json();
  assert.equal(status.default.stage, doc.boots[0].stageId);
  assert.equal(status.previous.stage, doc.boots[1].stageId);
  assert.equal(status.trial, null);
});

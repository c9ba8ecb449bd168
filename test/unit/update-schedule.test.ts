/** The update agent's pure decisions: when a check is due, reboot windows, rollout buckets, update tags. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { labelOf, updateTag } from '../../src/update/agent.js';
import { inRollout, rolloutBucket, rolloutPercent } from '../../src/update/rollout.js';
import { durationMs, inWindow, isDue, nextCheckAt, parseReboot } from '../../src/update/schedule.js';

const ID = '0123456789abcdef0123456789abcdef';

test('a check is due at once the first time, then after the schedule plus a fixed share of the delay', () => {
  assert.equal(nextCheckAt(undefined, 'daily', '1h', ID), undefined);
  assert.ok(isDue(new Date(), undefined));
  const last = new Date('2026-12-01T10:00:00Z');
  const next = nextCheckAt(last, 'daily', '1h', ID) as Date;
  const offset = next.getTime() - last.getTime() - 86_400_000;
  assert.ok(offset >= 0 && offset < 3_600_000, String(offset));
  assert.equal(nextCheckAt(last, 'daily', '1h', ID)?.getTime(), next.getTime(), 'the same machine, the same share');
  const other = nextCheckAt(last, 'daily', '1h', 'f'.repeat(32)) as Date;
  assert.notEqual(other.getTime(), next.getTime(), 'another machine, another share');
  assert.equal(isDue(new Date(next.getTime() - 1), next), false);
  assert.equal(isDue(next, next), true);
  assert.equal(durationMs('6h'), 6 * 3_600_000);
  assert.equal(durationMs('weekly'), 7 * 86_400_000);
  assert.throws(() => durationMs('soon'), /not a duration/);
});

test('reboot windows, including one across midnight', () => {
  const at = (h: number, m: number) => new Date(2026, 11, 2, h, m);
  const w = parseReboot('02:00-05:00');
  assert.deepEqual([inWindow(at(1, 59), w), inWindow(at(2, 0), w), inWindow(at(4, 59), w), inWindow(at(5, 0), w)], [false, true, true, false]);
  const night = parseReboot('23:30-01:00');
  assert.deepEqual(
    [inWindow(at(23, 29), night), inWindow(at(23, 30), night), inWindow(at(0, 30), night), inWindow(at(1, 0), night)],
    [false, true, true, false],
  );
  const always = parseReboot('00:00-24:00');
  assert.deepEqual(
    [at(0, 0), at(12, 0), at(23, 59)].map((d) => inWindow(d, always)),
    [true, true, true],
    '24:00 ends a window at midnight',
  );
  assert.equal(inWindow(at(3, 0), parseReboot('prompt')), false);
  assert.throws(() => parseReboot('2-5'), /not never, prompt or a window/);
});

test('rollout: the percentage from the annotation, buckets spread evenly and fixed per machine and image', () => {
  assert.equal(rolloutPercent({ 'org.darch.rollout.percent': '10' }), 10);
  assert.equal(rolloutPercent({ 'org.darch.rollout.percent': '12.5' }), 12.5);
  assert.equal(rolloutPercent({ 'org.darch.rollout.percent': '150' }), undefined);
  assert.equal(rolloutPercent({ 'org.darch.rollout.percent': 'ten' }), undefined);
  assert.equal(rolloutPercent(undefined), undefined);
  const ids = Array.from({ length: 2000 }, (_, i) => i.toString(16).padStart(32, '0'));
  const under10 = ids.filter((id) => inRollout(id, 'sha256:abc', 10)).length;
  assert.ok(under10 > 140 && under10 < 260, `${under10} of 2000 under 10 %`);
  // Widening only adds machines.
  for (const id of ids) if (inRollout(id, 'sha256:abc', 10)) assert.ok(inRollout(id, 'sha256:abc', 50));
  assert.equal(rolloutBucket(ID, 'sha256:abc'), rolloutBucket(ID, 'sha256:abc'));
  assert.notEqual(rolloutBucket(ID, 'sha256:abc'), rolloutBucket(ID, 'sha256:abd'), 'each image draws again');
  assert.equal(inRollout(undefined, 'sha256:abc', 50), false, 'no machine-id: wait for 100 %');
  assert.equal(inRollout(undefined, 'sha256:abc', 100), true);
  assert.equal(inRollout(ID, 'sha256:abc', undefined), true);
});

test('an update is staged under the followed tag plus its digest, and named by its version for people', () => {
  const d = `sha256:${'ab'.repeat(32)}`;
  assert.equal(updateTag('registry.example:5000/os/desktop:stable', d), 'registry.example:5000/os/desktop:stable-abababababab');
  assert.equal(labelOf('registry.example/os/desktop:stable', { version: '42', digest: d }), 'desktop 42');
  assert.equal(labelOf('registry.example/os/desktop:stable', { digest: d }), 'desktop abababababab');
});

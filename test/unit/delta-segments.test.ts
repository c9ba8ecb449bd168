/**
 * The plan of a segmented delta (src/stage/delta-segments.ts): the segments rebuild the
 * target's tar exactly, in pieces of the size asked for, and each is patched against the
 * base's bytes of the same files (or of their renamed versions). And a header whose
 * segments do not add up is refused before anything is read past it.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { DarchError } from '../../src/lib/errors.js';
import { type DeltaInfo, patchSegments } from '../../src/stage/delta-json.js';
import { patchWhole, planSegments, type TarExtent } from '../../src/stage/delta-segments.js';

/** Extents laid end to end from sizes, plus the 1024 end-of-archive bytes. */
function tarOf(entries: Array<[string, number]>): { ext: TarExtent[]; size: number } {
  let at = 0;
  const ext = entries.map(([name, size]) => {
    const e = { name, start: at, end: at + size };
    at += size;
    return e;
  });
  return { ext, size: at + 1024 };
}

const within = (r: Array<[number, number]>, e: TarExtent) => r.some(([a, b]) => a <= e.start && e.end <= b);

describe('segmented deltas', () => {
  it('segments cover the target exactly and in order, none over the size but the pieces of one large file', () => {
    const sizes = fc.array(fc.tuple(fc.constantFrom('a', 'b', 'c/d', 'c/e1', 'c/e2'), fc.integer({ min: 512, max: 20_000 })), { maxLength: 60 });
    fc.assert(
      fc.property(sizes, sizes, fc.integer({ min: 1024, max: 30_000 }), (f, t, seg) => {
        const from = tarOf(f.map(([n, s], i) => [`${n}${i}`, s]));
        const to = tarOf(t.map(([n, s], i) => [`${n}${i}`, s]));
        const plans = planSegments(from.ext, from.size, to.ext, to.size, seg);
        assert.equal(plans[0]?.start, 0);
        assert.equal(plans.at(-1)?.end, to.size);
        for (const [i, p] of plans.entries()) {
          if (i) assert.equal(p.start, plans[i - 1]?.end, 'contiguous');
          assert.ok(p.end > p.start);
          // A segment is over the size only when one entry is (it is then cut in pieces of at most the size).
          const inside = to.ext.filter((e) => e.start < p.end && e.end > p.start);
          if (p.end - p.start > seg + 1024) assert.equal(inside.length, 1, JSON.stringify({ p, inside, seg }));
          for (const [k, [a, b]] of p.reference.entries()) {
            assert.ok(0 <= a && a < b && b <= from.size);
            if (k) assert.ok(a > (p.reference[k - 1]?.[1] ?? 0), 'ascending and apart');
          }
        }
      }),
      { numRuns: 300 },
    );
  });

  it('patches each piece against the same file in the base, a renamed version of it, or nothing', () => {
    const from = tarOf([
      ['usr/bin/a', 3000],
      ['usr/lib/libfoo.so.1.2', 5000],
      ['usr/lib/libzz.so', 4000],
      ['usr/share/doc/x', 2000],
    ]);
    const to = tarOf([
      ['usr/share/doc/x', 2100],
      ['usr/lib/libfoo.so.1.3', 5100],
      ['usr/bin/new', 3000],
      ['usr/bin/a', 3100],
    ]);
    const plans = planSegments(from.ext, from.size, to.ext, to.size, 6000);
    assert.equal(plans.length, 4, JSON.stringify(plans));
    const [doc, lib, fresh, a] = plans as [(typeof plans)[0], (typeof plans)[0], (typeof plans)[0], (typeof plans)[0]];
    assert.ok(within(doc.reference, from.ext[3]!), 'the same name');
    assert.ok(within(lib.reference, from.ext[1]!), 'libfoo.so.1.3 is patched against libfoo.so.1.2');
    assert.ok(!within(lib.reference, from.ext[2]!), 'not against another library of that directory');
    assert.deepEqual(fresh.reference, [], 'a new file with no look-alike: compressed alone');
    assert.ok(within(a.reference, from.ext[0]!));
    // A file of five segments: each piece takes about its share of the old file, not all of it.
    const big = planSegments(tarOf([['img', 50_000]]).ext, 51_024, tarOf([['img', 50_000]]).ext, 51_024, 10_000);
    assert.equal(big.length, 5);
    for (const p of big) {
      const ref = p.reference.reduce((n, [x, y]) => n + y - x, 0);
      assert.ok(ref < 10_000 + 2 * 625 + 1024 + 2, `piece ${p.start}-${p.end} references ${ref} bytes`);
    }
    assert.ok(patchWhole(100, 200, 100), 'twice the segment: one patch');
    assert.ok(!patchWhole(100, 201, 100));
    assert.ok(patchWhole(5e9, 5e9, 0), '0: always one patch');
  });

  it('a header whose segments do not add up, or reach outside the base, is a bad delta', () => {
    const info = {
      from: { rootSize: 1000 },
      to: { rootSize: 300 },
      patch: {
        size: 50,
        windowLog: 12,
        segments: [
          { frame: 20, output: 100, windowLog: 11, reference: [0, 100, 200, 300] },
          { frame: 30, output: 200, windowLog: 12, reference: [] },
        ],
      },
    } as unknown as DeltaInfo;
    assert.deepEqual(
      patchSegments(info, 'x.delta').map((s) => s.reference),
      [
        [
          [0, 100],
          [200, 300],
        ],
        [],
      ],
    );
    const bad = (change: (i: DeltaInfo) => void, re: RegExp) => {
      const copy = structuredClone(info);
      change(copy);
      assert.throws(
        () => patchSegments(copy, 'x.delta'),
        (e: unknown) => e instanceof DarchError && e.code === 'E_BAD_DELTA' && re.test(e.message),
      );
    };
    bad((i) => (i.patch.segments![0]!.frame = 21), /frames add up to 51 bytes/);
    bad((i) => (i.patch.segments![1]!.output = 199), /rebuild 299 bytes/);
    bad((i) => (i.patch.segments![0]!.reference = [0, 100, 50, 300]), /out of order/);
    bad((i) => (i.patch.segments![0]!.reference = [0, 1001]), /outside the base/);
    bad((i) => (i.patch.segments![0]!.reference = [0]), /odd number/);
    assert.equal(patchSegments({ ...info, patch: { ...info.patch, segments: undefined } }, 'x.delta')[0]?.reference, undefined, 'unsegmented: the whole base');
  });
});

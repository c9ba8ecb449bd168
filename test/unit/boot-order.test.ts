/**
 * The pure parts of boot order: reading the kernel's filemap events (src/boot/trace.ts) and
 * rearranging a staging tar by an order (src/stage/order.ts), the readahead file
 * (src/stage/readahead.ts).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FirstReads, readLittleOf } from '../../src/boot/trace.js';
import { planOrder } from '../../src/stage/order.js';
import { formatReadahead, parseReadahead } from '../../src/stage/readahead.js';
import type { TarExtent } from '../../src/stage/tar-extents.js';

describe('boot order', () => {
  it('takes each inode of the squashfs once, at its first event, and nothing of other devices', () => {
    const r = new FirstReads('7:0');
    for (const l of [
      '# tracer: nop',
      '         systemd-1     [000] .....     1.5: mm_filemap_add_to_page_cache: dev 7:0 ino 1a pfn=0x1 ofs=0 order=0',
      '         systemd-1     [000] .....     1.6: mm_filemap_add_to_page_cache: dev 7:0 ino 1a pfn=0x2 ofs=4096 order=0',
      '         systemd-1     [000] .....     1.7: mm_filemap_add_to_page_cache: dev 8:1 ino 3 pfn=0x3 ofs=0 order=0',
      '           udevd-90    [001] .....     1.8: mm_filemap_add_to_page_cache: dev 7:0 ino 3 pfn=0x4 ofs=0 order=2',
      '           udevd-90    [001] .....     1.9: mm_filemap_add_to_page_cache: dev 7:01 ino 4 pfn=0x4 ofs=0 order=0',
    ])
      r.add(l);
    assert.deepEqual(r.inodes, [0x1a, 3]);
    assert.equal(r.events, 3);
    assert.equal(r.bytesRead(0x1a), 8192, 'two pages');
    assert.equal(r.bytesRead(3), 16384, 'one folio of four pages');
    r.add('         systemd-1     [000] .....     2.0: mm_filemap_add_to_page_cache: dev 7:0 ino 1a pfn=0x9 ofs=0 order=0');
    assert.equal(r.bytesRead(0x1a), 8192, 'a page read again (evicted, read back) counts once');
  });

  it('calls a file read little of when less than half of it and over 1 MiB were not read', () => {
    assert.equal(readLittleOf(128_000_000, 4_000_000), true, 'a large program a boot runs a little of');
    assert.equal(readLittleOf(900_000, 4096), false, 'small: read ahead whole anyway');
    assert.equal(readLittleOf(4_000_000, 2_500_000), false, 'most of it read');
  });

  it('writes directories and links first, the ordered files next, the other files, then hard links', () => {
    let at = 0;
    const e = (name: string, type: TarExtent['type'], size = 1024): TarExtent => {
      const x = { name, type, start: at, end: at + size };
      at += size;
      return x;
    };
    const ext = [
      e('', 'dir', 512),
      e('bin', 'dir', 512),
      e('bin/a', 'file'),
      e('bin/b', 'file'),
      e('bin/sh', 'symlink', 512),
      e('bin/c', 'file'),
      e('bin/h', 'link', 512),
    ];
    const size = at + 1024;
    const plan = planOrder(ext, size, { files: ['/bin/c', 'nothing', 'bin/a', 'bin/c'] });
    assert.equal(plan.matched, 2);
    const names = plan.ranges.flatMap(([a, b]) => ext.filter((x) => x.start >= a && x.end <= b).map((x) => x.name));
    assert.deepEqual(names, ['', 'bin', 'bin/sh', 'bin/c', 'bin/a', 'bin/b', 'bin/h']);
    assert.equal(
      plan.ranges.reduce((n, [a, b]) => n + b - a, 0),
      size,
      'every byte once, the end of the archive too',
    );
    assert.deepEqual(planOrder(ext, size, { files: ['none/of/these'] }).ranges, [[0, size]], 'an order naming none of its files: the tar as it is');
    // Where the boot's run ends: the first file written after the ordered ones that is large enough to have blocks.
    assert.deepEqual(planOrder(ext, size, { files: ['bin/c'] }, 1000).after, ['bin/a', 'bin/b']);
    assert.deepEqual(planOrder(ext, size, { files: ['bin/c'] }, 5000).after, []);
    // A file the boot read little of: after the ones it read whole, and where the readahead run ends.
    const partly = planOrder(ext, size, { files: ['bin/c', 'bin/a', 'bin/b'], partial: ['/bin/a'] }, 1000);
    assert.deepEqual(
      partly.ranges.flatMap(([a, b]) => ext.filter((x) => x.start >= a && x.end <= b && x.type === 'file').map((x) => x.name)),
      ['bin/c', 'bin/b', 'bin/a'],
    );
    assert.deepEqual(partly.after, ['bin/a']);
  });

  it('reads back the readahead ranges it writes, and refuses a file that is not a list of them', () => {
    const ranges: Array<[number, number]> = [
      [0, 16_777_216],
      [402_653_184, 1_572_864],
    ];
    const text = formatReadahead(ranges);
    assert.match(text, /^# /, 'says what it is');
    assert.match(text, /^0 16777216$/m, 'one "OFFSET LENGTH" line per range, for the initramfs\'s shell');
    assert.deepEqual(parseReadahead(text, 'readahead'), ranges);
    for (const bad of ['0 0\n', '0\n', '-1 10\n', '0 1.5\n', 'zero ten\n'])
      assert.throws(
        () => parseReadahead(bad, 'live/x/readahead'),
        (e: Error & { code?: string }) => e.code === 'E_STAGE_CORRUPT' && /live\/x\/readahead/.test(e.message),
        bad,
      );
  });
});

/** darch serve's pure parts: byte ranges, MAC spellings, URLs, the GRUB and iPXE menus. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { grubPath, renderFirstStageConfig, renderGrubMenu, renderIpxe } from '../../src/serve/boot-scripts.js';
import { netEntries, normalizeBaseUrl, type ServedImage } from '../../src/serve/catalog.js';
import { parseRange } from '../../src/serve/http-files.js';
import { normalizeMac } from '../../src/serve/hooks-tar.js';

const img = (id: string, tags: string[], kernelparams?: string): ServedImage => ({
  id,
  tags,
  created: new Date(0),
  kernel: { rel: `live/${id}/vmlinuz`, local: '/x' },
  initramfs: { rel: `live/${id}/initrd.img`, local: '/x' },
  rootfs: { rel: `live/${id}/rootfs.squash`, local: '/x', sha256: 'a'.repeat(64) },
  ...(kernelparams ? { kernelparams } : {}),
  dir: '/x',
});

describe('serve: byte ranges', () => {
  it('reads the forms boot clients send, and says when a range cannot be served', () => {
    assert.deepEqual(parseRange('bytes=100-', 1000), { start: 100, end: 999 });
    assert.deepEqual(parseRange('bytes=0-9', 1000), { start: 0, end: 9 });
    assert.deepEqual(parseRange('bytes=-10', 1000), { start: 990, end: 999 });
    assert.deepEqual(parseRange('bytes=900-5000', 1000), { start: 900, end: 999 });
    assert.equal(parseRange('bytes=1000-', 1000), 'unsatisfiable');
    assert.equal(parseRange('bytes=5-4', 1000), 'unsatisfiable');
    // Several ranges, other units, garbage: the whole file (the spec allows ignoring Range).
    assert.equal(parseRange('bytes=0-1,5-6', 1000), undefined);
    assert.equal(parseRange('items=1-2', 1000), undefined);
    assert.equal(parseRange(undefined, 1000), undefined);
  });

  it('any satisfiable range stays inside the file', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 1e9 }), fc.nat(), fc.option(fc.nat()), (size, a, b) => {
        const r = parseRange(`bytes=${a}-${b ?? ''}`, size);
        if (r === undefined || r === 'unsatisfiable') return a >= size || (b !== null && b < a);
        return r.start === a && r.end <= size - 1 && r.end >= r.start;
      }),
    );
  });
});

describe('serve: names', () => {
  it('takes a MAC in any common spelling, one way out', () => {
    for (const m of ['52:54:00:12:34:56', '52-54-00-12-34-56', '525400123456', '52:54:00:12:34:56'.toUpperCase(), '5254.0012.3456'])
      assert.equal(normalizeMac(m), '52-54-00-12-34-56');
    assert.equal(normalizeMac('52:54:00:12:34'), undefined);
    assert.equal(normalizeMac('hostname'), undefined);
  });

  it('keeps a URL clients can use, and refuses what a command line cannot carry', () => {
    assert.equal(normalizeBaseUrl('http://10.0.2.100:8080/'), 'http://10.0.2.100:8080');
    assert.equal(normalizeBaseUrl('http://boot.lab/darch//'), 'http://boot.lab/darch');
    for (const bad of ['ftp://x/', 'not a url', 'http://x/a b', 'http://x/?q=1', 'http://u:p@x/'])
      assert.throws(() => normalizeBaseUrl(bad), { code: 'E_USAGE' });
    assert.equal(grubPath('http://10.0.2.100:8080/live/x/vmlinuz'), '(http,10.0.2.100:8080)/live/x/vmlinuz');
    assert.throws(() => grubPath('https://x/a'), { code: 'E_USAGE' });
  });
});

describe('serve: menus', () => {
  const entries = netEntries([img('bbbb', ['lab/os:latest', 'lab/os:2'], 'quiet'), img('aaaa', ['old:1'])], 'http://10.0.2.100:8080', 'console=ttyS0');

  it('one entry per tag, newest image first, every URL absolute, the sha256 and hooks on the command line', () => {
    assert.deepEqual(
      entries.map((e) => [e.id, e.stageId]),
      [
        ['darch-lab+os@2', 'bbbb'],
        ['darch-lab+os@latest', 'bbbb'],
        ['darch-old@1', 'aaaa'],
      ],
    );
    const e = entries[1]!;
    assert.equal(e.kernelUrl, 'http://10.0.2.100:8080/live/bbbb/vmlinuz');
    assert.equal(
      e.cmdline,
      `quiet darch_rootfs=http://10.0.2.100:8080/live/bbbb/rootfs.squash darch_rootfs_sha256=${'a'.repeat(64)} darch_stageid=bbbb darch_hooks=hooks/lab+os@latest console=ttyS0`,
    );
  });

  it('GRUB fetches kernel and initramfs over http with the port; iPXE gets a menu with a default', () => {
    const grub = renderGrubMenu(entries, { timeout: 3 });
    assert.match(grub, /^set timeout=3$/m);
    assert.match(
      grub,
      /^\tif linux \(http,10\.0\.2\.100:8080\)\/live\/bbbb\/vmlinuz quiet darch_rootfs=http:\/\/10\.0\.2\.100:8080\/live\/bbbb\/rootfs\.squash .*; then true; else darch_fetch_failed; fi$/m,
    );
    assert.match(grub, /^\tif initrd \(http,10\.0\.2\.100:8080\)\/live\/aaaa\/initrd\.img; then true; else darch_fetch_failed; fi$/m);
    const ipxe = renderIpxe(entries, { timeout: 3 });
    assert.match(ipxe, /^#!ipxe\n/);
    assert.match(ipxe, /^choose --default e0 --timeout 3000 target/m);
    assert.match(ipxe, /^kernel http:\/\/10\.0\.2\.100:8080\/live\/aaaa\/vmlinuz initrd=initrd\.img .*darch_stageid=aaaa/m);
    assert.match(ipxe, /^initrd --name initrd\.img http:\/\/10\.0\.2\.100:8080\/live\/aaaa\/initrd\.img$/m);
    // Nothing served: the menus say so instead of booting nothing.
    assert.match(renderGrubMenu([], { timeout: 3 }), /no staged images are served/);
    assert.match(renderIpxe([], { timeout: 3 }), /no staged images are served/);
  });

  it("bootx64.efi's config fetches the menu from the server and retries, then reboots", () => {
    const cfg = renderFirstStageConfig('http://10.0.2.100:8080/grub/grub.cfg');
    assert.match(cfg, /^\tconfigfile \(http,10\.0\.2\.100:8080\)\/grub\/grub\.cfg$/m);
    assert.match(cfg, /^for try in 1 2 3 4 5 6; do$/m);
    assert.match(cfg, /^reboot$/m);
  });
});

/**
 * darch's tar reader/writer must keep binary xattr values byte for byte (tar-stream does
 * not), read what GNU tar writes, and refuse corrupt headers; kernel version ordering.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { ByteReader, END_OF_ARCHIVE, type TarHeader, bodyPadding, encodeHeader, readTar } from '../../src/layers/tar.js';
import { compareVersions } from '../../src/stage/kernel.js';

const base: TarHeader = {
  name: 'x',
  type: 'file',
  mode: 0o644,
  uid: 0,
  gid: 0,
  uname: 'root',
  gname: 'root',
  size: 0,
  mtime: 1_700_000_000,
  linkname: '',
  devmajor: 0,
  devminor: 0,
};

async function entries(buf: Buffer) {
  const out: Array<{ header: TarHeader; body: Buffer }> = [];
  for await (const e of readTar(new ByteReader(Readable.from([buf])))) {
    const parts: Buffer[] = [];
    for await (const c of e.body()) parts.push(Buffer.from(c));
    out.push({ header: e.header, body: Buffer.concat(parts) });
  }
  return out;
}

describe('layers/tar', () => {
  it('round-trips binary xattrs, long names, big ids and every entry type', async () => {
    const cap = Buffer.from('0100000280000000000000000000000000000000', 'hex'); // cap_setuid: a 0x80 byte
    const long = `${'d'.repeat(120)}/${'f'.repeat(120)}`;
    const headers: Array<[TarHeader, Buffer?]> = [
      [{ ...base, name: 'bin/su', size: 3, xattrs: new Map([['security.capability', cap]]) }, Buffer.from('abc')],
      [{ ...base, name: long, uid: 5_000_000, gid: 70_000 }],
      [{ ...base, name: 'dev/null', type: 'char', devmajor: 1, devminor: 3 }],
      [{ ...base, name: 'l', type: 'symlink', linkname: `/${'t'.repeat(150)}` }],
      [{ ...base, name: 'h', type: 'link', linkname: 'bin/su' }],
      [{ ...base, name: 'p', type: 'fifo' }],
      [{ ...base, name: 'd', type: 'dir', mode: 0o1777 }],
    ];
    const buf = Buffer.concat([
      ...headers.flatMap(([h, body]) => (body ? [encodeHeader(h), body, bodyPadding(body.length)] : [encodeHeader(h)])),
      END_OF_ARCHIVE,
    ]);
    const got = await entries(buf);
    assert.equal(got.length, headers.length);
    assert.ok(got[0]!.header.xattrs?.get('security.capability')?.equals(cap));
    assert.equal(got[0]!.body.toString(), 'abc');
    assert.equal(got[1]!.header.name, long);
    assert.equal(got[1]!.header.uid, 5_000_000);
    assert.deepEqual([got[2]!.header.type, got[2]!.header.devmajor, got[2]!.header.devminor], ['char', 1, 3]);
    assert.equal(got[3]!.header.linkname.length, 151);
    assert.equal(got[4]!.header.type, 'link');
    assert.equal(got[5]!.header.type, 'fifo');
    assert.equal(got[6]!.header.type, 'dir');
    assert.equal(got[6]!.header.mode, 0o1777);
    // GNU tar reads what we write, xattrs included.
    const listing = execFileSync('tar', ['--xattrs', '--xattrs-include=*', '-tvf', '-'], { input: buf }).toString();
    assert.match(listing, /bin\/su/);
    assert.match(listing, /dddd+\/ffff+/);
  });

  it('refuses a corrupt header and a truncated body', async () => {
    const h = encodeHeader({ ...base, size: 1000 });
    const bad = Buffer.from(h);
    bad[10] = 0x41;
    await assert.rejects(entries(Buffer.concat([bad, Buffer.alloc(1024), END_OF_ARCHIVE])), /checksum/);
    await assert.rejects(entries(Buffer.concat([h, Buffer.alloc(100)])), /ends unexpectedly/);
  });

  it('orders kernel versions numerically', () => {
    const v = ['6.1.0-9-amd64', '6.1.0-10-amd64', '5.10.0-28-amd64', '6.10.2', '6.1.0'];
    assert.deepEqual([...v].sort(compareVersions), ['5.10.0-28-amd64', '6.1.0', '6.1.0-9-amd64', '6.1.0-10-amd64', '6.10.2']);
  });
});

/**
 * Hostile layers (issue 15): names and links that point outside the root, device nodes,
 * setuid files, duplicate entries and pax records that lie. Each is staged safely (what it
 * asks for exists only inside the image's squashfs) or refused with the layer named; the
 * host is never written outside darch's directories and never read into an image: a kernel
 * that is a symlink to a host file does not carry that file's bytes into the stage.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { access, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { darch, darchOk } from '../helpers/darch.js';
import { tarStreamLayer, type TarEntry, writeOciLayout } from '../helpers/oci-layout.js';

const sh = promisify(execFile);
const exists = (p: string) =>
  access(p).then(
    () => true,
    () => false,
  );

describe('stage: hostile layers are staged inside the image or refused, never written outside', () => {
  let work: string;
  let root: string;
  /** A host file with secret bytes that hostile links aim at. */
  let canary: string;
  let secret: string;
  /** Host paths hostile names aim at: none may appear. */
  const targets: string[] = [];

  async function image(name: string, top: TarEntry[], kernel = true): Promise<void> {
    const base = path.join(work, `${name}-base.tar`);
    const upper = path.join(work, `${name}-top.tar`);
    await tarStreamLayer(base, [
      { name: 'boot/', type: 'directory' },
      ...(kernel ? [{ name: 'boot/vmlinuz-6.1.0-test', content: 'the image kernel' }] : []),
      { name: 'etc/', type: 'directory' },
    ]);
    await tarStreamLayer(upper, top);
    const layout = path.join(work, `layout-${name}`);
    await writeOciLayout(layout, name, [
      { tar: base, compression: 'gzip' },
      { tar: upper, compression: 'gzip' },
    ]);
    await darchOk(['images', 'import', `oci:${layout}:${name}`, `${name}:1`], { root });
  }

  /** `tar -tv` of a staged image's squashfs. */
  async function listing(dir: string): Promise<string> {
    const { stdout } = await sh('bash', ['-c', `sqfs2tar "${path.join(dir, 'rootfs.squash')}" | tar -tvf -`], { maxBuffer: 16 * 1024 * 1024 });
    return stdout;
  }

  before(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'darch-hostile-'));
    root = path.join(work, 'root');
    canary = path.join(work, 'host-secret');
    secret = `host secret ${randomBytes(8).toString('hex')}`;
    await writeFile(canary, secret);
    const stamp = randomBytes(4).toString('hex');
    targets.push(`/etc/darch-hostile-${stamp}`, `/tmp/darch-hostile-${stamp}`, path.join(work, `outside-${stamp}`));
    await image('names', [
      { name: targets[0] as string, content: 'absolute name' },
      { name: `/${targets[1]}`, content: 'double slash' },
      { name: 'srv/./x//y', content: 'dots and doubled slashes' },
    ]);
    await image('devices', [
      { name: 'dev/', type: 'directory' },
      { name: 'dev/mem-copy', type: 'character-device', devmajor: 1, devminor: 1, mode: 0o600 },
      { name: 'usr/', type: 'directory' },
      { name: 'usr/bin/', type: 'directory' },
      { name: 'usr/bin/rootshell', content: '#!/bin/sh\n', mode: 0o4755 },
      { name: 'srv/', type: 'directory' },
      { name: 'srv/dup', content: 'first' },
      { name: 'srv/dup', content: 'second wins' },
      { name: 'srv/host-link', type: 'symlink', linkname: canary },
      { name: 'srv/up-link', type: 'symlink', linkname: `../../../../../..${targets[2]}` },
    ]);
    await image('kernel-link', [{ name: 'boot/vmlinuz-6.1.0-test', type: 'symlink', linkname: canary }], false);
    await image('kernel-up-link', [{ name: 'boot/vmlinuz-6.1.0-test', type: 'symlink', linkname: `../../../../../../..${canary}` }], false);
    await image('hardlink-out', [{ name: 'srv/h', type: 'link', linkname: `../../../../..${canary}` }]);
    await image('hardlink-abs', [{ name: 'srv/h', type: 'link', linkname: canary }]);
    await image('pax-lies', [
      { name: 'srv/', type: 'directory' },
      { name: 'srv/short', content: 'five!', pax: { size: '999999' } },
    ]);
  });
  after(async () => {
    for (const t of targets) assert.equal(await exists(t), false, `${t} was written on the host`);
    assert.equal(await readFile(canary, 'utf8'), secret, 'the host file is unchanged');
    await rm(work, { recursive: true, force: true });
  });

  it('absolute names and `.` components land inside the image (any `..` is refused: stage-bad-layers)', async () => {
    const dir = (await darchOk(['--json', 'stage', 'upload', 'names:1'], { root })).json().dir as string;
    const list = await listing(dir);
    assert.match(list, new RegExp(` ${targets[0]!.slice(1)}\\n`));
    assert.match(list, new RegExp(` ${targets[1]!.slice(1)}\\n`));
    assert.match(list, / srv\/x\/y\n/);
  });

  it('device nodes and setuid files stay inside the squashfs as the image says; the last duplicate wins; symlinks stay links', async () => {
    const dir = (await darchOk(['--json', 'stage', 'upload', 'devices:1'], { root })).json().dir as string;
    const list = await listing(dir);
    assert.match(list, /^crw------- 0\/0 +1,1 .* dev\/mem-copy$/m);
    assert.match(list, /^-rwsr-xr-x 0\/0 .* usr\/bin\/rootshell$/m);
    assert.match(list, new RegExp(`^lrwxrwxrwx .* srv/host-link -> ${canary.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}$`, 'm'));
    const { stdout } = await sh('bash', ['-c', `sqfs2tar "${path.join(dir, 'rootfs.squash')}" | tar -xOf - srv/dup`]);
    assert.equal(stdout, 'second wins');
    assert.doesNotMatch(list, new RegExp(secret), 'no host bytes in the image');
  });

  it('a kernel that is a symlink to a host file is resolved inside the image: the host file is never read', async () => {
    for (const name of ['kernel-link', 'kernel-up-link']) {
      // The link resolves inside the image, where nothing is at that path: no kernel.
      const r = await darch(['stage', 'upload', `${name}:1`], { root });
      assert.equal(r.code, 1, `${name}: ${r.stderr}`);
      assert.match(r.stderr, new RegExp(`^error: ${name}:1 has no kernel`, 'm'));
      assert.doesNotMatch(r.stderr, new RegExp(secret));
    }
  });

  it('hard links out of the root, or to a name the image lacks, are refused', async () => {
    const up = await darch(['stage', 'upload', 'hardlink-out:1'], { root });
    assert.equal(up.code, 1);
    assert.match(up.stderr, /error: layer 2 has an entry outside the root/);
    const abs = await darch(['stage', 'upload', 'hardlink-abs:1'], { root });
    assert.equal(abs.code, 1);
    assert.match(abs.stderr, /error: layer 2: hard link srv\/h points to .*host-secret, which does not exist/);
  });

  it('a pax record that claims more bytes than the layer has is refused, naming the layer', async () => {
    const r = await darch(['stage', 'upload', 'pax-lies:1'], { root });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /^error: .*layer 2/m);
  });
});

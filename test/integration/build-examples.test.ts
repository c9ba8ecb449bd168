/** The shipped examples/ recipe trees build (the busybox ones; the Debian ones need debootstrap and apt, see docs/RECIPES.md). */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { REPO, darchOk } from '../helpers/darch.js';
import { refNames, storeDir } from '../helpers/recipes.js';

test('examples/recipes and examples/containerfile: busybox-base builds in both formats to the same files', async () => {
  const work = await mkdtemp(path.join(os.tmpdir(), 'darch-build-ex-'));
  after(() => rm(work, { recursive: true, force: true }));
  const root = path.join(work, 'root');
  await darchOk(['demo', '--image-only'], { root }); // example/busybox:latest, as examples/make-bases.sh makes it
  await darchOk(['build', '-d', path.join(REPO, 'examples/recipes'), '-p', 'darch-format/', 'busybox-base'], { root });
  await darchOk(['build', '-d', path.join(REPO, 'examples/containerfile'), '-p', 'containerfile/', 'busybox-base'], { root });
  const names = await refNames(root);
  for (const n of [
    'darch-format/busybox-base:latest',
    'darch-format/busybox-base:example',
    'containerfile/busybox-base:latest',
    'containerfile/busybox-base:example',
  ]) {
    assert.ok(names.includes(n), `${n} in ${names.join(',')}`);
  }
  for (const prefix of ['darch-format', 'containerfile']) {
    const out = path.join(work, prefix);
    execFileSync('umoci', ['unpack', '--image', `${storeDir(root)}:${prefix}/busybox-base:latest`, out], { stdio: 'ignore' });
    assert.match(await readFile(path.join(out, 'rootfs/etc/motd'), 'utf8'), /examples\/recipes\/busybox-base/);
    assert.equal(await readFile(path.join(out, 'rootfs/etc/hostname'), 'utf8'), 'darch-busybox\n');
    assert.match(await readFile(path.join(out, 'rootfs/etc/passwd'), 'utf8'), /^demo:x:1000:1000:/m);
  }
});

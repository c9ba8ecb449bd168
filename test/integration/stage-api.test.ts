/**
 * The function API issue 6 builds on: a stage step runs on the complete work directory
 * before the rename into place, what it writes is checksummed into meta.json and carried
 * by bundles, and a failing step leaves nothing staged.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdtemp, readFile, readdir, rm, stat, writeFile, mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { after, before, describe, it } from 'node:test';
import tar from 'tar-stream';
import { resolvePaths } from '../../src/lib/paths.js';
import { ImageStore } from '../../src/oci/store.js';
import { stageImage, type StageStep } from '../../src/stage/stage.js';
import { StageStore } from '../../src/stage/store.js';
import { darchOk } from '../helpers/darch.js';

describe('stage API: steps (the hook point for the initramfs and hooks)', () => {
  let work: string;
  let images: ImageStore;
  let stage: StageStore;

  before(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'darch-stage-api-'));
    const t = path.join(work, 'r.tar');
    const pack = tar.pack();
    const done = pipeline(pack, createWriteStream(t));
    pack.entry({ name: 'boot/', type: 'directory', mode: 0o755 });
    pack.entry({ name: 'boot/vmlinuz-6.1.0-1', mode: 0o644 }, 'kernel without an initramfs');
    pack.entry({ name: 'etc/', type: 'directory', mode: 0o755 });
    pack.entry({ name: 'etc/hostname', mode: 0o644 }, 'api\n');
    pack.finalize();
    await done;
    const root = path.join(work, 'root');
    await darchOk(['images', 'import', t, 'api:1'], { root });
    const paths = resolvePaths({ root });
    images = new ImageStore(paths.imagesDir, paths.tmpDir, 0);
    stage = new StageStore(paths.stageDir, 0);
  });
  after(() => rm(work, { recursive: true, force: true }));

  it('runs a step on the finished work directory and commits what it wrote', async () => {
    let sawSquash = false;
    const step: StageStep = {
      name: 'test-initramfs',
      async run(ctx) {
        sawSquash = (await stat(path.join(ctx.dir, 'rootfs.squash'))).size > 0 && (await stat(path.join(ctx.dir, 'vmlinuz'))).size > 0;
        assert.equal(ctx.boot.initramfs, undefined);
        assert.equal(ctx.index.lookup('/etc/hostname')?.type, 'file');
        assert.ok(ctx.dir.includes(`${path.sep}tmp${path.sep}`), 'steps run before the rename into live/');
        await writeFile(path.join(ctx.dir, 'initrd.img'), 'universal initramfs');
        await mkdir(path.join(ctx.dir, 'hooks', '00000000_hostname'), { recursive: true });
        await writeFile(path.join(ctx.dir, 'hooks', '00000000_hostname', 'hostname'), 'box\n');
      },
    };
    const res = await stageImage(images, stage, 'api:1', { steps: [step] });
    assert.ok(sawSquash);
    assert.equal(await readFile(path.join(res.dir, 'initrd.img'), 'utf8'), 'universal initramfs');
    assert.equal(JSON.parse(await readFile(path.join(res.dir, 'image.json'), 'utf8')).initramfs, 'initrd.img', 'image.json names the initramfs a step added');
    const h = createHash('sha256').update('box\n').digest('hex');
    assert.equal(res.meta.sha256['hooks/00000000_hostname/hostname'], h);
    assert.equal((await stage.get('api:1')).id, res.id);
  });

  it('a failing step stages nothing and leaves no work directory', async () => {
    const before = await readdir(stage.liveDir);
    await assert.rejects(
      stageImage(images, stage, 'api:1', { force: true, tags: ['api:2'], steps: [{ name: 'boom', run: async () => Promise.reject(new Error('hook install failed')) }] }),
      /hook install failed/,
    );
    assert.deepEqual(await readdir(stage.liveDir), before);
    assert.deepEqual(await readdir(stage.tmpDir), []);
    await assert.rejects(stage.get('api:2'), /not staged/);
  });
});

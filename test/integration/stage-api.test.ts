/**
 * The function API issue 6 builds on: a stage step runs on the complete work directory
 * before the rename into place, what it writes is checksummed into meta.json and carried
 * by bundles, and a failing step leaves nothing staged.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createWriteStream, writeFileSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm, stat, writeFile, mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, before, describe, it } from 'node:test';
import tar from 'tar-stream';
import { indexLayers, streamFlattened } from '../../src/layers/flatten.js';
import { resolvePaths } from '../../src/lib/paths.js';
import { copyFromSquashfs } from '../../src/stage/squashfs.js';
import { ImageStore } from '../../src/oci/store.js';
import { stageImage, type StageStep } from '../../src/stage/stage.js';
import { exportStaged, importBundle } from '../../src/stage/bundle.js';
import { StageStore } from '../../src/stage/store.js';
import { darchOk } from '../helpers/darch.js';
import { withTmpfs } from '../helpers/tmpfs.js';

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
      stageImage(images, stage, 'api:1', {
        force: true,
        tags: ['api:2'],
        steps: [{ name: 'boom', run: async () => Promise.reject(new Error('hook install failed')) }],
      }),
      /hook install failed/,
    );
    assert.deepEqual(await readdir(stage.liveDir), before);
    assert.deepEqual(await readdir(stage.tmpDir), []);
    await assert.rejects(stage.get('api:2'), /not staged/);
  });

  it("a disk that fills while a bundle is imported is the file system's error, not the bundle's", async (t) => {
    const bundle = path.join(work, 'api.darch');
    await exportStaged(stage, 'api:1', bundle);
    await withTmpfs(t, path.join(work, 'full-import'), '2m', async (full) => {
      const target = new StageStore(path.join(full, 'stage'), 0);
      let filled = false;
      const fill = () => {
        if (filled) return;
        filled = true;
        // The space check has passed: now the disk fills up under the import.
        try {
          writeFileSync(path.join(full, 'filler'), Buffer.alloc(4 << 20));
        } catch {
          /* ENOSPC: full, as wanted */
        }
      };
      await assert.rejects(importBundle(target, bundle, { onBytes: fill }), (err: any) => {
        assert.equal(err.code, 'E_FS_ENOSPC', String(err));
        assert.match(err.hint, /the disk is full/);
        return true;
      });
      assert.deepEqual(await readdir(target.tmpDir), [], 'the work directory is removed');
    });
  });

  it("a disk that fills while the kernel is copied out is the file system's error, not the layer's, in either pass, and stops the stream", async (t) => {
    const t2 = path.join(work, 'big.tar');
    const pack = tar.pack();
    const done = pipeline(pack, createWriteStream(t2));
    pack.entry({ name: 'boot/', type: 'directory', mode: 0o755 });
    pack.entry({ name: 'boot/vmlinuz-6.1.0-1', mode: 0o644 }, Buffer.alloc(4 << 20));
    pack.finalize();
    await done;
    await darchOk(['images', 'import', t2, 'big:1'], { root: path.join(work, 'root') });
    await withTmpfs(t, path.join(work, 'full'), '1m', async (full) => {
      const image = await images.resolveImage('big:1');
      const index = await indexLayers(images, image.manifest.layers);
      const key = index.lookup('/boot/vmlinuz-6.1.0-1')!.key!;
      const stream = streamFlattened(images, index, { capture: new Map([[key, path.join(full, 'vmlinuz')]]) });
      const sink = new Writable({ write: (_c, _e, cb) => cb() });
      // Before the fix the stream waited for a 'close' the failed file had already emitted: forever.
      const hang = new Promise((_r, reject) => setTimeout(() => reject(new Error('the stream hung on the full disk')), 30_000).unref());
      await assert.rejects(Promise.race([pipeline(stream, sink), hang]), (err: any) => {
        assert.equal(err.code, 'E_FS_ENOSPC', String(err));
        assert.match(err.message, /cannot write .*vmlinuz: ENOSPC/);
        assert.match(err.hint, /the disk is full/);
        return true;
      });
      // One pass copies the kernel out of the finished squashfs: rdsquashfs says "No space left".
      const sq = path.join(work, 'big.squash');
      execFileSync('tar2sqfs', ['--quiet', '--force', sq], { input: await readFile(t2) });
      await assert.rejects(copyFromSquashfs(sq, 'boot/vmlinuz-6.1.0-1', path.join(full, 'vmlinuz-2')), (err: any) => {
        assert.equal(err.code, 'E_NO_SPACE', String(err));
        assert.match(err.message, /the stage file system filled up while copying \/boot\/vmlinuz-6\.1\.0-1 to /);
        return true;
      });
    });
  });
});

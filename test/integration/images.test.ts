/**
 * The image store end to end through the CLI, checked against the real skopeo and umoci.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { readdir, readFile, stat, truncate, writeFile, open } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, test } from 'node:test';
import { DARCH_BIN, darch, darchOk, tempDir } from '../helpers/darch.js';
import { makeRootfsTar, sh } from '../helpers/fixtures.js';
import { withTmpfs } from '../helpers/tmpfs.js';

const storeOf = (root: string) => path.join(root, 'var/lib/darch/images');

/** Everything that says what the store holds: the index and the set of blobs. */
async function snapshot(root: string): Promise<string> {
  const store = storeOf(root);
  const index = await readFile(path.join(store, 'index.json'), 'utf8').catch(() => '');
  const blobs = (await readdir(path.join(store, 'blobs/sha256')).catch(() => [])).sort();
  return JSON.stringify({ index, blobs });
}

describe('darch images', () => {
  test('demo puts the example image in the store; skopeo and umoci read it', async (t) => {
    const root = await tempDir(t);
    const demo = await darchOk(['--json', 'demo', '--image-only'], { root });
    const img = demo.json().image;
    assert.equal(img.name, 'example/busybox:latest');
    assert.match(img.digest, /^sha256:[a-f0-9]{64}$/);

    const list = (await darchOk(['--json', 'images', 'list'], { root })).json();
    assert.deepEqual(
      list.images.map((i: { name: string }) => i.name),
      ['example/busybox:latest'],
    );
    const human = await darchOk(['images', 'list'], { root });
    assert.match(human.stdout, /^REPOSITORY\s+TAG\s+IMAGE ID/m);
    assert.match(human.stdout, /example\/busybox\s+latest\s+[a-f0-9]{12}/);

    const sk = JSON.parse((await sh('skopeo', ['inspect', `oci:${storeOf(root)}:example/busybox:latest`])).stdout);
    assert.equal(sk.Digest, img.digest);
    const unpacked = path.join(root, 'unpacked');
    await sh('umoci', ['unpack', '--image', `${storeOf(root)}:example/busybox:latest`, unpacked]);
    const osr = await readFile(path.join(unpacked, 'rootfs/etc/os-release'), 'utf8');
    assert.match(osr, /darch example/);
    assert.ok((await stat(path.join(unpacked, 'rootfs/bin/busybox'))).mode & 0o100, 'busybox is executable');

    const inspect = (await darchOk(['--json', 'images', 'inspect', 'example/busybox'], { root })).json();
    assert.equal(inspect.layers.length, 1);
    assert.match(inspect.layers[0].diffId, /^sha256:/);
    assert.equal((await darchOk(['images', 'verify'], { root })).code, 0);
    // The example is reproducible: the same busybox gives the same image, and a rerun adds nothing.
    const again = (await darchOk(['--json', 'demo', '--image-only'], { root })).json().image;
    assert.equal(again.digest, img.digest);
    const other = await tempDir(t);
    assert.equal((await darchOk(['--json', 'demo', '--image-only'], { root: other })).json().image.digest, img.digest);
  });

  test('imports gzip, zstd and xz root file systems, OCI and docker archives, and OCI layouts', async (t) => {
    const root = await tempDir(t);
    const work = await tempDir(t);
    for (const c of ['gzip', 'zstd', 'xz'] as const) {
      const tarPath = await makeRootfsTar(work, `fs-${c}`, { compress: c, marker: `made-${c}` });
      await darchOk(['images', 'import', tarPath, `fs/${c}:1`], { root });
      const out = path.join(work, `out-${c}`);
      await sh('umoci', ['unpack', '--image', `${storeOf(root)}:fs/${c}:1`, out]);
      assert.match(await readFile(path.join(out, 'rootfs/etc/os-release'), 'utf8'), new RegExp(`made-${c}`));
    }
    // A root file system piped on stdin.
    const piped = await darchOk(['--json', 'images', 'import', '-', 'fs/stdin:1'], {
      root,
      input: await readFile(await makeRootfsTar(work, 'piped', { marker: 'from-stdin' })),
    });
    assert.equal(piped.json().format, 'rootfs');
    await sh('umoci', ['unpack', '--image', `${storeOf(root)}:fs/stdin:1`, path.join(work, 'out-stdin')]);
    assert.match(await readFile(path.join(work, 'out-stdin/rootfs/etc/os-release'), 'utf8'), /from-stdin/);
    // Archives written by skopeo from the store itself keep the same layers and digest.
    const src = `oci:${storeOf(root)}:fs/gzip:1`;
    const want = (await darchOk(['--json', 'images', 'inspect', 'fs/gzip:1'], { root })).json();
    await sh('skopeo', ['copy', src, `oci-archive:${work}/img.oci.tar`]);
    await sh('skopeo', ['copy', src, `docker-archive:${work}/img.docker.tar:saved/img:1`]);
    await sh('skopeo', ['copy', src, `oci:${work}/layout:ref1`]);
    const root2 = await tempDir(t);
    const a = (await darchOk(['--json', 'images', 'import', `${work}/img.oci.tar`, 'from/oci:1'], { root: root2 })).json();
    assert.equal(a.format, 'oci-archive');
    const b = (await darchOk(['--json', 'images', 'import', `${work}/img.docker.tar`, 'from/docker:1'], { root: root2 })).json();
    assert.equal(b.format, 'docker-archive');
    const c = (await darchOk(['--json', 'images', 'import', `oci:${work}/layout:ref1`, 'from/layout:1'], { root: root2 })).json();
    assert.equal(c.format, 'oci-dir');
    for (const n of ['from/oci:1', 'from/docker:1', 'from/layout:1']) {
      const i = (await darchOk(['--json', 'images', 'inspect', n], { root: root2 })).json();
      assert.deepEqual(
        i.layers.map((l: { diffId: string }) => l.diffId),
        want.layers.map((l: { diffId: string }) => l.diffId),
        n,
      );
      const out = path.join(work, `x-${n.replace(/\W/g, '_')}`);
      await sh('umoci', ['unpack', '--image', `${storeOf(root2)}:${n}`, out]);
      assert.match(await readFile(path.join(out, 'rootfs/etc/os-release'), 'utf8'), /made-gzip/);
    }
    assert.equal(a.digest, want.digest, 'an OCI archive keeps the manifest digest');
    assert.equal((await darchOk(['images', 'verify'], { root: root2 })).code, 0);
  });

  test('an image skopeo copies into the store shows in the list', async (t) => {
    const root = await tempDir(t);
    await darchOk(['demo', '--image-only'], { root });
    await sh('skopeo', ['copy', `oci:${storeOf(root)}:example/busybox:latest`, `oci:${storeOf(root)}:copied/by-skopeo:7`]);
    const names = (await darchOk(['images', 'list', '--names'], { root })).stdout.trim().split('\n');
    assert.deepEqual(names, ['copied/by-skopeo:7', 'example/busybox:latest']);
  });

  test('tag, remove and prune', async (t) => {
    const root = await tempDir(t);
    const work = await tempDir(t);
    await darchOk(['demo', '--image-only'], { root });
    await darchOk(['images', 'import', await makeRootfsTar(work, 'other'), 'other:1'], { root });
    await darchOk(['images', 'tag', 'example/busybox', 'alias:2'], { root });
    const list = (await darchOk(['--json', 'images', 'list'], { root })).json().images;
    const byName = Object.fromEntries(list.map((i: { name: string; digest: string }) => [i.name, i.digest]));
    assert.equal(byName['alias:2'], byName['example/busybox:latest']);

    const blobsBefore = (await readdir(path.join(storeOf(root), 'blobs/sha256'))).length;
    await darchOk(['images', 'remove', 'other:1'], { root });
    assert.equal((await readdir(path.join(storeOf(root), 'blobs/sha256'))).length, blobsBefore, 'remove keeps blobs');
    const dry = (await darchOk(['--json', 'images', 'prune', '--dry-run'], { root })).json();
    assert.equal(dry.removed.length, 3, 'manifest, config and layer of other:1');
    const pruned = (await darchOk(['--json', 'images', 'prune'], { root })).json();
    assert.equal(pruned.removed.length, 3);
    assert.ok(pruned.bytesFreed > 0);
    assert.equal((await readdir(path.join(storeOf(root), 'blobs/sha256'))).length, blobsBefore - 3);
    // What is still named still works.
    await darchOk(['images', 'verify'], { root });
    await sh('umoci', ['unpack', '--image', `${storeOf(root)}:alias:2`, path.join(work, 'u')]);
    const gone = await darch(['images', 'inspect', 'other:1'], { root });
    assert.equal(gone.code, 1);
    assert.match(gone.stderr, /error: image other:1 is not in the local store/);
  });

  test('verify finds a corrupt blob and a missing one, and names the image', async (t) => {
    const root = await tempDir(t);
    await darchOk(['demo', '--image-only'], { root });
    const inspect = (await darchOk(['--json', 'images', 'inspect', 'example/busybox'], { root })).json();
    const layer = path.join(storeOf(root), 'blobs/sha256', inspect.layers[0].digest.slice(7));
    const fh = await open(layer, 'r+');
    const b = Buffer.alloc(1);
    await fh.read(b, 0, 1, 1000);
    b[0] = b[0]! ^ 0xff;
    await fh.write(b, 0, 1, 1000);
    await fh.close();
    const r = await darch(['images', 'verify'], { root });
    assert.equal(r.code, 1);
    assert.match(r.stdout, /corrupt\s+example\/busybox:latest/);
    assert.match(r.stderr, /error: 1 problem\(s\) in the image store/);
    const j = await darch(['--json', 'images', 'verify'], { root });
    assert.equal(j.code, 1);
    const doc = j.json();
    assert.equal(doc.error.code, 'E_VERIFY_FAILED');
    assert.equal(doc.error.details.problems[0].digest, inspect.layers[0].digest);

    const cfg = path.join(storeOf(root), 'blobs/sha256', inspect.manifest.config.digest.slice(7));
    await sh('rm', [cfg]);
    const m = (await darch(['--json', 'images', 'verify'], { root })).json();
    assert.deepEqual(m.error.details.problems.map((p: { problem: string }) => p.problem).sort(), ['corrupt', 'missing']);
  });
});

describe('darch images: bad input leaves the store as it was', () => {
  test('not a tarball, truncated archives, bad names, missing files', async (t) => {
    const root = await tempDir(t);
    const work = await tempDir(t);
    await darchOk(['demo', '--image-only'], { root });
    const before = await snapshot(root);

    const junk = path.join(work, 'junk.tar');
    await writeFile(junk, 'this is not a tar archive at all\n'.repeat(100));
    let r = await darch(['images', 'import', junk, 'x:1'], { root });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^error: .*junk\.tar is not a tar archive/m);
    assert.match(r.stderr, /^hint: /m);
    assert.equal(r.stderr.trim().split('\n').length <= 4, true, 'short error, no stack trace');

    const big = await makeRootfsTar(work, 'big', { randomBytes: 300_000 });
    await truncate(big, 150_000);
    r = await darch(['images', 'import', big, 'x:1', '--format', 'rootfs'], { root });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /error: .*truncated/);

    const gz = await makeRootfsTar(work, 'gz', { randomBytes: 300_000, compress: 'gzip' });
    await truncate(gz, 100_000);
    r = await darch(['images', 'import', gz, 'x:1'], { root });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /error: .*(truncated|not a tar|end of file)/i);

    const zst = await makeRootfsTar(work, 'zst', { randomBytes: 300_000, compress: 'zstd' });
    await truncate(zst, 100_000);
    r = await darch(['images', 'import', zst, 'x:1', '--format', 'rootfs'], { root });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^error: .*truncated/m);

    const ociTar = path.join(work, 'img.oci.tar');
    await sh('skopeo', ['copy', `oci:${storeOf(root)}:example/busybox:latest`, `oci-archive:${ociTar}`]);
    await truncate(ociTar, (await stat(ociTar)).size - 700_000);
    r = await darch(['images', 'import', ociTar, 'x:1', '--format', 'oci-archive'], { root });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /error: .*(truncated|incomplete|index\.json)/);

    r = await darch(['images', 'import', await makeRootfsTar(work, 'ok'), 'Bad:Name'], { root });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /error: invalid image reference "Bad:Name": repository names must be lowercase/);

    r = await darch(['images', 'import', path.join(work, 'nope.tar'), 'x:1'], { root });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /does not exist/);

    r = await darch(['images', 'bogus'], { root });
    assert.equal(r.code, 2);

    assert.equal(await snapshot(root), before, 'the store is exactly as it was');
    await darchOk(['images', 'verify'], { root });
    assert.equal((await readdir(path.join(root, 'var/lib/darch/tmp'))).length, 0, 'no temp files left');
  });

  test('a locked store: a clear error naming the owner; a dead owner is taken over', async (t) => {
    const root = await tempDir(t);
    await darchOk(['demo', '--image-only'], { root });
    const lock = path.join(root, 'var/lib/darch/images.lock');
    // A live process (this test runner) holds the lock.
    await writeFile(
      lock,
      JSON.stringify({ pid: process.pid, host: (await import('node:os')).hostname(), command: 'images import big.tar', since: new Date().toISOString() }),
    );
    const r = await darch(['images', 'tag', 'example/busybox', 'y:1'], { root });
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`error: the image store .* is locked by another darch process \\(pid ${process.pid}`));
    assert.match(r.stderr, /hint: /);
    // A lock left by a process that no longer exists does not block anyone.
    const dead = spawn('true');
    await new Promise((res) => dead.on('close', res));
    await writeFile(lock, JSON.stringify({ pid: dead.pid, host: (await import('node:os')).hostname(), command: 'x', since: '' }));
    await darchOk(['images', 'tag', 'example/busybox', 'y:1'], { root });
    await assert.rejects(stat(lock), 'the lock is released afterwards');
  });

  test('a corrupt index gives a clear error', async (t) => {
    const root = await tempDir(t);
    await darchOk(['demo', '--image-only'], { root });
    await writeFile(path.join(storeOf(root), 'index.json'), '{"manifests": [');
    const r = await darch(['images', 'list'], { root });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /error: .*index\.json is corrupt/);
    assert.match(r.stderr, /hint: /);
  });

  test('kill -9 in the middle of an import: verify passes, old tags resolve, nothing is locked', async (t) => {
    const root = await tempDir(t);
    const work = await tempDir(t);
    await darchOk(['demo', '--image-only'], { root });
    const before = await snapshot(root);
    const big = await makeRootfsTar(work, 'huge', { randomBytes: 400 * 1024 * 1024 });
    const child = spawn(DARCH_BIN, ['--root', root, 'images', 'import', big, 'huge:1'], { stdio: 'ignore' });
    const tmp = path.join(root, 'var/lib/darch/tmp');
    // Wait until the import is writing its layer, then kill it without warning.
    for (let i = 0; i < 300; i++) {
      const files = await readdir(tmp).catch(() => [] as string[]);
      if (files.some((f) => f.startsWith('blob-'))) {
        const s = await stat(path.join(tmp, files.find((f) => f.startsWith('blob-'))!)).catch(() => undefined);
        if (s && s.size > 1024 * 1024) break;
      }
      await sleep(50);
    }
    child.kill('SIGKILL');
    await new Promise((res) => child.on('close', res));
    assert.ok((await readdir(tmp)).length > 0, 'the import was killed while writing');

    assert.equal(await snapshot(root), before, 'index and blobs untouched');
    await darchOk(['images', 'verify'], { root });
    const i = (await darchOk(['--json', 'images', 'inspect', 'example/busybox:latest'], { root })).json();
    assert.equal(i.name, 'example/busybox:latest');
    // The next writer is not blocked by the dead process's lock, and prune sweeps its leftovers.
    const p = (await darchOk(['--json', 'images', 'prune'], { root })).json();
    assert.ok(p.tempFilesRemoved >= 1);
    assert.equal((await readdir(tmp)).length, 0);
  });

  test('a full disk: a clear error, and the store is as it was', async (t) => {
    const work = await tempDir(t);
    await withTmpfs(t, path.join(work, 'small-disk'), '4m', async (root) => {
      await darchOk(['demo', '--image-only'], { root });
      const before = await snapshot(root);
      const big = await makeRootfsTar(work, 'big', { randomBytes: 8 * 1024 * 1024 });
      const r = await darch(['images', 'import', big, 'big:1'], { root });
      assert.equal(r.code, 1);
      assert.match(r.stderr, /error: .*(no space left|ENOSPC)/i);
      assert.match(r.stderr, /hint: the disk is full/);
      assert.equal(await snapshot(root), before);
      assert.equal((await readdir(path.join(root, 'var/lib/darch/tmp'))).length, 0, 'the partial blob was removed');
      await darchOk(['images', 'verify'], { root });
    });
  });
});

describe('global behaviour', () => {
  test('--json errors are one document on stdout; exit codes', async (t) => {
    const root = await tempDir(t);
    const r = await darch(['--json', 'images', 'inspect', 'nothing:here'], { root });
    assert.equal(r.code, 1);
    const doc = r.json();
    assert.equal(doc.error.code, 'E_IMAGE_NOT_FOUND');
    assert.ok(doc.error.hint);
    const u = await darch(['images', 'import'], { root });
    assert.equal(u.code, 2);
    assert.match(u.stderr, /missing required argument/);
    const h = await darchOk(['--help']);
    for (const group of ['demo', 'images', 'doctor']) assert.match(h.stdout, new RegExp(`^  ${group}\\s+\\S`, 'm'));
    const q = await darchOk(['-q', 'demo', '--image-only'], { root });
    assert.equal(q.stderr, '', '-q prints no progress');
    const colored = await darch(['--color=always', 'images', 'inspect', 'nothing:here'], { root });
    assert.match(colored.stderr, /\x1b\[31merror:/);
    const plain = await darch(['images', 'inspect', 'nothing:here'], { root, env: { NO_COLOR: '1' } });
    assert.doesNotMatch(plain.stderr, /\x1b\[/);
    const v = await darchOk(['--version']);
    // The version and the commit the build came from (this checkout's HEAD).
    const head = execFileSync('git', ['rev-parse', '--short=12', 'HEAD'], { encoding: 'utf8' }).trim();
    assert.match(v.stdout, new RegExp(`^\\d+\\.\\d+\\.\\d+ \\(${head}(-dirty)?\\)\\n$`));
    const vj = (await darchOk(['--json', '--version'])).json();
    assert.equal(vj.node, process.version, 'the runtime it runs on');
    assert.match(vj.commit, new RegExp(`^${head}`));
  });

  test('an unprivileged user builds the example image in their own XDG directories', async (t) => {
    if (process.getuid?.() !== 0) return t.skip('needs root to switch to an unprivileged user');
    const home = await tempDir(t);
    await sh('chown', ['65534:65534', home]);
    const { stdout } = await sh('setpriv', [
      '--reuid=65534',
      '--regid=65534',
      '--clear-groups',
      'env',
      `HOME=${home}`,
      'XDG_DATA_HOME=',
      'DARCH_ROOT=',
      DARCH_BIN,
      '--json',
      'demo',
      '--image-only',
    ]);
    assert.equal(JSON.parse(stdout).store, path.join(home, '.local/share/darch/images'));
    const s = await stat(path.join(home, '.local/share/darch/images/index.json'));
    assert.equal(s.uid, 65534);
  });

  test('user mode keeps state in XDG directories without root', async (t) => {
    const home = await tempDir(t);
    const r = await darchOk(['--user', '--json', 'demo', '--image-only'], { env: { HOME: home, XDG_DATA_HOME: path.join(home, 'data'), DARCH_ROOT: '' } });
    assert.equal(r.json().store, path.join(home, 'data/darch/images'));
    await stat(path.join(home, 'data/darch/images/index.json'));
  });
});

/**
 * Boot order (docs/BOOT-ORDER.md), with this machine's kernel, tar2sqfs and the initramfs's
 * own shell function: darch_start_trace turns the filemap trace event on for a staged
 * image's squashfs mounted as the initramfs mounts it, the files are read in a known order,
 * `darch boot trace` keeps that order beside the staged image, and the image's next version
 * is staged with those files first (read back from the squashfs's inodes), by default.
 * qemu boots prove the same inside a booted image (test/e2e/update-debian.test.ts).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { access, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import tar from 'tar-stream';
import { createWriteStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { run } from '../../src/lib/proc.js';
import { darch, darchOk } from '../helpers/darch.js';

const REPO = path.resolve(import.meta.dirname, '../..');
const INSTANCE = '/sys/kernel/tracing/instances/darch';

/** A one-layer image: a kernel and initramfs, and files of random bytes in this order. */
async function importImage(root: string, work: string, name: string, files: Record<string, number>): Promise<void> {
  const file = path.join(work, `${name.replace(/[/:]/g, '_')}.tar`);
  const pack = tar.pack();
  const done = pipeline(pack, createWriteStream(file));
  const add = (h: Partial<tar.Header> & { name: string }, body: string | Buffer = '') =>
    new Promise<void>((res, rej) => pack.entry({ uid: 0, gid: 0, mtime: new Date(1_700_000_000_000), ...h } as tar.Header, body, (e) => (e ? rej(e) : res())));
  for (const d of ['boot', 'etc', 'usr', 'usr/lib']) await add({ name: `${d}/`, type: 'directory', mode: 0o755 });
  await add({ name: 'boot/vmlinuz-6.1.0-1', mode: 0o644 }, 'kernel 6.1');
  await add({ name: 'boot/initrd.img-6.1.0-1', mode: 0o644 }, 'initrd 6.1');
  await add({ name: 'etc/os-release', mode: 0o644 }, `ID=test\nVERSION_ID=${name}\n`);
  for (const [p, size] of Object.entries(files)) await add({ name: p, mode: 0o644 }, randomBytes(size));
  pack.finalize();
  await done;
  await darchOk(['images', 'import', file, name], { root });
}

/** Where the squashfs holds a file's data ("Blocks start", rdsquashfs --stat). */
async function dataStart(squashfs: string, file: string): Promise<number> {
  const out = (await run('rdsquashfs', ['--stat', `/${file}`, squashfs])).stdout;
  const m = /^Blocks start: (\d+)$/m.exec(out);
  assert.ok(m, out);
  return Number(m[1]);
}

describe('boot order', () => {
  let work: string;
  let root: string;
  const mounted: string[] = [];
  before(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'darch-order-'));
    root = path.join(work, 'root');
    await mkdir(path.join(root, 'etc/darch'), { recursive: true });
    await writeFile(path.join(root, 'etc/darch/config.toml'), '[boot]\nbootloader = "grub"\nstage_fs_uuid = "0b6a8f3e-54f1-4c51-a1a7-6d6bcb1a7e14"\n');
  });
  after(async () => {
    for (const m of mounted.reverse()) await run('umount', [m], { allowFailure: true });
    await rm(INSTANCE, { recursive: false, force: true }).catch(() => undefined);
    await rm(work, { recursive: true, force: true });
  });

  it('a traced boot keeps the order it read its files; the next version is staged in it, by default', async () => {
    const files = { 'usr/lib/e': 3_000_000, 'usr/lib/a': 300_000, 'usr/lib/b': 300_000, 'usr/lib/c': 300_000, 'usr/lib/d': 300_000 };
    await importImage(root, work, 'os/app:1', files);
    const v1 = (await darchOk(['--json', 'stage', 'upload', 'os/app:1'], { root })).json<{ id: string; dir: string }>();
    const squash = path.join(v1.dir, 'rootfs.squash');
    assert.ok((await dataStart(squash, 'usr/lib/a')) < (await dataStart(squash, 'usr/lib/c')), 'unordered: the layer order');

    // The initramfs's part: the stage file system at run/source, the squashfs at run/lower.
    const run_ = path.join(work, 'run');
    await mkdir(path.join(run_, 'lower'), { recursive: true });
    await run('mount', ['-t', 'squashfs', '-o', 'ro,loop', squash, path.join(run_, 'lower')]);
    mounted.push(path.join(run_, 'lower'));
    const startTrace = (trace = '') =>
      run('sh', [
        '-c',
        `. "$1"; DARCH_RUN="$2"; darch_path="/live/$3"; darch_stageid="$3"; darch_trace="$4"; darch_start_trace; echo "rc=$?"`,
        'sh',
        path.join(REPO, 'assets/initramfs/darch-lib.sh'),
        run_,
        v1.id,
        trace,
      ]);
    assert.match((await startTrace()).stdout, /rc=0/);
    assert.match(await readFile(path.join(run_, 'trace'), 'utf8'), /^dev=\d+:\d+$/m, 'the initramfs marks the boot as traced');
    // The boot reads c, then a (twice), then b's start, then the start of e (3 MB: read little of).
    for (const f of ['usr/lib/c', 'usr/lib/a', 'usr/lib/a']) await readFile(path.join(run_, 'lower', f));
    await run('head', ['-c', '10', path.join(run_, 'lower/usr/lib/b')]);
    await run('head', ['-c', '10', path.join(run_, 'lower/usr/lib/e')]);

    const env = { DARCH_RUN_DIR: run_, DARCH_CMDLINE_FILE: path.join(work, 'cmdline') };
    await writeFile(env.DARCH_CMDLINE_FILE, `BOOT_IMAGE=/vmlinuz darch_stageid=${v1.id}\n`);
    const traced = (await darchOk(['--json', 'boot', 'trace'], { root, env })).json<{
      stage: string;
      files: number;
      first: string[];
      kept: string;
      partial: string[];
    }>();
    assert.deepEqual(traced.partial, ['usr/lib/e']);
    assert.equal(traced.stage, v1.id);
    assert.deepEqual(traced.first.slice(0, 4), ['usr/lib/c', 'usr/lib/a', 'usr/lib/b', 'usr/lib/e'], 'first reads, each file once');
    const kept = JSON.parse(await readFile(traced.kept, 'utf8')) as { partial?: string[] };
    assert.deepEqual(kept.partial, ['usr/lib/e'], 'e was read little of; b is small, so it counts as read');
    assert.ok(!traced.first.includes('usr/lib/d'), 'd was never read');
    assert.equal(traced.kept, path.join(root, 'var/lib/darch/stage/traces', `${v1.id}.json`));
    await assert.rejects(access(INSTANCE), 'the tracing instance (and its buffer) is gone');
    await assert.rejects(access(path.join(run_, 'trace')));
    const again = await darch(['--json', 'boot', 'trace'], { root, env });
    assert.equal(again.json().error.code, 'E_NO_TRACE', again.stderr);
    // With its trace kept, the next boot of the image does not trace; darch.trace=1 still does.
    await mkdir(path.join(run_, 'source/traces'), { recursive: true });
    await writeFile(path.join(run_, 'source/traces', `${v1.id}.json`), '{}');
    await startTrace();
    await assert.rejects(access(path.join(run_, 'trace')), 'kept: not traced again');
    await startTrace('1');
    await access(path.join(run_, 'trace'));
    assert.equal((await darchOk(['--json', 'boot', 'trace', '--no-save'], { root, env })).json().kept, null);
    await assert.rejects(access(INSTANCE));

    // Version 2, staged with no option: its data in the boot's order, the rest after it.
    await importImage(root, work, 'os/app:2', files);
    const v2 = (await darchOk(['--json', 'stage', 'upload', 'os/app:2'], { root })).json<{ dir: string; meta: { order?: { source: string } } }>();
    assert.equal(v2.meta.order?.source, `trace of ${v1.id}`);
    const s2 = path.join(v2.dir, 'rootfs.squash');
    const at = Object.fromEntries(await Promise.all(Object.keys(files).map(async (f) => [f, await dataStart(s2, f)] as const)));
    assert.ok(
      at['usr/lib/c']! < at['usr/lib/a']! && at['usr/lib/a']! < at['usr/lib/b']! && at['usr/lib/b']! < at['usr/lib/e']! && at['usr/lib/e']! < at['usr/lib/d']!,
      `the files read whole, then e, then the rest: ${JSON.stringify(at)}`,
    );
    // Its readahead: from the start to e's data (what follows the files the boot read whole),
    // and the tables at the end; the same total in meta.json.
    const ra = (await readFile(path.join(v2.dir, 'readahead'), 'utf8'))
      .split('\n')
      .filter((l) => /^\d/.test(l))
      .map((l) => l.split(' ').map(Number));
    assert.deepEqual(ra[0], [0, at['usr/lib/e']], JSON.stringify(ra));
    const used = Number((await readFile(s2)).readBigUInt64LE(40));
    assert.equal(ra.length, 2);
    assert.equal(ra[1]![0]! + ra[1]![1]!, used, 'the tables, up to the end of the squashfs');
    assert.equal(
      (v2.meta.order as { readahead?: number }).readahead,
      ra.reduce((n, r) => n + r[1]!, 0),
    );
    // The initramfs's part: those ranges are in the page cache after darch_readahead, and
    // nothing is with darch.readahead=0.
    const resident = async () => (JSON.parse((await run('fincore', ['--json', '--bytes', s2])).stdout) as { fincore: Array<{ res: number }> }).fincore[0]!.res;
    const dropCache = () => run('dd', [`if=${s2}`, 'iflag=nocache', 'count=0', 'of=/dev/null']);
    const run2 = path.join(work, 'run2');
    await mkdir(run2);
    await run('ln', ['-s', path.join(root, 'var/lib/darch/stage'), path.join(run2, 'source')]);
    const readAhead = (setting = '') =>
      run('sh', [
        '-c',
        `. "$1"; DARCH_RUN="$2"; darch_path="/live/$3"; darch_rootfs=rootfs.squash; darch_readahead="$4"; darch_readahead "$5"; echo "rc=$?"`,
        'sh',
        path.join(REPO, 'assets/initramfs/darch-lib.sh'),
        run2,
        path.basename(v2.dir),
        setting,
        s2,
      ]);
    await dropCache();
    assert.equal(await resident(), 0, 'the page cache of the squashfs was dropped');
    assert.match((await readAhead('0')).stdout, /rc=0/);
    assert.equal(await resident(), 0, 'darch.readahead=0: nothing read');
    assert.match((await readAhead()).stdout, /rc=0/);
    const res = await resident();
    assert.ok(res >= ra[0]![1]! + ra[1]![1]!, `${res} bytes in the page cache, ranges ${JSON.stringify(ra)}`);
    const sameFiles = async (dir: string) => (await run('sh', ['-c', 'sqfs2tar "$1" | sha256sum', 'sh', path.join(dir, 'rootfs.squash')])).stdout;
    const plain = (await darchOk(['--json', 'stage', 'upload', 'os/app:2', '--tag', 'os/app:2-plain', '--no-order'], { root })).json<{ dir: string }>();
    assert.ok((await dataStart(path.join(plain.dir, 'rootfs.squash'), 'usr/lib/a')) < (await dataStart(path.join(plain.dir, 'rootfs.squash'), 'usr/lib/c')));
    assert.equal(await sameFiles(plain.dir), await sameFiles(v2.dir), 'the same root, only laid out differently');
    await assert.rejects(access(path.join(plain.dir, 'readahead')), 'no boot order, no readahead');

    // Removing the traced image removes its trace.
    await run('umount', [path.join(run_, 'lower')]);
    mounted.pop();
    await darchOk(['stage', 'rm', v1.id], { root });
    await assert.rejects(access(path.join(root, 'var/lib/darch/stage/traces', `${v1.id}.json`)));

    // --order FILE: a plain list from any tracer; a list that is not one is refused.
    await writeFile(path.join(work, 'order.txt'), '# from a tracer\n/usr/lib/d\nusr/lib/b\n/no/such/file\n');
    const listed = (
      await darchOk(['--json', 'stage', 'upload', 'os/app:2', '--tag', 'os/app:2-list', '--order', path.join(work, 'order.txt')], { root })
    ).json<{ dir: string }>();
    const sl = path.join(listed.dir, 'rootfs.squash');
    assert.ok(
      (await dataStart(sl, 'usr/lib/d')) < (await dataStart(sl, 'usr/lib/b')) && (await dataStart(sl, 'usr/lib/b')) < (await dataStart(sl, 'usr/lib/a')),
    );
    await writeFile(path.join(work, 'bad.json'), '{"kind": "something else"}');
    const bad = await darch(['--json', 'stage', 'upload', 'os/app:2', '--tag', 'os/app:2-bad', '--order', path.join(work, 'bad.json')], { root });
    assert.equal(bad.json().error.code, 'E_BAD_BOOT_ORDER', bad.stderr);
  });
});

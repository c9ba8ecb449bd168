/**
 * Staging bench: a Debian image of several layers (bench/stage-image.sh, cached in
 * /var/cache/darch-bench) staged three ways in one run, same compressor and block size:
 *
 *   (a) darch stage upload             — two passes over the layers, piped into tar2sqfs
 *   (b) umoci unpack + mksquashfs      — the usual "extract to disk, then squash" baseline
 *   (c) tar2sqfs < flat.tar            — the limit: an already-flattened tar in the page cache
 *   (a') darch with --writer tar2sqfs, and (c') sqfstar < flat.tar: the same two with the
 *        other writer, since darch prefers sqfstar (parallel compression) when installed
 *
 * Layer blobs and flat.tar are read once first so every run starts from the page cache.
 * Peak RSS is sampled from /proc/<pid>/status (VmHWM) for darch's node process and its
 * tar2sqfs child. Usage (as root; heavy, so niced):
 *   nice -n 10 node --import tsx bench/stage.ts [--reps N] [--compressor zstd] [--block-size 131072]
 */
import { spawn, execFileSync } from 'node:child_process';
import { closeSync, createReadStream, openSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const DARCH = path.join(REPO, 'dist/darch.mjs');
const CACHE = process.env.BENCH_CACHE ?? '/var/cache/darch-bench';
const arg = (name: string, def: string) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? (process.argv[i + 1] ?? def) : def;
};
const REPS = Number(arg('--reps', '2'));
const COMP = arg('--compressor', 'zstd');
const BLOCK = arg('--block-size', '131072');
const JOBS = String(os.availableParallelism());

async function readAll(file: string): Promise<void> {
  for await (const _ of createReadStream(file, { highWaterMark: 4 << 20 })) void _;
}

// /proc is read with readFileSync (microseconds): spawning `cat`/`pgrep` every 100 ms
// would stall this process's event loop and whatever it pipes.
function vmhwm(pid: number): number {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8');
    const m = /VmHWM:\s+(\d+) kB/.exec(s);
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

function children(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}

interface Timed {
  seconds: number;
  rss: Record<string, number>;
}

/** Run a command, timing it and sampling the peak RSS of it and its direct children by name. */
function timed(cmd: string, args: string[], opts: { stdinFile?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Timed> {
  return new Promise((resolve, reject) => {
    // The child reads its input file directly (no copy through this process).
    const stdin = opts.stdinFile ? openSync(opts.stdinFile, 'r') : 'ignore';
    const start = process.hrtime.bigint();
    const child = spawn(cmd, args, { stdio: [stdin, 'ignore', 'pipe'], env: opts.env ?? process.env });
    if (typeof stdin === 'number') closeSync(stdin);
    let err = '';
    child.stderr!.on('data', (b: Buffer) => (err = (err + b.toString()).slice(-4000)));
    const rss: Record<string, number> = {};
    const names = new Map<number, string>();
    const sample = () => {
      const pids = [child.pid!, ...children(child.pid!)];
      for (const p of pids) {
        if (!names.has(p)) {
          try {
            names.set(p, readFileSync(`/proc/${p}/comm`, 'utf8').trim());
          } catch {
            continue;
          }
        }
        const n = names.get(p)!;
        rss[n] = Math.max(rss[n] ?? 0, vmhwm(p));
      }
    };
    const timer = setInterval(sample, 100);
    child.on('error', reject);
    child.on('close', (code) => {
      clearInterval(timer);
      const seconds = Number(process.hrtime.bigint() - start) / 1e9;
      if (code !== 0) reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${err}`));
      else resolve({ seconds, rss });
    });
  });
}

const mib = (n: number) => `${(n / 1048576).toFixed(0)} MiB`;

async function main(): Promise<void> {
  const loadavgAtStart = os.loadavg();
  execFileSync('bash', [path.join(REPO, 'bench/stage-image.sh')], { stdio: 'inherit' });
  const work = await mkdtemp(path.join('/var/tmp', 'darch-bench-stage-'));
  try {
    const root = path.join(work, 'root');
    const env = { ...process.env, NO_COLOR: '1', DARCH_LOCK_TIMEOUT: '0' };
    execFileSync(process.execPath, [DARCH, '--root', root, '-q', 'images', 'import', `oci:${CACHE}/oci:bench`, 'bench:latest'], { stdio: 'inherit', env });
    const blobs = path.join(root, 'var/lib/darch/images/blobs/sha256');
    let layerBytes = 0;
    for (const b of await readdir(blobs)) {
      layerBytes += (await stat(path.join(blobs, b))).size;
      await readAll(path.join(blobs, b));
    }
    const manifest = JSON.parse(execFileSync(process.execPath, [DARCH, '--root', root, '--json', 'images', 'inspect', 'bench:latest'], { env }).toString());

    // (b) prepared once for (c): umoci's tree, tarred as the flattened input of the limit case.
    const results: Record<string, number[]> = { a: [], a_tar2sqfs: [], b_unpack: [], b_mksquashfs: [], b: [], c: [], c_sqfstar: [] };
    const rss: Record<string, number> = {};
    let sizes: Record<string, number> = {};
    let contentBytes = 0;
    for (let rep = 0; rep < REPS; rep++) {
      // (a) darch
      await rm(path.join(root, 'var/lib/darch/stage'), { recursive: true, force: true });
      const a = await timed(process.execPath, [DARCH, '--root', root, '-q', 'stage', 'upload', '--compression', COMP, '--block-size', BLOCK, 'bench:latest'], { env });
      results.a!.push(a.seconds);
      for (const [k, v] of Object.entries(a.rss)) rss[`darch:${k}`] = Math.max(rss[`darch:${k}`] ?? 0, v);
      const list = JSON.parse(execFileSync(process.execPath, [DARCH, '--root', root, '--json', 'stage', 'list'], { env }).toString());
      const meta = JSON.parse(await readFile(path.join(list.staged[0].dir, 'meta.json'), 'utf8'));
      sizes.a = meta.sizes['rootfs.squash'];

      // (a') darch with tar2sqfs as its writer
      await rm(path.join(root, 'var/lib/darch/stage'), { recursive: true, force: true });
      const a2 = await timed(process.execPath, [DARCH, '--root', root, '-q', 'stage', 'upload', '--writer', 'tar2sqfs', '--compression', COMP, '--block-size', BLOCK, 'bench:latest'], { env });
      results.a_tar2sqfs!.push(a2.seconds);
      for (const [k, v] of Object.entries(a2.rss)) rss[`darch-tar2sqfs:${k}`] = Math.max(rss[`darch-tar2sqfs:${k}`] ?? 0, v);

      // (b) umoci unpack, then mksquashfs on the tree
      const bundle = path.join(work, 'bundle');
      await rm(bundle, { recursive: true, force: true });
      const bu = await timed('umoci', ['unpack', '--image', `${root}/var/lib/darch/images:bench:latest`, bundle]);
      const outB = path.join(work, 'b.squash');
      const bm = await timed('mksquashfs', [path.join(bundle, 'rootfs'), outB, '-comp', COMP, '-b', BLOCK, '-processors', JOBS, '-noappend', '-quiet', '-no-progress']);
      results.b_unpack!.push(bu.seconds);
      results.b_mksquashfs!.push(bm.seconds);
      results.b!.push(bu.seconds + bm.seconds);
      sizes.b = (await stat(outB)).size;

      // (c) tar2sqfs on a flattened tar already in the page cache
      const flat = path.join(work, 'flat.tar');
      if (rep === 0) {
        execFileSync('tar', ['--xattrs', '--xattrs-include=*', '--numeric-owner', '--format=pax', '-C', path.join(bundle, 'rootfs'), '-cf', flat, '.']);
        contentBytes = (await stat(flat)).size;
      }
      await readAll(flat);
      const outC = path.join(work, 'c.squash');
      const c = await timed('tar2sqfs', ['--quiet', '--no-skip', '--force', '-c', COMP, '-b', BLOCK, '-j', JOBS, outC], { stdinFile: flat });
      results.c!.push(c.seconds);
      sizes.c = (await stat(outC)).size;
      await readAll(flat);
      const outC2 = path.join(work, 'c2.squash');
      const c2 = await timed('sqfstar', ['-quiet', '-no-progress', '-comp', COMP, '-b', BLOCK, '-processors', JOBS, '-mem', '128M', '-mkfs-time', '0', outC2], { stdinFile: flat });
      results.c_sqfstar!.push(c2.seconds);
      sizes.c_sqfstar = (await stat(outC2)).size;
      await rm(outC2, { force: true });
      await rm(bundle, { recursive: true, force: true });
      await rm(outB, { force: true });
    }
    const best = (k: string) => Math.min(...results[k]!);
    const report = {
      date: new Date().toISOString(),
      host: { cpus: os.availableParallelism(), model: os.cpus()[0]?.model, node: process.version, loadavgAtStart, loadavgAtEnd: os.loadavg() },
      image: { layers: manifest.layers.length, layerBytes, flatTarBytes: contentBytes },
      settings: { compressor: COMP, blockSize: Number(BLOCK), jobs: Number(JOBS), reps: REPS },
      seconds: Object.fromEntries(Object.keys(results).map((k) => [k, results[k]])),
      best: { a: best('a'), a_tar2sqfs: best('a_tar2sqfs'), b: best('b'), c: best('c'), c_sqfstar: best('c_sqfstar') },
      ratios: {
        a_over_c: best('a') / best('c'),
        a_over_c_sqfstar: best('a') / best('c_sqfstar'),
        a_tar2sqfs_over_c: best('a_tar2sqfs') / best('c'),
        b_over_a: best('b') / best('a'),
      },
      peakRss: rss,
      squashfsBytes: sizes,
    };
    console.log(JSON.stringify(report, null, 2));
    console.error(
      [
        `image: ${report.image.layers} layers, ${mib(layerBytes)} compressed, ${mib(contentBytes)} flattened tar`,
        `(a) darch stage upload:        ${best('a').toFixed(1)} s   squashfs ${mib(sizes.a ?? 0)}   (writer sqfstar)`,
        `(a') darch --writer tar2sqfs:  ${best('a_tar2sqfs').toFixed(1)} s`,
        `(b) umoci unpack + mksquashfs: ${best('b').toFixed(1)} s   (${Math.min(...results.b_unpack!).toFixed(1)} + ${Math.min(...results.b_mksquashfs!).toFixed(1)})   squashfs ${mib(sizes.b ?? 0)}`,
        `(c) tar2sqfs < flat.tar:       ${best('c').toFixed(1)} s   squashfs ${mib(sizes.c ?? 0)}`,
        `(c') sqfstar < flat.tar:       ${best('c_sqfstar').toFixed(1)} s   squashfs ${mib(sizes.c_sqfstar ?? 0)}`,
        `a/c = ${report.ratios.a_over_c.toFixed(2)}   a/c' = ${report.ratios.a_over_c_sqfstar.toFixed(2)}   a'/c = ${report.ratios.a_tar2sqfs_over_c.toFixed(2)}   b/a = ${report.ratios.b_over_a.toFixed(2)}   (load average ${loadavgAtStart[0]!.toFixed(1)} at start, ${os.loadavg()[0]!.toFixed(1)} at end, ${os.availableParallelism()} CPUs)`,
        `peak RSS: ${Object.entries(rss).map(([k, v]) => `${k} ${mib(v)}`).join(', ')}`,
      ].join('\n'),
    );
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

await main();

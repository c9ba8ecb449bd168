/**
 * Staging bench: a Debian image of several layers (bench/stage-image.sh, cached in
 * /var/cache/darch-bench) staged three ways in one run, same compressor and block size:
 *
 *   (a)  darch stage upload            — one pass, layers top-down, piped into tar2sqfs
 *   (a2) darch stage upload --two-pass — the previous flattener: index every layer, then stream
 *   (b)  umoci unpack + mksquashfs     — the usual "extract to disk, then squash" baseline
 *   (c)  tar2sqfs < flat.tar           — the limit: an already-flattened tar in the page cache
 *
 * Each rep runs the four in turn (c, a, a2, b), so drifting load hits them alike. Wall time
 * and CPU time (user+sys of the command and its children, from /usr/bin/time) are both
 * reported: on a shared 2-core machine the CPU ratios are the steadier figure.
 * Layer blobs and flat.tar are read once first so every run starts from the page cache.
 * Peak RSS is sampled from /proc/<pid>/status (VmHWM) for darch's node process and its
 * tar2sqfs child. Usage (as root; heavy, so niced):
 *   nice -n 10 node --import tsx bench/stage.ts [--reps N] [--compressor zstd] [--block-size 131072]
 */
import { spawn, execFileSync } from 'node:child_process';
import { closeSync, createReadStream, openSync, readFileSync, rmSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const DARCH = path.join(REPO, 'dist/darch');
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
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

interface Timed {
  seconds: number;
  /** user + sys CPU seconds of the command and the children it waited for. */
  cpu: number;
  rss: Record<string, number>;
}

/** Run a command, timing it and sampling the peak RSS of it and its direct children by name. */
function timed(cmd: string, args: string[], opts: { stdinFile?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Timed> {
  return new Promise((resolve, reject) => {
    // The child reads its input file directly (no copy through this process).
    const stdin = opts.stdinFile ? openSync(opts.stdinFile, 'r') : 'ignore';
    const start = process.hrtime.bigint();
    const cpuFile = path.join(os.tmpdir(), `darch-bench-cpu-${process.pid}-${Math.random().toString(36).slice(2)}`);
    const child = spawn('/usr/bin/time', ['-f', '%U %S', '-o', cpuFile, cmd, ...args], { stdio: [stdin, 'ignore', 'pipe'], env: opts.env ?? process.env });
    if (typeof stdin === 'number') closeSync(stdin);
    let err = '';
    child.stderr!.on('data', (b: Buffer) => (err = (err + b.toString()).slice(-4000)));
    const rss: Record<string, number> = {};
    const names = new Map<number, string>();
    const sample = () => {
      // /usr/bin/time's child is the command; sample it and its children.
      const pids = children(child.pid!).flatMap((p) => [p, ...children(p)]);
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
      let cpu = NaN;
      try {
        const [u, s] = readFileSync(cpuFile, 'utf8').trim().split('\n').pop()!.split(' ').map(Number);
        cpu = u! + s!;
        rmSync(cpuFile, { force: true });
      } catch {
        /* reported as NaN */
      }
      if (code !== 0) reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${err}`));
      else resolve({ seconds, cpu, rss });
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
    execFileSync(DARCH, ['--root', root, '-q', 'images', 'import', `oci:${CACHE}/oci:bench`, 'bench:latest'], {
      stdio: ['ignore', 'ignore', 'inherit'],
      env,
    });
    const blobs = path.join(root, 'var/lib/darch/images/blobs/sha256');
    let layerBytes = 0;
    for (const b of await readdir(blobs)) {
      layerBytes += (await stat(path.join(blobs, b))).size;
      await readAll(path.join(blobs, b));
    }
    const manifest = JSON.parse(execFileSync(DARCH, ['--root', root, '--json', 'images', 'inspect', 'bench:latest'], { env }).toString());

    const results: Record<string, number[]> = { a: [], a2: [], b_unpack: [], b_mksquashfs: [], b: [], c: [] };
    const cpu: Record<string, number[]> = { a: [], a2: [], b: [], c: [] };
    const rss: Record<string, number> = {};
    const sizes: Record<string, number> = {};
    const passes: Record<string, number> = {};
    // The flattened tar for (c): umoci's tree, tarred once, outside the timed runs.
    const flat = path.join(work, 'flat.tar');
    {
      const bundle = path.join(work, 'bundle-flat');
      execFileSync('umoci', ['unpack', '--image', `${root}/var/lib/darch/images:bench:latest`, bundle]);
      execFileSync('tar', ['--xattrs', '--xattrs-include=*', '--numeric-owner', '--format=pax', '-C', path.join(bundle, 'rootfs'), '-cf', flat, '.']);
      await rm(bundle, { recursive: true, force: true });
    }
    const contentBytes = (await stat(flat)).size;
    const darchRun = async (name: 'a' | 'a2', extra: string[]) => {
      await rm(path.join(root, 'var/lib/darch/stage'), { recursive: true, force: true });
      const r = await timed(DARCH, ['--root', root, '-q', 'stage', 'upload', ...extra, '--compression', COMP, '--block-size', BLOCK, 'bench:latest'], { env });
      results[name]!.push(r.seconds);
      cpu[name]!.push(r.cpu);
      for (const [k, v] of Object.entries(r.rss)) rss[`${name}:${k}`] = Math.max(rss[`${name}:${k}`] ?? 0, v);
      const list = JSON.parse(execFileSync(DARCH, ['--root', root, '--json', 'stage', 'list'], { env }).toString());
      const meta = JSON.parse(await readFile(path.join(list.staged[0].dir, 'meta.json'), 'utf8'));
      sizes[name] = meta.sizes['rootfs.squash'];
      passes[name] = meta.passes;
    };
    for (let rep = 0; rep < REPS; rep++) {
      // (c) tar2sqfs on a flattened tar already in the page cache
      await readAll(flat);
      const outC = path.join(work, 'c.squash');
      const c = await timed('tar2sqfs', ['--quiet', '--no-skip', '--force', '-c', COMP, '-b', BLOCK, '-j', JOBS, outC], { stdinFile: flat });
      results.c!.push(c.seconds);
      cpu.c!.push(c.cpu);
      sizes.c = (await stat(outC)).size;
      await rm(outC, { force: true });

      await darchRun('a', []);
      await darchRun('a2', ['--two-pass']);

      // (b) umoci unpack, then mksquashfs on the tree
      const bundle = path.join(work, 'bundle');
      await rm(bundle, { recursive: true, force: true });
      const bu = await timed('umoci', ['unpack', '--image', `${root}/var/lib/darch/images:bench:latest`, bundle]);
      const outB = path.join(work, 'b.squash');
      const bm = await timed('mksquashfs', [
        path.join(bundle, 'rootfs'),
        outB,
        '-comp',
        COMP,
        '-b',
        BLOCK,
        '-processors',
        JOBS,
        '-noappend',
        '-quiet',
        '-no-progress',
      ]);
      results.b_unpack!.push(bu.seconds);
      results.b_mksquashfs!.push(bm.seconds);
      results.b!.push(bu.seconds + bm.seconds);
      cpu.b!.push(bu.cpu + bm.cpu);
      sizes.b = (await stat(outB)).size;
      await rm(bundle, { recursive: true, force: true });
      await rm(outB, { force: true });
    }
    const best = (k: string) => Math.min(...results[k]!);
    const bestCpu = (k: string) => Math.min(...cpu[k]!);
    const report = {
      date: new Date().toISOString(),
      host: { cpus: os.availableParallelism(), model: os.cpus()[0]?.model, node: process.version, loadavgAtStart, loadavgAtEnd: os.loadavg() },
      image: { layers: manifest.layers.length, layerBytes, flatTarBytes: contentBytes },
      settings: { compressor: COMP, blockSize: Number(BLOCK), jobs: Number(JOBS), reps: REPS },
      seconds: results,
      cpuSeconds: cpu,
      best: { a: best('a'), a2: best('a2'), b: best('b'), c: best('c') },
      ratios: {
        a_over_c: best('a') / best('c'),
        a2_over_c: best('a2') / best('c'),
        b_over_a: best('b') / best('a'),
        a2_over_a: best('a2') / best('a'),
        cpu_a_over_c: bestCpu('a') / bestCpu('c'),
        cpu_a2_over_c: bestCpu('a2') / bestCpu('c'),
        cpu_b_over_a: bestCpu('b') / bestCpu('a'),
      },
      passes,
      peakRss: rss,
      squashfsBytes: sizes,
    };
    console.log(JSON.stringify(report, null, 2));
    const line = (label: string, k: string, extra = '') => `${label}${best(k).toFixed(1)} s wall, ${bestCpu(k).toFixed(1)} s CPU${extra}`;
    console.error(
      [
        `image: ${report.image.layers} layers, ${mib(layerBytes)} compressed, ${mib(contentBytes)} flattened tar (best of ${REPS})`,
        line('(a)  darch stage upload:           ', 'a', `   squashfs ${mib(sizes.a ?? 0)}, ${passes.a} pass`),
        line('(a2) darch stage upload --two-pass:', 'a2', `   squashfs ${mib(sizes.a2 ?? 0)}`),
        line(
          '(b)  umoci unpack + mksquashfs:    ',
          'b',
          `   (${Math.min(...results.b_unpack!).toFixed(1)} + ${Math.min(...results.b_mksquashfs!).toFixed(1)})   squashfs ${mib(sizes.b ?? 0)}`,
        ),
        line('(c)  tar2sqfs < flat.tar:          ', 'c', `   squashfs ${mib(sizes.c ?? 0)}`),
        `wall: a/c = ${report.ratios.a_over_c.toFixed(2)}   a2/c = ${report.ratios.a2_over_c.toFixed(2)}   b/a = ${report.ratios.b_over_a.toFixed(2)}   a2/a = ${report.ratios.a2_over_a.toFixed(2)}`,
        `CPU:  a/c = ${report.ratios.cpu_a_over_c.toFixed(2)}   a2/c = ${report.ratios.cpu_a2_over_c.toFixed(2)}   b/a = ${report.ratios.cpu_b_over_a.toFixed(2)}`,
        `load average ${loadavgAtStart[0]!.toFixed(1)} at start, ${os.loadavg()[0]!.toFixed(1)} at end, ${os.availableParallelism()} CPUs`,
        `peak RSS: ${Object.entries(rss)
          .map(([k, v]) => `${k} ${mib(v)}`)
          .join(', ')}`,
      ].join('\n'),
    );
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

await main();

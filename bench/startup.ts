/**
 * Start-up time of `darch --version` and `darch --help` against the named baseline
 * `node -e 0` (Node itself, nothing loaded), in the same run, interleaved so drifting load
 * hits them alike. The bar (issue 12): each at most 1.5× the baseline, medians.
 *
 * Wall time is taken around a direct spawn; CPU time (user+sys) from /usr/bin/time in a
 * second interleaved series, the steadier figure on a shared machine. A third darch run,
 * `darch images list` on an empty --root, shows what a command that loads its module costs
 * (not part of the bar). Prints a JSON report, then a summary; exits 1 above the bar.
 * darch is the shipped executable (dist/darch, a Node SEA); the baseline is `node -e 0` on
 * the Node it is made of (run this bench on the pinned Node: `npm run -s bench:startup`).
 * Run: npm run -s build && npm run -s bench:startup [-- --reps 31]
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const DARCH = process.env.DARCH_BIN ?? path.join(REPO, 'dist/darch');
const arg = (name: string, def: string) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? (process.argv[i + 1] ?? def) : def;
};
const REPS = Number(arg('--reps', '31'));
const BAR = 1.5;
const TIME = '/usr/bin/time';

const work = mkdtempSync(path.join(os.tmpdir(), 'darch-bench-startup-'));
// [program, ...arguments]
const runs: Record<string, string[]> = {
  'node -e 0': [process.execPath, '-e', '0'],
  'darch --version': [DARCH, '--version'],
  'darch --help': [DARCH, '--help'],
  'darch status': [DARCH, '--root', work, 'status'],
  'darch images list': [DARCH, '--root', work, 'images', 'list'],
};
const BARRED = ['darch --version', 'darch --help', 'darch status'];
const env = { ...process.env, NO_COLOR: '1' };

function wall(args: string[]): number {
  const t = process.hrtime.bigint();
  const r = spawnSync(args[0]!, args.slice(1), { stdio: 'ignore', env });
  if (r.status !== 0) throw new Error(`${args.join(' ')} exited ${r.status}`);
  return Number(process.hrtime.bigint() - t) / 1e6;
}

function cpu(args: string[]): number {
  const out = path.join(work, 'cpu');
  spawnSync(TIME, ['-f', '%U %S', '-o', out, ...args], { stdio: 'ignore', env });
  const [u, s] = readFileSync(out, 'utf8').trim().split(/\s+/).slice(-2).map(Number);
  return ((u ?? NaN) + (s ?? NaN)) * 1000;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

try {
  const names = Object.keys(runs);
  const walls = Object.fromEntries(names.map((n) => [n, [] as number[]]));
  const cpus = Object.fromEntries(names.map((n) => [n, [] as number[]]));
  const haveTime = existsSync(TIME);
  for (const n of names) wall(runs[n]!); // warm the page cache
  for (let i = 0; i < REPS; i++) {
    for (const n of names) walls[n]!.push(wall(runs[n]!));
    if (haveTime) for (const n of names) cpus[n]!.push(cpu(runs[n]!));
  }
  const base = median(walls['node -e 0']!);
  const baseCpu = haveTime ? median(cpus['node -e 0']!) : NaN;
  const results = names.map((n) => ({
    run: n,
    medianMs: Number(median(walls[n]!).toFixed(1)),
    minMs: Number(Math.min(...walls[n]!).toFixed(1)),
    ratio: Number((median(walls[n]!) / base).toFixed(2)),
    ...(haveTime ? { medianCpuMs: Math.round(median(cpus[n]!)), cpuRatio: Number((median(cpus[n]!) / baseCpu).toFixed(2)) } : {}),
  }));
  const barred = results.filter((r) => BARRED.includes(r.run));
  const report = {
    bench: 'startup',
    node: process.version,
    cpus: os.availableParallelism(),
    loadavg: os.loadavg().map((l) => Number(l.toFixed(2))),
    reps: REPS,
    baseline: 'node -e 0',
    bar: BAR,
    pass: barred.every((r) => r.ratio <= BAR),
    results,
  };
  console.log(JSON.stringify(report, null, 2));
  console.error(`start-up, ${REPS} interleaved reps, medians (baseline node -e 0; bar ${BAR}× for ${BARRED.join(', ')})`);
  for (const r of results) {
    const c = 'medianCpuMs' in r ? `   CPU ${String(r.medianCpuMs).padStart(4)} ms  ratio ${(r.cpuRatio ?? NaN).toFixed(2)}` : '';
    console.error(`  ${r.run.padEnd(20)} ${r.medianMs.toFixed(1).padStart(7)} ms  ratio ${r.ratio.toFixed(2)}${c}`);
  }
  console.error(report.pass ? 'PASS' : 'FAIL: above the bar');
  process.exitCode = report.pass ? 0 : 1;
} finally {
  rmSync(work, { recursive: true, force: true });
}

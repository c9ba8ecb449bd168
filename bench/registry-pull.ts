/**
 * Bench: pull a multi-layer image (4 × 80 MiB of random, incompressible data, gzip
 * layers, pushed with skopeo) from a local docker-registry, darch against
 * `skopeo copy docker://… oci:…` in the same run, alternating, fresh destination each time.
 * Reports median wall times, their ratio, and darch's peak RSS (from /usr/bin/time -v).
 *
 *   npx tsx bench/registry-pull.ts [--layers 4] [--layer-mib 80] [--rounds 3]
 */
import { spawn, execFileSync } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { startRegistry } from '../test/helpers/registry.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const DARCH = process.env.DARCH_BIN ?? path.join(REPO, 'dist/darch');
const arg = (name: string, def: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
};
const LAYERS = arg('layers', 4);
const LAYER_MIB = arg('layer-mib', 80);
const ROUNDS = arg('rounds', 5);

/** A tar with one file of random bytes, gzip'd at level 1, hashed on the way (uncompressed and compressed). */
async function randomLayer(dir: string, i: number): Promise<{ digest: string; diffId: string; size: number }> {
  const size = LAYER_MIB * 1024 * 1024;
  const header = Buffer.alloc(512);
  header.write(`data/random-${i}.bin`, 0);
  header.write('0000644\0', 100);
  header.write('0000000\0', 108);
  header.write('0000000\0', 116);
  header.write(`${size.toString(8).padStart(11, '0')}\0`, 124);
  header.write('14545233000\0', 136);
  header.write('        ', 148);
  header.write('0', 156);
  header.write('ustar\0', 257);
  header.write('00', 263);
  let sum = 0;
  for (const b of header) sum += b;
  header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  const diff = createHash('sha256');
  async function* tar() {
    diff.update(header);
    yield header;
    const chunk = Buffer.alloc(1024 * 1024);
    for (let left = size; left > 0; left -= chunk.length) {
      randomFillSync(chunk);
      const out = Buffer.from(chunk.subarray(0, Math.min(left, chunk.length)));
      diff.update(out);
      yield out;
    }
    const end = Buffer.alloc(1024);
    diff.update(end);
    yield end;
  }
  await mkdir(dir, { recursive: true });
  const tmp = path.join(dir, `layer-${i}.tmp`);
  const comp = createHash('sha256');
  let n = 0;
  await pipeline(
    Readable.from(tar()),
    createGzip({ level: 1 }),
    async function* (src: AsyncIterable<Buffer>) {
      for await (const b of src) {
        comp.update(b);
        n += b.length;
        yield b;
      }
    },
    createWriteStream(tmp),
  );
  const digest = `sha256:${comp.digest('hex')}`;
  await mkdir(path.join(dir, 'blobs/sha256'), { recursive: true });
  await rename(tmp, path.join(dir, 'blobs/sha256', digest.slice(7)));
  return { digest, diffId: `sha256:${diff.digest('hex')}`, size: n };
}

async function writeLayout(dir: string): Promise<void> {
  const layers = [];
  for (let i = 0; i < LAYERS; i++) layers.push(await randomLayer(dir, i));
  const put = async (obj: unknown) => {
    const b = Buffer.from(JSON.stringify(obj));
    const d = `sha256:${createHash('sha256').update(b).digest('hex')}`;
    await writeFile(path.join(dir, 'blobs/sha256', d.slice(7)), b);
    return { digest: d, size: b.length };
  };
  const config = await put({
    architecture: 'amd64',
    os: 'linux',
    created: '2024-01-01T00:00:00Z',
    config: {},
    rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
  });
  const manifest = await put({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
    layers: layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: l.digest, size: l.size })),
  });
  await writeFile(path.join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  await writeFile(
    path.join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...manifest, annotations: { 'org.opencontainers.image.ref.name': 'bench' } }],
    }),
  );
}

interface Timed {
  wallSec: number;
  /** user + system CPU seconds: steadier than wall time on a shared machine. */
  cpuSec: number;
  maxRssMiB: number;
}

function timed(cmd: string, args: string[]): Promise<Timed> {
  return new Promise((resolve, reject) => {
    const child = spawn('/usr/bin/time', ['-v', cmd, ...args], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, NO_COLOR: '1' } });
    let err = '';
    child.stderr.on('data', (b: Buffer) => void (err += b.toString()));
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`${cmd} ${args.join(' ')} failed (${code}):\n${err.slice(-2000)}`));
      const wall = /Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)/.exec(err);
      const rss = /Maximum resident set size \(kbytes\): (\d+)/.exec(err);
      const user = /User time \(seconds\): ([\d.]+)/.exec(err);
      const sys = /System time \(seconds\): ([\d.]+)/.exec(err);
      if (!wall || !rss || !user || !sys) return reject(new Error(`cannot parse /usr/bin/time output:\n${err}`));
      resolve({
        wallSec: Number(wall[1] ?? 0) * 3600 + Number(wall[2]) * 60 + Number(wall[3]),
        cpuSec: Number(user[1]) + Number(sys[1]),
        maxRssMiB: Number(rss[1]) / 1024,
      });
    });
  });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

async function main(): Promise<void> {
  const work = await mkdtemp(path.join(os.tmpdir(), 'darch-bench-reg-'));
  const reg = await startRegistry();
  try {
    const layout = path.join(work, 'layout');
    console.error(`bench: writing ${LAYERS} × ${LAYER_MIB} MiB random layers`);
    await writeLayout(layout);
    const ref = `${reg.host}/bench/random:1`;
    console.error(`bench: pushing with skopeo to ${ref}`);
    execFileSync('skopeo', ['copy', '-q', '--dest-tls-verify=false', `oci:${layout}:bench`, `docker://${ref}`], { stdio: 'inherit' });
    await rm(layout, { recursive: true, force: true });
    const darchRuns: Timed[] = [];
    const skopeoRuns: Timed[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      const order = r % 2 === 0 ? ['darch', 'skopeo'] : ['skopeo', 'darch'];
      for (const who of order) {
        const dest = path.join(work, `${who}-${r}`);
        if (who === 'darch') {
          darchRuns.push(await timed(DARCH, ['--root', dest, '-q', 'images', 'pull', ref, '--tls-verify=false']));
        } else {
          skopeoRuns.push(await timed('skopeo', ['copy', '-q', '--src-tls-verify=false', `docker://${ref}`, `oci:${dest}:bench`]));
        }
        console.error(`bench: round ${r + 1} ${who}: ${(who === 'darch' ? darchRuns : skopeoRuns).at(-1)!.wallSec.toFixed(2)} s`);
        await rm(dest, { recursive: true, force: true });
      }
    }
    const total = LAYERS * LAYER_MIB;
    const d = median(darchRuns.map((x) => x.wallSec));
    const s = median(skopeoRuns.map((x) => x.wallSec));
    const result = {
      image: `${LAYERS} gzip layers × ${LAYER_MIB} MiB random data (${total} MiB)`,
      rounds: ROUNDS,
      darch: { medianWallSec: d, runs: darchRuns, peakRssMiB: Math.max(...darchRuns.map((x) => x.maxRssMiB)) },
      skopeo: { medianWallSec: s, runs: skopeoRuns, peakRssMiB: Math.max(...skopeoRuns.map((x) => x.maxRssMiB)) },
      ratioDarchToSkopeo: d / s,
      cpuRatioDarchToSkopeo: median(darchRuns.map((x) => x.cpuSec)) / median(skopeoRuns.map((x) => x.cpuSec)),
      loadAverage: os.loadavg(),
      host: { cpus: os.cpus().length, node: process.version, skopeo: execFileSync('skopeo', ['--version'], { encoding: 'utf8' }).trim() },
    };
    console.log(JSON.stringify(result, null, 2));
    console.error(
      `\nregistry pull, ${total} MiB: darch ${d.toFixed(2)} s, skopeo ${s.toFixed(2)} s, ratio darch/skopeo ${(d / s).toFixed(2)}; ` +
        `CPU ratio ${result.cpuRatioDarchToSkopeo.toFixed(2)}; darch peak RSS ${result.darch.peakRssMiB.toFixed(0)} MiB (skopeo ${result.skopeo.peakRssMiB.toFixed(0)} MiB); load ${os.loadavg()[0]!.toFixed(1)}`,
    );
  } finally {
    await reg.stop();
    await rm(work, { recursive: true, force: true });
  }
}

await main();

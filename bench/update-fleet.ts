/**
 * Bench (issue 14): a fleet of N machines (separate --root dirs) follows one image with
 * `darch update run` and updates through one pull-through mirror (Debian's docker-registry
 * in proxy mode) from one origin (a docker-registry). A counting HTTP proxy stands in front
 * of the origin: every request anyone makes of the origin goes through it and is counted
 * (body bytes sent, manifests and blobs apart, who asked: the mirror or a machine).
 *
 * The named baseline, in the same run: the same fleet without the mirror (every machine
 * straight to the origin), and the ideal: each new blob and the manifest(s) served once.
 * Phases: v1 (a cold mirror, empty machines), then v2 is pushed (one new layer) and every
 * machine runs again (the update). The order of the two fleets alternates per phase.
 *
 * Peak RSS of one agent: GNU time's %M (the darch process's maximum resident set size)
 * around every `darch update run`; the report gives the fleet's median and maximum.
 *
 * Figures, and why the mirror serves more than one copy: docs/UPDATES.md, "Fleet benchmark".
 *
 *   npm run -s build && npm run -s bench:update-fleet [-- --machines 50 --jobs 8 --policy download|stage|apply --base-mib 4 --new-mib 1.5]
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import tar from 'tar-stream';
import { writeOciLayout } from '../test/helpers/oci-layout.js';
import { startRegistry } from '../test/helpers/registry.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const DARCH = process.env.DARCH_BIN ?? path.join(REPO, 'dist/darch');
const TIME = '/usr/bin/time';
const arg = (name: string, def: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? (process.argv[i + 1] ?? def) : def;
};
const MACHINES = Number(arg('machines', '50'));
const JOBS = Number(arg('jobs', '8'));
const POLICY = arg('policy', 'download');
const BASE_MIB = Number(arg('base-mib', '4'));
const NEW_MIB = Number(arg('new-mib', '1.5'));
const OUTCOME: Record<string, string> = { download: 'downloaded', stage: 'staged', apply: 'armed' };
if (!OUTCOME[POLICY]) throw new Error(`--policy must be download, stage or apply, not ${POLICY}`);
if (!(MACHINES >= 1 && JOBS >= 1)) throw new Error('--machines and --jobs must be at least 1');

const MiB = 1024 * 1024;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;
const round = (x: number, digits = 2) => Number(x.toFixed(digits));

// ---------------------------------------------------------------------------------------
// The counting proxy in front of the origin.

type Kind = 'manifest' | 'blob' | 'other';
interface Counted {
  method: string;
  url: string;
  kind: Kind;
  /** sha256:… of a blob request. */
  digest?: string;
  status?: number;
  /** The mirror (docker-registry's Go client) or a machine (darch). */
  who: 'mirror' | 'machine';
  userAgent: string;
  /** Body bytes sent to the client (headers not counted). */
  bytes: number;
  /** The response ended (or failed). */
  done: boolean;
  /** When the request came and its response ended (ms, performance.now()). */
  start: number;
  end?: number;
}

class CountingProxy {
  readonly log: Counted[] = [];
  private readonly sockets = new Set<net.Socket>();
  private server!: http.Server;
  port = 0;
  constructor(private readonly upstream: { host: string; port: number }) {}

  get host(): string {
    return `127.0.0.1:${this.port}`;
  }

  async start(): Promise<this> {
    this.server = http.createServer((req, res) => this.forward(req, res));
    this.server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', () => r()));
    this.port = (this.server.address() as net.AddressInfo).port;
    return this;
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  private forward(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = req.url ?? '/';
    const m = /^\/v2\/.+\/(manifests|blobs)\/([^/?]+)/.exec(url);
    const userAgent = req.headers['user-agent'] ?? '';
    const entry: Counted = {
      method: req.method ?? 'GET',
      url,
      kind: m?.[1] === 'manifests' ? 'manifest' : m?.[1] === 'blobs' ? 'blob' : 'other',
      ...(m?.[1] === 'blobs' ? { digest: m[2] } : {}),
      // docker-registry's remote client is Go's; darch speaks undici.
      who: /Go-http-client|docker-distribution|distribution\//i.test(userAgent) ? 'mirror' : 'machine',
      userAgent,
      bytes: 0,
      done: false,
      start: performance.now(),
    };
    this.log.push(entry);
    res.on('close', () => {
      entry.done = true;
      entry.end = performance.now();
    });
    const up = http.request({ host: this.upstream.host, port: this.upstream.port, method: req.method, path: url, headers: req.headers }, (upRes) => {
      entry.status = upRes.statusCode;
      res.writeHead(upRes.statusCode ?? 502, upRes.headers);
      upRes.on('data', (chunk: Buffer) => {
        entry.bytes += chunk.length;
        if (!res.write(chunk)) {
          upRes.pause();
          res.once('drain', () => upRes.resume());
        }
      });
      upRes.on('end', () => res.end());
      upRes.on('error', () => res.destroy());
    });
    up.on('error', () => {
      if (!res.headersSent) res.writeHead(502);
      res.end();
    });
    req.pipe(up);
  }
}

interface OriginFigures {
  requests: number;
  bytes: number;
  manifestRequests: number;
  manifestBytes: number;
  blobRequests: number;
  /** GET /v2/…/blobs/… with a body (HEADs are in blobRequests, not here). */
  blobGets: number;
  blobBytes: number;
  otherRequests: number;
  /** What the mirror asked for vs. machines that reached the origin themselves. */
  byWho: Record<'mirror' | 'machine', { requests: number; bytes: number }>;
  userAgents: string[];
}

function figures(log: Counted[]): OriginFigures {
  const sum = (xs: Counted[]) => xs.reduce((a, x) => a + x.bytes, 0);
  const of = (k: Kind) => log.filter((x) => x.kind === k);
  const who = (w: Counted['who']) => ({ requests: log.filter((x) => x.who === w).length, bytes: sum(log.filter((x) => x.who === w)) });
  return {
    requests: log.length,
    bytes: sum(log),
    manifestRequests: of('manifest').length,
    manifestBytes: sum(of('manifest')),
    blobRequests: of('blob').length,
    blobGets: of('blob').filter((x) => x.method === 'GET').length,
    blobBytes: sum(of('blob')),
    otherRequests: of('other').length,
    byWho: { mirror: who('mirror'), machine: who('machine') },
    userAgents: [...new Set(log.map((x) => x.userAgent.split(' ')[0] ?? ''))],
  };
}

// ---------------------------------------------------------------------------------------
// The image: v1 = a base layer of random data + a small layer with a kernel; v2 adds one layer.

async function tarLayer(out: string, entries: Array<{ name: string; content?: Buffer | string; dir?: boolean }>): Promise<void> {
  const pack = tar.pack();
  const done = pipeline(pack, createWriteStream(out));
  for (const e of entries) {
    await new Promise<void>((resolve, reject) =>
      pack.entry(
        { name: e.name, type: e.dir ? 'directory' : 'file', mode: e.dir ? 0o755 : 0o644, uid: 0, gid: 0, mtime: new Date(1_600_000_000_000) },
        e.content ?? '',
        (err) => (err ? reject(err) : resolve()),
      ),
    );
  }
  pack.finalize();
  await done;
}

interface Published {
  /** Manifest (and index, if any) bytes a client needs once. */
  manifestBytes: number;
  blobs: Map<string, number>;
}

/** What the origin holds under the tag: the manifest (through an index if it is one), its config and layers. */
async function published(originUrl: string, repo: string, tag: string): Promise<Published> {
  const accept = [
    'application/vnd.oci.image.index.v1+json',
    'application/vnd.oci.image.manifest.v1+json',
    'application/vnd.docker.distribution.manifest.list.v2+json',
    'application/vnd.docker.distribution.manifest.v2+json',
  ].join(', ');
  const get = async (ref: string) => {
    const r = await fetch(`${originUrl}/v2/${repo}/manifests/${ref}`, { headers: { accept } });
    if (!r.ok) throw new Error(`GET manifest ${ref}: ${r.status}`);
    const body = Buffer.from(await r.arrayBuffer());
    return { body, doc: JSON.parse(body.toString('utf8')) };
  };
  let { body, doc } = await get(tag);
  let manifestBytes = body.length;
  if (Array.isArray(doc.manifests)) {
    const arch = process.arch === 'x64' ? 'amd64' : process.arch;
    const pick = doc.manifests.find((m: any) => m.platform?.os === 'linux' && m.platform?.architecture === arch) ?? doc.manifests[0];
    ({ body, doc } = await get(pick.digest));
    manifestBytes += body.length;
  }
  const blobs = new Map<string, number>();
  for (const d of [doc.config, ...doc.layers]) blobs.set(d.digest, d.size);
  return { manifestBytes, blobs };
}

// ---------------------------------------------------------------------------------------
// Running darch.

interface Agent {
  root: string;
  wallSec: number;
  maxRssKiB: number;
  /** user + system CPU seconds of the darch process (GNU time). */
  cpuSec: number;
  outcome: string;
  bytesDownloaded: number;
  blobsDownloaded: number;
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1', DARCH_LOCK_TIMEOUT: '0', ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => void (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => void (stderr += b.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? 128, stdout, stderr }));
  });
}

async function darchOk(args: string[], env: NodeJS.ProcessEnv = {}): Promise<string> {
  const r = await run(DARCH, args, env);
  if (r.code !== 0) throw new Error(`darch ${args.join(' ')} exited ${r.code}:\n${r.stderr.slice(-2000)}`);
  return r.stdout;
}

/** One machine's `darch update run`, under GNU time for its peak RSS. */
async function agentRun(root: string, expect: string): Promise<Agent> {
  const rssFile = path.join(root, 'maxrss');
  const t = process.hrtime.bigint();
  const r = await run(TIME, ['-f', '%M %U %S', '-o', rssFile, DARCH, '--root', root, '--json', 'update', 'run'], {
    DARCH_CMDLINE_FILE: path.join(root, 'cmdline'),
    CONTAINERS_REGISTRIES_CONF: undefined,
  });
  const wallSec = Number(process.hrtime.bigint() - t) / 1e9;
  if (r.code !== 0) throw new Error(`darch update run on ${root} exited ${r.code}:\n${r.stderr.slice(-2000)}`);
  const doc = JSON.parse(r.stdout);
  if (doc.outcome !== expect) throw new Error(`darch update run on ${root}: outcome ${doc.outcome}, expected ${expect}: ${doc.message}`);
  const [rss, user, sys] = ((await readFile(rssFile, 'utf8')).trim().split('\n').pop() ?? '').split(' ').map(Number);
  return {
    root,
    wallSec,
    maxRssKiB: rss ?? Number.NaN,
    cpuSec: (user ?? Number.NaN) + (sys ?? Number.NaN),
    outcome: doc.outcome,
    bytesDownloaded: doc.download?.bytesDownloaded ?? 0,
    blobsDownloaded: doc.download?.blobsDownloaded ?? 0,
  };
}

async function pool<T, R>(items: T[], n: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
  return out;
}

/** A machine: a --root with config.toml following the image, an ESP directory, a kernel command line; with a mirror, registries.conf. */
async function makeMachine(root: string, image: string, originHost: string, mirrorHost?: string): Promise<string> {
  await mkdir(path.join(root, 'etc/darch'), { recursive: true });
  await mkdir(path.join(root, 'boot/efi/EFI'), { recursive: true });
  await writeFile(path.join(root, 'etc/darch/config.toml'), `[registry]\ninsecure = ["${originHost}"]\n[update]\nimage = "${image}"\npolicy = "${POLICY}"\n`);
  await writeFile(path.join(root, 'cmdline'), 'quiet\n');
  if (mirrorHost) {
    await mkdir(path.join(root, 'etc/containers'), { recursive: true });
    await writeFile(
      path.join(root, 'etc/containers/registries.conf'),
      `[[registry]]\nlocation = "${originHost}"\ninsecure = true\n[[registry.mirror]]\nlocation = "${mirrorHost}"\ninsecure = true\n`,
    );
  }
  return root;
}

interface FleetRun {
  wallSec: number;
  agentWallSec: { median: number; max: number };
  agentMaxRssMiB: { median: number; max: number };
  /** CPU seconds of all the agents together, and of this bench process (the counting proxy, mostly). */
  agentsCpuSec: number;
  benchCpuSec: number;
  /** What the agents say they downloaded (sum over the fleet). */
  fleetBytesDownloaded: number;
  origin: OriginFigures;
  /** Origin blob bytes / the new blobs' size: copies of the new content the origin served. */
  copies: number;
  /** Per blob: bytes the origin served for it / its size. */
  perBlobCopies: Record<string, number>;
  /** The largest new blob's GETs at the origin: start and end (ms after the fleet started), bytes. */
  largestNewBlobGets: Array<{ startMs: number; endMs: number; bytes: number }>;
  /** Origin bytes / ideal (each new blob and the manifests once). */
  toIdeal: number;
}

async function runFleet(machines: string[], proxy: CountingProxy, pub: Published, newBlobs: Map<string, number>, ideal: number): Promise<FleetRun> {
  const mark = proxy.log.length;
  const t0 = performance.now();
  const t = process.hrtime.bigint();
  const cpu0 = process.cpuUsage();
  const agents = await pool(machines, JOBS, (root) => agentRun(root, OUTCOME[POLICY]!));
  const wallSec = Number(process.hrtime.bigint() - t) / 1e9;
  // Let the mirror's background copies (it stores a blob while it streams it) finish.
  await settle(proxy);
  const cpu = process.cpuUsage(cpu0);
  const log = proxy.log.slice(mark);
  const origin = figures(log);
  const newBytes = [...newBlobs.values()].reduce((a, b) => a + b, 0);
  const perBlobCopies: Record<string, number> = {};
  for (const [digest, size] of pub.blobs) {
    const served = log.filter((x) => x.kind === 'blob' && x.digest === digest).reduce((a, x) => a + x.bytes, 0);
    if (served > 0 || newBlobs.has(digest))
      perBlobCopies[`${digest.slice(7, 19)} (${(size / MiB).toFixed(2)} MiB${newBlobs.has(digest) ? ', new' : ''})`] = round(served / size);
  }
  const largest = [...newBlobs].sort((a, b) => b[1] - a[1])[0]?.[0];
  const largestNewBlobGets = log
    .filter((x) => x.kind === 'blob' && x.digest === largest && x.method === 'GET')
    .map((x) => ({ startMs: Math.round(x.start - t0), endMs: Math.round((x.end ?? Number.NaN) - t0), bytes: x.bytes }));
  return {
    wallSec: round(wallSec),
    agentWallSec: { median: round(median(agents.map((a) => a.wallSec))), max: round(Math.max(...agents.map((a) => a.wallSec))) },
    agentMaxRssMiB: { median: round(median(agents.map((a) => a.maxRssKiB)) / 1024, 1), max: round(Math.max(...agents.map((a) => a.maxRssKiB)) / 1024, 1) },
    agentsCpuSec: round(
      agents.reduce((a, x) => a + x.cpuSec, 0),
      1,
    ),
    benchCpuSec: round((cpu.user + cpu.system) / 1e6, 1),
    fleetBytesDownloaded: agents.reduce((a, x) => a + x.bytesDownloaded, 0),
    origin,
    copies: round(origin.blobBytes / newBytes),
    perBlobCopies,
    largestNewBlobGets,
    toIdeal: round(origin.bytes / ideal),
  };
}

/** Wait until every origin response has ended and no request came for half a second (the mirror's background fetches); at most 60 s. */
async function settle(proxy: CountingProxy): Promise<void> {
  let n = -1;
  const until = Date.now() + 60_000;
  while ((n !== proxy.log.length || proxy.log.some((x) => !x.done)) && Date.now() < until) {
    n = proxy.log.length;
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** The floor under an agent's peak RSS: `darch --version` (the executable and Node, no work), median of 5. */
async function rssFloorMiB(dir: string): Promise<number> {
  const out = path.join(dir, 'floor-rss');
  const xs = [];
  for (let i = 0; i < 5; i++) {
    const r = await run(TIME, ['-f', '%M', '-o', out, DARCH, '--version']);
    if (r.code !== 0) throw new Error(`darch --version exited ${r.code}`);
    xs.push(Number((await readFile(out, 'utf8')).trim().split('\n').pop()));
  }
  return round(median(xs) / 1024, 1);
}

// ---------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const started = new Date();
  const work = await mkdtemp(path.join(os.tmpdir(), 'darch-bench-fleet-'));
  const origin = await startRegistry();
  const proxy = await new CountingProxy({ host: '127.0.0.1', port: origin.port }).start();
  const mirror = await startRegistry({ proxy: { remoteurl: `http://${proxy.host}` } });
  try {
    const repo = 'os/desktop';
    // Machines follow the image under the counting proxy's name: whatever reaches the origin is counted.
    const image = `${proxy.host}/${repo}:stable`;
    const publisher = path.join(work, 'publisher');
    const base = path.join(work, 'base.tar');
    const small = path.join(work, 'small.tar');
    const fresh = path.join(work, 'v2.tar');
    await tarLayer(base, [
      { name: 'usr/', dir: true },
      { name: 'usr/share/', dir: true },
      { name: 'usr/share/base.bin', content: randomBytes(BASE_MIB * MiB) },
    ]);
    await tarLayer(small, [
      { name: 'boot/', dir: true },
      { name: 'boot/vmlinuz-6.1.0-bench', content: 'not really a kernel' },
      { name: 'etc/', dir: true },
      { name: 'etc/os-version', content: 'version 1\n' },
    ]);
    await tarLayer(fresh, [
      { name: 'usr/share/', dir: true },
      { name: 'usr/share/v2.bin', content: randomBytes(Math.round(NEW_MIB * MiB)) },
    ]);
    const publish = async (n: number, tars: string[]) => {
      const layout = path.join(work, `layout-${n}`);
      await writeOciLayout(
        layout,
        `desktop:${n}`,
        tars.map((t) => ({ tar: t, compression: 'gzip' as const })),
        { 'org.opencontainers.image.version': String(n) },
      );
      await darchOk(['--root', publisher, 'images', 'import', `oci:${layout}:desktop:${n}`, `desktop:${n}`]);
      // Straight to the origin: pushes are not counted.
      await darchOk(['--root', publisher, 'images', 'push', '--tls-verify=false', `desktop:${n}`, `${origin.host}/${repo}:stable`]);
      return published(origin.url, repo, 'stable');
    };

    console.error(`bench: ${MACHINES} machines × 2 fleets (through the mirror ${mirror.host}, straight to the origin), ${JOBS} at a time, policy ${POLICY}`);
    const fleets = { mirror: [] as string[], direct: [] as string[] };
    for (let i = 0; i < MACHINES; i++) {
      fleets.mirror.push(await makeMachine(path.join(work, 'mirror', `m${i}`), image, proxy.host, mirror.host));
      fleets.direct.push(await makeMachine(path.join(work, 'direct', `m${i}`), image, proxy.host));
    }

    const phases = [];
    let seen = new Map<string, number>();
    for (const [n, tars, name] of [
      [1, [base, small], 'v1 (cold mirror)'],
      [2, [base, small, fresh], 'v2 (the update)'],
    ] as const) {
      const pub = await publish(n, [...tars]);
      const newBlobs = new Map([...pub.blobs].filter(([d]) => !seen.has(d)));
      seen = new Map([...seen, ...pub.blobs]);
      const newBlobBytes = [...newBlobs.values()].reduce((a, b) => a + b, 0);
      const ideal = newBlobBytes + pub.manifestBytes;
      const order: Array<'mirror' | 'direct'> = n % 2 === 1 ? ['mirror', 'direct'] : ['direct', 'mirror'];
      const res: Partial<Record<'mirror' | 'direct', FleetRun>> = {};
      for (const f of order) {
        console.error(`bench: ${name}: ${f === 'mirror' ? 'through the mirror' : 'straight to the origin'}…`);
        res[f] = await runFleet(fleets[f], proxy, pub, newBlobs, ideal);
        console.error(`bench:   ${res[f].wallSec} s, origin served ${(res[f].origin.bytes / MiB).toFixed(2)} MiB in ${res[f].origin.requests} requests`);
      }
      phases.push({
        phase: name,
        newBlobs: newBlobs.size,
        newBlobBytes,
        manifestBytes: pub.manifestBytes,
        idealOriginBytes: ideal,
        mirror: res.mirror!,
        direct: res.direct!,
        originBytesMirrorToDirect: round(res.mirror!.origin.bytes / res.direct!.origin.bytes, 4),
      });
    }

    const report = {
      bench: 'update-fleet',
      date: started.toISOString(),
      command: `npm run -s bench:update-fleet -- --machines ${MACHINES} --jobs ${JOBS} --policy ${POLICY} --base-mib ${BASE_MIB} --new-mib ${NEW_MIB}`,
      machines: MACHINES,
      jobs: JOBS,
      policy: POLICY,
      image: `v1: ${BASE_MIB} MiB random base layer + a small layer; v2: + ${NEW_MIB} MiB random layer (gzip)`,
      rss: 'GNU time %M around each darch update run (max RSS of that process); median and max over the fleet',
      rssFloorMiB: await rssFloorMiB(work),
      originBytes: 'HTTP body bytes the origin sent (through a counting proxy in front of it); headers not counted',
      phases,
      loadavg: os.loadavg().map((l) => round(l)),
      host: { cpus: os.availableParallelism(), node: process.version, darch: (await darchOk(['--version'])).trim() },
    };
    console.log(JSON.stringify(report, null, 2));

    const mb = (b: number) => `${(b / MiB).toFixed(2)} MiB`;
    console.error(`\nfleet update, ${MACHINES} machines, ${JOBS} at a time, policy ${POLICY}; origin = what the origin served (bodies)`);
    const rows = [
      ['phase', 'fleet', 'origin bytes', 'blobs', 'manifests (req)', 'requests', 'copies', '× ideal', 'wall', 'CPU agents/proxy', 'agent RSS med/max'],
    ];
    for (const p of phases) {
      rows.push([p.phase, 'ideal', mb(p.idealOriginBytes), mb(p.newBlobBytes), `${p.manifestBytes} B`, '', '1.00', '1.00', '', '']);
      for (const f of ['mirror', 'direct'] as const) {
        const r = p[f];
        rows.push([
          '',
          f === 'mirror' ? 'with mirror' : 'no mirror',
          mb(r.origin.bytes),
          `${mb(r.origin.blobBytes)} (${r.origin.blobGets} GET)`,
          `${r.origin.manifestBytes} B (${r.origin.manifestRequests})`,
          String(r.origin.requests),
          r.copies.toFixed(2),
          r.toIdeal.toFixed(2),
          `${r.wallSec.toFixed(1)} s`,
          `${r.agentsCpuSec.toFixed(0)}/${r.benchCpuSec.toFixed(1)} s`,
          `${r.agentMaxRssMiB.median}/${r.agentMaxRssMiB.max} MiB`,
        ]);
      }
      rows.push(['', 'mirror/no mirror', p.originBytesMirrorToDirect.toFixed(4), '', '', '', '', '', '', '']);
    }
    const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
    for (const r of rows) console.error(`  ${r.map((c, i) => c.padEnd(widths[i]!)).join('  ')}`);
    for (const p of phases) console.error(`  ${p.phase}, copies per blob with the mirror: ${JSON.stringify(p.mirror.perBlobCopies)}`);
    console.error(`  agent RSS floor (darch --version): ${report.rssFloorMiB} MiB; load ${report.loadavg.join(' ')}`);
  } finally {
    await mirror.stop();
    await proxy.stop();
    await origin.stop();
    await rm(work, { recursive: true, force: true });
  }
}

await main();

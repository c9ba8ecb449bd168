/**
 * Update bytes (issue 16, benchmark 1): what a machine downloads to go from one image to
 * the next, for two real scenarios built from Debian's archive, side by side in one run:
 *
 *   A  security update: bookworm minbase as debootstrap installs it → `apt-get upgrade` from
 *      bookworm-security (whatever it holds today; the packages are listed in the report)
 *   B  two packages added: A's result → `apt-get install less nano`
 *
 * Each version is an image of layers, as a rebuild on top of the last one makes it: the
 * first version's root, then one diff layer per step (changed and added files, whiteouts
 * for removed ones). Compared, per scenario:
 *
 *   full      the target's squashfs (what `darch stage export` or a plain copy ships)
 *   layers    the new layer, gzip (what `darch images pull` downloads)
 *   darch     `darch delta create` (zstd -19 patch of the staging tar against the base's root)
 *   patch     the named baseline: `zstd -19 --long --patch-from` over canonical tars (name-sorted,
 *             owners and times fixed) of the two roots, the smallest design in
 *             shared/reference/anchors-deltas.md
 *   xdelta3   `xdelta3 -9 -B <size>` of the compressed squashfs (when xdelta3 is installed)
 *
 * Goals: darch within 1.1× of patch, and at least 4× smaller than layers. Also reported: the
 * time and peak RSS of create and of `darch delta apply` (on a machine with the base staged),
 * and the same delta patched in segments (`--segment-size`, default 16 MiB here, so these
 * roots are cut in pieces as a multi-gigabyte one is at the default 128 MiB): its size and
 * apply's peak RSS against the one-piece delta's, the price and the gain of the bound.
 * The trees are cached in --work (debootstrap and apt take minutes; the archive moves, so a
 * fresh work directory may give other packages). Usage, as root:
 *   npm run -s build && node --import tsx bench/delta.ts [--work /var/tmp/darch-bench-delta]
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { writeOciLayout } from '../test/helpers/oci-layout.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const DARCH = process.env.DARCH_BIN ?? path.join(REPO, 'dist/darch');
const arg = (name: string, def: string) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? (process.argv[i + 1] ?? def) : def;
};
const WORK = arg('--work', '/var/tmp/darch-bench-delta');
const LEVEL = arg('--level', '19');
/** The segmented delta's segment size in MiB: small enough that these 120 MB roots are cut in pieces. */
const SEGMENT = arg('--segment-size', '16');

const sh = (cmd: string, args: string[], opts: { cwd?: string; input?: string } = {}) =>
  execFileSync(cmd, args, { stdio: ['pipe', 'pipe', 'inherit'], maxBuffer: 1 << 30, ...opts }).toString();

/** Wall seconds and peak RSS (bytes, the largest of the command and its children) of a command. */
function timed(cmd: string, args: string[]): { seconds: number; rss: number; stdout: string } {
  const out = path.join(WORK, 'time.out');
  const t = process.hrtime.bigint();
  const r = spawnSync('/usr/bin/time', ['-f', '%M', '-o', out, cmd, ...args], { stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 30 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}`);
  return {
    seconds: Number(process.hrtime.bigint() - t) / 1e9,
    rss: Number(readFileSync(out, 'utf8').trim().split('\n').at(-1)) * 1024,
    stdout: r.stdout.toString(),
  };
}

const size = (f: string) => statSync(f).size;
const mb = (n: number) => `${(n / 1e6).toFixed(2)} MB`;

function chroot(tree: string, script: string): void {
  for (const m of ['proc', 'sys', 'dev']) sh('mount', ['--bind', `/${m}`, path.join(tree, m)]);
  try {
    sh('chroot', [tree, 'sh', '-ec', script]);
  } finally {
    for (const m of ['dev', 'sys', 'proc']) spawnSync('umount', ['-l', path.join(tree, m)]);
  }
}

/** What no image should carry: apt's lists and caches, logs, device nodes. */
function clean(tree: string): void {
  sh('sh', ['-c', 'rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin "$1"/var/cache/apt/archives/*.deb "$1"/var/log/* "$1"/dev/*', 'sh', tree]);
}

const SOURCES = (extra: string) => `echo "deb http://deb.debian.org/debian bookworm main" >/etc/apt/sources.list\n${extra}\napt-get update -qq\n`;

/** `to` = a copy of `from` after `script` ran in it (apt), cached once done. */
async function derive(from: string, to: string, what: string, script: string): Promise<void> {
  if (existsSync(path.join(to, '.done'))) return;
  await rm(to, { recursive: true, force: true });
  sh('cp', ['-a', from, to]);
  await rm(path.join(to, '.done'));
  process.stderr.write(`${what}…\n`);
  chroot(to, script);
  clean(to);
  await writeFile(path.join(to, '.done'), '');
}

async function trees(): Promise<{ v1: string; v2: string; v3: string; upgraded: string[]; added: string[] }> {
  const v1 = path.join(WORK, 'v1');
  const v2 = path.join(WORK, 'v2');
  const v3 = path.join(WORK, 'v3');
  if (!existsSync(path.join(v1, '.done'))) {
    await rm(v1, { recursive: true, force: true });
    process.stderr.write('debootstrap --variant=minbase bookworm (minutes)…\n');
    sh('debootstrap', ['--variant=minbase', 'bookworm', v1, 'http://deb.debian.org/debian']);
    // darch stages what has a kernel: a stand-in file is enough for these roots.
    await writeFile(path.join(v1, 'boot/vmlinuz-6.1.0-bench'), 'a stand-in kernel for the delta bench\n');
    clean(v1);
    await writeFile(path.join(v1, '.done'), '');
  }
  await derive(
    v1,
    v2,
    'apt-get upgrade from bookworm-security',
    `${SOURCES('echo "deb http://deb.debian.org/debian-security bookworm-security main" >>/etc/apt/sources.list')}apt list --upgradable 2>/dev/null | sed -n 's,/.*,,p' >/upgraded\nDEBIAN_FRONTEND=noninteractive apt-get -y -qq upgrade >/dev/null`,
  );
  await derive(
    v2,
    v3,
    'apt-get install less nano',
    `${SOURCES('')}DEBIAN_FRONTEND=noninteractive apt-get -y -qq install --no-install-recommends less nano >/dev/null`,
  );
  const upgraded = readFileSync(path.join(v2, 'upgraded'), 'utf8').split('\n').filter(Boolean);
  return { v1, v2, v3, upgraded, added: ['less', 'nano'] };
}

/** path → a fingerprint of what a layer would carry for it (type, mode, owner, content or target). */
function listing(tree: string): Map<string, string> {
  const out = sh('find', ['.', '-path', './.done', '-prune', '-o', '-path', './upgraded', '-prune', '-o', '-printf', '%p\\0%y\\0%m\\0%U\\0%G\\0%s\\0%l\\0'], {
    cwd: tree,
  });
  const f = out.split('\0');
  const m = new Map<string, string>();
  for (let i = 0; i + 7 <= f.length; i += 7) {
    const [p, y, mode, u, g, s, l] = f.slice(i, i + 7) as [string, string, string, string, string, string, string];
    if (p === '.') continue;
    let fp = `${y} ${mode} ${u}:${g} ${s} ${l}`;
    if (y === 'f')
      fp += ` ${createHash('sha256')
        .update(readFileSync(path.join(tree, p)))
        .digest('hex')}`;
    m.set(p.slice(2), fp);
  }
  return m;
}

/** The diff layer from `a` to `b`: changed and added paths, whiteouts for removed ones. */
async function diffLayer(a: string, b: string, out: string): Promise<void> {
  const [la, lb] = [listing(a), listing(b)];
  const changed = [...lb].filter(([p, fp]) => la.get(p) !== fp).map(([p]) => p);
  const removed = [...la.keys()].filter((p) => !lb.has(p));
  const gone = new Set(removed);
  const wh = path.join(WORK, 'whiteouts');
  await rm(wh, { recursive: true, force: true });
  for (const p of removed) {
    if (gone.has(path.dirname(p))) continue;
    await mkdir(path.join(wh, path.dirname(p)), { recursive: true });
    await writeFile(path.join(wh, path.dirname(p), `.wh.${path.basename(p)}`), '');
  }
  const list = path.join(WORK, 'changed.list');
  await writeFile(list, changed.sort().join('\n'));
  sh('tar', ['-C', b, '--no-recursion', '--numeric-owner', '-cf', out, '-T', list]);
  if (removed.length) sh('tar', ['-C', wh, '--numeric-owner', '--owner=0', '--group=0', '-rf', out, '.']);
}

function canonicalTar(tree: string, out: string): void {
  sh('tar', [
    '-C',
    tree,
    '--sort=name',
    '--mtime=@0',
    '--owner=0',
    '--group=0',
    '--numeric-owner',
    '--exclude=./.done',
    '--exclude=./upgraded',
    '-cf',
    out,
    '.',
  ]);
}

function darchRoot(name: string): string {
  const root = path.join(WORK, name);
  spawnSync('rm', ['-rf', root]);
  execFileSync('mkdir', ['-p', path.join(root, 'etc/darch')]);
  execFileSync('sh', [
    '-c',
    `printf '[boot]\\nbootloader = "grub"\\nstage_fs_uuid = "0b6a8f3e-54f1-4c51-a1a7-6d6bcb1a7e13"\\n' >"$1"`,
    'sh',
    path.join(root, 'etc/darch/config.toml'),
  ]);
  return root;
}

const darch = (root: string, args: string[]) => timed(DARCH, ['--root', root, '--quiet', ...args]);

async function main(): Promise<void> {
  await mkdir(WORK, { recursive: true });
  const t = await trees();
  const base = path.join(WORK, 'l1.tar');
  const d12 = path.join(WORK, 'l2.tar');
  const d23 = path.join(WORK, 'l3.tar');
  sh('tar', ['-C', t.v1, '--sort=name', '--numeric-owner', '--exclude=./.done', '-cf', base, '.']);
  await diffLayer(t.v1, t.v2, d12);
  await diffLayer(t.v2, t.v3, d23);
  const layouts = path.join(WORK, 'layouts');
  await rm(layouts, { recursive: true, force: true });
  const layer = (tar: string) => ({ tar, compression: 'gzip' as const });
  await writeOciLayout(path.join(layouts, '1'), 'bench/os:1', [layer(base)]);
  await writeOciLayout(path.join(layouts, '2'), 'bench/os:2', [layer(base), layer(d12)]);
  await writeOciLayout(path.join(layouts, '3'), 'bench/os:3', [layer(base), layer(d12), layer(d23)]);
  const server = darchRoot('server');
  for (const v of ['1', '2', '3']) darch(server, ['images', 'import', `oci:${path.join(layouts, v)}:bench/os:${v}`, `bench/os:${v}`]);
  const xdelta = spawnSync('sh', ['-c', 'command -v xdelta3']).status === 0;

  const scenarios = [
    {
      name: 'A security update',
      from: '1',
      to: '2',
      fromTree: t.v1,
      toTree: t.v2,
      newLayer: d12,
      what: `${t.upgraded.length} packages: ${t.upgraded.join(' ')}`,
    },
    { name: 'B two packages added', from: '2', to: '3', fromTree: t.v2, toTree: t.v3, newLayer: d23, what: t.added.join(' ') },
  ];
  const results = [];
  for (const s of scenarios) {
    process.stderr.write(`${s.name}…\n`);
    const delta = path.join(WORK, `${s.from}-${s.to}.delta`);
    await rm(delta, { force: true });
    const create = darch(server, ['delta', 'create', `bench/os:${s.from}`, `bench/os:${s.to}`, '-o', delta, '--level', LEVEL]);
    const info = JSON.parse(timed(DARCH, ['--root', server, '--json', 'delta', 'inspect', delta]).stdout);
    const layerGz = gzipSync(readFileSync(s.newLayer)).length;
    // The named baseline: zstd --patch-from over canonical tars of the two roots.
    const [ca, cb, patch] = [path.join(WORK, 'a.tar'), path.join(WORK, 'b.tar'), path.join(WORK, 'ab.zst')];
    canonicalTar(s.fromTree, ca);
    canonicalTar(s.toTree, cb);
    const wl = Math.ceil(Math.log2(Math.max(size(ca), size(cb)) + 1)) + 1;
    const base = timed('zstd', ['-q', '-f', `-${LEVEL}`, `--long=${wl}`, `--patch-from=${ca}`, cb, '-o', patch]);
    const patchBytes = size(patch);
    // The machine: the base staged from its layers, then the delta applied.
    const machine = darchRoot(`machine-${s.to}`);
    darch(machine, ['images', 'import', `oci:${path.join(layouts, s.from)}:bench/os:${s.from}`, `bench/os:${s.from}`]);
    darch(machine, ['stage', 'upload', `bench/os:${s.from}`]);
    const apply = darch(machine, ['delta', 'apply', delta]);
    // The same delta in segments, applied on a second machine.
    const segDelta = path.join(WORK, `${s.from}-${s.to}.seg.delta`);
    await rm(segDelta, { force: true });
    const segCreate = darch(server, ['delta', 'create', `bench/os:${s.from}`, `bench/os:${s.to}`, '-o', segDelta, '--level', LEVEL, '--segment-size', SEGMENT]);
    const segInfo = JSON.parse(timed(DARCH, ['--root', server, '--json', 'delta', 'inspect', segDelta]).stdout);
    const segMachine = darchRoot(`machine-seg-${s.to}`);
    darch(segMachine, ['images', 'import', `oci:${path.join(layouts, s.from)}:bench/os:${s.from}`, `bench/os:${s.from}`]);
    darch(segMachine, ['stage', 'upload', `bench/os:${s.from}`]);
    const segApply = darch(segMachine, ['delta', 'apply', segDelta]);
    let xd: number | undefined;
    if (xdelta) {
      const [sa, sb, x] = [path.join(WORK, 'a.squash'), path.join(WORK, 'b.squash'), path.join(WORK, 'ab.xd')];
      darch(server, ['stage', 'upload', `bench/os:${s.from}`, '--force', '--compression', info.squashfs.compression]);
      darch(server, ['stage', 'upload', `bench/os:${s.to}`, '--force', '--compression', info.squashfs.compression]);
      const staged = JSON.parse(timed(DARCH, ['--root', server, '--json', 'stage', 'list']).stdout).staged as Array<{ tags: string[]; dir: string }>;
      const dirOf = (v: string) => staged.find((i) => i.tags.includes(`bench/os:${v}`))!.dir;
      sh('cp', [path.join(dirOf(s.from), 'rootfs.squash'), sa]);
      sh('cp', [path.join(dirOf(s.to), 'rootfs.squash'), sb]);
      timed('xdelta3', ['-9', '-f', '-B', String(Math.max(size(sa), size(sb))), '-e', '-s', sa, sb, x]);
      xd = size(x);
      await Promise.all([sa, sb, x].map((f) => rm(f)));
    }
    await Promise.all([ca, cb, patch].map((f) => rm(f)));
    const deltaBytes = size(delta);
    results.push({
      scenario: s.name,
      change: s.what,
      rootBytes: info.to.rootSize,
      bytes: {
        full: info.squashfs.size,
        layers: layerGz,
        darch: deltaBytes,
        patchFromBaseline: patchBytes,
        ...(xd !== undefined ? { xdelta3Squashfs: xd } : {}),
      },
      ratios: {
        darchToPatchFrom: Number((deltaBytes / patchBytes).toFixed(3)),
        layersToDarch: Number((layerGz / deltaBytes).toFixed(1)),
        fullToDarch: Number((info.squashfs.size / deltaBytes).toFixed(1)),
      },
      create: { seconds: Number(create.seconds.toFixed(1)), peakRss: create.rss },
      patchFromBaseline: { seconds: Number(base.seconds.toFixed(1)), peakRss: base.rss },
      apply: { seconds: Number(apply.seconds.toFixed(1)), peakRss: apply.rss },
      segmented: {
        segmentMiB: Number(SEGMENT),
        segments: segInfo.patch.segments?.length ?? 1,
        bytes: size(segDelta),
        create: { seconds: Number(segCreate.seconds.toFixed(1)), peakRss: segCreate.rss },
        apply: { seconds: Number(segApply.seconds.toFixed(1)), peakRss: segApply.rss },
        bytesToWhole: Number((size(segDelta) / deltaBytes).toFixed(3)),
        applyRssToWhole: Number((segApply.rss / apply.rss).toFixed(3)),
      },
    });
  }
  const goals = results.every((r) => r.ratios.darchToPatchFrom <= 1.1 && r.ratios.layersToDarch >= 4);
  process.stdout.write(`${JSON.stringify({ bench: 'delta', level: Number(LEVEL), results, goalsMet: goals }, null, 2)}\n`);
  for (const r of results) {
    process.stderr.write(
      `${r.scenario} (${r.change})\n  full ${mb(r.bytes.full)}  layers ${mb(r.bytes.layers)}  darch ${mb(r.bytes.darch)}  patch-from ${mb(r.bytes.patchFromBaseline)}` +
        `${'xdelta3Squashfs' in r.bytes ? `  xdelta3 ${mb(r.bytes.xdelta3Squashfs as number)}` : ''}\n` +
        `  darch/patch-from ${r.ratios.darchToPatchFrom}  layers/darch ${r.ratios.layersToDarch}×  full/darch ${r.ratios.fullToDarch}×\n` +
        `  create ${r.create.seconds} s ${mb(r.create.peakRss)} RSS; apply ${r.apply.seconds} s ${mb(r.apply.peakRss)} RSS; baseline patch ${r.patchFromBaseline.seconds} s\n` +
        `  in ${r.segmented.segments} segments of ${r.segmented.segmentMiB} MiB: ${mb(r.segmented.bytes)} (${r.segmented.bytesToWhole}× the one-piece delta), ` +
        `create ${r.segmented.create.seconds} s ${mb(r.segmented.create.peakRss)} RSS, apply ${r.segmented.apply.seconds} s ${mb(r.segmented.apply.peakRss)} RSS (${r.segmented.applyRssToWhole}×)\n`,
    );
  }
  process.stderr.write(goals ? 'PASS: within 1.1× of patch-from and ≥4× under the layers\n' : 'FAIL: a goal is not met\n');
  process.exitCode = goals ? 0 : 1;
}

await main();

/**
 * darch's universal initramfs: the host's static busybox, darch's /init and boot library,
 * and the kernel modules the image itself ships (so they always match its kernel),
 * written as a gzip-compressed newc cpio. Nothing from the image is executed.
 */
import { createWriteStream } from 'node:fs';
import { mkdir, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { PassThrough } from 'node:stream';
import { createGzip } from 'node:zlib';
import { findStaticBusybox } from './busybox.js';
import { assetPath } from '../lib/assets.js';
import { DarchError, fsError, isErrno } from '../lib/errors.js';
import { commitFile, makeWorkDir, ownedTempName, sweepDeadOwners, tempName } from '../lib/scratch.js';
import { run, spawnChild, waitChild, commandFailed, which } from '../lib/proc.js';
import { copyFromSquashfs } from '../stage/squashfs.js';
import { silentReporter, type Reporter } from '../lib/report.js';
import { CpioWriter } from './cpio.js';
import { kernelRelease } from './kernel.js';
import {
  NET_DRIVERS,
  parseModulesDep,
  REQUIRED_MODULES,
  resolveModules,
  VERITY_MODULES,
  WANTED_MODULES,
  WATCHDOG_DRIVERS,
  type Resolution,
} from './modules.js';
import { hostProgram } from './host-program.js';

export const INITRAMFS_VERSION = '5';

export interface BuildInitramfsOptions {
  /** The image: its rootfs.squash, or an unpacked root directory. */
  rootfs: string;
  /** The kernel the initramfs is for; its release picks /lib/modules/<release>. */
  kernel?: string;
  release?: string;
  /** Output file, written through a temp name and renamed. */
  out: string;
  /** Scratch directory (same file system as out is best). */
  tmpDir: string;
  /** Extra module names to include. */
  extraModules?: string[];
  /**
   * Carry what opening the root through dm-verity needs (darch_verity=): the dm-verity
   * modules (required) and the host's dmsetup with its libraries.
   */
  verity?: boolean;
  report?: Reporter;
}

export interface BuildInitramfsResult {
  path: string;
  release: string;
  size: number;
  modules: string[];
  builtin: string[];
  absent: string[];
  skipped: string[];
}

const MODULE_DIRS = ['lib/modules', 'usr/lib/modules'];

/** Gives access to files under /lib/modules/<release> of an image, whatever its form. */
interface ModuleSource {
  release: string | undefined;
  read(rel: string): Promise<string | undefined>;
  /** Local paths for the given files (relative to the release dir), fetching them if needed. */
  fetch(rels: string[]): Promise<Map<string, string>>;
}

const NO_MODULES: ModuleSource = { release: undefined, read: async () => undefined, fetch: async () => new Map() };

async function dirSource(root: string, release: string | undefined): Promise<ModuleSource> {
  const releases: { rel: string; dir: string }[] = [];
  for (const d of MODULE_DIRS) {
    for (const r of await readdir(path.join(root, d)).catch(() => [] as string[])) releases.push({ rel: r, dir: path.join(root, d, r) });
  }
  const pick = pickRelease(releases, release, root);
  if (!pick) return NO_MODULES;
  return {
    release: pick.rel,
    read: (rel) => readFile(path.join(pick.dir, rel), 'utf8').catch(() => undefined),
    fetch: async (rels) => new Map(rels.map((r) => [r, path.join(pick.dir, r)])),
  };
}

/**
 * The module files of a staged squashfs. rdsquashfs (squashfs-tools-ng, which the one-pass
 * stage uses) copies each file out; unsquashfs is the fallback where only squashfs-tools
 * is installed. Debian 12's unsquashfs 4.5.1 reads no lz4 image at all ("failed to read id
 * table block"), whoever wrote it.
 */
async function squashSource(squash: string, release: string | undefined, work: string): Promise<ModuleSource> {
  const dest = path.join(work, 'x');
  const readError = (detail: string) =>
    new DarchError('E_SQUASHFS_READ', `cannot read ${squash}: ${detail}`, { hint: 'the squashfs may be corrupt: stage the image again' });
  const viaRdsquashfs = Boolean(await which('rdsquashfs'));
  /** Copy files (paths inside the image) under dest; a file the image lacks is skipped. */
  const copyOut = async (inners: string[]) => {
    for (const inner of inners) {
      const out = path.join(dest, inner);
      await mkdir(path.dirname(out), { recursive: true });
      await rm(out, { force: true });
      await copyFromSquashfs(squash, inner, out).catch(async (e: unknown) => {
        await rm(out, { force: true });
        if (e instanceof DarchError && /no such file or directory/i.test(e.message)) return;
        throw e instanceof DarchError && e.code === 'E_COMMAND_FAILED' ? readError(e.message) : e;
      });
    }
  };
  /** The release directories under dir in the image (rdsquashfs -l lists "mode uid/gid size name"). */
  const releasesIn = async (dir: string): Promise<string[]> => {
    const res = await run('rdsquashfs', ['-l', `/${dir}`, squash], { allowFailure: true });
    if (res.code !== 0) {
      if (/no such file or directory|not a directory/i.test(res.stderr)) return [];
      throw readError(res.stderr.trim().split('\n').slice(-1)[0] ?? '');
    }
    return res.stdout
      .split('\n')
      .filter((l) => l.startsWith('d'))
      .map((l) => l.split(' ').slice(3).join(' '))
      .filter(Boolean);
  };
  const extract = async (patterns: string[]) => {
    const list = path.join(work, ownedTempName('list'));
    await writeFile(list, patterns.join('\n') + '\n');
    const res = await run('unsquashfs', ['-d', dest, '-f', '-no-progress', '-no-xattrs', '-ef', list, squash], { allowFailure: true });
    if (res.code !== 0) throw readError(res.stderr.trim().split('\n').slice(-1)[0] ?? '');
  };
  const rel = release ?? '*';
  if (viaRdsquashfs) {
    for (const d of MODULE_DIRS) {
      const found = release ? (await releasesIn(d)).filter((r) => r === release) : await releasesIn(d);
      await copyOut(found.flatMap((r) => ['modules.dep', 'modules.builtin'].map((f) => `${d}/${r}/${f}`)));
      // rdsquashfs lists a release even where it holds neither file; pickRelease wants the directory.
      for (const r of found) await mkdir(path.join(dest, d, r), { recursive: true });
    }
  } else {
    await extract(MODULE_DIRS.flatMap((d) => ['modules.dep', 'modules.builtin'].map((f) => `${d}/${rel}/${f}`)));
  }
  const releases: { rel: string; dir: string; imageDir: string }[] = [];
  for (const d of MODULE_DIRS) {
    for (const r of await readdir(path.join(dest, d)).catch(() => [] as string[])) releases.push({ rel: r, dir: path.join(dest, d, r), imageDir: `${d}/${r}` });
  }
  const pick = pickRelease(releases, release, squash);
  if (!pick) return NO_MODULES;
  return {
    release: pick.rel,
    read: (r) => readFile(path.join(pick.dir, r), 'utf8').catch(() => undefined),
    fetch: async (rels) => {
      const inners = rels.map((r) => `${pick.imageDir}/${r}`);
      await (viaRdsquashfs ? copyOut(inners) : extract(inners));
      return new Map(rels.map((r) => [r, path.join(pick.dir, r)]));
    },
  };
}

/** undefined: the image has no module tree at all (a kernel with everything built in). */
function pickRelease<T extends { rel: string }>(found: T[], want: string | undefined, where: string): T | undefined {
  if (found.length === 0) return undefined;
  if (want) {
    const hit = found.find((f) => f.rel === want);
    if (hit) return hit;
    throw new DarchError('E_MODULES_MISSING', `the image has no /lib/modules/${want} (its kernel's modules)`, {
      hint: `install the modules for kernel ${want} in the image${found.length ? ` (it has ${found.map((f) => f.rel).join(', ')})` : ''}`,
    });
  }
  const unique = [...new Map(found.map((f) => [f.rel, f])).values()];
  if (unique.length === 1 && unique[0]) return unique[0];
  throw new DarchError('E_KERNEL_UNKNOWN', `${where} has modules for several kernels (${unique.map((f) => f.rel).join(', ')})`, {
    hint: 'pass the kernel so darch can tell which release it is',
  });
}

/** A module ready to go into the cpio: busybox insmod reads only uncompressed .ko files. */
async function plainModule(local: string, rel: string, work: string): Promise<{ path: string; name: string }> {
  const m = /\.ko\.(xz|zst|gz)$/.exec(rel);
  if (!m) return { path: local, name: rel };
  const out = path.join(work, 'plain', rel.replace(/\.(xz|zst|gz)$/, ''));
  await mkdir(path.dirname(out), { recursive: true });
  const tool = m[1] === 'xz' ? 'xz' : m[1] === 'zst' ? 'zstd' : 'gzip';
  const child = spawnChild(tool, ['-dc', local], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr?.on('data', (b: Buffer) => (err += b.toString()));
  const [written, exit] = await Promise.allSettled([pipeline(child.stdout!, createWriteStream(out)), waitChild(child, tool)]);
  if (exit.status === 'rejected') throw exit.reason;
  if (exit.value.code !== 0) throw commandFailed(tool, ['-dc', local], { ...exit.value, stderr: err });
  if (written.status === 'rejected') throw written.reason;
  return { path: out, name: rel.replace(/\.(xz|zst|gz)$/, '') };
}

export async function buildInitramfs(opts: BuildInitramfsOptions): Promise<BuildInitramfsResult> {
  const report = opts.report ?? silentReporter;
  // Work directories of builds a crash or power cut stopped (owners gone, or another boot).
  await sweepDeadOwners(opts.tmpDir).catch(() => 0);
  const work = await makeWorkDir(opts.tmpDir, 'initramfs');
  try {
    let release = opts.release ?? (opts.kernel ? await kernelRelease(opts.kernel) : undefined);
    if (opts.kernel && !release) report.warn(`cannot read the release of ${opts.kernel}; looking for a single /lib/modules directory`);
    let st;
    try {
      st = await stat(opts.rootfs);
    } catch (err) {
      throw fsError(err, `cannot read the image ${opts.rootfs}`);
    }
    const src = st.isDirectory() ? await dirSource(opts.rootfs, release) : await squashSource(opts.rootfs, release, work);
    let resolution: Resolution = { load: [], builtin: [], absent: [], skipped: [] };
    let local = new Map<string, string>();
    // Per watchdog driver, its module files in load order (dependencies first).
    const watchdog: Array<{ driver: string; files: string[] }> = [];
    // Network drivers (with their dependencies) for network boots, each only if the image has all its files.
    const net: Array<{ driver: string; files: string[] }> = [];
    if (src.release === undefined) {
      // Nothing to load: fine for a kernel with squashfs, overlay, loop and its disk drivers built in.
      report.warn(
        `${opts.rootfs} has no /lib/modules: the initramfs carries no modules, so the kernel must have squashfs, overlay, loop and the disk drivers built in`,
      );
      release ??= 'unknown';
    } else {
      release = src.release;
      const dep = await src.read('modules.dep');
      if (dep === undefined) {
        throw new DarchError('E_MODULES_MISSING', `the image has /lib/modules/${release} but no modules.dep`, {
          hint: `run \`depmod ${release}\` in the image (kernel packages do this when installed) and stage it again`,
        });
      }
      const db = parseModulesDep(dep, (await src.read('modules.builtin')) ?? '');
      const wanted = [...WANTED_MODULES, ...(opts.extraModules ?? [])];
      const required = opts.verity ? [...REQUIRED_MODULES, ...VERITY_MODULES] : REQUIRED_MODULES;
      // First pass: everything modules.dep promises; then keep what the image really has.
      const all = resolveModules(db, release, wanted, required);
      const kver = release;
      const dogs = Object.entries(WATCHDOG_DRIVERS).map(([driver, names]) => ({ driver, files: resolveModules(db, kver, names, []).load }));
      const nics = NET_DRIVERS.map((driver) => ({ driver, files: resolveModules(db, kver, [driver], []).load }));
      local = await src.fetch([...new Set([...all.load, ...dogs.flatMap((d) => d.files), ...nics.flatMap((d) => d.files)])]);
      const have = new Set<string>();
      for (const rel of local.keys())
        if (
          await stat(local.get(rel) ?? '').then(
            () => true,
            () => false,
          )
        )
          have.add(rel);
      resolution = resolveModules(db, release, wanted, required, (f) => have.has(f));
      if (resolution.skipped.length) report.warn(`the image lacks files of ${resolution.skipped.join(', ')}: left out of the initramfs`);
      // A driver the kernel lacks (or the image stripped) is simply not offered.
      for (const d of dogs) if (d.files.length > 0 && d.files.every((f) => have.has(f))) watchdog.push(d);
      for (const d of nics) if (d.files.length > 0 && d.files.every((f) => have.has(f))) net.push(d);
    }
    const modules: { path: string; name: string }[] = [];
    for (const rel of resolution.load) modules.push(await plainModule(local.get(rel)!, rel, work));
    const loaded = new Set(resolution.load);
    const onDemand = new Map<string, { path: string; name: string }>();
    for (const rel of new Set([...watchdog, ...net].flatMap((d) => d.files))) onDemand.set(rel, await plainModule(local.get(rel)!, rel, work));
    const carried = [...modules, ...[...onDemand.entries()].filter(([rel]) => !loaded.has(rel)).map(([, m]) => m)];
    // Load order for a network boot: each driver after its dependencies, every file once.
    const netList = [...new Set(net.flatMap((d) => d.files))].map((f) => onDemand.get(f)!.name);
    const busybox = await findStaticBusybox();
    const programs = opts.verity ? await hostProgram('dmsetup', 'usr/sbin/dmsetup') : [];
    const bbSize = (await stat(busybox)).size;
    const init = await readFile(assetPath('initramfs', 'init'));
    const lib = await readFile(assetPath('initramfs', 'darch-lib.sh'));
    const record = await readFile(assetPath('trial', 'darch-record.sh'));

    const tmpOut = tempName(opts.out);
    const pass = new PassThrough();
    // flush: the file is fsynced before it is renamed over an initramfs that boots today.
    const done = pipeline(pass, createGzip({ level: 6 }), createWriteStream(tmpOut, { flags: 'wx', flush: true }));
    const cpio = new CpioWriter(pass);
    try {
      const dirs = new Set([
        'bin',
        'dev',
        'etc',
        'lib',
        'lib/darch',
        'lib/modules',
        'proc',
        'run',
        'sys',
        'tmp',
        'newroot',
        'sbin',
        'usr',
        'usr/bin',
        'usr/sbin',
      ]);
      for (const d of dirs) {
        await cpio.add({ type: 'dir', name: d });
      }
      await cpio.add({ type: 'chardev', name: 'dev/console', major: 5, minor: 1 });
      await cpio.add({ type: 'chardev', name: 'dev/null', mode: 0o666, major: 1, minor: 3 });
      await cpio.add({ type: 'diskfile', name: 'bin/busybox', mode: 0o755, path: busybox, size: bbSize });
      await cpio.add({ type: 'symlink', name: 'bin/sh', target: 'busybox' });
      await cpio.add({ type: 'file', name: 'init', mode: 0o755, data: init });
      await cpio.add({ type: 'file', name: 'lib/darch/darch-lib.sh', data: lib });
      await cpio.add({ type: 'file', name: 'lib/darch/darch-record.sh', data: record });
      await cpio.add({ type: 'file', name: 'etc/darch-initramfs-version', data: `${INITRAMFS_VERSION} (kernel ${release})\n` });
      const addDirs = async (name: string, from: number) => {
        const parts = name.split('/');
        for (let i = from; i < parts.length; i++) {
          const d = parts.slice(0, i).join('/');
          if (!dirs.has(d)) {
            dirs.add(d);
            await cpio.add({ type: 'dir', name: d });
          }
        }
      };
      for (const p of programs) {
        await addDirs(p.name, 1);
        await cpio.add({ type: 'diskfile', name: p.name, mode: p.mode, path: p.source, size: p.size });
      }
      for (const m of carried) {
        await addDirs(`lib/modules/${release}/${m.name}`, 3);
        await cpio.add({ type: 'diskfile', name: `lib/modules/${release}/${m.name}`, path: m.path, size: (await stat(m.path)).size });
      }
      await cpio.add({ type: 'file', name: 'lib/modules/load.list', data: modules.map((m) => m.name).join('\n') + '\n' });
      const dogList = watchdog.flatMap((d) => d.files.map((f) => `${d.driver} ${onDemand.get(f)!.name}\n`)).join('');
      await cpio.add({ type: 'file', name: 'lib/modules/watchdog.list', data: dogList });
      await cpio.add({ type: 'file', name: 'lib/modules/net.list', data: netList.map((n) => `${n}\n`).join('') });
      await cpio.finish();
      pass.end();
      await done;
      await commitFile(tmpOut, opts.out);
    } catch (err) {
      pass.destroy();
      await done.catch(() => undefined);
      await rm(tmpOut, { force: true });
      throw isErrno(err) ? fsError(err, `cannot write ${opts.out}`) : err;
    }
    return {
      path: opts.out,
      release,
      size: (await stat(opts.out)).size,
      modules: modules.map((m) => m.name),
      builtin: resolution.builtin,
      absent: resolution.absent,
      skipped: resolution.skipped,
    };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

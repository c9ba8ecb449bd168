/**
 * A real Debian kernel for example images: the linux-image package linux-image-amd64
 * depends on, fetched once with `apt-get download` (from the mirror apt already uses),
 * extracted and depmod'ed into a cache; and a bootable busybox root made with it.
 */
import { createWriteStream } from 'node:fs';
import { cp, mkdir, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { DarchError } from '../lib/errors.js';
import { acquireLock } from '../lib/lock.js';
import { run } from '../lib/proc.js';
import { silentReporter, type Reporter } from '../lib/report.js';
import { makeWorkDir, swapDir, sweepDeadOwners } from '../lib/scratch.js';
import { NET_DRIVERS, parseModulesDep, resolveModules, VERITY_MODULES, WATCHDOG_DRIVERS } from '../initramfs/modules.js';
import { writeBusyboxRootfs, type BusyboxRootfsOptions } from './busybox-rootfs.js';

export interface DebianKernel {
  /** The extracted linux-image package. */
  tree: string;
  vmlinuz: string;
  release: string;
  modulesDir: string;
}

async function exists(p: string): Promise<boolean> {
  return stat(p).then(
    () => true,
    () => false,
  );
}

/** Debian's current linux-image-amd64 kernel, extracted and depmod'ed, cached under cacheDir. */
export async function debianKernel(cacheDir: string, report: Reporter = silentReporter): Promise<DebianKernel> {
  const base = path.join(cacheDir, 'kernel');
  await mkdir(base, { recursive: true });
  const lock = await acquireLock(path.join(base, '.lock'), 'the test kernel cache', 600);
  try {
    const tree = path.join(base, 'tree');
    if (!(await exists(path.join(tree, '.done')))) {
      let pkg = (await run('apt-cache', ['depends', 'linux-image-amd64'])).stdout.match(/Depends:\s*(linux-image-[\w.-]+-amd64)/)?.[1];
      if (!pkg) {
        await run('apt-get', ['update', '-q']);
        pkg = (await run('apt-cache', ['depends', 'linux-image-amd64'])).stdout.match(/Depends:\s*(linux-image-[\w.-]+-amd64)/)?.[1];
      }
      if (!pkg)
        throw new DarchError('E_KERNEL_UNAVAILABLE', 'apt knows no linux-image package for linux-image-amd64', {
          hint: 'check /etc/apt/sources.list.d and run apt-get update',
        });
      report.step(`fetching the Debian kernel ${pkg} with apt-get download (once; cached in ${base})`);
      const dl = path.join(base, 'dl');
      await mkdir(dl, { recursive: true });
      let debs = (await readdir(dl)).filter((f) => f.startsWith(`${pkg}_`) && f.endsWith('.deb'));
      if (debs.length === 0) {
        const r = await run('apt-get', ['download', pkg], { cwd: dl, allowFailure: true });
        if (r.code !== 0) {
          await run('apt-get', ['update', '-q']);
          await run('apt-get', ['download', pkg], { cwd: dl });
        }
        debs = (await readdir(dl)).filter((f) => f.startsWith(`${pkg}_`) && f.endsWith('.deb'));
      }
      // An extraction a killed run left behind is its own: remove it (we hold the cache lock).
      await sweepDeadOwners(base);
      const tmp = await makeWorkDir(base, 'tree', 0o755);
      await run('dpkg-deb', ['-x', path.join(dl, debs[0]!), tmp]);
      const rel = (await readdir(path.join(tmp, 'lib/modules')))[0]!;
      await run('depmod', ['-b', tmp, rel]);
      await writeFile(path.join(tmp, '.done'), `${pkg}\n`);
      await swapDir(tmp, tree);
    }
    const rel = (await readdir(path.join(tree, 'lib/modules')))[0]!;
    return { tree, release: rel, vmlinuz: path.join(tree, 'boot', `vmlinuz-${rel}`), modulesDir: path.join(tree, 'lib/modules', rel) };
  } finally {
    await lock.release();
  }
}

export interface BootRootOptions extends BusyboxRootfsOptions {
  kernel: DebianKernel;
}

/** An unpacked busybox root with the kernel in /boot and the boot modules in /lib/modules. */
export async function busyboxBootRoot(dir: string, opts: BootRootOptions): Promise<string> {
  await mkdir(dir, { recursive: true });
  const tar = path.join(path.dirname(dir), `${path.basename(dir)}.tar`);
  await writeBusyboxRootfs(createWriteStream(tar), opts);
  await run('tar', ['-xf', tar, '-C', dir]);
  await rm(tar, { force: true });
  const k = opts.kernel;
  const mdir = path.join(dir, 'lib/modules', k.release);
  await mkdir(mdir, { recursive: true });
  for (const f of await readdir(k.modulesDir)) {
    if (f.startsWith('modules.')) await cp(path.join(k.modulesDir, f), path.join(mdir, f));
  }
  // Only the modules a boot needs (what darch's initramfs takes, with dependencies, the
  // watchdog drivers it carries for trial boots, dm-verity's for `--verity`, the network
  // drivers for network boots): a full
  // module tree would make every test image ~400 MB for nothing.
  const db = parseModulesDep(
    await readFile(path.join(k.modulesDir, 'modules.dep'), 'utf8'),
    await readFile(path.join(k.modulesDir, 'modules.builtin'), 'utf8'),
  );
  const watchdogs = Object.values(WATCHDOG_DRIVERS).flatMap((names) => resolveModules(db, k.release, names, []).load);
  const verity = resolveModules(db, k.release, VERITY_MODULES, []).load;
  const net = NET_DRIVERS.flatMap((d) => resolveModules(db, k.release, [d], []).load);
  for (const rel of new Set([...resolveModules(db, k.release).load, ...watchdogs, ...verity, ...net])) {
    await mkdir(path.dirname(path.join(mdir, rel)), { recursive: true });
    await cp(path.join(k.modulesDir, rel), path.join(mdir, rel));
  }
  await mkdir(path.join(dir, 'boot'), { recursive: true });
  await cp(k.vmlinuz, path.join(dir, 'boot', `vmlinuz-${k.release}`));
  return dir;
}

/**
 * A booted darch machine's stage file system is mounted read-only by the initramfs (the
 * running image's squashfs lives on it, and nothing should write there before the system
 * is up); an fstab entry for /var/lib/darch then shares that read-only superblock. The update
 * agent writes there (the image store, the new staged image, its lock), so on this machine
 * (never under --root) it remounts that mount read-write first. Only the mount darch writes
 * through changes: the initramfs's own mount (/run/darch/source) stays read-only.
 */
import { access } from 'node:fs/promises';
import path from 'node:path';
import { run } from './proc.js';
import { type Reporter, silentReporter } from './report.js';

/** The nearest existing directory at or above `dir`. */
async function existing(dir: string): Promise<string> {
  let d = path.resolve(dir);
  for (;;) {
    if (
      await access(d).then(
        () => true,
        () => false,
      )
    )
      return d;
    const up = path.dirname(d);
    if (up === d) return d;
    d = up;
  }
}

/** Remount the mount holding `dir` read-write when it is read-only; returns the mount point it remounted. */
export async function ensureWritable(dir: string, opts: { root: string; report?: Reporter }): Promise<string | undefined> {
  if (opts.root !== '/' || process.getuid?.() !== 0) return undefined;
  const res = await run('findmnt', ['-n', '-o', 'TARGET,OPTIONS', '-T', await existing(dir)], { allowFailure: true });
  if (res.code !== 0) return undefined;
  const [target, options] = res.stdout.trim().split(/\s+/);
  if (!target || !options?.split(',').includes('ro') || target === '/') return undefined;
  (opts.report ?? silentReporter).info(`remounting ${target} read-write (the boot mounted it read-only)`);
  await run('mount', ['-o', 'remount,rw', target]);
  return target;
}

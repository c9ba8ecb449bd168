/**
 * Fixtures for boot tests: a real Debian kernel (downloaded once from Debian's archive into
 * a cache directory, so a fresh CI machine works) and small bootable images made of
 * busybox-static plus that kernel and the modules a boot needs.
 */
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { acquireLock } from '../../src/lib/lock.js';
import { run } from '../../src/lib/proc.js';
import { debianMirror } from '../../src/lib/apt.js';
import { debianKernel as fetchKernel, type DebianKernel } from '../../src/examples/debian-kernel.js';
export { busyboxBootRoot, type BootRootOptions } from '../../src/examples/debian-kernel.js';

export const CACHE = process.env.DARCH_TEST_CACHE ?? '/var/cache/darch-test';

export type TestKernel = DebianKernel;

/** The test kernel, cached where every test and test run finds it. */
export function debianKernel(): Promise<TestKernel> {
  return fetchKernel(CACHE);
}

/**
 * systemd-boot brings systemd-bless-boot (commits a counted entry after boot-complete.target);
 * grub-efi-amd64 lets the same tree be installed as a distribution with its own GRUB
 * (boot-installed-grub): one debootstrap serves both.
 */
const SYSTEMD_TREE_PACKAGES = 'linux-image-amd64,initramfs-tools,systemd-sysv,udev,kmod,busybox,systemd-boot,grub-efi-amd64,squashfs-tools-ng';

/**
 * A Debian bookworm root with systemd, a kernel and initramfs-tools (debootstrap minbase),
 * made once into the cache (again when the package list changes); callers copy it before
 * changing it.
 */
export async function debianSystemdTree(): Promise<string> {
  const tree = path.join(CACHE, 'debian-bookworm');
  const stamp = `bookworm ${SYSTEMD_TREE_PACKAGES}\n`;
  await mkdir(CACHE, { recursive: true });
  const lock = await acquireLock(path.join(CACHE, '.debootstrap.lock'), 'the debootstrap cache', 1800);
  try {
    if ((await readFile(path.join(tree, '.done'), 'utf8').catch(() => '')) !== stamp) {
      await rm(tree, { recursive: true, force: true });
      const tmp = `${tree}.tmp`;
      await rm(tmp, { recursive: true, force: true });
      const mirror = await debianMirror();
      await run('nice', ['debootstrap', '--variant=minbase', `--include=${SYSTEMD_TREE_PACKAGES}`, 'bookworm', tmp, ...(mirror ? [mirror] : [])]);
      await writeFile(path.join(tmp, '.done'), stamp);
      await rename(tmp, tree);
    }
    return tree;
  } finally {
    await lock.release();
  }
}

/**
 * A Debian trixie root with skopeo, for interoperability tests of signatures: bookworm's
 * skopeo is built with sigstore disabled, trixie's (1.18) signs and verifies. Made once into
 * the cache (debootstrap from Debian's archive); run its skopeo with `chroot DIR skopeo`,
 * paths inside the chroot. netavark is listed because debootstrap cannot resolve the
 * virtual package (container-network-stack) containers-common depends on.
 */
export async function trixieSkopeoRoot(): Promise<string> {
  const tree = path.join(CACHE, 'trixie-skopeo');
  const stamp = 'trixie skopeo,ca-certificates,netavark\n';
  await mkdir(CACHE, { recursive: true });
  const lock = await acquireLock(path.join(CACHE, '.trixie.lock'), 'the trixie cache', 1800);
  try {
    if ((await readFile(path.join(tree, '.done'), 'utf8').catch(() => '')) !== stamp) {
      await rm(tree, { recursive: true, force: true });
      const tmp = `${tree}.tmp`;
      await rm(tmp, { recursive: true, force: true });
      const mirror = await debianMirror();
      await run('nice', ['debootstrap', '--variant=minbase', '--include=skopeo,ca-certificates,netavark', 'trixie', tmp, ...(mirror ? [mirror] : [])]);
      await writeFile(path.join(tmp, '.done'), stamp);
      await rename(tmp, tree);
    }
    return tree;
  } finally {
    await lock.release();
  }
}

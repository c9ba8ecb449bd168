/**
 * Fixtures for boot tests: a real Debian kernel (downloaded once from Debian's archive into
 * a cache directory, so a fresh CI machine works) and small bootable images made of
 * busybox-static plus that kernel and the modules a boot needs.
 */
import { copyFile, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
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
 * (boot-installed-grub): one debootstrap serves both. cryptsetup-initramfs, as on a Debian
 * installed with an encrypted disk: its cryptroot unlocks a LUKS stage partition.
 */
const SYSTEMD_TREE_PACKAGES =
  'linux-image-amd64,initramfs-tools,systemd-sysv,udev,kmod,busybox,systemd-boot,grub-efi-amd64,squashfs-tools-ng,cryptsetup-initramfs';

/**
 * A Debian root made by debootstrap (minbase, with `packages`) into the cache once, again
 * when the suite or the package list changes; callers copy it before changing it.
 */
async function cachedDebootstrap(name: string, suite: string, packages: string, then?: { packages: string[] }): Promise<string> {
  const tree = path.join(CACHE, name);
  const stamp = `${suite} ${packages}${then ? ` + ${then.packages.join(',')}` : ''}\n`;
  await mkdir(CACHE, { recursive: true });
  const lock = await acquireLock(path.join(CACHE, `.${name}.lock`), `the ${name} cache`, 1800);
  try {
    if ((await readFile(path.join(tree, '.done'), 'utf8').catch(() => '')) !== stamp) {
      await rm(tree, { recursive: true, force: true });
      const tmp = `${tree}.tmp`;
      await rm(tmp, { recursive: true, force: true });
      const mirror = await debianMirror();
      await run('nice', ['debootstrap', '--variant=minbase', `--include=${packages}`, suite, tmp, ...(mirror ? [mirror] : [])]);
      // Packages installed by apt inside the new root, which resolves alternatives by what is
      // installed (debootstrap takes the first: linux-image's initramfs-tools over dracut).
      // /proc mounted: dracut (run by the kernel's postinst) needs /proc/mounts and /dev/fd.
      if (then)
        await run(
          'nice',
          [
            'chroot',
            tmp,
            'sh',
            '-c',
            'mount -t proc proc /proc && apt-get install -y --no-install-recommends "$@"; r=$?; umount /proc; exit $r',
            'sh',
            ...then.packages,
          ],
          { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } },
        );
      await writeFile(path.join(tmp, '.done'), stamp);
      await rename(tmp, tree);
    }
    return tree;
  } finally {
    await lock.release();
  }
}

/** A Debian bookworm root with systemd, a kernel and initramfs-tools. */
export function debianSystemdTree(): Promise<string> {
  return cachedDebootstrap('debian-bookworm', 'bookworm', SYSTEMD_TREE_PACKAGES);
}

/**
 * A Debian bookworm root whose initramfs generator is dracut (059) instead of initramfs-tools:
 * dracut first, then the kernel, so linux-image's "initramfs-tools | linux-initramfs-tool"
 * is met by dracut (debootstrap alone would pull initramfs-tools, which dracut conflicts with).
 * cryptsetup (and its dmsetup) for dracut's crypt module: a LUKS stage partition.
 */
export function debianDracutTree(): Promise<string> {
  return cachedDebootstrap('debian-bookworm-dracut', 'bookworm', 'dracut,systemd-sysv,udev,kmod,busybox,cryptsetup', { packages: ['linux-image-amd64'] });
}

/**
 * A Debian trixie root with skopeo, for interoperability tests of signatures: bookworm's
 * skopeo is built with sigstore disabled, trixie's (1.18) signs and verifies. Run its skopeo
 * with `chroot DIR skopeo`, paths inside the chroot. netavark is listed because debootstrap
 * cannot resolve the virtual package (container-network-stack) containers-common depends on.
 */
export function trixieSkopeoRoot(): Promise<string> {
  return cachedDebootstrap('trixie-skopeo', 'trixie', 'skopeo,ca-certificates,netavark');
}

/**
 * darch's .deb (scripts/package.sh, from dist/darch) installed in a Debian tree, whose
 * initramfs-tools initramfs is then rebuilt with the modules a qemu virtio machine needs:
 * a machine that installed the package.
 */
export async function installDarchPackage(tree: string, work: string): Promise<void> {
  await rm(path.join(tree, 'var/cache/apt/archives'), { recursive: true, force: true });
  await mkdir(path.join(tree, 'var/cache/apt/archives/partial'), { recursive: true });
  const deb = (await run('bash', [path.resolve(import.meta.dirname, '../../scripts/package.sh'), work])).stdout.trim();
  await copyFile(deb, path.join(tree, 'tmp/darch.deb'));
  await run('sed', ['-i', 's/^MODULES=.*/MODULES=list/', path.join(tree, 'etc/initramfs-tools/initramfs.conf')]);
  await writeFile(path.join(tree, 'etc/initramfs-tools/modules'), 'virtio_pci\nvirtio_blk\next4\nsquashfs\noverlay\nvfat\nnls_cp437\nnls_ascii\nloop\n');
  await run('chroot', [tree, 'dpkg', '-i', '/tmp/darch.deb']);
  await rm(path.join(tree, 'tmp/darch.deb'));
  await run('chroot', [tree, 'sh', '-c', 'update-initramfs -u -k all']);
}

/** root logged in on the serial console of a systemd image: a shell for `vm.ok`/`vm.sh`. */
export async function serialAutologin(tree: string): Promise<void> {
  const getty = path.join(tree, 'etc/systemd/system/serial-getty@ttyS0.service.d');
  await mkdir(getty, { recursive: true });
  await writeFile(path.join(getty, 'autologin.conf'), '[Service]\nExecStart=\nExecStart=-/sbin/agetty --autologin root --noclear %I 115200 linux\n');
}

/**
 * The console of a systemd image under test: root logged in on ttyS0, and one line once the
 * boot is over, `DARCH-SYSTEM-STATE: <systemctl is-system-running --wait><suffix>` (systemd's
 * own "Reached target" lines stop once getty owns the console). `suffix` is shell, expanded
 * in the image.
 */
export async function addTestConsole(tree: string, suffix = ''): Promise<void> {
  await serialAutologin(tree);
  await writeFile(
    path.join(tree, 'etc/systemd/system/darch-test-report.service'),
    `[Unit]\nDescription=report the system state on the console\n[Service]\nType=simple\nExecStart=/bin/sh -c 'echo "DARCH-SYSTEM-STATE: $(systemctl is-system-running --wait)${suffix}" >/dev/ttyS0'\n[Install]\nWantedBy=multi-user.target\n`,
  );
  await run('chroot', [tree, 'systemctl', 'enable', 'darch-test-report.service']);
}

/** Test images for boot tests: busybox + the Debian kernel, with an init that says when it is up. */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { busyboxBootRoot, type TestKernel } from './bootimage.js';

export const BOOTED = 'DARCH-TEST-BOOTED';

const RCS = `#!/bin/sh
mount -t proc proc /proc 2>/dev/null
mount -t sysfs sysfs /sys 2>/dev/null
mkdir -p /dev/pts && mount -t devpts devpts /dev/pts 2>/dev/null
mount -a 2>/dev/null
[ -f /etc/hostname ] && hostname -F /etc/hostname
. /etc/os-release
echo "${BOOTED} version=$VERSION_ID"
`;

// One shell, on the serial console only: two shells on one console would split our input.
const INITTAB = `::sysinit:/etc/init.d/rcS
ttyS0::respawn:-/bin/sh
::ctrlaltdel:/sbin/reboot
`;

export async function testImageTree(dir: string, kernel: TestKernel, version: string, hostname: string): Promise<string> {
  await busyboxBootRoot(dir, {
    kernel,
    version,
    hostname,
    extraFiles: {
      'etc/init.d/rcS': { content: RCS, mode: 0o755 },
      'etc/inittab': INITTAB,
    },
  });
  await mkdir(path.join(dir, 'mnt'), { recursive: true });
  await writeFile(path.join(dir, 'etc/fstab'), "# the image's own fstab\n");
  return dir;
}

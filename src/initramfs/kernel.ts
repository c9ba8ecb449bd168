/** Facts about a kernel image that the initramfs builder needs, read without running it. */
import { open } from 'node:fs/promises';
import { DarchError } from '../lib/errors.js';

/**
 * The release string (`uname -r`) of an x86 bzImage: the boot protocol header at 0x202
 * holds "HdrS" and at 0x20E a pointer (relative to 0x200) to the version string.
 */
export async function kernelRelease(kernelPath: string): Promise<string | undefined> {
  const fh = await open(kernelPath, 'r');
  try {
    const buf = Buffer.alloc(65536);
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    if (bytesRead < 0x210 || buf.toString('ascii', 0x202, 0x206) !== 'HdrS') return undefined;
    const off = buf.readUInt16LE(0x20e) + 0x200;
    if (off >= bytesRead) return undefined;
    const end = buf.indexOf(0, off);
    const text = buf.toString('ascii', off, end < 0 ? Math.min(bytesRead, off + 256) : end);
    const release = text.split(' ')[0];
    return release && /^[\w.+~-]+$/.test(release) ? release : undefined;
  } finally {
    await fh.close();
  }
}

export function noKernelRelease(kernelPath: string): DarchError {
  return new DarchError('E_KERNEL_UNKNOWN', `cannot tell the kernel release of ${kernelPath}`, {
    hint: 'pass --kernel-release (the directory name under /lib/modules in the image)',
  });
}

/**
 * The host's static busybox: the userland of darch's initramfs, and of the example images
 * (src/examples), which take it from here.
 */
import { stat } from 'node:fs/promises';
import { DarchError } from '../lib/errors.js';
import { run } from '../lib/proc.js';

export const BUSYBOX_CANDIDATES = ['/bin/busybox', '/usr/bin/busybox'];

export async function findStaticBusybox(): Promise<string> {
  for (const p of BUSYBOX_CANDIDATES) {
    try {
      await stat(p);
      const res = await run('file', ['-L', p], { allowFailure: true });
      // `file` may be absent; a dynamically linked busybox would not run in an empty root.
      if (res.code === 0 && /dynamically linked/.test(res.stdout)) continue;
      return p;
    } catch {
      /* try the next */
    }
  }
  throw new DarchError('E_TOOL_MISSING', 'a static busybox is not installed', { hint: 'apt-get install busybox-static' });
}

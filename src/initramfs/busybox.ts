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
    } catch {
      continue;
    }
    // A dynamically linked busybox would not run in an empty root. `file` may be absent (a
    // busybox image staging its own update has none): then take the busybox as it is.
    const res = await run('file', ['-L', p], { allowFailure: true }).catch(() => undefined);
    if (res?.code === 0 && /dynamically linked/.test(res.stdout)) continue;
    return p;
  }
  throw new DarchError('E_TOOL_MISSING', 'a static busybox is not installed', { hint: 'apt-get install busybox-static' });
}

/**
 * Keeps a long download's memory flat. Every chunk undici reads from a socket is a fresh
 * Buffer; once written they are garbage, but V8 counts them as external memory and only
 * collects when that reaches tens of MiB, so a multi-stream pull idles at 130-170 MB RSS
 * with most of it dead buffers. A young-generation collection every few MiB (about a
 * millisecond each) frees them and keeps a pull near 110 MB. The `gc` function comes from
 * V8's --expose-gc flag set at run time; where that is unavailable this does nothing.
 */
import v8 from 'node:v8';
import vm from 'node:vm';

type Gc = (opts?: { type: 'minor' | 'major' }) => void;

let gc: Gc | null | undefined;
let sinceLast = 0;
const EVERY = 8 * 1024 * 1024;

function collector(): Gc | null {
  if (gc !== undefined) return gc;
  try {
    v8.setFlagsFromString('--expose-gc');
    gc = vm.runInNewContext('gc') as Gc;
  } catch {
    gc = null;
  }
  return gc;
}

/** Count streamed bytes; now and then collect the buffers they left behind. */
export function streamedBytes(n: number): void {
  sinceLast += n;
  if (sinceLast < EVERY) return;
  sinceLast = 0;
  collector()?.({ type: 'minor' });
}

/**
 * A dynamically linked program of the host with the shared libraries it loads, for the
 * universal initramfs (busybox has no device-mapper applet, and Debian ships no static
 * dmsetup). The libraries come from the host's own loader (`ldd`), so the copy runs there as
 * it runs on the host; each file keeps the path the loader looks for.
 */
import { realpath, stat } from 'node:fs/promises';
import { DarchError } from '../lib/errors.js';
import { missingTool, run, which } from '../lib/proc.js';

export interface ProgramFile {
  /** Path inside the initramfs, without the leading slash. */
  name: string;
  /** The file on the host that holds its bytes (symlinks resolved). */
  source: string;
  size: number;
  mode: number;
}

/** The files `ldd` says `program` loads: `name => /path (addr)` and the loader's own `/path (addr)` lines. */
export function parseLdd(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const m = /=>\s*(\/\S+)\s+\(0x[0-9a-f]+\)/.exec(line) ?? /^\s*(\/\S+)\s+\(0x[0-9a-f]+\)/.exec(line);
    if (m?.[1]) out.push(m[1]);
    else if (/=>\s*not found/.test(line)) throw new DarchError('E_TOOL_MISSING', `a library is missing: ${line.trim()}`);
  }
  return [...new Set(out)];
}

/** `program` (a name on PATH) and its libraries, placed at `dest` (e.g. usr/sbin/dmsetup). */
export async function hostProgram(program: string, dest: string): Promise<ProgramFile[]> {
  const found = await which(program);
  if (!found) throw missingTool(program);
  const res = await run('ldd', [found], { allowFailure: true });
  // "not a dynamic executable": a static build needs nothing else.
  const libs = res.code === 0 ? parseLdd(res.stdout) : [];
  const files: ProgramFile[] = [];
  for (const [name, file] of [[dest, found] as const, ...libs.map((l) => [l.replace(/^\/+/, ''), l] as const)]) {
    const source = await realpath(file);
    const st = await stat(source);
    files.push({ name, source, size: st.size, mode: st.mode & 0o777 });
  }
  return files;
}

/**
 * The kernel command line this system booted with, and the staged id it names
 * (darch_stageid=): retention, `clean` and `remove` never delete that image
 * (`protectedIds` in store.ts).
 */
import { readFile } from 'node:fs/promises';

/**
 * DARCH_CMDLINE_FILE names a file to read instead of /proc/cmdline (tests, and
 * inspecting another system's stage from a rescue shell).
 */
export function cmdlineFile(env: NodeJS.ProcessEnv = process.env): string {
  return env.DARCH_CMDLINE_FILE || '/proc/cmdline';
}

export async function readCmdline(env: NodeJS.ProcessEnv = process.env): Promise<string> {
  try {
    return await readFile(cmdlineFile(env), 'utf8');
  } catch {
    return '';
  }
}

/** A parameter's value from a kernel command line (`name=value`), the last one winning as in the kernel. */
export function cmdlineParam(cmdline: string, name: string): string | undefined {
  let v: string | undefined;
  for (const tok of cmdline.trim().split(/\s+/)) {
    if (tok.startsWith(`${name}=`)) v = tok.slice(name.length + 1);
  }
  return v;
}

/** The staged id this system booted from, if it booted a darch image. */
export async function bootedId(env: NodeJS.ProcessEnv = process.env): Promise<string | undefined> {
  return cmdlineParam(await readCmdline(env), 'darch_stageid') || undefined;
}

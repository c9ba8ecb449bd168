/**
 * How darch runs itself again (demo's child commands) and where its own files are: the
 * shipped single executable (a Node SEA) is one file whose argv[1] is itself, while from
 * sources or the script bundle Node runs argv[1] as a script.
 */
import { isSea } from 'node:sea';

export function runningAsExecutable(): boolean {
  return isSea();
}

/** The program and the leading arguments that start this same darch. */
export function selfCommand(): { file: string; args: string[] } {
  return isSea() ? { file: process.execPath, args: [] } : { file: process.execPath, args: [process.argv[1]!] };
}

/**
 * Data output: tables, ids and `--json` documents go to stdout, nothing else does.
 * Writes are awaited because process.exit() truncates piped stdout (nodejs/node#53242).
 */
import { ui } from './ui.js';

export const SCHEMA_VERSION = 1;

let resultCode = 0;

/** A command's exit status when it succeeded but has something to say with it (`update check`: 100). */
export function setResultCode(code: number): void {
  resultCode = code;
}

export function resultCodeOf(): number {
  return resultCode;
}

let signalEndsIt = false;

/**
 * For a command a signal stops by design (a server): once it has shut down cleanly, SIGINT or
 * SIGTERM is its normal end, exit status 0 (a service manager's `stop` is not a failure).
 */
export function stoppedBySignalIsSuccess(): void {
  signalEndsIt = true;
}

export function signalIsSuccess(): boolean {
  return signalEndsIt;
}

export function writeStdout(text: string): Promise<void> {
  return new Promise((resolve) => {
    if (text.length === 0) return resolve();
    const ok = process.stdout.write(text, () => resolve());
    if (!ok) process.stdout.once('drain', () => undefined);
  });
}

/**
 * Emit a command's result: one JSON document under --json, otherwise whatever the
 * human renderer prints. Both go to stdout because both are the command's data.
 */
export async function emit<T>(data: T, human: (data: T) => string | undefined): Promise<void> {
  if (ui.json) {
    await writeStdout(`${JSON.stringify({ schemaVersion: SCHEMA_VERSION, ...asObject(data) }, null, 2)}\n`);
    return;
  }
  const text = human(data);
  if (text) await writeStdout(text.endsWith('\n') ? text : `${text}\n`);
}

function asObject(data: unknown): Record<string, unknown> {
  if (data && typeof data === 'object' && !Array.isArray(data)) return data as Record<string, unknown>;
  return { data };
}

/** Left-aligned columns separated by three spaces, like `docker images`. */
export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('   ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n') + '\n';
}

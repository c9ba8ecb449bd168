/**
 * Runs the built `darch` (dist/darch, or $DARCH_BIN) as a user would, each test with
 * its own --root so tests never touch the machine's /var/lib/darch or each other.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const DARCH_BIN = process.env.DARCH_BIN ?? path.join(REPO, 'dist/darch');

export interface DarchResult {
  code: number;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** stdout parsed as the one JSON document --json promises. */
  json<T = any>(): T;
}

export interface DarchRunOptions {
  root?: string;
  env?: NodeJS.ProcessEnv;
  input?: string | Buffer;
  cwd?: string;
  timeoutMs?: number;
}

export function darch(args: string[], opts: DarchRunOptions = {}): Promise<DarchResult> {
  const full = opts.root ? ['--root', opts.root, ...args] : args;
  return new Promise((resolve, reject) => {
    const child = spawn(DARCH_BIN, [...full], {
      cwd: opts.cwd,
      env: { ...process.env, NO_COLOR: '1', DARCH_LOCK_TIMEOUT: '0', ...opts.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.stdin.on('error', () => undefined);
    child.stdin.end(opts.input ?? '');
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 300_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const stdout = Buffer.concat(out).toString('utf8');
      resolve({
        code: code ?? 128,
        signal,
        stdout,
        stderr: Buffer.concat(err).toString('utf8'),
        json() {
          try {
            return JSON.parse(stdout);
          } catch {
            throw new Error(`stdout is not one JSON document:\n${stdout}\n--- stderr:\n${Buffer.concat(err).toString('utf8')}`);
          }
        },
      });
    });
  });
}

/** darch that must succeed; the error shows what it printed. */
export async function darchOk(args: string[], opts: DarchRunOptions = {}): Promise<DarchResult> {
  const r = await darch(args, opts);
  if (r.code !== 0) throw new Error(`darch ${args.join(' ')} exited ${r.code}\n--- stdout:\n${r.stdout}\n--- stderr:\n${r.stderr}`);
  return r;
}

/** A fresh directory removed when the test ends: `await tempDir(t)` inside a test. */
export async function tempDir(t: { after(fn: () => Promise<void> | void): void }, prefix = 'darch-test-'): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

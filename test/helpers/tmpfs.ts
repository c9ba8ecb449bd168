/**
 * A small tmpfs: the full disk of the tests that prove a full disk is a clear error and
 * loses nothing. Mounting needs root; elsewhere the test is skipped, and says why.
 */
import { execFileSync } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import type { TestContext } from 'node:test';

/** Mount a tmpfs of `size` (mount's syntax: 4m) on `dir`, run `fn` on it, unmount whatever happened. */
export async function withTmpfs(t: TestContext, dir: string, size: string, fn: (dir: string) => Promise<void>): Promise<void> {
  await mkdir(dir, { recursive: true });
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { stdio: 'pipe' });
  } catch {
    t.skip('cannot mount a tmpfs here (needs root)');
    return;
  }
  try {
    await fn(dir);
  } finally {
    execFileSync('umount', [dir]);
  }
}

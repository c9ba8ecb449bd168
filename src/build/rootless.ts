/**
 * What buildah needs to build as a normal user (its user namespace): subordinate uid and gid
 * ranges for the user in /etc/subuid and /etc/subgid, the setuid helpers newuidmap and
 * newgidmap (Debian's uidmap), and user namespaces the kernel lets unprivileged users make.
 * `darch doctor` lists each; a build as a normal user stops before any work when one is
 * missing, with the command that sets it up, instead of buildah's own error half-way.
 */
import { readFile, stat } from 'node:fs/promises';
import os from 'node:os';
import { DarchError } from '../lib/errors.js';

export interface RootlessCheck {
  name: string;
  ok: boolean;
  detail: string;
  /** The command that fixes it (run as root). */
  fix?: string;
}

/** A user's ranges in a subid file ("name:start:count" or "uid:start:count" lines). */
export function subidRanges(text: string, user: string, uid: number): Array<{ start: number; count: number }> {
  return text
    .split('\n')
    .map((l) => l.trim().split(':'))
    .filter((f) => f.length === 3 && (f[0] === user || f[0] === String(uid)))
    .map((f) => ({ start: Number(f[1]), count: Number(f[2]) }))
    .filter((r) => Number.isSafeInteger(r.start) && r.count > 0);
}

async function setuidRoot(file: string): Promise<boolean> {
  try {
    const st = await stat(file);
    return st.uid === 0 && (st.mode & 0o4000) !== 0;
  } catch {
    return false;
  }
}

export async function rootlessChecks(): Promise<RootlessCheck[]> {
  const { username: user, uid } = os.userInfo();
  const checks: RootlessCheck[] = [];
  for (const [kind, file, flag] of [
    ['uid', '/etc/subuid', '--add-subuids'],
    ['gid', '/etc/subgid', '--add-subgids'],
  ] as const) {
    const ranges = subidRanges(await readFile(file, 'utf8').catch(() => ''), user, uid);
    const total = ranges.reduce((n, r) => n + r.count, 0);
    checks.push({
      name: `subordinate ${kind}s`,
      // One container image needs ids up to 65535 mapped.
      ok: total >= 65536,
      detail: ranges.length ? `${file}: ${ranges.map((r) => `${r.start}+${r.count}`).join(', ')}` : `${file} has no range for ${user}`,
      fix: `usermod ${flag} 100000-165535 ${user}`,
    });
  }
  for (const helper of ['newuidmap', 'newgidmap']) {
    const ok = (await setuidRoot(`/usr/bin/${helper}`)) || (await setuidRoot(`/bin/${helper}`));
    checks.push({ name: helper, ok, detail: ok ? 'setuid root' : 'missing or not setuid root', fix: 'apt-get install uidmap' });
  }
  const max = Number((await readFile('/proc/sys/user/max_user_namespaces', 'utf8').catch(() => '0')).trim());
  const clone = (await readFile('/proc/sys/kernel/unprivileged_userns_clone', 'utf8').catch(() => '1')).trim();
  checks.push({
    name: 'user namespaces',
    ok: max > 0 && clone !== '0',
    detail: max > 0 && clone !== '0' ? `up to ${max}` : 'unprivileged users may not create them',
    fix: 'sysctl -w user.max_user_namespaces=15000 kernel.unprivileged_userns_clone=1',
  });
  return checks;
}

/** Before a build as a normal user: everything buildah's user namespace needs, or an error saying what to set up. */
export async function requireRootless(): Promise<void> {
  if (process.getuid?.() === 0) return;
  const missing = (await rootlessChecks()).filter((c) => !c.ok);
  if (!missing.length) return;
  throw new DarchError('E_ROOTLESS_SETUP', `building as ${os.userInfo().username} needs ${missing.map((m) => `${m.name} (${m.detail})`).join('; ')}`, {
    hint: `as root: ${[...new Set(missing.map((m) => m.fix))].join(' && ')}; or build as root`,
  });
}

/**
 * The one place darch starts other programs. Missing tools become DarchErrors that say
 * which Debian package provides them; failures carry the exit status and the tail of stderr.
 */
import type { SpawnOptions, ChildProcess } from 'node:child_process';

// node:child_process (with net and the streams under it) loads on the first program run:
// commands that run none (status on a fresh machine, --help) start without it.
function spawn(cmd: string, args: string[], opts: SpawnOptions): ChildProcess {
  return process.getBuiltinModule('node:child_process').spawn(cmd, args, opts);
}
import { DarchError } from './errors.js';
import { publishCommand } from './diagnostics.js';

/** Debian packages for the external tools darch calls, for hints. */
const PACKAGES: Record<string, string> = {
  buildah: 'buildah',
  skopeo: 'skopeo',
  umoci: 'umoci',
  tar2sqfs: 'squashfs-tools-ng',
  sqfstar: 'squashfs-tools',
  rdsquashfs: 'squashfs-tools-ng',
  sqfs2tar: 'squashfs-tools-ng',
  mksquashfs: 'squashfs-tools',
  unsquashfs: 'squashfs-tools',
  'qemu-system-x86_64': 'qemu-system-x86',
  'grub-mkstandalone': 'grub-common grub-efi-amd64-bin',
  'grub-editenv': 'grub-common',
  mformat: 'mtools',
  mcopy: 'mtools',
  'mkfs.ext4': 'e2fsprogs',
  'mkfs.vfat': 'dosfstools',
  sfdisk: 'fdisk',
  depmod: 'kmod',
  debugfs: 'e2fsprogs',
  e2fsck: 'e2fsprogs',
  mdeltree: 'mtools',
  mdir: 'mtools',
  zstd: 'zstd',
  cpio: 'cpio',
  busybox: 'busybox-static',
  debootstrap: 'debootstrap',
  'docker-registry': 'docker-registry',
  busctl: 'systemd',
  loginctl: 'systemd',
  setpriv: 'util-linux',
  veritysetup: 'cryptsetup-bin',
  dmsetup: 'dmsetup',
};

// e2fsprogs, fdisk, kmod and friends install into /usr/sbin and /sbin, which a normal user's
// PATH (Debian's default for uid != 0) leaves out although the tools work without root on
// files the user owns. Every program darch starts goes through here, so adding them once
// covers all of them.
for (const dir of ['/usr/sbin', '/sbin']) {
  const parts = (process.env.PATH ?? '').split(':').filter(Boolean);
  if (!parts.includes(dir)) process.env.PATH = [...parts, dir].join(':');
}

export function missingTool(cmd: string): DarchError {
  const pkg = PACKAGES[cmd];
  return new DarchError('E_TOOL_MISSING', `${cmd} is not installed`, {
    hint: pkg ? `apt-get install ${pkg}` : `install ${cmd} and make sure it is on PATH`,
  });
}

export interface RunOptions extends SpawnOptions {
  /** Text or bytes written to the child's stdin. */
  input?: string | Uint8Array;
  /** Do not throw on a non-zero exit; return the result. */
  allowFailure?: boolean;
}

export interface RunResult {
  code: number;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Run to completion, capturing output (for small outputs; use spawnChild for streams). */
export async function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  publishCommand({ kind: 'run', cmd, args });
  const { input, allowFailure, ...spawnOpts } = opts;
  const child = spawn(cmd, args, { ...spawnOpts, stdio: ['pipe', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout?.on('data', (b: Buffer) => out.push(b));
  child.stderr?.on('data', (b: Buffer) => err.push(b));
  child.stdin?.on('error', () => undefined);
  if (input !== undefined) child.stdin?.end(input);
  else child.stdin?.end();
  const result = await waitChild(child, cmd);
  const res: RunResult = { ...result, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') };
  if (!allowFailure && res.code !== 0) throw commandFailed(cmd, args, res);
  return res;
}

export function commandFailed(cmd: string, args: string[], res: { code: number; signal: NodeJS.Signals | null; stderr: string }): DarchError {
  const tail = res.stderr.trim().split('\n').slice(-3).join(' | ');
  const status = res.signal ? `was killed by ${res.signal}` : `exited with status ${res.code}`;
  return new DarchError('E_COMMAND_FAILED', `${cmd} ${status}${tail ? `: ${tail}` : ''}`, {
    details: { command: [cmd, ...args], code: res.code, signal: res.signal },
  });
}

/** Resolves when the child exits; rejects with E_TOOL_MISSING if it could not start. */
export function waitChild(child: ChildProcess, cmd: string): Promise<{ code: number; signal: NodeJS.Signals | null }> {
  return new Promise((resolve, reject) => {
    child.once('error', (e: NodeJS.ErrnoException) => {
      reject(e.code === 'ENOENT' ? missingTool(cmd) : new DarchError('E_COMMAND_FAILED', `${cmd}: ${e.message}`, { cause: e }));
    });
    child.once('close', (code, signal) => resolve({ code: code ?? 128, signal }));
  });
}

/** Start a child for streaming; the caller pipes and must await waitChild. */
export function spawnChild(cmd: string, args: string[], opts: SpawnOptions = {}): ChildProcess {
  publishCommand({ kind: 'spawn', cmd, args });
  return spawn(cmd, args, opts);
}

export async function which(cmd: string): Promise<string | undefined> {
  const res = await run('sh', ['-c', `command -v "$1"`, 'sh', cmd], { allowFailure: true });
  return res.code === 0 ? res.stdout.trim() : undefined;
}

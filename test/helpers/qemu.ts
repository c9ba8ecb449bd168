/**
 * The one qemu harness for boot tests: start a VM (a darch disk through `darch vm run`; the
 * same qemu command line directly, for trial tests that watch a disk across reboots, with
 * -no-reboot or a read-only disk; or a kernel + initramfs directly for initramfs-only
 * tests), wait for text on the serial console with a timeout, type into the guest and run
 * shell commands there. The whole console log is written to test-artifacts/<name>.log when
 * the VM stops, so a failed boot can be read afterwards.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { qemuCommand } from '../../src/vm/qemu.js';
import { DARCH_BIN, REPO } from './darch.js';

export const ARTIFACTS = path.join(REPO, 'test-artifacts');

// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[[0-9;?=]*[A-Za-z]|\x1b[()][A-Z0-9]|\x1b[=>c]/g;
/**
 * Lines the guest writes to /dev/console on its own, which share the serial line with the
 * shell: kernel messages and darch-trial-failed's notices (its deadline loop says when it
 * stands down up to 20 s after boot-complete, which is after the login prompt). CI once read
 * one in the middle of `darch status --json`. A write to a tty is whole, so they are whole lines.
 * (So is dmesg output with timestamps: read it with `dmesg -t`.)
 */
const CONSOLE_NOTICE = /^(?:\[ *\d+\.\d+\] .*|darch-trial-failed: .*)\n/gm;

/** Console text that means the boot failed: waiting on stops at once instead of timing out. */
export const BOOT_FAILED = /darch: ERROR: .*|Kernel panic - not syncing.*/;

export interface DiskVmOptions {
  name: string;
  failOn?: RegExp | null;
  disk: string;
  root?: string;
  memoryMiB?: number;
  extraArgs?: string[];
}

export interface KernelVmOptions {
  name: string;
  failOn?: RegExp | null;
  kernel: string;
  initrd: string;
  append: string;
  disk?: string;
  memoryMiB?: number;
}

/** A darch disk booted by qemu directly, with the command line `darch vm run` uses. */
export interface QemuVmOptions {
  name: string;
  disk: string;
  memoryMiB?: number;
  /** qemu exits when the guest reboots. */
  noReboot?: boolean;
  /** Attach the disk read-only: the firmware and boot loader cannot write to it. */
  readOnly?: boolean;
  extraArgs?: string[];
  /** Console text that fails a wait at once; none by default (trial tests expect panics). */
  failOn?: RegExp | null;
  /** A `-nic` spec (src/vm/qemu.ts VmOptions.nic); no network by default. */
  nic?: string;
  /** qemu's cache mode for the disk (e.g. `unsafe`: guest flushes are ignored). */
  cache?: string;
  /** More `-drive` options for the disk, comma-separated (e.g. `throttling.iops-total=150`). */
  drive?: string;
}

export class Vm {
  private raw = '';
  private child: ChildProcess;
  private exitCode: Promise<number>;
  private counter = 0;
  private readonly live: WriteStream;
  /** Set once the VM process has ended. */
  exited = false;
  readonly started = Date.now();

  private constructor(
    readonly name: string,
    cmd: string,
    args: string[],
    private readonly failOn: RegExp | null = BOOT_FAILED,
    /** A scratch directory (OVMF variables) removed when the VM stops. */
    private readonly work?: string,
  ) {
    this.child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    // The console as it comes, for watching a long boot (saveLog replaces it with the cleaned text).
    mkdirSync(ARTIFACTS, { recursive: true });
    this.live = createWriteStream(this.logFile);
    this.live.on('error', () => undefined);
    const take = (b: Buffer) => {
      this.raw += b.toString('utf8');
      this.live.write(b);
    };
    this.child.stdout!.on('data', take);
    this.child.stderr!.on('data', take);
    this.child.stdin!.on('error', () => undefined);
    this.exitCode = new Promise((resolve) =>
      this.child.on('close', (code) => {
        this.exited = true;
        resolve(code ?? 128);
      }),
    );
  }

  /** Boot a darch disk with qemu itself (OVMF, the disk on virtio): trial tests that count reboots. */
  static async qemu(o: QemuVmOptions): Promise<Vm> {
    const work = await mkdtemp(path.join(os.tmpdir(), 'darch-vm-'));
    const { args } = await qemuCommand({
      disk: o.disk,
      workDir: work,
      memoryMiB: o.memoryMiB ?? 384,
      accel: (process.env.DARCH_TEST_ACCEL as 'kvm' | 'tcg' | undefined) ?? 'tcg',
      noReboot: o.noReboot,
      nic: o.nic,
      extraArgs: o.extraArgs ?? [],
    });
    const driveOpts = `${o.readOnly ? ',readonly=on' : ''}${o.cache ? `,cache=${o.cache}` : ''}${o.drive ? `,${o.drive}` : ''}`;
    const finalArgs = args.map((a) => (a.startsWith(`file=${o.disk},`) ? `${a}${driveOpts}` : a));
    return new Vm(o.name, 'qemu-system-x86_64', finalArgs, o.failOn ?? null, work);
  }

  /** Boot a darch disk the way a user does: `darch vm run DISK`. */
  static disk(o: DiskVmOptions): Vm {
    const args = [
      ...(o.root ? ['--root', o.root] : []),
      'vm',
      'run',
      o.disk,
      '--accel',
      process.env.DARCH_TEST_ACCEL ?? 'tcg',
      '-m',
      String(o.memoryMiB ?? 512),
      ...(o.extraArgs ?? []),
    ];
    return new Vm(o.name, DARCH_BIN, args, o.failOn === undefined ? BOOT_FAILED : o.failOn);
  }

  /** Boot a staged image the way a newcomer does: `darch vm run NAME:TAG` (a throw-away disk). */
  static staged(o: Omit<DiskVmOptions, 'disk'> & { staged: string; kernelArgs?: string }): Vm {
    const args = [
      ...(o.root ? ['--root', o.root] : []),
      'vm',
      'run',
      o.staged,
      '--accel',
      process.env.DARCH_TEST_ACCEL ?? 'tcg',
      '-m',
      String(o.memoryMiB ?? 512),
      ...(o.kernelArgs ? ['--kernel-args', o.kernelArgs] : []),
      ...(o.extraArgs ?? []),
    ];
    return new Vm(o.name, DARCH_BIN, args, o.failOn === undefined ? BOOT_FAILED : o.failOn);
  }

  /** A diskless machine booting from darch serve the way a user tries it: `darch vm netboot SERVER`. */
  static netboot(o: { name: string; server: string; root?: string; memoryMiB?: number; failOn?: RegExp | null }): Vm {
    const args = [
      ...(o.root ? ['--root', o.root] : []),
      'vm',
      'netboot',
      o.server,
      '--accel',
      process.env.DARCH_TEST_ACCEL ?? 'tcg',
      '-m',
      String(o.memoryMiB ?? 768),
    ];
    return new Vm(o.name, DARCH_BIN, args, o.failOn === undefined ? BOOT_FAILED : o.failOn);
  }

  /** Boot a kernel and initramfs directly (no firmware, no GRUB): initramfs-only tests. */
  static kernel(o: KernelVmOptions): Vm {
    const args = [
      '-machine',
      'q35',
      '-accel',
      'tcg',
      '-m',
      String(o.memoryMiB ?? 512),
      '-display',
      'none',
      '-serial',
      'stdio',
      '-monitor',
      'none',
      '-nic',
      'none',
      '-no-reboot',
      '-kernel',
      o.kernel,
      '-initrd',
      o.initrd,
      '-append',
      o.append,
      ...(o.disk ? ['-drive', `file=${o.disk},format=raw,if=virtio,snapshot=on`] : []),
    ];
    return new Vm(o.name, 'qemu-system-x86_64', args, o.failOn === undefined ? BOOT_FAILED : o.failOn);
  }

  /** The console so far, without terminal escape sequences or carriage returns. */
  get log(): string {
    return this.raw.replace(ANSI, '').replace(/\r/g, '');
  }

  /** The same as `log`. */
  get text(): string {
    return this.log;
  }

  tail(n = 2000): string {
    return this.log.slice(-n);
  }

  get logFile(): string {
    return path.join(ARTIFACTS, `${this.name.replace(/[^\w.-]+/g, '_')}.log`);
  }

  /** Wait until the console (after position `from`) matches; rejects with the log tail on timeout or exit. */
  async waitFor(pattern: RegExp | string, timeoutMs = 60_000, from = 0): Promise<{ match: RegExpMatchArray; end: number }> {
    const re = typeof pattern === 'string' ? new RegExp(pattern.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')) : pattern;
    const deadline = Date.now() + timeoutMs;
    let exitCode: number | undefined;
    void this.exitCode.then((c) => (exitCode = c));
    for (;;) {
      const log = this.log;
      const m = log.slice(from).match(re);
      if (m) return { match: m, end: from + (m.index ?? 0) + m[0].length };
      const failed = this.failOn ? log.slice(from).match(this.failOn) : null;
      if (failed) throw new Error(`${this.name}: the boot failed while waiting for ${re}: ${failed[0]}\n--- console tail:\n${log.slice(-3000)}`);
      if (exitCode !== undefined) throw new Error(`${this.name}: VM exited (${exitCode}) before ${re} appeared\n--- console tail:\n${log.slice(-3000)}`);
      if (Date.now() > deadline) throw new Error(`${this.name}: ${re} did not appear within ${timeoutMs / 1000}s\n--- console tail:\n${log.slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  send(text: string): void {
    this.child.stdin!.write(text);
  }

  /**
   * Run a command in the guest's shell and return its output and exit status. The end
   * marker is split by quotes in what we type, so the shell's echo of the command line
   * cannot be mistaken for it.
   */
  async sh(cmd: string, timeoutMs = 30_000): Promise<{ out: string; code: number }> {
    const n = ++this.counter;
    const from = this.log.length;
    this.send(`echo "@@BEG""IN${n}@@"; ${cmd}; echo "@@EN""D${n}@@ $?"\n`);
    const begin = await this.waitFor(new RegExp(`^@@BEGIN${n}@@$`, 'm'), timeoutMs, from);
    const end = await this.waitFor(new RegExp(`^@@END${n}@@ (\\d+)$`, 'm'), timeoutMs, begin.end);
    const out = this.log
      .slice(begin.end, end.end - end.match[0].length)
      .replace(CONSOLE_NOTICE, '')
      .replace(/^\n/, '')
      .replace(/\n$/, '');
    return { out, code: Number(end.match[1]) };
  }

  /** sh() that must exit 0. */
  async ok(cmd: string, timeoutMs?: number): Promise<string> {
    const r = await this.sh(cmd, timeoutMs);
    if (r.code !== 0) throw new Error(`${this.name}: \`${cmd}\` exited ${r.code} in the guest:\n${r.out}`);
    return r.out;
  }

  async saveLog(): Promise<string> {
    await new Promise<void>((r) => this.live.end(() => r()));
    await mkdir(ARTIFACTS, { recursive: true });
    const file = this.logFile;
    await writeFile(file, this.log);
    return file;
  }

  /** Stop the VM (SIGTERM to darch/qemu, SIGKILL if it lingers) and save the console log. */
  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill('SIGTERM');
      const t = setTimeout(() => this.child.kill('SIGKILL'), 5000);
      await this.exitCode;
      clearTimeout(t);
    }
    await this.saveLog();
    if (this.work) await rm(this.work, { recursive: true, force: true });
  }

  /** Pull the plug: SIGKILL to qemu at once (what the guest had not written to the disk is lost); saves the console log. */
  async kill(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
    await this.exitCode;
    await this.saveLog();
    if (this.work) await rm(this.work, { recursive: true, force: true });
  }

  /** Wait for the VM to exit by itself (a guest poweroff with -no-reboot). */
  async waitExit(timeoutMs = 60_000): Promise<number> {
    return Promise.race([
      this.exitCode,
      new Promise<number>((_, rej) => setTimeout(() => rej(new Error(`${this.name}: VM did not exit within ${timeoutMs / 1000}s`)), timeoutMs)),
    ]);
  }
}

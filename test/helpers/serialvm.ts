/**
 * A qemu VM (OVMF + a darch disk, the command line `darch vm run` uses) watched through
 * its serial console across reboots: wait for a pattern after a given point, count
 * markers, and keep the whole console log in test-artifacts/<name>.log.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { qemuCommand } from '../../src/vm/qemu.js';
import { REPO } from './darch.js';

export const ARTIFACTS = path.join(REPO, 'test-artifacts');
// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[[0-9;?=]*[A-Za-z]|\x1b[()][A-Z0-9]|\x1b[=>c]|\r/g;

export interface SerialVmOptions {
  name: string;
  disk: string;
  memoryMiB?: number;
  noReboot?: boolean;
  /** Attach the disk read-only: the firmware and boot loader cannot write to it. */
  readOnly?: boolean;
  extraArgs?: string[];
}

export class SerialVm {
  text = '';
  private child!: ChildProcess;
  private exitCode: Promise<number> = Promise.resolve(0);
  private work = '';
  private waiters: Array<() => void> = [];
  exited = false;

  private constructor(readonly opts: SerialVmOptions) {}

  static async start(opts: SerialVmOptions): Promise<SerialVm> {
    const vm = new SerialVm(opts);
    vm.work = await mkdtemp(path.join(os.tmpdir(), 'darch-vm-'));
    const { args } = await qemuCommand({
      disk: opts.disk,
      workDir: vm.work,
      memoryMiB: opts.memoryMiB ?? 384,
      accel: (process.env.DARCH_TEST_ACCEL as 'kvm' | 'tcg' | undefined) ?? 'tcg',
      noReboot: opts.noReboot,
      extraArgs: opts.extraArgs ?? [],
    });
    const finalArgs = opts.readOnly ? args.map((a) => (a.startsWith(`file=${opts.disk},`) ? `${a},readonly=on` : a)) : args;
    vm.child = spawn('qemu-system-x86_64', finalArgs, { stdio: ['pipe', 'pipe', 'pipe'] });
    const onData = (b: Buffer) => {
      vm.text += b.toString('utf8').replace(ANSI, '');
      for (const w of vm.waiters.splice(0)) w();
    };
    vm.child.stdout!.on('data', onData);
    vm.child.stderr!.on('data', onData);
    vm.child.stdin!.on('error', () => undefined);
    vm.exitCode = new Promise((resolve) =>
      vm.child.on('close', (code) => {
        vm.exited = true;
        for (const w of vm.waiters.splice(0)) w();
        resolve(code ?? 128);
      }),
    );
    return vm;
  }

  /** Wait until `re` matches the console text after offset `from`; returns the match and where it ended. */
  async waitFor(re: RegExp, timeoutMs: number, from = 0): Promise<{ match: RegExpExecArray; end: number }> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const r = new RegExp(re.source, re.flags.replace('g', ''));
      const m = r.exec(this.text.slice(from));
      if (m) return { match: m, end: from + m.index + m[0].length };
      if (this.exited) throw new Error(`${this.opts.name}: qemu exited before ${re} appeared (log: ${this.logFile})\n${this.tail()}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${this.opts.name}: timed out after ${timeoutMs} ms waiting for ${re} (log: ${this.logFile})\n${this.tail()}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 1000));
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Type a line into the guest's console. */
  send(line: string): void {
    this.child.stdin!.write(`${line}\n`);
  }

  tail(n = 2000): string {
    return this.text.slice(-n);
  }

  get logFile(): string {
    return path.join(ARTIFACTS, `${this.opts.name}.log`);
  }

  /** Wait for qemu to exit by itself (with -no-reboot, a reboot ends it). */
  async waitExit(timeoutMs: number): Promise<number> {
    const t = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    try {
      return await this.exitCode;
    } finally {
      clearTimeout(t);
    }
  }

  async stop(): Promise<void> {
    if (!this.exited) this.child.kill('SIGKILL');
    await this.exitCode;
    await mkdir(ARTIFACTS, { recursive: true });
    await writeFile(this.logFile, this.text);
    await rm(this.work, { recursive: true, force: true });
  }
}

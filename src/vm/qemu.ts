/**
 * Boot a darch disk in qemu: UEFI through OVMF (a private copy of the variable store per
 * VM), serial console on stdio, KVM only when it actually runs a guest (on some hosts
 * /dev/kvm exists but KVM_RUN hangs), TCG otherwise.
 */
import { access, constants, copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { DarchError } from '../lib/errors.js';
import { run, spawnChild, waitChild } from '../lib/proc.js';
import { silentReporter, type Reporter } from '../lib/report.js';

export const OVMF_PAIRS = [
  ['/usr/share/OVMF/OVMF_CODE_4M.fd', '/usr/share/OVMF/OVMF_VARS_4M.fd'],
  ['/usr/share/OVMF/OVMF_CODE.fd', '/usr/share/OVMF/OVMF_VARS.fd'],
  ['/usr/share/edk2/ovmf/OVMF_CODE.fd', '/usr/share/edk2/ovmf/OVMF_VARS.fd'],
  ['/usr/share/edk2/x64/OVMF_CODE.4m.fd', '/usr/share/edk2/x64/OVMF_VARS.4m.fd'],
] as const;

export async function findOvmf(): Promise<{ code: string; vars: string }> {
  for (const [code, vars] of OVMF_PAIRS) {
    try {
      await access(code, constants.R_OK);
      await access(vars, constants.R_OK);
      return { code, vars };
    } catch {
      /* next */
    }
  }
  throw new DarchError('E_TOOL_MISSING', 'OVMF (UEFI firmware for qemu) is not installed', { hint: 'apt-get install ovmf' });
}

/**
 * A boot sector that writes to qemu's isa-debug-exit port: qemu exits with status 3 as
 * soon as a vCPU has executed it. mov al,1; out 0xf4,al; hlt
 */
function probeBootSector(): Buffer {
  const b = Buffer.alloc(512);
  Buffer.from([0xb0, 0x01, 0xe6, 0xf4, 0xf4, 0xeb, 0xfd]).copy(b);
  b[510] = 0x55;
  b[511] = 0xaa;
  return b;
}

/**
 * Whether KVM really runs guests here. The answer belongs to the host, not to a darch state
 * directory, so it is cached per host boot in the temp directory (per user).
 */
const KVM_CACHE_DIR = path.join(os.tmpdir(), `darch-${process.getuid?.() ?? 0}`);

async function bootId(): Promise<string> {
  return (await readFile('/proc/sys/kernel/random/boot_id', 'utf8').catch(() => 'unknown')).trim();
}

/** Remember until the next host boot that KVM does not run real guests here. */
export async function recordKvmBroken(cacheDir = KVM_CACHE_DIR): Promise<void> {
  await mkdir(cacheDir, { recursive: true });
  await writeFile(path.join(cacheDir, 'kvm-probe.json'), JSON.stringify({ bootId: await bootId(), works: false })).catch(() => undefined);
}

export async function kvmWorks(cacheDir = KVM_CACHE_DIR, timeoutMs = 5000, report: Reporter = silentReporter): Promise<boolean> {
  try {
    await access('/dev/kvm', constants.R_OK | constants.W_OK);
  } catch {
    return false;
  }
  const host = await bootId();
  const cacheFile = path.join(cacheDir, 'kvm-probe.json');
  try {
    const c = JSON.parse(await readFile(cacheFile, 'utf8')) as { bootId: string; works: boolean };
    if (c.bootId === host) return c.works;
  } catch {
    /* probe */
  }
  await mkdir(cacheDir, { recursive: true });
  const img = path.join(cacheDir, 'kvm-probe.img');
  await writeFile(img, probeBootSector());
  report.verbose('probing KVM…');
  const child = spawnChild(
    'qemu-system-x86_64',
    [
      '-accel',
      'kvm',
      '-machine',
      'pc',
      '-m',
      '16',
      '-nodefaults',
      '-display',
      'none',
      '-no-reboot',
      '-device',
      'isa-debug-exit,iobase=0xf4,iosize=0x04',
      '-drive',
      `file=${img},format=raw,if=ide`,
    ],
    { stdio: 'ignore' },
  );
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const res = await waitChild(child, 'qemu-system-x86_64').finally(() => clearTimeout(timer));
  const works = res.code === 3;
  if (!works) report.verbose(`KVM does not run guests here (probe ${res.signal ? 'hung' : `exited ${res.code}`}): using TCG`);
  await writeFile(cacheFile, JSON.stringify({ bootId: host, works })).catch(() => undefined);
  return works;
}

export interface VmOptions {
  /** None: a diskless machine (network boot). */
  disk?: string;
  /** Directory for this VM's OVMF variable store. */
  workDir: string;
  memoryMiB?: number;
  cpus?: number;
  accel?: 'auto' | 'kvm' | 'tcg';
  /** Throw guest writes away when the VM stops (qemu snapshot=on). */
  snapshot?: boolean;
  network?: boolean;
  /**
   * A whole `-nic` spec instead of `network`: e.g. user networking with `restrict=on` and a
   * `guestfwd` rule, so the guest reaches one service of the host and nothing else.
   */
  nic?: string;
  /** Exit instead of rebooting when the guest reboots. */
  noReboot?: boolean;
  extraArgs?: string[];
  report?: Reporter;
}

export async function qemuCommand(opts: VmOptions): Promise<{ args: string[]; accel: 'kvm' | 'tcg' }> {
  const ovmf = await findOvmf();
  await mkdir(opts.workDir, { recursive: true });
  const vars = path.join(opts.workDir, 'OVMF_VARS.fd');
  await copyFile(ovmf.vars, vars);
  let accel: 'kvm' | 'tcg' = 'tcg';
  if (opts.accel === 'kvm') accel = 'kvm';
  else if (opts.accel !== 'tcg' && (await kvmWorks(KVM_CACHE_DIR, undefined, opts.report))) accel = 'kvm';
  const args = [
    '-machine',
    'q35',
    '-accel',
    accel,
    '-cpu',
    accel === 'kvm' ? 'host' : 'max',
    '-m',
    String(opts.memoryMiB ?? 1024),
    '-smp',
    String(opts.cpus ?? 1),
    '-drive',
    `if=pflash,format=raw,readonly=on,file=${ovmf.code}`,
    '-drive',
    `if=pflash,format=raw,file=${vars}`,
    ...(opts.disk
      ? ['-drive', `file=${opts.disk},format=${/\.qcow2$/i.test(opts.disk) ? 'qcow2' : 'raw'},if=virtio${opts.snapshot ? ',snapshot=on' : ''}`]
      : []),
    '-display',
    'none',
    '-serial',
    'stdio',
    '-monitor',
    'none',
    // q35's ICH9 has Intel's TCO watchdog (iTCO_wdt), but qemu straps it "no reboot" by
    // default: unstrapped, trial boots with darch.watchdog= are reset when it fires, as on
    // a real Intel machine.
    '-global',
    'ICH9-LPC.noreboot=off',
    ...(opts.nic ? ['-nic', opts.nic] : opts.network ? ['-nic', 'user,model=virtio-net-pci'] : ['-nic', 'none']),
    ...(opts.noReboot ? ['-no-reboot'] : []),
    ...(opts.extraArgs ?? []),
  ];
  return { args, accel };
}

/** Run the VM with the serial console on this process's stdio; resolves with qemu's exit code. */
export async function runVm(opts: VmOptions, signal?: AbortSignal): Promise<number> {
  const report = opts.report ?? silentReporter;
  const { args, accel } = await qemuCommand(opts);
  report.step(
    `booting ${opts.disk ?? 'a diskless machine from the network'} in qemu (${accel === 'kvm' ? 'KVM' : 'TCG, no KVM'}); serial console below${process.stdin.isTTY ? ', Ctrl-C stops it' : ''}`,
  );
  const res = await run('qemu-system-x86_64', ['--version'], { allowFailure: true });
  report.debug(res.stdout.split('\n')[0] ?? '');
  const started = Date.now();
  const code = await runQemu(args, signal);
  // The probe runs a boot sector; some hosts (nested virtualisation) pass it and then fail a
  // real UEFI guest at once ("KVM internal error"). When KVM was our choice, not the user's,
  // remember that and boot again under TCG rather than leave the user with a dead VM.
  if (accel === 'kvm' && opts.accel !== 'kvm' && code !== 0 && !signal?.aborted && Date.now() - started < KVM_EARLY_FAILURE_MS) {
    report.warn(
      `qemu failed under KVM after ${Math.round((Date.now() - started) / 1000)} s: booting again with TCG (KVM is now marked unusable on this host until reboot)`,
    );
    await recordKvmBroken();
    const tcg = await qemuCommand({ ...opts, accel: 'tcg' });
    return runQemu(tcg.args, signal);
  }
  return code;
}

const KVM_EARLY_FAILURE_MS = 20_000;

async function runQemu(args: string[], signal?: AbortSignal): Promise<number> {
  const child = spawnChild('qemu-system-x86_64', args, { stdio: 'inherit', signal });
  const r = await waitChild(child, 'qemu-system-x86_64').catch((e: unknown) => {
    if (signal?.aborted) return { code: 130, signal: null };
    throw e;
  });
  return r.code;
}

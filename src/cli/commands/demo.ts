/**
 * `darch demo`: darch's main job on built-in defaults, with nothing to set up. It walks the
 * whole path a user takes, running the same commands a user would type (each printed
 * before it runs): make example images from busybox-static and a Debian kernel, stage
 * them, make a bootable disk, boot it in qemu with the console visible, update to a new
 * image as a trial boot that commits itself, and roll back. Each boot is checked from the
 * console, so the demo fails loudly if any step did not do what it says.
 */
import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import { Option } from 'commander';
import { EXAMPLE_MTIME, writeBusyboxRootfs } from '../../examples/busybox-rootfs.js';
import { busyboxBootRoot, debianKernel } from '../../examples/debian-kernel.js';
import { DarchError } from '../../lib/errors.js';
import { emit } from '../output.js';
import { run } from '../../lib/proc.js';
import { formatBytes } from '../../lib/format.js';
import { ui } from '../ui.js';
import { importImage } from '../../oci/importer.js';
import type { Context, GlobalOptions } from '../context.js';
import type { ContextFactory } from '../globals.js';
import { summarize } from './images.js';
import { selfCommand } from '../../lib/self.js';

export const DEMO_IMAGE = 'example/busybox:latest';
export const BOOTABLE = 'example/bootable';

interface DemoOptions {
  name: string;
  imageOnly?: boolean;
  accel: 'auto' | 'kvm' | 'tcg';
  bootTimeout: string;
}

export function registerDemo(demo: Command, ctx: ContextFactory): void {
  demo
    .option('--name <name:tag>', 'name for the small example image', DEMO_IMAGE)
    .option('--image-only', 'only make the small example image (no kernel download, no VM)')
    .addOption(new Option('--accel <kind>', 'how the VM runs').choices(['auto', 'kvm', 'tcg']).default('auto'))
    .option('--boot-timeout <seconds>', 'give up on a boot after this long', '300')
    .action(async (opts: DemoOptions, cmd: Command) => {
      const c = await ctx(cmd);
      const image = await exampleImage(c, opts.name);
      if (opts.imageOnly) {
        await emit({ image, store: c.paths.imagesDir }, ({ image: i }) =>
          [
            `image     ${i.name}`,
            `digest    ${i.digest}`,
            `platform  ${i.os}/${i.architecture}`,
            `layers    ${i.layers}`,
            `size      ${formatBytes(i.size)}`,
          ].join('\n'),
        );
        return;
      }
      const tour = await bootTour(c, cmd.optsWithGlobals() as GlobalOptions, opts);
      await emit({ image, store: c.paths.imagesDir, ...tour }, (t) =>
        [
          `example images   ${t.image.name}, ${BOOTABLE}:1, ${BOOTABLE}:2`,
          `disk             ${t.disk}`,
          ...t.boots.map(
            (b, i) =>
              `boot ${i + 1}           ${b.version === '1' ? 'version 1' : 'version 2'}${b.trial ? ' (trial)' : ''}${b.fellBack ? ' (fell back)' : ''}: ${b.stageId}`,
          ),
          '',
          `next: darch vm run ${t.disk}    (boot it yourself; Ctrl-C stops the VM)`,
        ].join('\n'),
      );
    });
}

/** The small busybox image (reproducible: the same busybox gives the same digest). */
async function exampleImage(c: Context, name: string) {
  const store = await c.imageStore();
  await store.init();
  await mkdir(c.paths.tmpDir, { recursive: true });
  const tarPath = `${store.tempPath('demo')}.tar`;
  try {
    ui.step('making the example root file system from busybox-static');
    await writeBusyboxRootfs(createWriteStream(tarPath));
    ui.step(`importing it as ${name}`);
    await importImage(store, tarPath, name, {
      format: 'rootfs',
      compression: c.config.store.compression,
      created: EXAMPLE_MTIME,
      createdBy: 'darch demo (busybox-static)',
      signal: c.signal,
      report: c.report,
    });
  } finally {
    await rm(tarPath, { force: true });
  }
  const summary = await summarize(store, name);
  ui.success(`${summary.name} is in the image store at ${c.paths.imagesDir}`);
  return summary;
}

interface BootReport {
  version: string;
  stageId: string;
  trial: boolean;
  fellBack: boolean;
}

async function bootTour(c: Context, globals: GlobalOptions, opts: DemoOptions) {
  const work = path.join(c.paths.stateDir, 'demo');
  await mkdir(work, { recursive: true });
  // DARCH_KERNEL_CACHE lets several roots (tests, CI) share one download.
  const kernel = await debianKernel(process.env.DARCH_KERNEL_CACHE || c.paths.cacheDir, c.report);
  for (const v of ['1', '2']) {
    const tree = path.join(work, `tree-${v}`);
    await rm(tree, { recursive: true, force: true });
    ui.step(`making ${BOOTABLE}:${v}: busybox, Debian kernel ${kernel.release} and the modules a boot needs`);
    await busyboxBootRoot(tree, { kernel, version: v, hostname: `darch-demo-${v}` });
    const tarPath = path.join(work, `tree-${v}.tar`);
    await run('tar', ['-C', tree, '--numeric-owner', '-cf', tarPath, '.']);
    await rm(tree, { recursive: true, force: true });
    await importImage(await c.imageStore(), tarPath, `${BOOTABLE}:${v}`, {
      format: 'rootfs',
      compression: c.config.store.compression,
      created: EXAMPLE_MTIME,
      createdBy: 'darch demo',
      signal: c.signal,
      report: c.report,
    });
    await rm(tarPath, { force: true });
  }
  const darch = (args: string[]) => runDarch(globals, args, c.signal);
  await darch(['stage', 'upload', '--force', `${BOOTABLE}:1`]);
  await darch(['stage', 'upload', '--force', `${BOOTABLE}:2`]);
  const disk = path.join(work, 'disk.img');
  await rm(disk, { force: true });
  await darch(['disk', 'create', disk, `${BOOTABLE}:1`, `${BOOTABLE}:2`, '--timeout', '1', '--kernel-args', 'console=ttyS0,115200 darch.demo=poweroff']);
  const boots: BootReport[] = [];
  const boot = async (expect: { version: string; trial?: boolean }) => {
    ui.step(`booting the disk: expecting version ${expect.version}${expect.trial ? ' as a trial' : ''}`);
    const r = await bootOnce(globals, disk, opts, c.signal);
    if (r.version !== expect.version || r.trial !== Boolean(expect.trial)) {
      throw new DarchError(
        'E_DEMO_FAILED',
        `the VM booted version ${r.version || '?'}${r.trial ? ' as a trial' : ''}, expected version ${expect.version}${expect.trial ? ' as a trial' : ''}`,
        {
          hint: 'the console above shows what happened',
        },
      );
    }
    ui.success(`version ${r.version} booted${r.trial ? ' as a trial and committed itself' : ''}`);
    boots.push(r);
  };
  await boot({ version: '1' });
  ui.step('update: try version 2; GRUB boots it at most 3 times unless it commits');
  await darch(['boot', 'try', `${BOOTABLE}:2`, '--disk', disk, '--tries', '3']);
  await boot({ version: '2', trial: true });
  await darch(['boot', 'status', '--disk', disk]);
  ui.step('rollback: back to the previous default');
  await darch(['boot', 'rollback', '--disk', disk]);
  await boot({ version: '1' });
  return { disk, boots };
}

/** Run a darch subcommand as a user would, printing it first; its output is human text for stderr. */
async function runDarch(globals: GlobalOptions, args: string[], signal: AbortSignal): Promise<void> {
  const flags = [
    ...(globals.root ? ['--root', globals.root] : []),
    ...(globals.user ? ['--user'] : []),
    ...(globals.color ? [`--color=${globals.color}`] : []),
  ];
  ui.info(ui.colors.bold(`$ darch ${args.join(' ')}`));
  const self = selfCommand();
  const child = spawn(self.file, [...self.args, ...flags, ...args], { stdio: ['ignore', 'pipe', 'pipe'], signal });
  child.stdout.on('data', (b: Buffer) => void (!ui.quiet && process.stderr.write(b)));
  child.stderr.on('data', (b: Buffer) => void (!ui.quiet && process.stderr.write(b)));
  const code = await new Promise<number>((resolve) => {
    child.on('close', (c) => resolve(c ?? 1));
    child.on('error', () => resolve(1));
  });
  if (code !== 0) throw new DarchError('E_DEMO_FAILED', `darch ${args.join(' ')} failed (exit ${code})`, { hint: 'its error is printed above' });
}

/** Boot the disk once; the example image reports what booted on the console and powers off. */
async function bootOnce(globals: GlobalOptions, disk: string, opts: DemoOptions, signal: AbortSignal): Promise<BootReport> {
  const flags = [...(globals.root ? ['--root', globals.root] : [])];
  const self = selfCommand();
  const args = [...self.args, ...flags, 'vm', 'run', disk, '--accel', opts.accel, '-m', '512'];
  ui.info(ui.colors.bold(`$ darch vm run ${disk} --accel ${opts.accel} -m 512`));
  const child = spawn(self.file, args, { stdio: ['ignore', 'pipe', 'pipe'], signal });
  let console = '';
  const show = (b: Buffer) => {
    console += b.toString('utf8');
    if (!ui.quiet) process.stderr.write(b);
  };
  child.stdout.on('data', show);
  child.stderr.on('data', show);
  const timer = setTimeout(() => child.kill('SIGKILL'), Number(opts.bootTimeout) * 1000);
  const code = await new Promise<number>((resolve) => child.on('close', (c) => resolve(c ?? 1)));
  clearTimeout(timer);
  if (!/darch demo: powering off/.test(console)) {
    throw new DarchError(
      'E_DEMO_FAILED',
      code === null || code !== 0 ? `the VM did not finish booting (exit ${code})` : 'the VM stopped before the example reported',
      {
        hint: `the console above shows how far it got; --boot-timeout raises the limit (${opts.bootTimeout} s)`,
      },
    );
  }
  return {
    version: /darch demo: running "?darch example (\d+)/.exec(console)?.[1] ?? '',
    stageId: /darch demo: darch_stageid=(\S+)/.exec(console)?.[1] ?? '',
    trial: /darch demo: darch\.trial=1/.test(console),
    fellBack: /darch demo: darch\.fell_back=1/.test(console),
  };
}

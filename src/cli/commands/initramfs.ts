/** `darch initramfs build`: darch's universal initramfs for an image's kernel. */
import path from 'node:path';
import type { Command } from 'commander';
import { emit } from '../../lib/output.js';
import { formatBytes, ui } from '../../lib/ui.js';
import { buildInitramfs } from '../../initramfs/build.js';
import type { ContextFactory } from '../main.js';

export function registerInitramfs(program: Command, ctx: ContextFactory): void {
  const initramfs = program.command('initramfs').description("darch's universal initramfs (busybox + the image's own kernel modules)");
  initramfs
    .command('build')
    .description('build the initramfs for an image: its rootfs.squash or an unpacked root directory')
    .argument('<rootfs>', 'rootfs.squash or a root directory')
    .requiredOption('-o, --output <file>', 'where to write the initramfs (gzip newc cpio)')
    .option('--kernel <file>', "the image's kernel (its release picks /lib/modules/<release>)")
    .option('--release <release>', 'the kernel release, when there is no kernel file to read it from')
    .option('--module <name...>', 'extra modules to include (with their dependencies)')
    .action(async (rootfs: string, opts: { output: string; kernel?: string; release?: string; module?: string[] }, cmd: Command) => {
      const c = await ctx(cmd);
      ui.step(`building the darch initramfs for ${rootfs}`);
      const res = await buildInitramfs({
        rootfs,
        kernel: opts.kernel,
        release: opts.release,
        out: path.resolve(opts.output),
        tmpDir: c.paths.tmpDir,
        extraModules: opts.module,
      });
      ui.success(`${res.path}: kernel ${res.release}, ${res.modules.length} modules, ${formatBytes(res.size)}`);
      if (res.absent.length) ui.verbose(`not in this kernel: ${res.absent.join(', ')}`);
      await emit(res, () => undefined);
    });
}

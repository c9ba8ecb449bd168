/** `darch initramfs build`: darch's universal initramfs for an image's kernel. */
import path from 'node:path';
import type { Command } from 'commander';
import { emit } from '../output.js';
import { formatBytes } from '../../lib/format.js';
import { ui } from '../ui.js';
import { buildInitramfs } from '../../initramfs/build.js';
import { buildInitramfsToolsDeb, installInitramfsTools } from '../../initramfs/tools.js';
import { installDracut } from '../../initramfs/dracut.js';
import { VERSION, type ContextFactory } from '../globals.js';

export function registerInitramfs(initramfs: Command, ctx: ContextFactory): void {
  initramfs
    .command('build')
    .description('build the initramfs for an image: its rootfs.squash or an unpacked root directory')
    .argument('<rootfs>', 'rootfs.squash or a root directory')
    .requiredOption('-o, --output <file>', 'where to write the initramfs (gzip newc cpio)')
    .option('--kernel <file>', "the image's kernel (its release picks /lib/modules/<release>)")
    .option('--release <release>', 'the kernel release, when there is no kernel file to read it from')
    .option('--module <name...>', 'extra modules to include (with their dependencies)')
    .option('--verity', 'also carry what opens a dm-verity root (dm-verity modules, dmsetup); `stage upload --verity` does this itself')
    .action(async (rootfs: string, opts: { output: string; kernel?: string; release?: string; module?: string[]; verity?: boolean }, cmd: Command) => {
      const c = await ctx(cmd);
      ui.step(`building the darch initramfs for ${rootfs}`);
      const res = await buildInitramfs({
        rootfs,
        kernel: opts.kernel,
        release: opts.release,
        out: path.resolve(opts.output),
        tmpDir: c.paths.tmpDir,
        extraModules: opts.module,
        verity: opts.verity,
        report: c.report,
      });
      ui.success(`${res.path}: kernel ${res.release}, ${res.modules.length} modules, ${formatBytes(res.size)}`);
      if (res.absent.length) ui.verbose(`not in this kernel: ${res.absent.join(', ')}`);
      await emit(res, () => undefined);
    });

  initramfs
    .command('tools-install')
    .description("put darch's initramfs-tools hook (boot=darch) into a root tree; then run update-initramfs in it")
    .argument('<root>', 'the root directory of an image being built')
    .action(async (root: string, _o: unknown, cmd: Command) => {
      await ctx(cmd);
      const files = await installInitramfsTools(path.resolve(root));
      ui.success(`installed ${files.length} files into ${root}; run update-initramfs -u inside it`);
      await emit({ root, files }, (d) => d.files.join('\n'));
    });

  initramfs
    .command('dracut-install')
    .description("put darch's dracut module (90darch, boot=darch) into a root tree and enable it; then run dracut --force in it")
    .argument('<root>', 'the root directory of an image being built')
    .action(async (root: string, _o: unknown, cmd: Command) => {
      await ctx(cmd);
      const files = await installDracut(path.resolve(root));
      ui.success(`installed ${files.length} files into ${root}; run dracut --force inside it`);
      await emit({ root, files }, (d) => d.files.join('\n'));
    });

  initramfs
    .command('tools-deb')
    .description("write darch's initramfs-tools hook as a .deb (darch-initramfs-tools) for recipes to apt install")
    .argument('<out.deb>')
    .action(async (out: string, _o: unknown, cmd: Command) => {
      const c = await ctx(cmd);
      await buildInitramfsToolsDeb(path.resolve(out), VERSION, c.paths.tmpDir);
      ui.success(`wrote ${out}`);
      await emit({ deb: out }, (d) => d.deb);
    });
}

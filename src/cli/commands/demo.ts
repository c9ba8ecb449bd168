/**
 * `darch demo`: darch's main job on built-in defaults, with nothing to download. It grows
 * as the pipeline does; today it makes the example image from busybox-static, puts it in
 * the local store, and shows it.
 */
import { createWriteStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import type { Command } from 'commander';
import { EXAMPLE_MTIME, writeBusyboxRootfs } from '../../examples/busybox-rootfs.js';
import { emit } from '../../lib/output.js';
import { ui, formatBytes } from '../../lib/ui.js';
import { importImage } from '../../oci/importer.js';
import type { ContextFactory } from '../main.js';
import { summarize } from './images.js';

export const DEMO_IMAGE = 'example/busybox:latest';

export function registerDemo(program: Command, ctx: ContextFactory): void {
  program
    .command('demo')
    .description("run darch's main job on built-in defaults: make the example image and put it in the store")
    .option('--name <name:tag>', 'name for the example image', DEMO_IMAGE)
    .action(async (opts: { name: string }, cmd: Command) => {
      const c = await ctx(cmd);
      const store = c.imageStore();
      await store.init();
      const tarPath = store.tempPath('demo') + '.tar';
      await mkdir(c.paths.tmpDir, { recursive: true });
      try {
        ui.step('making the example root file system from busybox-static');
        await writeBusyboxRootfs(createWriteStream(tarPath));
        ui.step(`importing it as ${opts.name}`);
        await importImage(store, tarPath, opts.name, { format: 'rootfs', compression: c.config.store.compression, created: EXAMPLE_MTIME, createdBy: 'darch demo (busybox-static)', signal: c.signal });
      } finally {
        await rm(tarPath, { force: true });
      }
      const summary = await summarize(store, opts.name);
      ui.success(`${summary.name} is in the image store at ${c.paths.imagesDir}`);
      await emit({ image: summary, store: c.paths.imagesDir }, ({ image }) =>
        [
          `image     ${image.name}`,
          `digest    ${image.digest}`,
          `platform  ${image.os}/${image.architecture}`,
          `layers    ${image.layers}`,
          `size      ${formatBytes(image.size)}`,
          '',
          'next: darch images list; darch images inspect ' + image.name,
        ].join('\n'),
      );
    });
}

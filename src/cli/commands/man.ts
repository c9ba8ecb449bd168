/** `darch man [PAGE] [-o DIR]`: darch's man pages, generated from its commands (src/cli/manpages.ts). */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import { fsError, usageError } from '../../lib/errors.js';
import type { CliMeta, ContextFactory } from '../globals.js';
import { writeStdout } from '../output.js';
import { manPages } from '../manpages.js';
import { ui } from '../ui.js';

export function registerMan(man: Command, _ctx: ContextFactory, meta: CliMeta): void {
  man
    .argument('[page]', 'a command group (stage, boot, disk, …); default: darch(1)')
    .option('-o, --output <dir>', 'write every page into DIR instead (darch.1, darch-<group>.1)')
    .action(async (page: string | undefined, opts: { output?: string }) => {
      const pages = manPages(await meta.tree());
      if (opts.output) {
        try {
          await mkdir(opts.output, { recursive: true });
          for (const p of pages) await writeFile(path.join(opts.output, p.name), p.text);
        } catch (err) {
          throw fsError(err, `cannot write the man pages into ${opts.output}`);
        }
        ui.success(`${pages.length} man pages in ${opts.output}`);
        return;
      }
      const want = page ? `darch-${page}.1` : 'darch.1';
      const found = pages.find((p) => p.name === want);
      if (!found) throw usageError(`no man page for "${page}"`, `one of: ${pages.map((p) => p.name.replace(/^darch-?|\.1$/g, '') || '(none)').join(', ')}`);
      await writeStdout(found.text);
    });
}

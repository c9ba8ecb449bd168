/** `darch completion bash|zsh|fish`: a completion script on stdout (src/cli/completion.ts). */
import type { Command } from 'commander';
import { usageError } from '../../lib/errors.js';
import { completionScript, SHELLS, type Shell } from '../completion.js';
import type { CliMeta, ContextFactory } from '../globals.js';
import { writeStdout } from '../output.js';

export function registerCompletion(completion: Command, _ctx: ContextFactory, meta: CliMeta): void {
  completion.argument('<shell>', SHELLS.join(', ')).action(async (shell: string) => {
    if (!(SHELLS as readonly string[]).includes(shell))
      throw usageError(`no completion for "${shell}": darch has ${SHELLS.join(', ')}`, 'darch completion bash');
    await writeStdout(completionScript(await meta.tree(), shell as Shell));
  });
}

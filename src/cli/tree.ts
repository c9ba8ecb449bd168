/**
 * Every command of src/cli/table.ts loaded into one commander tree, read into plain data for
 * `darch completion` and `darch man`. main.ts hands it to those commands (`CliMeta`), so no
 * command module imports the table that lists it.
 */
import { Command } from 'commander';
import type { CommandSpec } from './completion.js';
import { addGlobalOptions, type CliMeta, type ContextFactory } from './globals.js';
import { COMMANDS } from './table.js';

/** The whole command tree. Actions never run here, so the context is never asked for. */
export async function commandTree(): Promise<CommandSpec> {
  const program = addGlobalOptions(new Command('darch'));
  const ctx: ContextFactory = () => Promise.reject(new Error('completion: no context'));
  const meta: CliMeta = { tree: commandTree };
  for (const entry of COMMANDS) (await entry.load())(program.command(entry.name).description(entry.description), ctx, meta);
  const walk = (c: Command, path: string[]): CommandSpec => ({
    path,
    description: c.description(),
    usage: c.usage(),
    options: [
      ...c.options.map((o) => ({ long: o.long, short: o.short, takesValue: o.required || o.optional, description: o.description })),
      { long: '--help', short: '-h', takesValue: false, description: 'display help for command' },
    ],
    subcommands: c.commands.map((s) => walk(s, [...path, s.name()])),
  });
  return walk(program, []);
}

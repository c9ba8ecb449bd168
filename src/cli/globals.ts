/**
 * What main.ts and the command modules share, in a module without side effects: main.ts
 * runs the CLI when imported, so a command module that imported it would start a second run.
 */
import { Option, type Command } from 'commander';
import type { Context, GlobalOptions } from './context.js';
import type { CommandSpec } from './completion.js';

export type { GlobalOptions } from './context.js';

declare const __DARCH_VERSION__: string | undefined;
export const VERSION = typeof __DARCH_VERSION__ === 'string' ? __DARCH_VERSION__ : '0.0.0-dev';
declare const __DARCH_COMMIT__: string | undefined;
/** The commit the build was made from (`-dirty` with uncommitted changes), set by scripts/build.mjs. */
export const COMMIT = typeof __DARCH_COMMIT__ === 'string' ? __DARCH_COMMIT__ : 'unknown commit';

/** The run's context; every call in a run returns the same one (built on the first call). */
export type ContextFactory = (cmd: Command) => Promise<Context>;

/**
 * Fills in a top-level command that main.ts made with its name and description (the
 * command table owns those so `darch --help` needs no command module).
 */
export type DefineCommand = (cmd: Command, ctx: ContextFactory, meta: CliMeta) => void;

/** What commands about the CLI itself (completion, man) need from it: the whole command tree. */
export interface CliMeta {
  tree(): Promise<CommandSpec>;
}

export function globalsOf(cmd: Command): GlobalOptions {
  return cmd.optsWithGlobals() as GlobalOptions;
}

/** The options every command takes, defined once for the program and for `darch completion`. */
export function addGlobalOptions(program: Command): Command {
  return program
    .option('--json', 'print data as one JSON document on stdout (progress stays on stderr)')
    .option('-q, --quiet', 'print only data and errors')
    .option('-v, --verbose', 'say more (-vv for debug output)', (_v: string, prev: number) => prev + 1, 0)
    .addOption(new Option('--color <when>', 'colour human output').choices(['auto', 'always', 'never']).default('auto'))
    .option('--debug', 'show stack traces and debug output')
    .option('--root <dir>', 'keep all darch state under DIR instead of / (also DARCH_ROOT)')
    .option('--user', 'use your XDG directories even as root (the rootless layout)');
}

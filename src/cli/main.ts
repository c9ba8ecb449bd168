/**
 * darch's only entry point (importing it runs darch): global options, the commands of
 * src/cli/table.ts with only the one argv runs loaded, and the single top-level error
 * handler. Exit codes: 0 ok, 1 failure, 2 usage error, 130/143 interrupted.
 */
import { Command, CommanderError } from 'commander';
import { DarchError, ExitCode } from '../lib/errors.js';
import { resultCodeOf, signalIsSuccess, writeStdout } from './output.js';
import { ui } from './ui.js';
import { commandChannel, lockWaitChannel, type CommandEvent, type LockWaitEvent } from '../lib/diagnostics.js';
import { addGlobalOptions, COMMIT, globalsOf, VERSION, type CliMeta, type ContextFactory, type DefineCommand } from './globals.js';
import { COMMANDS, commandIn, type CommandEntry } from './table.js';
import type { Context } from './context.js';

const abort = new AbortController();

/** Thrown by a stand-in command that argv did not name where commandIn() looked: load it and parse again. */
class LoadCommand extends Error {
  constructor(readonly entry: CommandEntry) {
    super(`load ${entry.name}`);
  }
}

function buildProgram(defined: Map<string, DefineCommand>): Command {
  const program = new Command('darch');
  program
    .description('Build operating-system images like containers; boot them as stateless, immutable roots.')
    .version(`${VERSION} (${COMMIT})`, '-V, --version', 'print the version and the commit it was built from');
  addGlobalOptions(program)
    .showHelpAfterError('(run with --help for usage)')
    .configureHelp({ sortSubcommands: false, subcommandTerm: (c) => c.name() })
    .exitOverride();
  program.hook('preAction', (_this, action) => {
    ui.configure(globalsOf(action));
    listenToLibrary();
  });
  // One context per run, made on first use: --help and --version never load config or stores.
  let context: Promise<Context> | undefined;
  const ctx: ContextFactory = (cmd) => (context ??= import('./context.js').then((m) => m.makeContext(globalsOf(cmd), abort.signal)));
  const meta: CliMeta = { tree: async () => (await import('./tree.js')).commandTree() };
  for (const entry of COMMANDS) {
    const cmd = program.command(entry.name).description(entry.description);
    const define = defined.get(entry.name);
    if (define) define(cmd, ctx, meta);
    // A stand-in: listed in help and in "did you mean", defined only when it runs.
    else
      cmd
        .allowUnknownOption()
        .allowExcessArguments()
        .helpOption(false)
        .action(() => Promise.reject(new LoadCommand(entry)));
  }
  program.addHelpText(
    'after',
    `
Exit status: 0 success, 1 failure, 2 usage error, 78 bad configuration, 130 interrupted.
Environment: DARCH_ROOT (same as --root), DARCH_LOCK_TIMEOUT (seconds), NO_COLOR,
REGISTRY_AUTH_FILE, DARCH_KERNEL_CACHE (where darch demo keeps the Debian kernel).
Docs: README.md and docs/ in the darch source tree.`,
  );
  return program;
}

async function programFor(entry: CommandEntry | undefined): Promise<Command> {
  return buildProgram(new Map(entry ? [[entry.name, await entry.load()]] : []));
}

function exitCodeFor(err: unknown): number {
  if (err instanceof DarchError) return err.exitCode;
  if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : ExitCode.usage;
  return ExitCode.failure;
}

async function reportError(err: unknown): Promise<void> {
  if (err instanceof CommanderError) return; // commander already printed it
  if (abort.signal.aborted && !(err instanceof DarchError && err.code !== 'E_ABORTED')) {
    ui.error('interrupted');
    return;
  }
  const e =
    err instanceof DarchError
      ? err
      : new DarchError('E_INTERNAL', err instanceof Error ? err.message : String(err), {
          hint: 'this is a bug in darch; run again with --debug and report the output',
          cause: err,
        });
  if (ui.json) await writeStdout(`${JSON.stringify({ schemaVersion: 1, error: e.toJSON() }, null, 2)}\n`);
  ui.error(e.message, e.hint);
  if (ui.debugMode && err instanceof Error) process.stderr.write(`${err.stack ?? ''}\n`);
}

async function main(argv: string[]): Promise<number> {
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(0);
  });
  let interrupts = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    interrupts++;
    if (interrupts > 1) process.exit(sig === 'SIGINT' ? 130 : 143);
    ui.warn(`${sig} received: stopping (press Ctrl-C again to force)`);
    abort.abort(new DarchError('E_ABORTED', 'interrupted', { exitCode: sig === 'SIGINT' ? 130 : 143 }));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  // Configure output early from raw argv so errors during parsing honour --json/--color.
  ui.configure({
    json: argv.includes('--json'),
    quiet: argv.includes('-q') || argv.includes('--quiet'),
    debug: argv.includes('--debug'),
    color: argv.includes('--color=never') ? 'never' : argv.includes('--color=always') ? 'always' : 'auto',
  });
  // `--json --version`: the same as data, with the runtime (commander's --version prints text only).
  if (argv.includes('--json') && (argv.includes('--version') || argv.includes('-V'))) {
    await writeStdout(
      `${JSON.stringify({ schemaVersion: 1, version: VERSION, commit: COMMIT, node: process.version, platform: `${process.platform}/${process.arch}` }, null, 2)}\n`,
    );
    return ExitCode.ok;
  }
  try {
    const named = commandIn(argv);
    try {
      await (await programFor(COMMANDS.find((e) => e.name === named))).parseAsync(argv, { from: 'user' });
    } catch (err) {
      if (!(err instanceof LoadCommand)) throw err;
      await (await programFor(err.entry)).parseAsync(argv, { from: 'user' });
    }
    return abort.signal.aborted && !signalIsSuccess() ? interruptedCode() : resultCodeOf();
  } catch (err) {
    await reportError(err);
    if (abort.signal.aborted) return interruptedCode();
    return exitCodeFor(err);
  }
}

function interruptedCode(): number {
  const reason = abort.signal.reason as unknown;
  return reason instanceof DarchError ? reason.exitCode : ExitCode.interrupted;
}

/** What the lowest layers publish (src/lib/diagnostics.ts), printed the CLI's way. */
let listening = false;
function listenToLibrary(): void {
  if (listening) return;
  listening = true;
  commandChannel.subscribe((m) => {
    const e = m as CommandEvent;
    ui.debug(`${e.kind}: ${e.cmd} ${e.args.join(' ')}`);
  });
  lockWaitChannel.subscribe((m) => {
    const e = m as LockWaitEvent;
    ui.info(`waiting for ${e.what} (locked by pid ${e.pid})…`);
  });
}

// The only entry point: importing this module runs darch.
// No top-level await: the single executable runs this bundle as CommonJS.
void main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});

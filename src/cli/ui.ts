/**
 * Human-facing output. Everything here goes to stderr so stdout stays data-only
 * (tables, ids, `--json` documents) and can be piped.
 */
import { createColors } from 'picocolors';

export type ColorMode = 'auto' | 'always' | 'never';

export interface UiOptions {
  color?: ColorMode;
  quiet?: boolean;
  verbose?: number;
  debug?: boolean;
  json?: boolean;
}

function decideColor(mode: ColorMode, stream: NodeJS.WriteStream): boolean {
  if (mode === 'always') return true;
  if (mode === 'never') return false;
  // picocolors decides from stdout and turns colour on under CI; our text is on stderr.
  if (process.env.NO_COLOR) return false;
  if (process.env.FORCE_COLOR && process.env.FORCE_COLOR !== '0') return true;
  if (process.env.TERM === 'dumb') return false;
  return Boolean(stream.isTTY);
}

export class Ui {
  quiet = false;
  verbosity = 0;
  debugMode = false;
  json = false;
  colors = createColors(false);
  // Node makes process.stderr on first use; a run that writes nothing there never pays for it.
  get err(): NodeJS.WriteStream {
    return process.stderr;
  }

  configure(opts: UiOptions): void {
    this.quiet = Boolean(opts.quiet);
    this.verbosity = opts.verbose ?? 0;
    this.debugMode = Boolean(opts.debug);
    this.json = Boolean(opts.json);
    this.colors = createColors(decideColor(opts.color ?? 'auto', this.err));
  }

  /** Whether live progress (bars, spinners) may be drawn. */
  get interactive(): boolean {
    return Boolean(this.err.isTTY) && !this.quiet && process.env.TERM !== 'dumb';
  }

  info(msg: string): void {
    if (!this.quiet) this.err.write(`${msg}\n`);
  }
  step(msg: string): void {
    if (!this.quiet) this.err.write(`${this.colors.cyan('==>')} ${msg}\n`);
  }
  success(msg: string): void {
    if (!this.quiet) this.err.write(`${this.colors.green('✓')} ${msg}\n`);
  }
  warn(msg: string): void {
    this.err.write(`${this.colors.yellow('warning:')} ${msg}\n`);
  }
  verbose(msg: string): void {
    if (this.verbosity >= 1 || this.debugMode) this.err.write(`${this.colors.dim(msg)}\n`);
  }
  debug(msg: string): void {
    if (this.verbosity >= 2 || this.debugMode) this.err.write(`${this.colors.dim(`debug: ${msg}`)}\n`);
  }
  error(msg: string, hint?: string): void {
    this.err.write(`${this.colors.red('error:')} ${msg}\n`);
    if (hint) this.err.write(`${this.colors.dim('hint:')} ${hint}\n`);
  }
}

export const ui = new Ui();

/**
 * How library code tells a person what it is doing without printing: it takes a `Reporter`
 * (an option, silent by default) and the CLI passes one that writes through `ui`
 * (src/cli/reporter.ts). So the same functions run quietly under tests, the update agent
 * or another program, and only src/cli decides what reaches a terminal.
 */
export interface Progress {
  /** Add bytes done. */
  tick(bytes: number): void;
  /** Set the total when it becomes known. */
  setTotal(total: number): void;
  done(message?: string): void;
}

export interface ProgressGroup {
  /** Progress of one item (a blob): its own bar on a terminal, part of the total line otherwise. */
  item(name: string, total: number): Progress;
  done(message?: string): void;
}

export interface Reporter {
  /** Plain information (hidden by --quiet). */
  info(msg: string): void;
  /** The start of a long step. */
  step(msg: string): void;
  success(msg: string): void;
  /** Something a person should know even under --quiet. */
  warn(msg: string): void;
  /** Detail for -v. */
  verbose(msg: string): void;
  /** Detail for -vv / --debug. */
  debug(msg: string): void;
  /**
   * A line of a child program's own output (a builder's), labelled with what it works on.
   * `verbose`: shown only with -v (buildah is chatty); otherwise like `info`.
   */
  output(label: string, line: string, level?: 'info' | 'verbose'): void;
  /** Byte progress of one long piece of work. */
  progress(label: string, total?: number): Progress;
  /** Several transfers at once (a pull's blobs). */
  progressGroup(label: string, total: number): ProgressGroup;
}

const noop = (): void => undefined;
const silentProgress: Progress = { tick: noop, setTotal: noop, done: noop };

/** The default: reports nothing. */
export const silentReporter: Reporter = {
  info: noop,
  step: noop,
  success: noop,
  warn: noop,
  verbose: noop,
  debug: noop,
  output: noop,
  progress: () => silentProgress,
  progressGroup: () => ({ item: () => silentProgress, done: noop }),
};

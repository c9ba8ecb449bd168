/**
 * The one error type darch throws on purpose. Everything a user can cause or fix
 * is a DarchError with a stable code, a one-line message and, where we know it, a hint.
 * The top-level handler (cli/main.ts) prints these without a stack trace.
 */
export const ExitCode = {
  ok: 0,
  failure: 1,
  usage: 2,
  /** `check`-style commands: an update is available (dnf check-update precedent). */
  updateAvailable: 100,
  interrupted: 130,
} as const;

export interface DarchErrorOptions {
  hint?: string;
  exitCode?: number;
  cause?: unknown;
  /** Extra machine-readable facts for `--json` error output. */
  details?: Record<string, unknown>;
}

export class DarchError extends Error {
  readonly code: string;
  readonly hint: string | undefined;
  readonly exitCode: number;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: string, message: string, opts: DarchErrorOptions = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'DarchError';
    this.code = code;
    this.hint = opts.hint;
    this.exitCode = opts.exitCode ?? ExitCode.failure;
    this.details = opts.details;
  }

  toJSON(): Record<string, unknown> {
    return {
      code: this.code,
      message: this.message,
      ...(this.hint ? { hint: this.hint } : {}),
      ...(this.details ? { details: this.details } : {}),
    };
  }
}

export function usageError(message: string, hint?: string): DarchError {
  return new DarchError('E_USAGE', message, { hint, exitCode: ExitCode.usage });
}

export function isErrno(err: unknown, code?: string): err is NodeJS.ErrnoException {
  return err instanceof Error && typeof (err as NodeJS.ErrnoException).code === 'string' &&
    (code === undefined || (err as NodeJS.ErrnoException).code === code);
}

/** Turns low-level file-system failures into DarchErrors with a hint a person can act on. */
export function fsError(err: unknown, what: string): DarchError {
  if (err instanceof DarchError) return err;
  if (isErrno(err)) {
    const hints: Record<string, string> = {
      ENOSPC: 'the disk is full: free some space (`darch images prune` removes unreferenced blobs) and retry',
      EACCES: 'permission denied: run as root, or without --root to use your user directories',
      EPERM: 'operation not permitted: run as root, or without --root to use your user directories',
      ENOENT: 'the path does not exist',
      EROFS: 'the file system is read-only',
    };
    return new DarchError(`E_FS_${err.code}`, `${what}: ${err.message}`, {
      hint: hints[err.code ?? ''],
      cause: err,
    });
  }
  return new DarchError('E_INTERNAL', `${what}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
}

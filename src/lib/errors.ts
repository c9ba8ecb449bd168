/**
 * The one error type darch throws on purpose. Everything a user can cause or fix
 * is a DarchError with a stable code, a one-line message and, where we know it, a hint.
 * The top-level handler (cli/main.ts) prints these without a stack trace. Codes are
 * declared in error-codes.ts (and listed in docs/ERRORS.md).
 */
import { type ErrorCode, ExitCode, errorCodeInfo, type FsErrorCode } from './error-codes.js';

export { type ErrorCode, ExitCode } from './error-codes.js';

export interface DarchErrorOptions {
  hint?: string;
  exitCode?: number;
  cause?: unknown;
  /** Extra machine-readable facts for `--json` error output. */
  details?: Record<string, unknown>;
}

export class DarchError extends Error {
  readonly code: ErrorCode;
  readonly hint: string | undefined;
  readonly exitCode: number;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, opts: DarchErrorOptions = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'DarchError';
    this.code = code;
    this.hint = opts.hint;
    this.exitCode = opts.exitCode ?? errorCodeInfo(code)?.exit ?? ExitCode.failure;
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
  return new DarchError('E_USAGE', message, { hint });
}

export function isErrno(err: unknown, code?: string): err is NodeJS.ErrnoException {
  return (
    err instanceof Error && typeof (err as NodeJS.ErrnoException).code === 'string' && (code === undefined || (err as NodeJS.ErrnoException).code === code)
  );
}

/** Turns low-level file-system failures into DarchErrors with a hint a person can act on. */
export function fsError(err: unknown, what: string): DarchError {
  if (err instanceof DarchError) return err;
  if (isErrno(err)) {
    const code = `E_FS_${err.code}` as FsErrorCode;
    return new DarchError(code, `${what}: ${err.message}`, { hint: errorCodeInfo(code)?.hint, cause: err });
  }
  return new DarchError('E_INTERNAL', `${what}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
}

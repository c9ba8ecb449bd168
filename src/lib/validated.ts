/**
 * Reads a file a person writes (config.toml, hooks-config.json, recipe.toml) and checks it
 * against its zod schema. Every failure is one error that names the file and, for a bad
 * value or an unknown key, the key: a typo must fail loudly rather than fall back to a
 * default. All of them exit ExitCode.config (78) through the code's row in error-codes.ts,
 * an unreadable file included: whatever keeps darch from reading its configuration is a
 * configuration problem.
 */
import { readFile } from 'node:fs/promises';
import { parse as parseToml } from 'smol-toml';
import { DarchError, type ErrorCode, isErrno } from './errors.js';
import * as z from './zod.js';

export interface LoadValidatedOptions<T> {
  /** The code every failure carries, e.g. E_CONFIG. */
  code: ErrorCode;
  /** Returned when the file does not exist; without it a missing file is an error. */
  missing?: () => T;
  /** The hint for a file that parses but does not match the schema. */
  schemaHint: string;
  /** The hint for a file that exists but cannot be read. */
  readHint?: string;
}

/** A `*.json` file is parsed as JSON, anything else as TOML. */
/** `schema` may be a lazySchema (lib/zod.ts): it is built only when the file exists. */
export async function loadValidated<S extends z.core.$ZodType>(
  file: string,
  schema: S | (() => S),
  opts: LoadValidatedOptions<z.output<S>>,
): Promise<z.output<S>> {
  const json = file.endsWith('.json');
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if (opts.missing && isErrno(err, 'ENOENT')) return opts.missing();
    throw new DarchError(opts.code, `cannot read ${file}: ${(err as Error).message}`, { hint: opts.readHint, cause: err });
  }
  let raw: unknown;
  try {
    raw = json ? JSON.parse(text) : parseToml(text);
  } catch (err) {
    // smol-toml's message goes on with the offending line and a caret; the first line names the place.
    throw new DarchError(opts.code, `${file}: ${(err as Error).message.split('\n')[0]}`, {
      hint: `fix the ${json ? 'JSON' : 'TOML'} syntax`,
    });
  }
  const res = z.safeParse(typeof schema === 'function' ? schema() : schema, raw);
  if (!res.success) throw new DarchError(opts.code, `${file}: ${describeIssue(res.error.issues[0])}`, { hint: opts.schemaHint });
  return res.data;
}

/** The first problem zod found, as "unknown key a.b" or "a.b: <what is wrong>". */
function describeIssue(issue: z.core.$ZodIssue | undefined): string {
  if (issue?.code === 'unrecognized_keys') return `unknown key ${[...issue.path, ...issue.keys].join('.')}`;
  return `${issue?.path.join('.') || '(top level)'}: ${issue?.message ?? 'invalid'}`;
}

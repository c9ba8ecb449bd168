import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ERRORS_DOC, renderErrorsDoc } from '../../scripts/errors-doc.js';
import { ERROR_CODES } from '../../src/lib/error-codes.js';
import { DarchError, ExitCode, fsError, usageError } from '../../src/lib/errors.js';
import { type LoadValidatedOptions, loadValidated } from '../../src/lib/validated.js';
import * as z from '../../src/lib/zod.js';

const SRC = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'src');

/** Every quoted E_… literal in src/, with the file it is in. */
async function codesInSource(): Promise<Map<string, string>> {
  const found = new Map<string, string>();
  for (const rel of await readdir(SRC, { recursive: true })) {
    if (!rel.endsWith('.ts') || rel === path.join('lib', 'error-codes.ts')) continue;
    const text = await readFile(path.join(SRC, rel), 'utf8');
    for (const m of text.matchAll(/['"`](E_[A-Z0-9_]+)['"`]/g)) found.set(m[1]!, rel);
  }
  // The prefix fsError's codes share, matched with startsWith: not a code itself.
  found.delete('E_FS_');
  return found;
}

describe('error codes', () => {
  test('docs/ERRORS.md is the page scripts/errors-doc.ts makes from the table', async () => {
    const have = await readFile(ERRORS_DOC, 'utf8');
    assert.ok(have === renderErrorsDoc(), 'docs/ERRORS.md is stale: run node --import tsx scripts/errors-doc.ts');
  });

  test('every code used in src/ is declared, and every declared code is used', async () => {
    const used = await codesInSource();
    const undeclared = [...used].filter(([code]) => !Object.hasOwn(ERROR_CODES, code));
    assert.deepEqual(undeclared, [], 'declare these in src/lib/error-codes.ts');
    // fsError builds the E_FS_<errno> codes from the errno, so they never appear quoted.
    const unused = Object.keys(ERROR_CODES).filter((code) => !used.has(code) && !code.startsWith('E_FS_'));
    assert.deepEqual(unused, [], 'codes nothing throws: remove them from the table');
  });

  test('a code that is not declared does not compile', () => {
    // @ts-expect-error misspelt on purpose: the union type refuses it
    const e = new DarchError('E_CONFIGG', 'x');
    assert.equal(e.exitCode, ExitCode.failure);
  });

  test('the exit status comes from the table unless the throw gives one', () => {
    assert.equal(ExitCode.config, 78);
    assert.equal(new DarchError('E_CONFIG', 'x').exitCode, ExitCode.config);
    assert.equal(new DarchError('E_RECIPE_INVALID', 'x').exitCode, ExitCode.config);
    assert.equal(usageError('x').exitCode, ExitCode.usage);
    assert.equal(new DarchError('E_ABORTED', 'x').exitCode, ExitCode.interrupted);
    assert.equal(new DarchError('E_ABORTED', 'x', { exitCode: ExitCode.terminated }).exitCode, 143);
    assert.equal(new DarchError('E_NOT_STAGED', 'x').exitCode, ExitCode.failure);
  });

  test('fsError names the errno and gives the hint of its row, if it has one', () => {
    const full = fsError(Object.assign(new Error('no space'), { code: 'ENOSPC' }), 'writing x');
    assert.equal(full.code, 'E_FS_ENOSPC');
    assert.equal(full.hint, ERROR_CODES.E_FS_ENOSPC.hint);
    const dir = fsError(Object.assign(new Error('is a directory'), { code: 'EISDIR' }), 'reading x');
    assert.equal(dir.code, 'E_FS_EISDIR');
    assert.equal(dir.hint, undefined);
    assert.equal(dir.exitCode, ExitCode.failure);
  });
});

describe('loadValidated', () => {
  const Schema = z.strictObject({ a: z.prefault(z.strictObject({ n: z._default(z.number(), 1) }), {}) });
  const opts = { code: 'E_CONFIG', missing: () => Schema.parse({}), schemaHint: 'the keys are a.n' } as const;
  const fails = async (file: string, message: RegExp, hint: string | RegExp | undefined, o: LoadValidatedOptions<z.output<typeof Schema>> = opts) => {
    const err = await loadValidated(file, Schema, o).then(
      () => assert.fail('expected an error'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof DarchError, String(err));
    assert.equal(err.code, o.code);
    assert.equal(err.exitCode, ExitCode.config);
    assert.match(err.message, message);
    if (hint instanceof RegExp) assert.match(err.hint ?? '', hint);
    else assert.equal(err.hint, hint);
  };

  test('TOML and JSON, a default for a missing file, one error naming the file and the key', async (t) => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'darch-validated-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const toml = path.join(dir, 'x.toml');
    const json = path.join(dir, 'x.json');
    assert.deepEqual(await loadValidated(toml, Schema, opts), { a: { n: 1 } });
    await fails(toml, /cannot read .*x\.toml: ENOENT/, undefined, { code: 'E_RECIPE_INVALID', schemaHint: '' });

    await writeFile(toml, '[a]\nn = 5\n');
    assert.deepEqual(await loadValidated(toml, Schema, opts), { a: { n: 5 } });
    await writeFile(json, '{"a":{"n":6}}');
    assert.deepEqual(await loadValidated(json, Schema, opts), { a: { n: 6 } });

    await writeFile(toml, '[a\n');
    await fails(toml, /^\/.*x\.toml: [^\n]+$/, 'fix the TOML syntax');
    await writeFile(json, '{"a":');
    await fails(json, /x\.json: /, 'fix the JSON syntax');
    await writeFile(toml, '[a]\nm = 5\n');
    await fails(toml, /x\.toml: unknown key a\.m$/, 'the keys are a.n');
    await writeFile(json, '{"a":{"n":"six"}}');
    // zod's own English message (src/lib/zod.ts loads the locale zod/mini lacks).
    await fails(json, /x\.json: a\.n: Invalid input: expected number, received string$/, 'the keys are a.n');
    await writeFile(json, '[]');
    await fails(json, /x\.json: \(top level\): Invalid input: expected object, received array$/, 'the keys are a.n');
  });

  test('an unreadable file is a configuration problem (78), as in every loader', async (t) => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'darch-validated-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const file = path.join(dir, 'config.toml');
    await mkdir(file); // EISDIR, which root cannot read past either
    await fails(file, /cannot read .*config\.toml: EISDIR/, undefined);
    await fails(file, /cannot read/, 'make it readable', { ...opts, code: 'E_RECIPE_INVALID', readHint: 'make it readable' });
  });
});

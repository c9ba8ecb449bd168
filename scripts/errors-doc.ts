/**
 * Writes docs/ERRORS.md from the table in src/lib/error-codes.ts:
 *   node --import tsx scripts/errors-doc.ts          (rewrite the page)
 *   node --import tsx scripts/errors-doc.ts --check  (exit 1 if the page is stale)
 * test/unit/errors.test.ts runs the same comparison, so the page cannot drift.
 */
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { ERROR_CODES, ExitCode, type ErrorCodeInfo, FS_ERROR_FAMILY } from '../src/lib/error-codes.js';

export const ERRORS_DOC = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'docs', 'ERRORS.md');

function cell(s: string | undefined): string {
  return (s ?? '').replace(/\|/g, '\\|');
}

function row(code: string, info: ErrorCodeInfo): string {
  return `| \`${code}\` | ${info.exit ?? ExitCode.failure} | ${cell(info.meaning)} | ${cell(info.hint)} |`;
}

export function renderErrorsDoc(): string {
  // The E_FS_<errno> family row sorts after the E_FS_* codes that have a row of their own.
  const sortKey = (code: string) => (code === FS_ERROR_FAMILY.code ? 'E_FS_\uffff' : code);
  const rows = [...Object.entries(ERROR_CODES), [FS_ERROR_FAMILY.code, FS_ERROR_FAMILY] as const]
    .sort(([a], [b]) => (sortKey(a) < sortKey(b) ? -1 : 1))
    .map(([code, info]) => row(code, info));
  return `<!-- Generated from src/lib/error-codes.ts by \`node --import tsx scripts/errors-doc.ts\`; do not edit. -->
# darch error codes

Every error darch reports on purpose carries one of these codes. A person sees

\`\`\`
error: <what went wrong, naming the file, image or device>
hint: <what to do about this case>
\`\`\`

on stderr; under \`--json\` stdout holds
\`{"schemaVersion":1,"error":{"code","message","hint","details"}}\` instead. Scripts should
match the code, never the message: codes are stable, messages are for people.

Exit status: ${ExitCode.ok} success, ${ExitCode.failure} failure, ${ExitCode.usage} usage error, ${ExitCode.config} bad configuration (an unreadable,
malformed or invalid config.toml, hooks-config.json or recipe, sysexits.h's EX_CONFIG),
${ExitCode.interrupted} interrupted (${ExitCode.terminated} after SIGTERM). The exit column is the status a code gives unless
the case says otherwise (\`E_VM_FAILED\` passes qemu's on). The hint column is the general
advice; each error's own hint is specific to its case.

| Code | Exit | Meaning | Hint |
| --- | --- | --- | --- |
${rows.join('\n')}
`;
}

async function main(): Promise<void> {
  const want = renderErrorsDoc();
  if (process.argv.includes('--check')) {
    const have = await readFile(ERRORS_DOC, 'utf8').catch(() => '');
    if (have !== want) {
      process.stderr.write(`${ERRORS_DOC} is stale: run node --import tsx scripts/errors-doc.ts\n`);
      process.exitCode = 1;
    }
    return;
  }
  await writeFile(ERRORS_DOC, want);
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) await main();

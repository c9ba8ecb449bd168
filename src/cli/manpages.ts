/**
 * Man pages generated from the command definitions (the tree `darch completion` uses):
 * darch(1) with the global options and the command list, and darch-<group>(1) for each
 * top-level command with its subcommands, arguments and options. scripts/build.mjs writes
 * them to dist/man at build time; `darch man` prints one.
 */
import type { CommandSpec } from './completion.js';
import { VERSION } from './globals.js';

/** roff-safe text: backslashes doubled, a leading dot or quote escaped, hyphens in options kept literal. */
function esc(s: string): string {
  return s
    .replace(/\\/g, '\\e')
    .replace(/-/g, '\\-')
    .replace(/^([.'])/gm, '\\&$1');
}

function optionLines(c: CommandSpec): string[] {
  return c.options.flatMap((o) => [
    '.TP',
    `.B ${esc([o.short, o.long].filter(Boolean).join(', '))}${o.takesValue ? ' \\fIVALUE\\fR' : ''}`,
    esc(o.description),
  ]);
}

function header(name: string, summary: string): string[] {
  return [`.TH ${name.toUpperCase()} 1 "" "darch ${VERSION}" "darch manual"`, '.SH NAME', `${esc(name)} \\- ${esc(summary)}`];
}

function all(c: CommandSpec): CommandSpec[] {
  return [c, ...c.subcommands.flatMap(all)];
}

function mainPage(tree: CommandSpec): string {
  return [
    ...header('darch', 'build operating-system images like containers; boot them as stateless, immutable roots'),
    '.SH SYNOPSIS',
    '.B darch',
    '[\\fIGLOBAL OPTIONS\\fR] \\fICOMMAND\\fR [\\fIARGS\\fR]',
    '.SH DESCRIPTION',
    esc(tree.description),
    '.SH COMMANDS',
    ...tree.subcommands.flatMap((s) => ['.TP', `.B ${esc(s.path.join(' '))}`, `${esc(s.description)} See \\fBdarch\\-${esc(s.path[0] ?? '')}\\fR(1).`]),
    '.SH GLOBAL OPTIONS',
    ...optionLines(tree),
    '.SH EXIT STATUS',
    '0 success, 1 failure, 2 usage error, 78 bad configuration, 100 an update is available (check commands), 130 interrupted.',
    '.SH ENVIRONMENT',
    '.TP',
    '.B DARCH_ROOT',
    'the same as \\-\\-root.',
    '.TP',
    '.B DARCH_LOCK_TIMEOUT',
    'seconds to wait for another darch holding a lock.',
    '.TP',
    '.B NO_COLOR',
    'no colours in human output.',
    '.SH SEE ALSO',
    tree.subcommands.map((s) => `\\fBdarch\\-${esc(s.path[0] ?? '')}\\fR(1)`).join(', '),
    '',
  ].join('\n');
}

function groupPage(group: CommandSpec): string {
  const name = `darch-${group.path[0]}`;
  const lines = [...header(name, group.description), '.SH SYNOPSIS'];
  for (const c of all(group).filter((x) => x.subcommands.length === 0)) lines.push('.B darch', `${esc(c.path.join(' '))} ${esc(c.usage)}`, '.br');
  lines.push('.SH DESCRIPTION', esc(group.description));
  if (group.options.length > 1) lines.push('.SH OPTIONS', ...optionLines(group));
  for (const c of all(group).slice(1)) lines.push(`.SH ${esc(c.path.join(' ').toUpperCase())}`, esc(c.description), ...optionLines(c));
  lines.push('.SH SEE ALSO', '\\fBdarch\\fR(1)', '');
  return lines.join('\n');
}

/** Every page as (file name, roff text). */
export function manPages(tree: CommandSpec): Array<{ name: string; text: string }> {
  return [{ name: 'darch.1', text: mainPage(tree) }, ...tree.subcommands.map((g) => ({ name: `darch-${g.path[0]}.1`, text: groupPage(g) }))];
}

/**
 * `darch completion bash|zsh|fish`: each script passes its shell's syntax check, loads, and
 * completes subcommands at every level and a command's own options, in the real shell. And
 * the man pages generated from the same definitions.
 */
import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { run } from '../../src/lib/proc.js';
import { DARCH_BIN, darch, darchOk, REPO, tempDir } from '../helpers/darch.js';
import { fakeStaged } from '../helpers/fakestage.js';

async function script(t: Parameters<typeof tempDir>[0], shell: string): Promise<string> {
  const file = path.join(await tempDir(t), `darch.${shell}`);
  await writeFile(file, (await darchOk(['completion', shell])).stdout);
  return file;
}

type ShellOpts = { env?: NodeJS.ProcessEnv; cwd?: string };
const quoted = (words: string[]) => words.map((w) => `'${w}'`).join(' ');

/** What bash's _darch puts in COMPREPLY for the words typed so far (the last one being completed). */
async function bashComplete(file: string, words: string[], opts: ShellOpts = {}): Promise<string[]> {
  const script = `source "$0"; COMP_WORDS=(${quoted(words)}); COMP_CWORD=${words.length - 1}; _darch; printf '%s\\n' "\${COMPREPLY[@]}"`;
  return (await run('bash', ['-c', script, file], opts)).stdout.trim().split('\n');
}

/** What zsh's _darch hands to compadd (one per line; FILES where it falls back to _files). */
async function zshOffer(file: string, words: string[], opts: ShellOpts = {}): Promise<string[]> {
  const script = `source "$1"; compadd() { shift; print -rl -- "$@"; }; _files() { print FILES; }; words=(${quoted(words)}); CURRENT=${words.length}; _darch`;
  return (await run('zsh', ['-c', script, 'zsh', file], opts)).stdout.trim().split('\n');
}

/** fish's `complete -C LINE`: a candidate per line, with its description after a tab. */
async function fishComplete(file: string, line: string, opts: ShellOpts = {}): Promise<string> {
  return (await run('fish', ['-c', `source $argv[1]; complete -C "${line}"`, file], opts)).stdout;
}

test("bash: completes top-level commands, nested ones after global options, and a command's options", async (t) => {
  const file = await script(t, 'bash');
  await run('bash', ['-n', file]);
  const complete = (words: string[]) => bashComplete(file, words);
  assert.deepEqual(await complete(['darch', 'st']), ['status', 'stage']);
  assert.deepEqual(await complete(['darch', '--root', '/x', 'boot', 'tr']), ['trace', 'try']);
  assert.deepEqual(await complete(['darch', 'boot', 'try']), ['try']);
  assert.deepEqual(await complete(['darch', 'disk', 'kernel-']), ['kernel-args']);
  assert.ok((await complete(['darch', 'boot', 'try', '--'])).includes('--tries'));
  assert.ok((await complete(['darch', 'boot', 'try', '--'])).includes('--json'), 'global options too');
  // Every top-level command `darch --help` lists is offered.
  const help = (await darchOk(['--help'])).stdout;
  const listed = [...help.split('Commands:')[1]!.matchAll(/^ {2}(\S+)/gm)].map((m) => m[1]).filter((c) => c !== 'help');
  assert.deepEqual((await complete(['darch', ''])).sort(), [...listed].sort());
});

test('zsh: the script passes zsh -n and its _darch offers subcommands and options', async (t) => {
  const file = await script(t, 'zsh');
  await run('zsh', ['-n', file]);
  const offer = (words: string[]) => zshOffer(file, words);
  assert.ok((await offer(['darch', 'dis'])).includes('disk'));
  assert.ok((await offer(['darch', 'disk', 'a'])).includes('add'));
  assert.ok((await offer(['darch', '--root', '/x', 'boot', 'try', '--t'])).includes('--tries'));
});

test('fish: the script passes fish -n and completes with descriptions', async (t) => {
  const file = await script(t, 'fish');
  await run('fish', ['-n', file]);
  const complete = (line: string) => fishComplete(file, line);
  assert.match(await complete('darch bo'), /^boot\tboot menu and boot state/m);
  assert.match(await complete('darch boot tr'), /^try\t/m);
  assert.match(await complete('darch boot try --t'), /^--tries\t/m);
  assert.doesNotMatch(await complete('darch boot tr'), /^add\t/m, 'only what belongs to `boot`');
});

test('staged and image names: each shell asks darch for them where a command takes one', async (t) => {
  // A machine with two staged images and one image in the store; the scripts run `darch` from PATH.
  const root = await tempDir(t);
  await fakeStaged(root, ['os/desktop:1']);
  await fakeStaged(root, ['os/desktop:2', 'os/desktop:latest']);
  await darchOk(['demo', '--image-only'], { root });
  const bin = path.join(root, 'bin');
  await mkdir(bin);
  await symlink(DARCH_BIN, path.join(bin, 'darch'));
  const env = { ...process.env, PATH: `${bin}:${process.env.PATH}`, DARCH_ROOT: root };
  const files = { bash: await script(t, 'bash'), zsh: await script(t, 'zsh'), fish: await script(t, 'fish') };

  const bash = (words: string[]) => bashComplete(files.bash, words, { env, cwd: root });
  assert.deepEqual((await bash(['darch', 'boot', 'try', 'os/'])).sort(), ['os/desktop:1', 'os/desktop:2', 'os/desktop:latest']);
  assert.ok((await bash(['darch', 'stage', 'remove', ''])).includes('os/desktop:2'), 'staged names for stage remove');
  assert.deepEqual(await bash(['darch', 'images', 'inspect', 'exa']), ['example/busybox:latest'], 'image names where an image is taken');
  assert.ok(!(await bash(['darch', 'images', 'inspect', 'os/'])).some((w) => w.startsWith('os/desktop')), 'not staged names there');

  assert.ok((await zshOffer(files.zsh, ['darch', 'boot', 'try', ''], { env, cwd: root })).includes('os/desktop:2'));

  assert.match(await fishComplete(files.fish, 'darch boot try os/desktop:', { env, cwd: root }), /^os\/desktop:latest$/m);
});

test('an unknown shell is a usage error', async () => {
  const r = await darch(['completion', 'tcsh']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /error: no completion for "tcsh": darch has bash, zsh, fish/);
});

test('man pages: one per command group and darch(1), built with darch, rendering without groff warnings', async () => {
  const dir = path.join(REPO, 'dist/man');
  const pages = (await readdir(dir)).sort();
  const help = (await darchOk(['--help'])).stdout;
  const groups = [...help.split('Commands:')[1]!.matchAll(/^ {2}(\S+)/gm)].map((m) => m[1]).filter((c) => c !== 'help');
  assert.deepEqual(pages, ['darch.1', ...groups.map((g) => `darch-${g}.1`)].sort());
  for (const p of pages) {
    const r = await run('man', ['--warnings', '-l', path.join(dir, p)], { env: { ...process.env, MANWIDTH: '80', MANPAGER: 'cat', PAGER: 'cat' } });
    assert.equal(r.stderr, '', `${p}: groff warnings`);
    await run('lexgrog', [path.join(dir, p)]);
  }
  const disk = (await darchOk(['man', 'disk'])).stdout;
  assert.equal(disk, await readFile(path.join(dir, 'darch-disk.1'), 'utf8'));
  assert.match(disk, /^\.B darch\ndisk add \[options\] <disk> <staged\.\.\.>$/m);
  const r = await darch(['man', 'nosuch']);
  assert.equal(r.code, 2);
});

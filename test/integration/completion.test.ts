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

test("bash: completes top-level commands, nested ones after global options, and a command's options", async (t) => {
  const file = await script(t, 'bash');
  await run('bash', ['-n', file]);
  const complete = async (words: string[]) => {
    const r = await run('bash', [
      '-c',
      `source "$0"; COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _darch; printf '%s\\n' "\${COMPREPLY[@]}"`,
      file,
    ]);
    return r.stdout.trim().split('\n');
  };
  assert.deepEqual(await complete(['darch', 'st']), ['status', 'stage']);
  assert.deepEqual(await complete(['darch', '--root', '/x', 'boot', 'tr']), ['try']);
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
  const offer = async (words: string[]) =>
    (
      await run('zsh', [
        '-c',
        `source "$1"; compadd() { shift; print -rl -- "$@"; }; _files() { print FILES; }; words=(${words.map((w) => `'${w}'`).join(' ')}); CURRENT=${words.length}; _darch`,
        'zsh',
        file,
      ])
    ).stdout
      .trim()
      .split('\n');
  assert.ok((await offer(['darch', 'dis'])).includes('disk'));
  assert.ok((await offer(['darch', 'disk', 'a'])).includes('add'));
  assert.ok((await offer(['darch', '--root', '/x', 'boot', 'try', '--t'])).includes('--tries'));
});

test('fish: the script passes fish -n and completes with descriptions', async (t) => {
  const file = await script(t, 'fish');
  await run('fish', ['-n', file]);
  const complete = async (line: string) => (await run('fish', ['-c', `source $argv[1]; complete -C "${line}"`, file])).stdout;
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

  const bash = async (words: string[]) =>
    (
      await run(
        'bash',
        [
          '-c',
          `source "$0"; COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _darch; printf '%s\\n' "\${COMPREPLY[@]}"`,
          files.bash,
        ],
        { env, cwd: root },
      )
    ).stdout
      .trim()
      .split('\n');
  assert.deepEqual((await bash(['darch', 'boot', 'try', 'os/'])).sort(), ['os/desktop:1', 'os/desktop:2', 'os/desktop:latest']);
  assert.ok((await bash(['darch', 'stage', 'remove', ''])).includes('os/desktop:2'), 'staged names for stage remove');
  assert.deepEqual(await bash(['darch', 'images', 'inspect', 'exa']), ['example/busybox:latest'], 'image names where an image is taken');
  assert.ok(!(await bash(['darch', 'images', 'inspect', 'os/'])).some((w) => w.startsWith('os/desktop')), 'not staged names there');

  const zsh = (
    await run(
      'zsh',
      ['-c', `source "$1"; compadd() { shift; print -rl -- "$@"; }; _files() { print FILES; }; words=(darch boot try ''); CURRENT=4; _darch`, 'zsh', files.zsh],
      { env, cwd: root },
    )
  ).stdout;
  assert.match(zsh, /^os\/desktop:2$/m);

  const fish = (await run('fish', ['-c', 'source $argv[1]; complete -C "darch boot try os/desktop:"', files.fish], { env, cwd: root })).stdout;
  assert.match(fish, /^os\/desktop:latest$/m);
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

import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { Command } from 'commander';
import { COMMANDS, commandIn } from '../../src/cli/table.js';

test('commandIn finds the command argv runs, past global options and their values', () => {
  assert.equal(commandIn(['stage', 'list']), 'stage');
  assert.equal(commandIn(['--root', '/tmp/r', '-q', '--json', 'boot', 'status']), 'boot');
  assert.equal(commandIn(['--root=/tmp/r', '--color', 'never', '-vv', 'images']), 'images');
  assert.equal(commandIn(['help', 'disk']), 'disk');
  assert.equal(commandIn(['--debug', 'help']), undefined);
  assert.equal(commandIn(['--version']), undefined);
  assert.equal(commandIn([]), undefined);
});

test('every command in the table loads, defines its command without renaming it, and none imports main.ts', async () => {
  const ctx = () => Promise.reject(new Error('not run'));
  for (const entry of COMMANDS) {
    const cmd = new Command(entry.name).description(entry.description);
    (await entry.load())(cmd, ctx, { tree: () => Promise.reject(new Error('not run')) });
    assert.equal(cmd.name(), entry.name);
  }
  for (const f of [
    'boot-trial',
    'boot',
    'build',
    'completion',
    'demo',
    'disk',
    'doctor',
    'hooks',
    'images',
    'initramfs',
    'man',
    'recipes',
    'registry',
    'stage',
    'status',
    'vm',
  ]) {
    const src = await readFile(new URL(`../../src/cli/commands/${f}.ts`, import.meta.url), 'utf8');
    assert.doesNotMatch(src, /from '\.\.\/main\.js'/, `${f}.ts imports main.ts (which runs the CLI)`);
  }
});

/** Ctrl-C during a build: darch stops, removes its working container, kills the recipe's processes, tags nothing. */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { DARCH_BIN } from '../helpers/darch.js';
import { buildahContainers, importBusybox, refNames, writeTree } from '../helpers/recipes.js';

function running(marker: string): string[] {
  return execFileSync('ps', ['-eo', 'pid,args'], { encoding: 'utf8' })
    .split('\n')
    .filter((l) => l.includes(marker));
}

for (const format of ['darch', 'containerfile'] as const) {
  test(`SIGINT stops a ${format} build and leaves no working containers`, async () => {
    const work = await mkdtemp(path.join(os.tmpdir(), 'darch-build-int-'));
    after(() => rm(work, { recursive: true, force: true }));
    const root = path.join(work, 'root');
    await importBusybox(root, work, 'base/busybox:latest');
    const secs = format === 'darch' ? '417' : '418'; // a marker to find stray processes
    const dir = path.join(work, 'recipes');
    await writeTree(dir, {
      slow:
        format === 'darch'
          ? { 'config.json': '{"inherits":"external:base/busybox"}', script: `#!/bin/sh\necho started\nsleep ${secs}\ntouch /never\n` }
          : { Containerfile: `FROM base/busybox\nRUN echo started && sleep ${secs} && touch /never\n` },
    });
    const refsBefore = await refNames(root);
    const child = spawn(DARCH_BIN, ['--root', root, 'build', '-d', dir, 'slow'], {
      env: { ...process.env, NO_COLOR: '1', DARCH_LOCK_TIMEOUT: '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    const started = new Promise<void>((resolve) => {
      child.stderr.on('data', (b: Buffer) => {
        stderr += b.toString();
        if (/^\[slow\] started$/m.test(stderr)) resolve();
      });
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    await started;
    // "started" is printed just before sleep execs; under load that can take a moment.
    for (let i = 0; i < 100 && running(`sleep ${secs}`).length === 0; i++) await new Promise((r) => setTimeout(r, 100));
    assert.equal(running(`sleep ${secs}`).length > 0, true, 'the recipe is running');
    child.kill('SIGINT');
    const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
    clearTimeout(timer);
    assert.equal(code, 130, stderr);
    assert.match(stderr, /error: interrupted/);
    assert.deepEqual(buildahContainers(root), [], 'no working containers');
    assert.deepEqual(running(`sleep ${secs}`), [], 'no recipe process outlives the build');
    assert.deepEqual(await refNames(root), refsBefore, 'nothing tagged');
  });
}

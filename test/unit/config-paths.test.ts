import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { loadConfig } from '../../src/lib/config.js';
import { DarchError } from '../../src/lib/errors.js';
import { resolvePaths } from '../../src/lib/paths.js';

test('--root relocates every path under it', () => {
  const p = resolvePaths({ root: '/tmp/r', env: {} });
  assert.equal(p.mode, 'system');
  for (const v of [p.configFile, p.imagesDir, p.stageDir, p.tmpDir, p.runDir, p.cacheDir]) assert.ok(v.startsWith('/tmp/r/'), v);
  assert.equal(p.imagesDir, '/tmp/r/var/lib/darch/images');
});

test('a normal user gets XDG directories (the rootless layout)', () => {
  const p = resolvePaths({ uid: 1000, env: { HOME: '/home/u', XDG_DATA_HOME: '/home/u/data', XDG_RUNTIME_DIR: '/run/user/1000' } });
  assert.equal(p.mode, 'user');
  assert.equal(p.imagesDir, '/home/u/data/darch/images');
  assert.equal(p.configFile, '/home/u/.config/darch/config.toml');
  assert.equal(p.runDir, '/run/user/1000/darch');
  assert.equal(resolvePaths({ uid: 0, env: {} }).imagesDir, '/var/lib/darch/images');
});

test('config: defaults when absent, unknown keys named with the file', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'darch-cfg-'));
  const file = path.join(dir, 'config.toml');
  assert.equal((await loadConfig(file)).stage.keep, 3);
  await writeFile(file, '[stage]\nkeep = 5\n');
  assert.equal((await loadConfig(file)).stage.keep, 5);
  await writeFile(file, '[stage]\nkeeep = 5\n');
  await assert.rejects(loadConfig(file), (e: unknown) => e instanceof DarchError && e.message.includes(file) && e.message.includes('stage.keeep'));
  await writeFile(file, '[stage\n');
  await assert.rejects(loadConfig(file), (e: unknown) => e instanceof DarchError && e.code === 'E_CONFIG');
  await writeFile(file, '[store]\ncompression = "lz4"\n');
  await assert.rejects(loadConfig(file), (e: unknown) => e instanceof DarchError && e.message.includes('store.compression'));
});

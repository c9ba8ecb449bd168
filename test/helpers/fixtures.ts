/** Small root file systems and archives made on the spot, so tests need no network. */
import { execFile } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';

export const sh = promisify(execFile);

/** A directory tree with a few files, tarred (optionally compressed with gzip, zstd or xz). */
export async function makeRootfsTar(
  dir: string,
  name: string,
  opts: { compress?: 'gzip' | 'zstd' | 'xz'; randomBytes?: number; marker?: string } = {},
): Promise<string> {
  const tree = path.join(dir, `${name}.tree`);
  await mkdir(path.join(tree, 'etc'), { recursive: true });
  await mkdir(path.join(tree, 'bin'), { recursive: true });
  await writeFile(path.join(tree, 'etc', 'os-release'), `ID=test\nNAME="${opts.marker ?? name}"\n`);
  await writeFile(path.join(tree, 'bin', 'hello'), '#!/bin/sh\necho hello\n', { mode: 0o755 });
  if (opts.randomBytes) await sh('sh', ['-c', `head -c ${opts.randomBytes} /dev/urandom > "${path.join(tree, 'bin', 'blob')}"`]);
  const tarPath = path.join(dir, `${name}.tar`);
  await sh('tar', ['-C', tree, '--owner=0', '--group=0', '-cf', tarPath, '.']);
  if (!opts.compress) return tarPath;
  const tool = { gzip: ['gzip', '.gz'], zstd: ['zstd', '.zst'], xz: ['xz', '.xz'] }[opts.compress];
  await sh(tool[0]!, opts.compress === 'zstd' ? ['-q', '--rm', '-f', tarPath] : ['-f', tarPath]);
  return tarPath + tool[1];
}

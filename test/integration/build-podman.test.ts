/**
 * The podman backend's own logic (a Darch recipe turned into a Containerfile with the
 * recipes tree bind-mounted at /recipes; `podman push oci:`) run against real buildah
 * behind a `podman` shim: podman is not installed on these machines and `podman run`
 * fails here, while `podman build` is buildah's build underneath (same flags).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { darchOk } from '../helpers/darch.js';
import { importBusybox, layerEntries, writeTree } from '../helpers/recipes.js';

test('--builder podman builds a Darch recipe and a Containerfile child (podman shim over buildah)', async () => {
  const work = await mkdtemp(path.join(os.tmpdir(), 'darch-build-podman-'));
  after(() => rm(work, { recursive: true, force: true }));
  const root = path.join(work, 'root');
  await importBusybox(root, work, 'base/busybox:latest');
  const bin = path.join(work, 'bin');
  await mkdir(bin);
  const storage = `--root ${work}/podman-storage --runroot ${work}/podman-run`;
  await writeFile(path.join(bin, 'podman'), `#!/bin/sh\ncase "$1" in\n  info) echo 4.3.1-shim ;;\n  *) exec buildah ${storage} "$@" ;;\nesac\n`);
  await chmod(path.join(bin, 'podman'), 0o755);
  const env = { PATH: `${bin}:${process.env.PATH}` };
  const dir = path.join(work, 'recipes');
  await writeTree(dir, {
    base: {
      'config.json': '{"inherits":"external:base/busybox"}',
      script: '#!/bin/sh\nset -e\necho "podman $DARCH_RECIPE $FOO" > /from-script\ncat data >> /from-script\n',
      data: 'recipe data\n',
    },
    top: { Containerfile: 'FROM darch:base\nRUN cat /from-script > /from-top\n' },
  });
  const doctor = (await darchOk(['--json', 'doctor'], { root, env })).json<{ checks: Array<{ name: string; ok: boolean }> }>();
  assert.equal(doctor.checks.find((c) => c.name === 'builder: podman')?.ok, true);
  const r = await darchOk(['--json', 'build', '--builder', 'podman', '-d', dir, '-e', 'FOO=bar', 'top'], { root, env });
  assert.deepEqual(r.json<{ builder: string; images: Array<{ status: string }> }>().builder, 'podman');
  type Inspect = { layers: Array<{ digest: string }> };
  const base = (await darchOk(['--json', 'images', 'inspect', 'base'], { root })).json<Inspect>();
  const top = (await darchOk(['--json', 'images', 'inspect', 'top'], { root })).json<Inspect>();
  assert.equal(base.layers.length, 2, 'one new layer for the Darch recipe');
  assert.deepEqual(
    top.layers.slice(0, -1).map((l) => l.digest),
    base.layers.map((l) => l.digest),
  );
  const entries = layerEntries(root, base.layers[1]!.digest);
  assert.ok(entries.includes('from-script'), entries.join(','));
  assert.ok(!entries.some((e) => e.startsWith('recipes/')), `the bind mount is not in the layer: ${entries.join(',')}`);
  const blob = path.join(root, 'var/lib/darch/images/blobs/sha256', base.layers[1]!.digest.slice(7));
  assert.equal(execFileSync('tar', ['-xOf', blob, 'from-script'], { encoding: 'utf8' }), 'podman base bar\nrecipe data\n');
  const again = await darchOk(['--json', 'build', '--builder', 'podman', '-d', dir, '-e', 'FOO=bar', 'top'], { root, env });
  assert.deepEqual(
    again.json<{ images: Array<{ status: string }> }>().images.map((i) => i.status),
    ['cached', 'cached'],
  );
});

import assert from 'node:assert/strict';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { debianMirror } from '../../src/lib/apt.js';

test("the Debian mirror comes from apt's own sources, deb822 or one-line", async () => {
  const a = await mkdtemp(path.join(os.tmpdir(), 'darch-apt-'));
  await mkdir(path.join(a, 'sources.list.d'));
  assert.equal(await debianMirror(a), undefined);
  await writeFile(
    path.join(a, 'sources.list.d', 'debian.sources'),
    'Types: deb\n# a comment\nURIs: http://mirror.test/debian\nSuites: bookworm\n\nTypes: deb\nURIs: http://mirror.test/debian-security\n',
  );
  assert.equal(await debianMirror(a), 'http://mirror.test/debian');
  await writeFile(path.join(a, 'sources.list'), '# old style\ndeb [arch=amd64] http://other.test/debian bookworm main\n');
  assert.equal(await debianMirror(a), 'http://other.test/debian');
});

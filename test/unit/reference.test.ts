import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseRef, normalizeRef, splitRefName } from '../../src/oci/reference.js';
import { DarchError } from '../../src/lib/errors.js';

test('names without a tag get :latest; domains are kept as written', () => {
  assert.equal(normalizeRef('example/busybox'), 'example/busybox:latest');
  assert.equal(normalizeRef('127.0.0.1:5000/foo/bar:1.2'), '127.0.0.1:5000/foo/bar:1.2');
  assert.deepEqual(parseRef('localhost/x:y'), { domain: 'localhost', path: 'x', tag: 'y' });
  assert.deepEqual(parseRef('library/debian:12'), { path: 'library/debian', tag: '12' });
  const d = 'sha256:' + 'a'.repeat(64);
  assert.equal(parseRef(`foo@${d}`).digest, d);
});

test('bad references are usage errors with a hint', () => {
  for (const bad of ['', 'Foo:1', 'foo:', 'foo:bad tag', 'foo::1', '-foo', 'foo@sha256:123', 'a/'.repeat(200) + 'b']) {
    assert.throws(
      () => parseRef(bad),
      (e: unknown) => e instanceof DarchError && e.code === 'E_BAD_REFERENCE' && e.exitCode === 2 && Boolean(e.hint),
      `expected ${JSON.stringify(bad)} to be rejected`,
    );
  }
});

test('stored ref names split back into repository and tag', () => {
  assert.deepEqual(splitRefName('127.0.0.1:5000/a/b:t'), { repository: '127.0.0.1:5000/a/b', tag: 't' });
  assert.deepEqual(splitRefName('base'), { repository: 'base', tag: '' });
});

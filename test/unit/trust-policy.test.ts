/** src/trust/policy.ts: which scope decides, and which signed names an image accepts (containers/image's rules). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { identityMatches, normalizeDockerRef, type Policy, requirementsFor, scopesFor } from '../../src/trust/policy.js';
import { makePayload, parsePayload } from '../../src/trust/payload.js';

const img = { host: 'reg.example.com:5000', repo: 'os/desktop', tag: 'stable' };

describe('signature policy', () => {
  it('tries scopes from the full reference up to wildcard domains, port dropped', () => {
    assert.deepEqual(scopesFor(img), [
      'reg.example.com:5000/os/desktop:stable',
      'reg.example.com:5000/os/desktop',
      'reg.example.com:5000/os',
      'reg.example.com:5000',
      '*.example.com',
      '*.com',
    ]);
    assert.equal(scopesFor({ ...img, digest: `sha256:${'a'.repeat(64)}` })[0], `reg.example.com:5000/os/desktop@sha256:${'a'.repeat(64)}`);
  });

  it('the most specific scope wins, then the transport default, then the global default', () => {
    const p: Policy = {
      default: [{ type: 'reject' }],
      transports: {
        docker: {
          'reg.example.com:5000/os': [{ type: 'insecureAcceptAnything' }],
          '*.example.com': [{ type: 'reject' }],
        },
      },
    };
    assert.equal(requirementsFor(p, img).scope, 'docker reg.example.com:5000/os');
    assert.equal(requirementsFor(p, { ...img, repo: 'apps/x' }).scope, 'docker *.example.com');
    assert.equal(requirementsFor(p, { host: 'other.org', repo: 'x' }).scope, 'default');
    assert.equal(requirementsFor({ ...p, transports: { docker: { '': [{ type: 'insecureAcceptAnything' }] } } }, img).scope, 'docker ""');
  });

  it('signedIdentity: a tag pull needs that tag signed, a digest pull the repository; the other matchers', () => {
    const exact = 'reg.example.com:5000/os/desktop:stable';
    assert.ok(identityMatches(undefined, img, exact));
    assert.ok(!identityMatches(undefined, img, 'reg.example.com:5000/os/desktop:old'), 'another tag');
    assert.ok(!identityMatches(undefined, img, 'reg.example.com:5000/os/desktop'), 'a repository only (cosign) is not enough by default');
    const byDigest = { ...img, tag: undefined, digest: `sha256:${'b'.repeat(64)}` };
    assert.ok(identityMatches(undefined, byDigest, 'reg.example.com:5000/os/desktop:anything'));
    assert.ok(identityMatches({ type: 'matchRepository' }, img, 'reg.example.com:5000/os/desktop'));
    assert.ok(!identityMatches({ type: 'matchRepository' }, img, 'reg.example.com:5000/os/other:stable'));
    assert.ok(identityMatches({ type: 'exactRepository', dockerRepository: 'build.example.com/os/desktop' }, img, 'build.example.com/os/desktop:1'));
    assert.ok(
      identityMatches(
        { type: 'remapIdentity', prefix: 'reg.example.com:5000/os', signedPrefix: 'build.example.com/os' },
        img,
        'build.example.com/os/desktop:stable',
      ),
    );
    assert.equal(normalizeDockerRef('busybox:1'), 'docker.io/library/busybox:1');
    assert.equal(normalizeDockerRef('localhost:5000/x:1'), 'localhost:5000/x:1');
  });

  it('payloads: what darch writes parses back; other JSON is refused', () => {
    const d = `sha256:${'c'.repeat(64)}`;
    const bytes = makePayload('reg.example.com:5000/os/desktop:stable', d, 'darch 0.1.0', new Date(1_700_000_000_000));
    assert.equal(
      bytes.toString(),
      `{"critical":{"identity":{"docker-reference":"reg.example.com:5000/os/desktop:stable"},"image":{"docker-manifest-digest":"${d}"},"type":"cosign container image signature"},"optional":{"creator":"darch 0.1.0","timestamp":1700000000}}`,
    );
    assert.deepEqual(parsePayload(bytes), { reference: 'reg.example.com:5000/os/desktop:stable', digest: d, creator: 'darch 0.1.0', timestamp: 1700000000 });
    // cosign's own form: a repository, "optional": null.
    assert.equal(
      parsePayload(
        Buffer.from(
          `{"critical":{"identity":{"docker-reference":"r/x"},"image":{"docker-manifest-digest":"${d}"},"type":"cosign container image signature"},"optional":null}`,
        ),
      ).reference,
      'r/x',
    );
    for (const bad of [
      '{}',
      '[]',
      'not json',
      `{"critical":{"identity":{"docker-reference":"r/x"},"image":{"docker-manifest-digest":"${d}"},"type":"x"},"optional":null}`,
    ]) {
      assert.throws(() => parsePayload(Buffer.from(bad)), /not a simple-signing payload/);
    }
  });
});

/**
 * Hostile or broken trust inputs each get their own clear error: key files that are not
 * PEM, hold the wrong kind of block or a corrupt encrypted key, and detached signature
 * files (`FILE.sig`) that are not JSON, not darch's shape or not base64.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DarchError } from '../../src/lib/errors.js';
import { readDetached } from '../../src/trust/detached.js';
import { generateKeyPair, loadPrivateKey, loadPublicKey } from '../../src/trust/keys.js';

function rejectsWith(code: string, message: RegExp) {
  return (err: unknown) => {
    assert.ok(err instanceof DarchError, String(err));
    assert.equal(err.code, code);
    assert.match(err.message, message);
    return true;
  };
}

describe('key files', () => {
  let pair: { privatePem: string; publicPem: string };
  before(async () => {
    const k = await generateKeyPair('pw');
    pair = { privatePem: k.privatePem, publicPem: k.publicPem };
  });

  it('a file with no PEM block, for either key, names the file', async () => {
    await assert.rejects(loadPrivateKey('just some text\n', 'pw', 'x.key'), rejectsWith('E_KEY', /x\.key holds no PEM block/));
    assert.throws(() => loadPublicKey('{"not":"pem"}', 'x.pub'), rejectsWith('E_KEY', /x\.pub holds no PEM block/));
  });

  it('the public key given where the private one is wanted, and the reverse', async () => {
    await assert.rejects(loadPrivateKey(pair.publicPem, 'pw', 'a.pub'), rejectsWith('E_KEY', /a\.pub is a PUBLIC KEY, not an encrypted sigstore private key/));
    assert.throws(() => loadPublicKey(pair.privatePem, 'a.key'), rejectsWith('E_KEY', /a\.key is a .*, not a PUBLIC KEY/));
  });

  it('an encrypted key whose body is not the JSON cosign writes, or whose ciphertext was changed', async () => {
    const garbage = `-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n${Buffer.from('{"kdf":1}').toString('base64')}\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n`;
    await assert.rejects(loadPrivateKey(garbage, 'pw', 'g.key'), rejectsWith('E_KEY', /g\.key: the encrypted key is malformed/));
    // One byte of the ciphertext flipped: secretbox's tag fails, which is all a wrong passphrase looks like too.
    const body = pair.privatePem
      .split('\n')
      .filter((l) => l && !l.startsWith('-----'))
      .join('');
    const doc = JSON.parse(Buffer.from(body, 'base64').toString('utf8'));
    const ct = Buffer.from(doc.ciphertext, 'base64');
    ct[5] = ct[5]! ^ 0x01;
    doc.ciphertext = ct.toString('base64');
    const tampered = `-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n${Buffer.from(JSON.stringify(doc)).toString('base64')}\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n`;
    await assert.rejects(loadPrivateKey(tampered, 'pw', 't.key'), rejectsWith('E_KEY_PASSPHRASE', /wrong passphrase for t\.key/));
  });
});

describe('detached signature files (FILE.sig)', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'darch-sig-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('none is no signatures; each malformed one is refused by name', async () => {
    assert.deepEqual(await readDetached(path.join(dir, 'absent.bundle')), []);
    const cases: Array<[string, string]> = [
      ['not-json', '{"schemaVersion": 1, "signatures": ['],
      ['wrong-version', JSON.stringify({ schemaVersion: 2, signatures: [] })],
      ['extra-key', JSON.stringify({ schemaVersion: 1, signatures: [], extra: true })],
      ['not-base64', JSON.stringify({ schemaVersion: 1, signatures: [{ payload: '%%%', signature: 'AAAA' }] })],
      ['not-a-list', JSON.stringify({ schemaVersion: 1, signatures: { payload: 'AAAA', signature: 'AAAA' } })],
    ];
    for (const [name, text] of cases) {
      const file = path.join(dir, `${name}.bundle`);
      await writeFile(`${file}.sig`, text);
      await assert.rejects(readDetached(file), rejectsWith('E_UNTRUSTED', new RegExp(`${name}\\.bundle\\.sig is not a darch signature file`)), name);
    }
  });
});

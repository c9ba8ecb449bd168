/**
 * Signatures that the containers tools and darch both accept, proven with a real skopeo:
 * Debian trixie's (1.18, in a chroot made by debootstrap from Debian's archive into the
 * test cache), because bookworm's is built with sigstore disabled. Against a docker-registry
 * on 127.0.0.1:
 *
 * - darch signs; skopeo copies the image under a policy.json naming darch's public key
 *   (sigstore attachments on through registries.d), and refuses it under another key;
 * - skopeo signs with a key darch made; darch pulls under the same policy and accepts it;
 * - a key skopeo made (`generate-sigstore-key`) signs with darch.
 *
 * The first run debootstraps trixie (a few minutes; cached in /var/cache/darch-test).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { trixieSkopeoRoot } from '../helpers/bootimage.js';
import { darch, darchOk, tempDir } from '../helpers/darch.js';
import { tarStreamLayer, writeOciLayout } from '../helpers/oci-layout.js';
import { startRegistry, type RegistryServer } from '../helpers/registry.js';

const sh = promisify(execFile);

describe('signatures the containers tools accept: skopeo (trixie) and darch, both ways', () => {
  let chroot: string;
  /** The test's directory inside the chroot, as the chroot sees it and as the host does. */
  let inside: string;
  let host: string;
  let reg: RegistryServer;
  let work: string;
  const cleanups: Array<() => Promise<void> | void> = [];
  const t = { after: (fn: () => Promise<void> | void) => void cleanups.push(fn) };

  const skopeo = (args: string[]) => sh('chroot', [chroot, 'skopeo', ...args], { timeout: 120_000 }).catch((e: { code?: number; stderr?: string }) => e);

  /** policy.json requiring `pub` (a path inside the chroot, or under --root for darch) for the test repositories. */
  const policy = (pub: string) =>
    JSON.stringify({
      default: [{ type: 'reject' }],
      transports: {
        docker: { [`${reg.host}/interop`]: [{ type: 'sigstoreSigned', keyPath: pub }] },
        oci: { '': [{ type: 'insecureAcceptAnything' }] },
        dir: { '': [{ type: 'insecureAcceptAnything' }] },
      },
    });

  before(async () => {
    chroot = await trixieSkopeoRoot();
    inside = `/tmp/darch-interop-${randomBytes(4).toString('hex')}`;
    host = path.join(chroot, inside);
    await mkdir(host, { recursive: true });
    cleanups.push(() => rm(host, { recursive: true, force: true }));
    reg = await startRegistry();
    work = await tempDir(t);
    // Keys: darch's (with a passphrase) and another one.
    await writeFile(path.join(host, 'pass'), 'interop pass\n');
    await darchOk(['keygen', path.join(host, 'darch'), '--passphrase-file', path.join(host, 'pass')]);
    await darchOk(['keygen', path.join(host, 'other'), '--passphrase-file', '/dev/null']);
    await mkdir(path.join(host, 'registries.d'));
    await writeFile(path.join(host, 'registries.d', 'darch.yaml'), `docker:\n  ${reg.host}:\n    use-sigstore-attachments: true\n`);
    await writeFile(path.join(host, 'policy-darch.json'), policy(`${inside}/darch.pub`));
    await writeFile(path.join(host, 'policy-other.json'), policy(`${inside}/other.pub`));
    await writeFile(path.join(host, 'policy-push.json'), JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] }));
    // An image as an OCI layout, for darch to push and for skopeo to copy.
    const l = path.join(work, 'app.tar');
    await tarStreamLayer(l, [
      { name: 'etc/', type: 'directory' },
      { name: 'etc/app', content: 'interop\n' },
    ]);
    await writeOciLayout(path.join(host, 'layout'), 'app:1', [{ tar: l, compression: 'gzip' }]);
  });
  after(async () => {
    await reg?.stop();
    for (const fn of cleanups) await fn();
  });

  /** A machine whose policy.json requires darch's key for the interop repositories. */
  async function machine(): Promise<string> {
    const root = await tempDir(t);
    await mkdir(path.join(root, 'etc/darch/keys'), { recursive: true });
    await writeFile(path.join(root, 'etc/darch/config.toml'), `[registry]\ninsecure = ["${reg.host}"]\n`);
    await cp(path.join(host, 'darch.pub'), path.join(root, 'etc/darch/keys/darch.pub'));
    await writeFile(path.join(root, 'etc/darch/policy.json'), policy('/etc/darch/keys/darch.pub'));
    return root;
  }

  it('darch signs; skopeo accepts it under the policy naming darch’s key, and refuses it under another key', async () => {
    const publisher = await tempDir(t);
    await darchOk(['images', 'import', `oci:${path.join(host, 'layout')}:app:1`, 'app:1'], { root: publisher });
    const ref = `${reg.host}/interop/by-darch:1`;
    await darchOk(['images', 'push', '--tls-verify=false', 'app:1', ref], { root: publisher });
    await darchOk(['sign', '--tls-verify=false', ref, '--key', path.join(host, 'darch.key'), '--passphrase-file', path.join(host, 'pass')]);
    const common = ['--registries.d', `${inside}/registries.d`];
    const ok = await skopeo([
      '--policy',
      `${inside}/policy-darch.json`,
      ...common,
      'copy',
      '--src-tls-verify=false',
      `docker://${ref}`,
      `dir:${inside}/out-ok`,
    ]);
    assert.equal((ok as { code?: number }).code ?? 0, 0, String((ok as { stderr?: string }).stderr));
    const bad = await skopeo([
      '--policy',
      `${inside}/policy-other.json`,
      ...common,
      'copy',
      '--src-tls-verify=false',
      `docker://${ref}`,
      `dir:${inside}/out-bad`,
    ]);
    assert.notEqual((bad as { code?: number }).code ?? 0, 0, 'skopeo refuses it under another key');
    assert.match(String((bad as { stderr?: string }).stderr), /signature verification failed|invalid signature/);
  });

  it('skopeo signs with darch’s key; darch accepts it under the same policy; a key skopeo made signs with darch', async () => {
    const ref = `${reg.host}/interop/by-skopeo:1`;
    const signed = await skopeo([
      '--policy',
      `${inside}/policy-push.json`,
      '--registries.d',
      `${inside}/registries.d`,
      'copy',
      '--dest-tls-verify=false',
      '--sign-by-sigstore-private-key',
      `${inside}/darch.key`,
      '--sign-passphrase-file',
      `${inside}/pass`,
      `oci:${inside}/layout:app:1`,
      `docker://${ref}`,
    ]);
    assert.equal((signed as { code?: number }).code ?? 0, 0, String((signed as { stderr?: string }).stderr));
    const root = await machine();
    const pulled = (await darchOk(['--json', 'images', 'pull', ref], { root })).json();
    assert.ok(
      pulled.trust.acceptedBy.some((s: string) => s.startsWith('/etc/darch/keys/darch.pub')),
      JSON.stringify(pulled.trust),
    );
    // Unsigned in the same repository: refused by darch as by skopeo.
    const publisher = await tempDir(t);
    await darchOk(['images', 'import', `oci:${path.join(host, 'layout')}:app:1`, 'app:1'], { root: publisher });
    await darchOk(['images', 'push', '--tls-verify=false', 'app:1', `${reg.host}/interop/unsigned:1`], { root: publisher });
    const refused = await darch(['images', 'pull', `${reg.host}/interop/unsigned:1`], { root: await machine() });
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /it has no signatures; expected one by \/etc\/darch\/keys\/darch\.pub/);

    // A key made by skopeo (cosign's older key format) signs with darch, and skopeo accepts the result.
    await writeFile(path.join(host, 'skopeo-pass'), 'skopeo pass\n');
    const gen = await skopeo(['generate-sigstore-key', '--output-prefix', `${inside}/sk`, '--passphrase-file', `${inside}/skopeo-pass`]);
    assert.equal((gen as { code?: number }).code ?? 0, 0, String((gen as { stderr?: string }).stderr));
    assert.match(await readFile(path.join(host, 'sk.private'), 'utf8'), /^-----BEGIN ENCRYPTED (COSIGN|SIGSTORE) PRIVATE KEY-----/);
    await darchOk([
      'sign',
      '--tls-verify=false',
      `${reg.host}/interop/unsigned:1`,
      '--key',
      path.join(host, 'sk.private'),
      '--passphrase-file',
      path.join(host, 'skopeo-pass'),
    ]);
    await writeFile(path.join(host, 'policy-sk.json'), policy(`${inside}/sk.pub`));
    const accepted = await skopeo([
      '--policy',
      `${inside}/policy-sk.json`,
      '--registries.d',
      `${inside}/registries.d`,
      'copy',
      '--src-tls-verify=false',
      `docker://${reg.host}/interop/unsigned:1`,
      `dir:${inside}/out-sk`,
    ]);
    assert.equal((accepted as { code?: number }).code ?? 0, 0, String((accepted as { stderr?: string }).stderr));
  });
});

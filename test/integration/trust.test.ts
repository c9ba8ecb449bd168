/**
 * Signed images (issue 15) against a real registry (Debian's docker-registry on 127.0.0.1):
 * `darch keygen` keys that an independent implementation opens (Python's hashlib.scrypt and
 * PyNaCl, Debian's python3-nacl) and keys made by it that darch signs with; `darch sign`
 * signatures stored where skopeo and podman look (the `sha256-<hex>.sig` tag, an OCI
 * manifest) and checked by openssl; and the policy (policy.json) that pull and the update
 * agent enforce: the right key accepted, another key, no signature, a signature for other
 * content and a tampered layer refused, with nothing left in the store.
 *
 * Debian 12's skopeo cannot create or verify sigstore signatures (Debian patched it out:
 * "sigstore disabled"), so it cannot stand in for the containers tools here; docs/TRUST.md.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { darch, darchOk, tempDir } from '../helpers/darch.js';
import { tarStreamLayer, writeOciLayout } from '../helpers/oci-layout.js';
import { startRegistry, type RegistryServer } from '../helpers/registry.js';
import { FaultyProxy } from '../helpers/faulty-proxy.js';

const sh = promisify(execFile);
const PY = '/usr/bin/python3';

/** Python's own scrypt + NaCl secretbox: opens a darch key, or makes a cosign-format key (N given) from a fresh P-256 key. */
const PY_KEYS = `
import sys, json, base64, hashlib, os, re
from nacl.secret import SecretBox
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_private_key, Encoding, PublicFormat, PrivateFormat, NoEncryption
def kdf(pw, salt, n): return hashlib.scrypt(pw.encode(), salt=salt, n=n, r=8, p=1, maxmem=512*1024*1024, dklen=32)
if sys.argv[1] == 'open':
    body = re.search(r'-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\\n(.*?)-----END', open(sys.argv[2]).read(), re.S).group(1)
    doc = json.loads(base64.b64decode(body))
    key = kdf(sys.argv[3], base64.b64decode(doc['kdf']['salt']), doc['kdf']['params']['N'])
    der = SecretBox(key).decrypt(base64.b64decode(doc['ciphertext']), base64.b64decode(doc['cipher']['nonce']))
    k = load_der_private_key(der, None)
    sys.stdout.write(k.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode())
else:
    n, pw, prefix = int(sys.argv[2]), sys.argv[3], sys.argv[4]
    k = ec.generate_private_key(ec.SECP256R1())
    der = k.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption())
    salt, nonce = os.urandom(32), os.urandom(24)
    ct = SecretBox(kdf(pw, salt, n)).encrypt(der, nonce).ciphertext
    doc = {"kdf": {"name": "scrypt", "params": {"N": n, "r": 8, "p": 1}, "salt": base64.b64encode(salt).decode()},
           "cipher": {"name": "nacl/secretbox", "nonce": base64.b64encode(nonce).decode()}, "ciphertext": base64.b64encode(ct).decode()}
    b = base64.b64encode(json.dumps(doc).encode()).decode()
    open(prefix + '.key', 'w').write('-----BEGIN ENCRYPTED COSIGN PRIVATE KEY-----\\n' + '\\n'.join(b[i:i+64] for i in range(0, len(b), 64)) + '\\n-----END ENCRYPTED COSIGN PRIVATE KEY-----\\n')
    open(prefix + '.pub', 'w').write(k.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode())
`;

describe('signed images: keys, signatures in the registry, the policy pull and update enforce', () => {
  let reg: RegistryServer;
  let work: string;
  let publisher: string;
  let keys: string;
  const cleanups: Array<() => Promise<void> | void> = [];
  const t = { after: (fn: () => Promise<void> | void) => void cleanups.push(fn) };

  /** Push version n of app (a layer of its own), returning its reference. */
  async function publish(repo: string, n: number): Promise<string> {
    const l = path.join(work, `${repo.replaceAll('/', '_')}-${n}.tar`);
    await tarStreamLayer(l, [
      { name: 'etc/', type: 'directory' },
      { name: 'etc/app', content: `${repo} version ${n}\n` },
    ]);
    const layout = path.join(work, `layout-${repo.replaceAll('/', '_')}-${n}`);
    await writeOciLayout(layout, `app:${n}`, [{ tar: l, compression: 'gzip' }]);
    await darchOk(['images', 'import', `oci:${layout}:app:${n}`, `${repo}:${n}`], { root: publisher });
    const ref = `${reg.host}/${repo}:${n}`;
    await darchOk(['images', 'push', '--tls-verify=false', `${repo}:${n}`, ref], { root: publisher });
    return ref;
  }

  async function machine(policy?: object): Promise<string> {
    const root = await tempDir(t);
    await mkdir(path.join(root, 'etc/darch'), { recursive: true });
    await writeFile(path.join(root, 'etc/darch/config.toml'), `[registry]\ninsecure = ["${reg.host}"]\n`);
    if (policy) await writeFile(path.join(root, 'etc/darch/policy.json'), JSON.stringify(policy));
    await mkdir(path.join(root, 'etc/keys'), { recursive: true });
    for (const k of ['a', 'b']) await writeFile(path.join(root, `etc/keys/${k}.pub`), await readFile(path.join(keys, `${k}.pub`)));
    return root;
  }

  const requireKey = (k: string, scope = `${reg.host}/signed`) => ({
    default: [{ type: 'reject' }],
    transports: { docker: { [scope]: [{ type: 'sigstoreSigned', keyPath: `/etc/keys/${k}.pub` }] } },
  });
  const storeIsEmpty = async (root: string) => {
    assert.deepEqual((await darchOk(['--json', 'images', 'list'], { root })).json().images ?? [], []);
    const blobs = path.join(root, 'var/lib/darch/images/blobs/sha256');
    const left = await readdir(blobs).catch(() => []);
    assert.deepEqual(left, [], 'no blob of the refused image stayed in the store');
  };

  before(async () => {
    reg = await startRegistry();
    work = await tempDir(t);
    publisher = path.join(work, 'publisher');
    keys = path.join(work, 'keys');
    await mkdir(keys);
    await writeFile(path.join(keys, 'pass'), 'correct horse\n');
    await darchOk(['keygen', path.join(keys, 'a'), '--passphrase-file', path.join(keys, 'pass')]);
    await darchOk(['keygen', path.join(keys, 'b'), '--passphrase-file', '/dev/null']);
  });
  after(async () => {
    await reg?.stop();
    for (const fn of cleanups) await fn();
  });

  it('keygen writes keys another implementation opens (and the reverse); a wrong passphrase is refused by name', async () => {
    assert.equal((await stat(path.join(keys, 'a.key'))).mode & 0o777, 0o600, 'the private key is for its owner only');
    assert.match(await readFile(path.join(keys, 'a.key'), 'utf8'), /^-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n/);
    assert.match(await readFile(path.join(keys, 'a.pub'), 'utf8'), /^-----BEGIN PUBLIC KEY-----\n/);
    const opened = await sh(PY, ['-c', PY_KEYS, 'open', path.join(keys, 'a.key'), 'correct horse']);
    assert.equal(opened.stdout, await readFile(path.join(keys, 'a.pub'), 'utf8'), 'Python derives the same public key from the private one');
    const again = await darch(['keygen', path.join(keys, 'a'), '--passphrase-file', '/dev/null']);
    assert.equal(again.code, 2);
    assert.match(again.stderr, /a\.key exists already/);

    // A key made by Python in the pre-2.0 cosign form (COSIGN block, N=32768) signs with darch.
    await sh(PY, ['-c', PY_KEYS, 'make', '32768', 'py pass', path.join(keys, 'py')]);
    const ref = await publish('signed', 9);
    await writeFile(path.join(keys, 'py-pass'), 'py pass\n');
    const wrong = await darch(['sign', '--tls-verify=false', ref, '--key', path.join(keys, 'py.key'), '--passphrase-file', path.join(keys, 'pass')]);
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /^error: wrong passphrase for .*py\.key$/m);
    await darchOk(['sign', '--tls-verify=false', ref, '--key', path.join(keys, 'py.key'), '--passphrase-file', path.join(keys, 'py-pass')]);
  });

  it('sign stores the signature where the containers tools look; openssl verifies it; a second key adds a second signature', async () => {
    const ref = await publish('signed', 1);
    const run = await darchOk([
      '--json',
      '--debug',
      'sign',
      '--tls-verify=false',
      ref,
      '--key',
      path.join(keys, 'a.key'),
      '--passphrase-file',
      path.join(keys, 'pass'),
    ]);
    assert.doesNotMatch(run.stderr + run.stdout, /correct horse|PRIVATE KEY/, 'neither the passphrase nor the key is ever logged, even with --debug');
    const signed = run.json();
    assert.match(signed.digest, /^sha256:[0-9a-f]{64}$/);
    assert.equal(signed.tag, `${signed.digest.replace(':', '-')}.sig`);
    assert.equal(signed.reference, ref);
    // What a reader gets: an OCI manifest, one simple-signing layer with the signature annotation.
    const res = await fetch(`${reg.url}/v2/signed/manifests/${signed.tag}`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
    assert.equal(res.headers.get('content-type'), 'application/vnd.oci.image.manifest.v1+json');
    const m = (await res.json()) as { layers: Array<{ mediaType: string; digest: string; annotations: Record<string, string> }> };
    assert.equal(m.layers.length, 1);
    assert.equal(m.layers[0]!.mediaType, 'application/vnd.dev.cosign.simplesigning.v1+json');
    const payload = Buffer.from(await (await fetch(`${reg.url}/v2/signed/blobs/${m.layers[0]!.digest}`)).arrayBuffer());
    const doc = JSON.parse(payload.toString());
    assert.deepEqual(doc.critical, {
      identity: { 'docker-reference': ref },
      image: { 'docker-manifest-digest': signed.digest },
      type: 'cosign container image signature',
    });
    assert.match(doc.optional.creator, /^darch \d/);
    await writeFile(path.join(work, 'payload'), payload);
    await writeFile(path.join(work, 'sig'), Buffer.from(m.layers[0]!.annotations['dev.cosignproject.cosign/signature']!, 'base64'));
    const ok = await sh('openssl', ['dgst', '-sha256', '-verify', path.join(keys, 'a.pub'), '-signature', path.join(work, 'sig'), path.join(work, 'payload')]);
    assert.match(ok.stdout, /Verified OK/);
    const other = await sh('openssl', [
      'dgst',
      '-sha256',
      '-verify',
      path.join(keys, 'b.pub'),
      '-signature',
      path.join(work, 'sig'),
      path.join(work, 'payload'),
    ]).catch((e) => e);
    assert.match(String(other.stdout), /Verification failure/);
    // Key B too: the .sig manifest now holds both.
    const b = (await darchOk(['--json', 'sign', '--tls-verify=false', ref, '--key', path.join(keys, 'b.key'), '--passphrase-file', '/dev/null'])).json();
    assert.equal(b.signatures, 2);
  });

  it('the policy: the right key is accepted; another key, no signature, a signature for other content are refused, and nothing stays', async () => {
    const ref = `${reg.host}/signed:1`;
    const [fa, fb] = [await fingerprintOf('a'), await fingerprintOf('b')];
    // Signed by A (and B): a policy asking for A accepts, and says so.
    const okRoot = await machine(requireKey('a'));
    const pulled = (await darchOk(['--json', 'images', 'pull', ref], { root: okRoot })).json();
    assert.ok(
      pulled.trust.acceptedBy.some((s: string) => s.includes(fa)),
      JSON.stringify(pulled.trust),
    );
    assert.equal(pulled.trust.scope, `docker ${reg.host}/signed`);

    // Unsigned: refused, naming the image and the key expected.
    const unsigned = await publish('signed', 2);
    const r1 = await machine(requireKey('a'));
    const no = await darch(['images', 'pull', unsigned], { root: r1 });
    assert.equal(no.code, 1);
    assert.match(
      no.stderr,
      new RegExp(
        `error: ${reEscape(unsigned)} is refused by .*policy\\.json \\(docker ${reEscape(reg.host)}/signed\\): it has no signatures; expected one by /etc/keys/a\\.pub \\(${fa}\\)`,
      ),
    );
    await storeIsEmpty(r1);

    // Signed by B only, A required.
    await darchOk(['sign', '--tls-verify=false', unsigned, '--key', path.join(keys, 'b.key'), '--passphrase-file', '/dev/null']);
    const byB = await darch(['--json', 'images', 'pull', unsigned], { root: r1 });
    assert.equal(byB.code, 1);
    assert.equal(byB.json().error.code, 'E_UNTRUSTED');
    assert.match(byB.json().error.message, new RegExp(`signature\\(s\\) are by other keys; expected one by /etc/keys/a\\.pub \\(${fa}\\)`));
    await storeIsEmpty(r1);
    assert.ok(fb);

    // A's signature of v1, copied onto v3: the payload names other content.
    const v3 = await publish('signed', 3);
    const d1 = await remoteDigest(ref);
    const d3 = await remoteDigest(v3);
    const sig1 = await (
      await fetch(`${reg.url}/v2/signed/manifests/${d1.replace(':', '-')}.sig`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } })
    ).text();
    const put = await fetch(`${reg.url}/v2/signed/manifests/${d3.replace(':', '-')}.sig`, {
      method: 'PUT',
      headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
      body: sig1,
    });
    assert.equal(put.status, 201);
    const copied = await darch(['images', 'pull', v3], { root: r1 });
    assert.equal(copied.code, 1);
    assert.match(copied.stderr, new RegExp(`the signature by /etc/keys/a\\.pub \\(${fa}\\) is for other content \\(${d1}\\), not ${d3}`));
    await storeIsEmpty(r1);

    // Outside the signed repository the policy's default rejects; with no policy anything goes.
    const elsewhere = await publish('other', 1);
    const rej = await darch(['images', 'pull', elsewhere], { root: r1 });
    assert.match(rej.stderr, /is refused: .*policy\.json \(default\) rejects it/);
    await darchOk(['images', 'pull', elsewhere], { root: await machine() });
  });

  it('a registry that lies about signatures: a .sig tag that is not an OCI manifest, a payload changed on the way', async () => {
    const fa = await fingerprintOf('a');
    const ref = await publish('lying', 1);
    await darchOk(['sign', '--tls-verify=false', ref, '--key', path.join(keys, 'a.key'), '--passphrase-file', path.join(keys, 'pass')]);
    const digest = await remoteDigest(ref);
    const sigTag = `${digest.replace(':', '-')}.sig`;
    const sigRes = await fetch(`${reg.url}/v2/lying/manifests/${sigTag}`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
    const sigManifest = (await sigRes.json()) as { layers: Array<{ digest: string }> };
    const payloadDigest = sigManifest.layers[0]!.digest;

    // A proxy flips one byte of the signature payload: its digest no longer matches, refused.
    const proxy = await new FaultyProxy({ host: '127.0.0.1', port: reg.port }).start();
    cleanups.push(() => proxy.stop());
    proxy.addRule({ url: `/blobs/${payloadDigest}`, fault: { kind: 'flip', atByte: 10 }, times: Infinity });
    const viaProxy = await machine(requireKey('a', `${proxy.host}/lying`));
    await writeFile(path.join(viaProxy, 'etc/darch/config.toml'), `[registry]\ninsecure = ["${proxy.host}"]\n`);
    const flipped = await darch(['--json', 'images', 'pull', `${proxy.host}/lying:1`], { root: viaProxy });
    assert.equal(flipped.code, 1, flipped.stderr);
    assert.equal(flipped.json().error.code, 'E_DIGEST_MISMATCH');
    assert.match(flipped.json().error.message, new RegExp(`a signature payload of lying@${digest} does not match its digest ${payloadDigest}`));
    await storeIsEmpty(viaProxy);

    // The .sig tag replaced by a Docker schema 2 manifest: not where signatures are kept, refused by name.
    const image = (await manifestOf(ref)) as unknown as { config: { digest: string; size: number }; layers: Array<{ digest: string; size: number }> };
    const docker = {
      schemaVersion: 2,
      mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
      config: { mediaType: 'application/vnd.docker.container.image.v1+json', digest: image.config.digest, size: image.config.size },
      layers: image.layers.map((l) => ({ mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', digest: l.digest, size: l.size })),
    };
    const put = await fetch(`${reg.url}/v2/lying/manifests/${sigTag}`, {
      method: 'PUT',
      headers: { 'content-type': docker.mediaType },
      body: JSON.stringify(docker),
    });
    assert.equal(put.status, 201, await put.text());
    const r = await machine(requireKey('a', `${reg.host}/lying`));
    const wrong = await darch(['--json', 'images', 'pull', ref], { root: r });
    assert.equal(wrong.code, 1, wrong.stderr);
    assert.equal(wrong.json().error.code, 'E_REGISTRY');
    assert.match(
      wrong.json().error.message,
      new RegExp(`lying:${reEscape(sigTag)} is a application/vnd\\.docker\\.distribution\\.manifest\\.v2\\+json, not the OCI manifest signatures are kept in`),
    );
    await storeIsEmpty(r);
    assert.ok(fa);
  });

  it('a layer changed in the registry after signing is refused; the update agent enforces the policy too', async () => {
    const ref = await publish('signed', 4);
    await darchOk(['sign', '--tls-verify=false', ref, '--key', path.join(keys, 'a.key'), '--passphrase-file', path.join(keys, 'pass')]);
    const root = await machine(requireKey('a'));
    const layer = (await manifestOf(ref)).layers[0]!.digest;
    const data = path.join(reg.dir, 'data/docker/registry/v2/blobs/sha256', layer.slice(7, 9), layer.slice(7), 'data');
    const bytes = await readFile(data);
    bytes[bytes.length - 10] = (bytes[bytes.length - 10] ?? 0) ^ 0xff;
    await writeFile(data, bytes);
    const r = await darch(['--json', 'images', 'pull', ref], { root });
    assert.equal(r.code, 1);
    assert.equal(r.json().error.code, 'E_DIGEST_MISMATCH');
    assert.deepEqual((await darchOk(['--json', 'images', 'list'], { root })).json().images ?? [], [], 'no image named');

    // The agent: an unsigned update is not downloaded, and says why.
    const unsigned = await publish('signed', 5);
    const m = await machine(requireKey('a'));
    const cfg = path.join(m, 'etc/darch/config.toml');
    await writeFile(cfg, `${await readFile(cfg, 'utf8')}[update]\nimage = "${unsigned}"\npolicy = "download"\n`);
    const run = await darch(['--json', 'update', 'run'], { root: m });
    assert.equal(run.code, 1);
    assert.match(run.stderr, /is refused by .*: it has no signatures; expected one by \/etc\/keys\/a\.pub/);
    await storeIsEmpty(m);
    // Offline: files carry no signatures darch checks yet, so the policy refuses them before reading.
    const offline = await darch(['update', 'apply', '--from', path.join(work, 'layout-signed-5')], { root: m });
    assert.equal(offline.code, 1);
    assert.match(
      offline.stderr,
      /layout-signed-5 is refused: .*policy\.json \(docker .*\/signed\) requires signatures for .*\/signed, and darch checks those of stage bundles only/,
    );
    await storeIsEmpty(m);
  });

  it('offline: a stage bundle signed for the followed name is applied; unsigned, another key, or a changed bundle are refused', async () => {
    // A staged image to carry: a fake kernel is enough for staging.
    const l = path.join(work, 'bundle.tar');
    await tarStreamLayer(l, [
      { name: 'boot/', type: 'directory' },
      { name: 'boot/vmlinuz-6.1.0-test', content: 'not really a kernel' },
      { name: 'etc/', type: 'directory' },
      { name: 'etc/app', content: 'offline version\n' },
    ]);
    await writeOciLayout(path.join(work, 'layout-bundle'), 'app:7', [{ tar: l, compression: 'gzip' }]);
    await darchOk(['images', 'import', `oci:${path.join(work, 'layout-bundle')}:app:7`, 'app:7'], { root: publisher });
    // The publisher's SSH host key goes into its own staged copy (the ssh hook), never into a bundle.
    await mkdir(path.join(publisher, 'etc/ssh'), { recursive: true });
    await writeFile(path.join(publisher, 'etc/ssh/ssh_host_ed25519_key'), 'PUBLISHER HOST KEY\n', { mode: 0o600 });
    const up = (await darchOk(['--json', 'stage', 'upload', 'app:7'], { root: publisher })).json();
    const hookKeys = (await sh('grep', ['-rl', 'PUBLISHER HOST KEY', up.dir]).catch(() => ({ stdout: '' }))).stdout;
    assert.match(hookKeys, /hooks\//, 'the ssh hook put the key into the publisher’s staged copy');
    const bundle = path.join(work, 'app-7.bundle');
    await darchOk(['stage', 'export', 'app:7', '-o', bundle], { root: publisher });
    assert.ok(!(await readFile(bundle)).includes('PUBLISHER HOST KEY'), 'no host key in the bundle');
    assert.doesNotMatch((await sh('tar', ['-tf', bundle])).stdout, /^hooks\//m);
    const followed = `${reg.host}/signed:stable`;
    const m = await machine(requireKey('a'));
    const cfg = path.join(m, 'etc/darch/config.toml');
    await writeFile(cfg, `${await readFile(cfg, 'utf8')}[update]\nimage = "${followed}"\npolicy = "stage"\n`);
    const staged = async () => (await darchOk(['--json', 'stage', 'list'], { root: m })).json().staged;

    const unsigned = await darch(['update', 'apply', '--from', bundle], { root: m });
    assert.equal(unsigned.code, 1);
    assert.match(unsigned.stderr, /app-7\.bundle \(as .*\/signed\) is refused by .*: it has no signatures; expected one by \/etc\/keys\/a\.pub/);
    assert.deepEqual(await staged(), []);

    const byB = (await darchOk(['--json', 'sign', followed, '--bundle', bundle, '--key', path.join(keys, 'b.key'), '--passphrase-file', '/dev/null'])).json();
    assert.equal(byB.tag, `${bundle}.sig`);
    const wrongKey = await darch(['update', 'apply', '--from', bundle], { root: m });
    assert.match(wrongKey.stderr, /are by other keys; expected one by \/etc\/keys\/a\.pub/);
    assert.deepEqual(await staged(), []);

    await darchOk(['sign', followed, '--bundle', bundle, '--key', path.join(keys, 'a.key'), '--passphrase-file', path.join(keys, 'pass')]);
    await mkdir(path.join(m, 'boot/efi/EFI'), { recursive: true });
    const ok = (await darchOk(['--json', 'update', 'apply', '--from', bundle], { root: m })).json();
    assert.equal(ok.kind, 'bundle');
    assert.equal((await staged()).length, 1, 'signed by A: staged');
    assert.equal(ok.applied.changed, true, 'and armed');

    // darch stage import judges the bundle under the names it stages it as.
    const asIs = await darch(['stage', 'import', bundle], { root: m });
    assert.equal(asIs.code, 1);
    assert.match(asIs.stderr, /app-7\.bundle \(as docker\.io\/library\/app\) is refused: .*policy\.json \(default\) rejects it/);
    const m3 = await machine(requireKey('a'));
    const named = (await darchOk(['--json', 'stage', 'import', bundle, '--tag', followed], { root: m3 })).json();
    assert.deepEqual(named.tags, [followed]);

    // The same signatures on another bundle (another image's manifest): refused.
    await darchOk(['stage', 'upload', 'app:7', '--tag', 'app:other'], { root: publisher });
    const other = path.join(work, 'app-other.bundle');
    await darchOk(['stage', 'export', 'app:other', '-o', other], { root: publisher });
    await writeFile(`${other}.sig`, await readFile(`${bundle}.sig`));
    const m2 = await machine(requireKey('a'));
    await writeFile(path.join(m2, 'etc/darch/config.toml'), await readFile(cfg, 'utf8'));
    const changed = await darch(['update', 'apply', '--from', other], { root: m2 });
    assert.equal(changed.code, 1);
    assert.match(changed.stderr, /is for other content/);
  });

  it('images import: local OCI layouts and archives pass only where the policy takes them unsigned; root file system tarballs are not judged', async () => {
    await publish('signed', 11);
    const layout = path.join(work, 'layout-signed-11');
    const strict = await machine(requireKey('a'));
    const refused = await darch(['images', 'import', `oci:${layout}:app:11`, 'app:1'], { root: strict });
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /is refused: .*policy\.json \(default\) does not take oci images unsigned/);
    assert.deepEqual((await darchOk(['--json', 'images', 'list'], { root: strict })).json().images ?? [], []);
    const rootfs = path.join(work, 'rootfs.tar');
    await tarStreamLayer(rootfs, [
      { name: 'etc/', type: 'directory' },
      { name: 'etc/hostname', content: 'local\n' },
    ]);
    await darchOk(['images', 'import', rootfs, 'local:1'], { root: strict });
    const open = await machine({ ...requireKey('a'), transports: { ...requireKey('a').transports, oci: { [work]: [{ type: 'insecureAcceptAnything' }] } } });
    await darchOk(['images', 'import', `oci:${layout}:app:11`, 'app:1'], { root: open });
  });

  it('a policy that is not valid names the file and exits 78', async () => {
    const root = await machine({ default: [] });
    const r = await darch(['images', 'pull', `${reg.host}/signed:1`], { root });
    assert.equal(r.code, 78);
    assert.match(r.stderr, /error: .*etc\/darch\/policy\.json: default: a list of requirements must not be empty/);
    await writeFile(path.join(root, 'etc/darch/policy.json'), JSON.stringify({ default: [{ type: 'sigstoreSigned' }] }));
    const none = await darch(['images', 'pull', `${reg.host}/signed:1`], { root });
    assert.equal(none.code, 78);
    assert.match(none.stderr, /needs exactly one of keyPath, keyPaths, keyData, keyDatas, fulcio, pki \(it has 0\)/);
  });

  async function fingerprintOf(k: string): Promise<string> {
    const pub = await readFile(path.join(keys, `${k}.pub`), 'utf8');
    const der = (await import('node:crypto')).createPublicKey(pub).export({ type: 'spki', format: 'der' });
    return (await import('node:crypto')).createHash('sha256').update(der).digest('hex').slice(0, 16);
  }

  async function manifestOf(ref: string): Promise<{ digest: string; layers: Array<{ digest: string }> }> {
    const rest = ref.slice(reg.host.length + 1);
    const [repo, tag] = rest.split(':');
    const res = await fetch(`${reg.url}/v2/${repo}/manifests/${tag}`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
    return { digest: res.headers.get('docker-content-digest') ?? '', ...((await res.json()) as { layers: Array<{ digest: string }> }) };
  }
  const remoteDigest = async (ref: string) => (await manifestOf(ref)).digest;
});

function reEscape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

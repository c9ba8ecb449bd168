/**
 * A registry with TLS (a CA this test makes with openssl) and htpasswd auth: certificate
 * trust through certs.d, login/logout, where credentials are looked up, and the errors a
 * user sees for an unknown CA, missing and wrong credentials. Secrets never appear in output.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { darch, darchOk, tempDir } from '../helpers/darch.js';
import { type RegistryServer, startRegistry } from '../helpers/registry.js';
import { type TokenServer, startTokenServer } from '../helpers/token-server.js';
import { FaultyProxy } from '../helpers/faulty-proxy.js';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';

const USER = 'builder';
const PASSWORD = 'correct-horse-battery';

describe('registry: TLS and authentication', () => {
  let reg: RegistryServer;
  let work: string;
  let home: string;
  let env: NodeJS.ProcessEnv;
  let src: string;

  before(async () => {
    reg = await startRegistry({ tls: true, auth: { user: USER, password: PASSWORD } });
    work = await mkdtemp(path.join(os.tmpdir(), 'darch-regauth-'));
    home = path.join(work, 'home');
    await mkdir(home, { recursive: true });
    // Isolate every credential location: no real auth file of this machine is read or written.
    env = { HOME: home, XDG_RUNTIME_DIR: path.join(work, 'run'), XDG_CONFIG_HOME: path.join(home, '.config'), REGISTRY_AUTH_FILE: '', DOCKER_CONFIG: '' };
    src = path.join(work, 'src');
    await darchOk(['demo', '--image-only', '--name', `${reg.host}/team/demo:1`], { root: src });
  });

  after(async () => {
    await reg?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  async function trustCa(root: string): Promise<void> {
    const dir = path.join(root, 'etc/darch/certs.d', reg.host);
    await mkdir(dir, { recursive: true });
    await copyFile(reg.caFile!, path.join(dir, 'ca.crt'));
  }

  const authFile = () => path.join(env.XDG_RUNTIME_DIR!, 'containers', 'auth.json');

  function noSecrets(text: string): void {
    assert.ok(!text.includes(PASSWORD), 'the password was printed');
    assert.ok(!text.includes(Buffer.from(`${USER}:${PASSWORD}`).toString('base64')), 'the encoded credentials were printed');
  }

  test('an unknown CA is refused with a hint; certs.d or --cert-dir makes it trusted', async (t) => {
    const root = await tempDir(t);
    const r = await darch(['images', 'pull', `${reg.host}/team/demo:1`], { root, env });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^error: cannot verify the TLS certificate of 127\.0\.0\.1:\d+/m);
    assert.match(r.stderr, /^hint: .*certs\.d\/127\.0\.0\.1:\d+\/ca\.crt/m);
    // --cert-dir: now TLS works and the next problem is authentication.
    const certDir = path.join(work, 'certdir');
    await mkdir(certDir, { recursive: true });
    await copyFile(reg.caFile!, path.join(certDir, 'ca.crt'));
    const r2 = await darch(['images', 'pull', `${reg.host}/team/demo:1`, '--cert-dir', certDir], { root, env });
    assert.equal(r2.code, 1);
    assert.match(r2.stderr, /^error: .*requires authentication and no credentials are stored/m);
    assert.match(r2.stderr, new RegExp(`^hint: darch login ${reg.host.replace(/\./g, '\\.')}`, 'm'));
    await trustCa(root);
    const r3 = await darch(['images', 'pull', `${reg.host}/team/demo:1`], { root, env });
    assert.match(r3.stderr, /requires authentication/);
  });

  test('login with a wrong password fails clearly and stores nothing', async (t) => {
    const root = await tempDir(t);
    await trustCa(root);
    const r = await darch(['login', reg.host, '-u', USER, '--password-stdin'], { root, env, input: 'wrong-password\n' });
    assert.equal(r.code, 1);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 2, r.stderr);
    assert.match(lines[0]!, /^error: authentication to 127\.0\.0\.1:\d+ failed: user name or password rejected/);
    assert.match(lines[1]!, /^hint: log in again: darch login/);
    assert.equal(existsSync(authFile()), false);
    noSecrets(r.stderr + r.stdout);
  });

  test('login, push, pull over TLS with auth; wrong stored credentials give one clear error; logout', async (t) => {
    await trustCa(src);
    const li = await darch(['login', reg.host, '-u', USER, '--password-stdin', '--debug'], { root: src, env, input: `${PASSWORD}\n` });
    assert.equal(li.code, 0, li.stderr);
    noSecrets(li.stderr + li.stdout);
    const stored = JSON.parse(await readFile(authFile(), 'utf8'));
    assert.equal(stored.auths[reg.host].auth, Buffer.from(`${USER}:${PASSWORD}`).toString('base64'));
    const push = await darch(['images', 'push', `${reg.host}/team/demo:1`, '--json', '--debug'], { root: src, env });
    assert.equal(push.code, 0, push.stderr);
    noSecrets(push.stderr + push.stdout);
    const digest = push.json().digest;

    // skopeo reads the same auth file and trusts the same CA directory layout.
    const certDir = path.join(src, 'etc/darch/certs.d', reg.host);
    const inspected = JSON.parse(
      execFileSync('skopeo', ['inspect', '--authfile', authFile(), '--cert-dir', certDir, `docker://${reg.host}/team/demo:1`], { encoding: 'utf8' }),
    );
    assert.equal(inspected.Digest, digest);

    const root = await tempDir(t);
    await trustCa(root);
    const pull = await darch(['images', 'pull', `${reg.host}/team/demo:1`, '--json', '--debug'], { root, env });
    assert.equal(pull.code, 0, pull.stderr);
    assert.equal(pull.json().digest, digest);
    noSecrets(pull.stderr + pull.stdout);
    await darchOk(['images', 'verify'], { root });

    // Wrong credentials in an auth file named by REGISTRY_AUTH_FILE (it comes first).
    const bad = path.join(work, 'bad-auth.json');
    await writeFile(bad, JSON.stringify({ auths: { [reg.host]: { auth: Buffer.from(`${USER}:nope`).toString('base64') } } }));
    const denied = await darch(['images', 'pull', `${reg.host}/team/demo:1`, '--name', 'again:1'], { root, env: { ...env, REGISTRY_AUTH_FILE: bad } });
    assert.equal(denied.code, 1);
    const errs = denied.stderr.split('\n').filter((l) => l.startsWith('error:'));
    assert.equal(errs.length, 1);
    assert.match(errs[0]!, /authentication to .* failed: user name or password rejected \(credentials from .*bad-auth\.json\)/);
    assert.match(denied.stderr, /^hint: log in again: darch login/m);
    noSecrets(denied.stderr);

    const lo = await darchOk(['logout', reg.host], { root, env });
    assert.match(lo.stderr, /logged out/);
    assert.equal(JSON.parse(await readFile(authFile(), 'utf8')).auths[reg.host], undefined);
    const again = await darch(['logout', reg.host], { root, env });
    assert.equal(again.code, 1);
    assert.match(again.stderr, /not logged in/);
  });

  test("docker's ~/.docker/config.json is used when no containers auth.json has the registry", async (t) => {
    const root = await tempDir(t);
    await trustCa(root);
    const dockerHome = path.join(work, 'dockerhome');
    await mkdir(path.join(dockerHome, '.docker'), { recursive: true });
    // Docker writes keys with a scheme.
    await writeFile(
      path.join(dockerHome, '.docker', 'config.json'),
      JSON.stringify({ auths: { [`https://${reg.host}`]: { auth: Buffer.from(`${USER}:${PASSWORD}`).toString('base64') } } }),
    );
    const e = { ...env, HOME: dockerHome, XDG_CONFIG_HOME: path.join(dockerHome, '.config'), XDG_RUNTIME_DIR: path.join(dockerHome, 'run') };
    const r = await darch(['images', 'pull', `${reg.host}/team/demo:1`, '--json'], { root, env: e });
    assert.equal(r.code, 0, r.stderr);
  });

  test('--tls-verify=false accepts an unknown certificate', async (t) => {
    const root = await tempDir(t);
    const r = await darch(['images', 'pull', `${reg.host}/team/demo:1`, '--tls-verify=false'], { root, env });
    // TLS is accepted; authentication is what stops it now.
    assert.equal(r.code, 1);
    assert.match(r.stderr, /requires authentication/);
  });
});

describe('registry: Bearer token authentication (docker-registry with a token service)', () => {
  let tokens: TokenServer;
  let reg: RegistryServer;
  let work: string;
  let env: NodeJS.ProcessEnv;

  before(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'darch-regtoken-'));
    tokens = await startTokenServer(work, USER, PASSWORD);
    reg = await startRegistry({ token: tokens });
    env = {
      HOME: work,
      XDG_RUNTIME_DIR: path.join(work, 'run'),
      XDG_CONFIG_HOME: path.join(work, '.config'),
      REGISTRY_AUTH_FILE: path.join(work, 'auth.json'),
      DOCKER_CONFIG: '',
    };
  });

  after(async () => {
    await reg?.stop();
    await tokens?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  test('push and pull with tokens per repository scope; mount asks for the source scope; wrong password is refused', async (t) => {
    const src = await tempDir(t);
    await darchOk(['demo', '--image-only', '--name', `${reg.host}/team/demo:1`], { root: src });
    // Anonymous: the token service grants nothing and the registry refuses.
    const anon = await darch(['images', 'push', `${reg.host}/team/demo:1`, '--tls-verify=false'], { root: src, env });
    assert.equal(anon.code, 1);
    assert.match(anon.stderr, /^error: .*requires authentication/m);

    const bad = await darch(['login', reg.host, '-u', USER, '--password-stdin', '--tls-verify=false'], { root: src, env, input: 'nope\n' });
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /^error: authentication to .* failed/m);

    await darchOk(['login', reg.host, '-u', USER, '--password-stdin', '--tls-verify=false'], { root: src, env, input: `${PASSWORD}\n` });
    tokens.requests.length = 0;
    const push = await darch(['images', 'push', `${reg.host}/team/demo:1`, '--tls-verify=false', '--json', '--debug'], { root: src, env });
    assert.equal(push.code, 0, push.stderr);
    assert.ok(!push.stderr.includes('Bearer '), 'a token was printed');
    assert.ok(
      tokens.requests.some((r) => r.user === USER && r.scopes.includes('repository:team/demo:pull,push')),
      JSON.stringify(tokens.requests),
    );

    const root = await tempDir(t);
    const pull = (await darchOk(['images', 'pull', `${reg.host}/team/demo:1`, '--tls-verify=false', '--json'], { root, env })).json();
    assert.equal(pull.digest, push.json().digest);
    await darchOk(['images', 'verify'], { root });

    tokens.requests.length = 0;
    const mounted = (
      await darchOk(['images', 'push', `${reg.host}/team/demo:1`, `${reg.host}/other/demo:1`, '--tls-verify=false', '--json'], { root, env })
    ).json();
    assert.equal(mounted.blobsMounted, 2);
    assert.ok(tokens.requests.some((r) => r.scopes.includes('repository:team/demo:pull') && r.scopes.includes('repository:other/demo:pull,push')));
  });

  test('a redirect of a blob to another host is followed without our Authorization', async (t) => {
    // The pretend blob storage authenticates to the registry on its own (like a signed URL).
    const storageAuth = async () => {
      const basic = Buffer.from(`${USER}:${PASSWORD}`).toString('base64');
      const res = await fetch(`${tokens.realm}?service=${tokens.service}&scope=repository:team/demo:pull`, { headers: { authorization: `Basic ${basic}` } });
      return `Bearer ${((await res.json()) as { token: string }).token}`;
    };
    const proxy = await new FaultyProxy({ host: '127.0.0.1', port: reg.port }, storageAuth).start();
    t.after(() => proxy.stop());
    const root = await tempDir(t);
    const e = { ...env, REGISTRY_AUTH_FILE: path.join(work, 'proxy-auth.json') };
    await writeFile(e.REGISTRY_AUTH_FILE!, JSON.stringify({ auths: { [proxy.host]: { auth: Buffer.from(`${USER}:${PASSWORD}`).toString('base64') } } }));
    proxy.addRule({ method: 'GET', url: '/blobs/sha256:', fault: { kind: 'redirect' }, times: Infinity });
    const r = await darch(['images', 'pull', `${proxy.host}/team/demo:1`, '--tls-verify=false', '--json'], { root, env: e });
    assert.equal(r.code, 0, r.stderr);
    const redirected = proxy.log.filter((l) => l.fault === 'redirect');
    const storage = proxy.log.filter((l) => l.url.startsWith('/_storage/'));
    assert.equal(redirected.length, 2);
    assert.equal(storage.length, 2);
    assert.ok(
      redirected.every((l) => l.hadAuthorization),
      'the registry requests carried no credentials',
    );
    assert.ok(
      storage.every((l) => !l.hadAuthorization && l.host?.startsWith('localhost:')),
      'Authorization leaked to the other host',
    );
    await darchOk(['images', 'verify'], { root });
  });
});

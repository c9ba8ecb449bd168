/**
 * The whole user-mode path as an unprivileged user (issue 20): a user the test creates with
 * subordinate ids, running darch through setpriv with a normal user's PATH (no /sbin) and no
 * --root, so everything lives in its XDG directories. From `darch demo --image-only` through a
 * two-recipe build (both formats, parents first, then cache hits), login/push/pull against a
 * registry with a password, stage upload, export/import, `disk create`/`disk add` into a file,
 * `boot try --disk` and `vm run` booting the trial until it commits. And, as root, stores
 * under paths buildah cannot name (a dot-leading segment, a space) build and stage.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmod, chown, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { run } from '../../src/lib/proc.js';
import { busyboxBootRoot, debianKernel } from '../helpers/bootimage.js';
import { DARCH_BIN, darchOk, type DarchResult } from '../helpers/darch.js';
import { startRegistry, type RegistryServer } from '../helpers/registry.js';

const USER = 'darch-rootless';
// A login shell's PATH for a normal user on Debian: no /usr/sbin, no /sbin.
const USER_PATH = '/usr/local/bin:/usr/bin:/bin';

const INITTAB = `::sysinit:/etc/init.d/rcS
::once:/usr/lib/darch/darch-health --commit
ttyS0::respawn:-/bin/sh
`;

interface Account {
  uid: number;
  gid: number;
  home: string;
}

/**
 * A local account, made if missing, with subordinate ids (`subids: true`; Debian's useradd
 * gives new users some, an older account may lack them) or without any.
 */
async function ensureUser(name: string, subids: boolean): Promise<Account> {
  if ((await run('id', ['-u', name], { allowFailure: true })).code !== 0) await run('useradd', ['-m', '-s', '/bin/sh', name]);
  for (const file of ['/etc/subuid', '/etc/subgid'] as const) {
    const kind = file === '/etc/subuid' ? 'subuids' : 'subgids';
    const line = new RegExp(`^${name}:(\\d+):(\\d+)$`, 'm').exec(await readFile(file, 'utf8').catch(() => ''));
    if (subids && !line) await run('usermod', [`--add-${kind}`, '300000-365535', name]);
    if (!subids && line) await run('usermod', [`--del-${kind}`, `${line[1]}-${Number(line[1]) + Number(line[2]) - 1}`, name]);
  }
  const uid = Number((await run('id', ['-u', name])).stdout.trim());
  const gid = Number((await run('id', ['-g', name])).stdout.trim());
  const home = (await run('sh', ['-c', `getent passwd ${name} | cut -d: -f6`])).stdout.trim();
  return { uid, gid, home };
}

/** setpriv's arguments that run darch as `acct` with nothing of ours in its environment but `env` (and a normal user's PATH). */
function darchAs(acct: Account, env: Record<string, string>, args: string[]): string[] {
  const full = { HOME: acct.home, PATH: USER_PATH, ...env };
  return [
    '--reuid',
    String(acct.uid),
    '--regid',
    String(acct.gid),
    '--init-groups',
    '--reset-env',
    '--',
    'env',
    ...Object.entries(full).map(([k, v]) => `${k}=${v}`),
    DARCH_BIN,
    ...args,
  ];
}

describe('rootless: the user-mode path as an unprivileged user', () => {
  let acct: Account;
  let work: string;
  let runtime: string;
  let reg: RegistryServer;
  const cleanups: (() => Promise<void>)[] = [];

  /** darch as the user: its own environment, a normal PATH, no --root. */
  const asUser = (args: string[], opts: { env?: Record<string, string>; input?: string; timeoutMs?: number } = {}): Promise<DarchResult> => {
    const argv = darchAs(acct, { USER, LOGNAME: USER, XDG_RUNTIME_DIR: runtime, NO_COLOR: '1', DARCH_LOCK_TIMEOUT: '0', ...opts.env }, args);
    return new Promise((resolve, reject) => {
      const child = spawn('setpriv', argv, { cwd: work, stdio: ['pipe', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
      child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
      child.stdin.end(opts.input ?? '');
      const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 300_000);
      child.on('error', reject);
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        resolve({ code: code ?? 128, signal, stdout, stderr, json: () => JSON.parse(stdout) });
      });
    });
  };
  const userOk = async (args: string[], opts: Parameters<typeof asUser>[1] = {}): Promise<DarchResult> => {
    const r = await asUser(args, opts);
    if (r.code !== 0) throw new Error(`darch ${args.join(' ')} (as ${USER}) exited ${r.code}\n--- stdout:\n${r.stdout}\n--- stderr:\n${r.stderr}`);
    return r;
  };
  const give = async (p: string) => {
    await run('chown', ['-R', `${acct.uid}:${acct.gid}`, p]);
  };

  before(async () => {
    acct = await ensureUser(USER, true);
    // A clean user-mode state each run: darch's XDG directories and buildah's rootless storage.
    await rm(path.join(acct.home, '.local/share/darch'), { recursive: true, force: true });
    await rm(path.join(acct.home, '.local/state/darch'), { recursive: true, force: true });
    await rm(path.join(acct.home, '.cache/darch'), { recursive: true, force: true });
    work = await mkdtemp(path.join(acct.home, 'run-'));
    runtime = path.join('/run/user', String(acct.uid));
    await mkdir(runtime, { recursive: true });
    await chown(runtime, acct.uid, acct.gid);
    await chmod(runtime, 0o700);
    cleanups.push(async () => {
      await rm(work, { recursive: true, force: true });
      await rm(runtime, { recursive: true, force: true });
    });
    reg = await startRegistry({ auth: { user: 'rl', password: 'rootless-secret' } });
    cleanups.push(() => reg.stop());

    // Bootable images (busybox + Debian's kernel): made by root from the test's kernel cache
    // and handed over as tarballs, as a user would download them.
    const kernel = await debianKernel();
    for (const v of ['1', '2']) {
      const tree = await busyboxBootRoot(path.join(work, `tree${v}`), {
        kernel,
        version: v,
        hostname: `rootless-${v}`,
        extraFiles: { 'etc/inittab': INITTAB },
      });
      await run('tar', ['-C', tree, '--owner=0', '--group=0', '-cf', path.join(work, `os${v}.tar`), '.']);
      await rm(tree, { recursive: true, force: true });
    }
    const rec = path.join(work, 'recipes');
    await mkdir(path.join(rec, 'base'), { recursive: true });
    await mkdir(path.join(rec, 'child'), { recursive: true });
    await writeFile(path.join(rec, 'base/Containerfile'), 'FROM example/busybox:latest\nRUN echo base > /base\n');
    await writeFile(path.join(rec, 'child/config.json'), '{"inherits": "base"}\n');
    await writeFile(path.join(rec, 'child/script'), '#!/bin/sh\nset -e\necho child > /child\n', { mode: 0o755 });
    await give(work);
  });
  after(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
  });

  it('builds, pushes, pulls, stages, exports, makes a disk and boots a trial, all without root', async () => {
    const demo = (await userOk(['--json', 'demo', '--image-only'])).json();
    assert.equal(demo.store, path.join(acct.home, '.local/share/darch/images'));

    const built = await userOk(['build', '-d', 'recipes', 'child']);
    assert.match(built.stderr, /2 built, 0 up to date/);
    assert.match((await userOk(['build', '-d', 'recipes', 'child'])).stderr, /0 built, 2 up to date/);

    // A registry with a password: the credentials go to the user's runtime dir, 0600.
    await userOk(['login', reg.host, '-u', 'rl', '--password-stdin', '--tls-verify=false'], { input: 'rootless-secret\n' });
    const auth = path.join(runtime, 'containers/auth.json');
    const st = await stat(auth);
    assert.equal(st.uid, acct.uid);
    assert.equal(st.mode & 0o777, 0o600);
    await userOk(['images', 'push', 'child:latest', `${reg.host}/rl/child:1`, '--tls-verify=false']);
    const second = { XDG_DATA_HOME: path.join(work, 'second') };
    await userOk(['images', 'pull', `${reg.host}/rl/child:1`, '--tls-verify=false'], { env: second });
    assert.match((await userOk(['images', 'list'], { env: second })).stdout, /rl\/child +1 /);

    // Stage, export, import, a disk in a file, a trial armed on it and booted.
    for (const v of ['1', '2']) {
      await userOk(['images', 'import', `os${v}.tar`, `rl/os:${v}`]);
      await userOk(['stage', 'upload', `rl/os:${v}`]);
    }
    await userOk(['stage', 'export', 'rl/os:2', '-o', 'os2.bundle']);
    await userOk(['stage', 'import', 'os2.bundle'], { env: second });
    assert.match((await userOk(['stage', 'list'], { env: second })).stdout, /rl\/os:2/);

    await userOk(['disk', 'create', 'disk.img', 'rl/os:1']);
    await userOk(['disk', 'add', 'disk.img', 'rl/os:2']);
    await userOk(['boot', 'try', 'rl/os:2', '--disk', 'disk.img']);
    assert.equal((await stat(path.join(work, 'disk.img'))).uid, acct.uid);

    const vm = spawn(
      'setpriv',
      darchAs(acct, { XDG_RUNTIME_DIR: runtime }, ['vm', 'run', 'disk.img', '--accel', process.env.DARCH_TEST_ACCEL ?? 'tcg', '-m', '512']),
      { cwd: work, stdio: ['pipe', 'pipe', 'pipe'] },
    );
    let console = '';
    vm.stdout.on('data', (b: Buffer) => (console += b.toString()));
    vm.stderr.on('data', (b: Buffer) => (console += b.toString()));
    try {
      const deadline = Date.now() + 300_000;
      while (!/darch-commit: \S+ is good: it is now the default/.test(console)) {
        if (Date.now() > deadline || vm.exitCode !== null) assert.fail(`the trial did not commit as ${USER}:\n${console.slice(-3000)}`);
        await new Promise((r) => setTimeout(r, 200));
      }
      assert.match(console, /darch example: booted "?darch example 2/);
      vm.stdin.write('sync\n');
      await new Promise((r) => setTimeout(r, 2000));
    } finally {
      vm.kill('SIGTERM');
      await new Promise((r) => vm.once('close', r));
    }
    const status = (await userOk(['--json', 'boot', 'status', '--disk', 'disk.img'])).json();
    assert.deepEqual(status.default.tags, ['rl/os:2']);
  });

  it('a user without subordinate ids is told what to set up before any work (build, doctor)', async () => {
    const other = 'darch-nosubid';
    const who = await ensureUser(other, false);
    const home = who.home;
    const rec = path.join(home, 'rec/app');
    await mkdir(rec, { recursive: true });
    await writeFile(path.join(rec, 'Containerfile'), 'FROM example/busybox:latest\nRUN true\n');
    await run('chown', ['-R', `${other}:`, path.join(home, 'rec')]);
    const as = (args: string[]) => run('setpriv', darchAs(who, { NO_COLOR: '1' }, args), { allowFailure: true, cwd: home });
    await as(['demo', '--image-only']);
    const r = await as(['build', '-d', 'rec', 'app']);
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      new RegExp(
        `error: building as ${other} needs subordinate uids \\(/etc/subuid has no range for ${other}\\); subordinate gids .*\\nhint: as root: usermod --add-subuids 100000-165535 ${other} && usermod --add-subgids 100000-165535 ${other}`,
      ),
    );
    assert.doesNotMatch(r.stderr, /STEP \d|COMMIT/);
    const doc = JSON.parse((await as(['--json', 'doctor'])).stdout) as { checks: Array<{ name: string; ok: boolean }> };
    assert.equal(doc.checks.find((c) => c.name === 'rootless: subordinate uids')?.ok, false);
    assert.equal(doc.checks.find((c) => c.name === 'rootless: newuidmap')?.ok, true);
  });

  it('stores under paths with a dot-leading segment or a space build and stage (as root)', async () => {
    for (const name of ['.dotted/store', 'with space/Store']) {
      const root = path.join(work, name);
      await mkdir(root, { recursive: true });
      await darchOk(['demo', '--image-only'], { root });
      await darchOk(['images', 'import', path.join(work, 'os1.tar'), 'rl/os:1'], { root });
      const rec = path.join(work, `rec-${name.replace(/\W+/g, '-')}`, 'app');
      await mkdir(rec, { recursive: true });
      await writeFile(path.join(rec, 'Containerfile'), 'FROM rl/os:1\nRUN echo built > /etc/built-in-odd-store\n');
      await darchOk(['build', '-d', path.dirname(rec), 'app'], { root });
      const staged = (await darchOk(['--json', 'stage', 'upload', 'app:latest'], { root })).json<{ id: string }>();
      assert.ok((await stat(path.join(root, 'var/lib/darch/stage/live', staged.id, 'rootfs.squash'))).size > 0);
    }
  });
});

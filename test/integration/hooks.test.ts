/** `darch hooks …`: Darch-compatible hooks run by a real shell against staged directories. */
import assert from 'node:assert/strict';
import { mkdir, readFile, readdir, writeFile, chmod } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { darch, darchOk, tempDir } from '../helpers/darch.js';
import { fakeStaged, stageDirOf } from '../helpers/fakestage.js';

async function hostFiles(root: string): Promise<string> {
  const hooks = path.join(root, 'etc/darch/hooks');
  await mkdir(hooks, { recursive: true });
  await writeFile(path.join(root, 'etc/hostname'), 'the-host\n');
  await writeFile(path.join(root, 'etc/machine-id'), '0123456789abcdef0123456789abcdef\n');
  return hooks;
}

describe('darch hooks', () => {
  it('lists the built-ins and user hooks in execution order, and shows details and help', async (t) => {
    const root = await tempDir(t);
    const hooks = await hostFiles(root);
    await mkdir(path.join(hooks, 'motd'));
    await writeFile(
      path.join(hooks, 'motd/hook'),
      'help() { echo "sets the message of the day"; }\ninstall() { echo hi > "$DARCH_HOOK_DEST_DIR/motd"; }\nrun() { cp "$DARCH_HOOK_DIR/motd" "$DARCH_ROOT_FS/etc/motd"; }\n',
    );
    await writeFile(path.join(hooks, 'hooks-config.json'), JSON.stringify({ motd: { 'execution-order': -1 }, ssh: { 'exclude-images': ['*:testing'] } }));
    await fakeStaged(root, ['demo/a:testing', 'demo/a:stable']);
    const list = (await darchOk(['--json', 'hooks', 'list'], { root })).json();
    assert.deepEqual(
      list.hooks.map((h: { name: string }) => h.name),
      ['motd', 'fstab', 'hostname', 'machine-id', 'ssh'],
    );
    const d = (await darchOk(['--json', 'hooks', 'details', 'ssh'], { root })).json();
    assert.deepEqual(d.matchedImages, ['demo/a:stable']);
    assert.deepEqual(d.unmatchedImages, ['demo/a:testing']);
    // A built-in is not a path to copy out of wherever darch is installed (a checkout).
    const shown = (await darchOk(['hooks', 'details', 'ssh'], { root })).stdout;
    assert.match(shown, /^path +built into darch \(`darch hooks help ssh`\); .*\/etc\/darch\/hooks\/ssh\/hook replaces it$/m);
    assert.doesNotMatch(shown, /assets/);
    assert.match((await darchOk(['hooks', 'details', 'motd'], { root })).stdout, new RegExp(`^path +${hooks}/motd$`, 'm'));
    assert.match((await darchOk(['hooks', 'help', 'motd'], { root })).stdout, /sets the message of the day/);
    assert.match((await darchOk(['hooks', 'help', 'fstab'], { root })).stdout, /fstab\.config/);
    const bad = await darch(['hooks', 'help', 'nope'], { root });
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /error: no hook named nope\nhint: hooks: motd, fstab/);
  });

  it('writes per-tag output: two tags of one image get their own hostname and fstab', async (t) => {
    const root = await tempDir(t);
    const hooks = await hostFiles(root);
    await writeFile(path.join(hooks, 'hostname.config'), '# comments are fine\n*:testing=test-box\n*=prod-box\n');
    await writeFile(path.join(hooks, 'fstab.config'), '*:stable=stable_fstab\n');
    await writeFile(path.join(hooks, 'stable_fstab'), 'LABEL=home /home ext4 defaults 0 2\n');
    const id = await fakeStaged(root, ['demo/a:testing', 'demo/a:stable']);
    const res = await darchOk(['--json', 'hooks', 'apply', '--no-sync'], { root });
    const dir = path.join(stageDirOf(root), 'live', id, 'hooks');
    assert.deepEqual((await readdir(dir)).sort(), ['demo+a@stable', 'demo+a@testing']);
    assert.deepEqual(await readdir(path.join(dir, 'demo+a@stable')), ['00000000_fstab', '00000001_hostname', '00000002_machine-id', '00000003_ssh']);
    assert.equal(await readFile(path.join(dir, 'demo+a@testing/00000001_hostname/hostname'), 'utf8'), 'test-box\n');
    assert.equal(await readFile(path.join(dir, 'demo+a@stable/00000001_hostname/hostname'), 'utf8'), 'prod-box\n');
    assert.equal(await readFile(path.join(dir, 'demo+a@stable/00000000_fstab/fstab'), 'utf8'), 'LABEL=home /home ext4 defaults 0 2\n');
    // No fstab line matches demo/a:testing: reported, not swallowed; the image keeps its fstab.
    assert.match(res.stderr, /warning: demo\/a:testing: hook fstab: no line in .*fstab\.config matches demo\/a:testing/);
    assert.deepEqual(await readdir(path.join(dir, 'demo+a@testing/00000000_fstab')), ['hook']);
    // machine-id: kept in /etc/darch, taken from the host the first time.
    assert.equal(await readFile(path.join(root, 'etc/darch/machine-id'), 'utf8'), '0123456789abcdef0123456789abcdef\n');
    // The staged run phase works in a POSIX shell: try it against a fake root.
    const fakeRoot = path.join(root, 'booted');
    await mkdir(path.join(fakeRoot, 'etc'), { recursive: true });
    const { run } = await import('../../src/lib/proc.js');
    for (const h of await readdir(path.join(dir, 'demo+a@stable'))) {
      await run('sh', ['-c', '. "$DARCH_HOOK_DIR/hook" && run'], {
        env: { ...process.env, DARCH_ROOT_FS: fakeRoot, DARCH_HOOK_DIR: path.join(dir, 'demo+a@stable', h) },
      });
    }
    assert.equal(await readFile(path.join(fakeRoot, 'etc/hostname'), 'utf8'), 'prod-box\n');
    assert.equal(await readFile(path.join(fakeRoot, 'etc/fstab'), 'utf8'), 'LABEL=home /home ext4 defaults 0 2\n');
    assert.equal(await readFile(path.join(fakeRoot, 'etc/machine-id'), 'utf8'), '0123456789abcdef0123456789abcdef\n');
  });

  it('a failing hook stops with its message and leaves the previous hook output in place', async (t) => {
    const root = await tempDir(t);
    const hooks = await hostFiles(root);
    const id = await fakeStaged(root, ['demo/a:1']);
    await darchOk(['hooks', 'apply', '--no-sync'], { root });
    const dir = path.join(stageDirOf(root), 'live', id, 'hooks', 'demo+a@1');
    const before = await readdir(dir);
    await writeFile(path.join(hooks, 'fstab.config'), '*=missing_fstab\n');
    const r = await darch(['hooks', 'apply', 'demo/a:1'], { root });
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /error: hook fstab failed for demo\/a:1 \(exit 1\): .*missing_fstab for demo\/a:1, but that file does not exist\nhint: fix the hook/,
    );
    assert.deepEqual(await readdir(dir), before);
    assert.deepEqual(
      (await readdir(path.dirname(dir))).filter((f) => f.startsWith('.')),
      [],
    );
  });

  it('rejects a malformed hooks-config.json with exit 78', async (t) => {
    const root = await tempDir(t);
    const hooks = await hostFiles(root);
    await writeFile(path.join(hooks, 'hooks-config.json'), '{"fstab": {"include-image": ["*"]}}');
    let r = await darch(['hooks', 'list'], { root });
    assert.equal(r.code, 78);
    assert.match(r.stderr, /error: .*hooks-config\.json: unknown key fstab\.include-image/);
    await writeFile(path.join(hooks, 'hooks-config.json'), '{"nosuchhook": {}}');
    r = await darch(['hooks', 'list'], { root });
    assert.equal(r.code, 78);
    assert.match(r.stderr, /configures hook "nosuchhook", which does not exist/);
    await writeFile(path.join(hooks, 'hooks-config.json'), '{oops');
    r = await darch(['hooks', 'list'], { root });
    assert.equal(r.code, 78);
    await chmod(hooks, 0o755);
  });
});

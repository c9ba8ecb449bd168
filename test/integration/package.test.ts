/**
 * The Debian package (scripts/package.sh) as its users meet it: lintian says nothing beyond
 * the overrides docs/PACKAGE.md explains, every file is where Debian's tools and darch look
 * for it, the packaged darch runs and finds its assets, and a debootstrapped bookworm root
 * installs, upgrades, removes and purges it leaving nothing behind. Built once (twice more:
 * the same sources again, and a higher VERSION for the upgrade).
 */
import assert from 'node:assert/strict';
import { access, appendFile, chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { TOOLS_FILES } from '../../src/initramfs/tools.js';
import { run } from '../../src/lib/proc.js';
import { digestHex, sha256 as sha256Of } from '../../src/oci/digest.js';
import { KIT_FILES, KIT_UNITS } from '../../src/recipes/kit.js';
import { debianSystemdTree } from '../helpers/bootimage.js';
import { DARCH_BIN, REPO } from '../helpers/darch.js';

/** The lintian tags docs/PACKAGE.md accepts, each overridden with its reason in packaging/debian/lintian-overrides. */
const ACCEPTED = [
  'embedded-library',
  'hardening-no-pie',
  'initial-upload-closes-no-bugs',
  'systemd-service-file-refers-to-unusual-wantedby-target',
  'unstripped-binary-or-object',
];

const upstream = (JSON.parse(await readFile(path.join(REPO, 'package.json'), 'utf8')) as { version: string }).version;
const version = `${upstream}-1`;
/** Sorts after `version` (dpkg --compare-versions checks it below). */
const nextVersion = `${upstream}.1-1`;

let work: string;
let deb: string;
let again: string;
let next: string;
/** Started once the package exists and awaited by the last test: lintian takes as long as the others together. */
let lintian: ReturnType<typeof run>;

function packageSh(outDir: string, env: NodeJS.ProcessEnv = {}) {
  return run('bash', ['scripts/package.sh', outDir], { cwd: REPO, env: { ...process.env, DARCH_EXE: DARCH_BIN, ...env }, allowFailure: true });
}

async function build(outDir: string, env: NodeJS.ProcessEnv = {}): Promise<string> {
  const r = await packageSh(outDir, env);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.split('\n');
  assert.equal(lines.length, 2, `stdout is the path and nothing else:\n${r.stdout}`);
  assert.equal(lines[1], '');
  return lines[0]!;
}

const sha256 = async (file: string) => digestHex(sha256Of(await readFile(file)));

/** `dpkg-deb -c`: path (without ./) → mode string, e.g. usr/bin/darch → -rwxr-xr-x. */
async function contents(file: string): Promise<Map<string, string>> {
  const out = (await run('dpkg-deb', ['-c', file])).stdout;
  const entries = new Map<string, string>();
  for (const line of out.trim().split('\n')) {
    const [mode, owner, , , , name] = line.split(/\s+/);
    assert.equal(owner, 'root/root', line);
    entries.set(name!.replace(/^\.\//, '').replace(/\/$/, ''), mode!);
  }
  return entries;
}

const modeString = (mode: number) => (mode & 0o111 ? '-rwxr-xr-x' : '-rw-r--r--');

before(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'darch-package-'));
  // The three builds share the two cores; apart they take about as long.
  [deb, again, next] = await Promise.all([
    build(path.join(work, 'out')),
    build(path.join(work, 'again')),
    build(path.join(work, 'next'), { VERSION: nextVersion }),
  ]);
  lintian = run('lintian', ['--show-overrides', deb], { allowFailure: true });
  lintian.catch(() => undefined); // a failure to start is reported by the test that awaits it
});
after(() => rm(work, { recursive: true, force: true }));

test('package.sh prints only the path of the .deb, named after its version, and the same sources give the same bytes', async () => {
  assert.equal(deb, path.join(work, 'out', `darch_${version}_amd64.deb`));
  assert.equal(await sha256(deb), await sha256(again), 'two builds of one commit differ: the package is not reproducible');
  assert.equal(next, path.join(work, 'next', `darch_${nextVersion}_amd64.deb`));
  assert.equal((await run('dpkg-deb', ['-f', next, 'Version'])).stdout.trim(), nextVersion);
  await run('dpkg', ['--compare-versions', nextVersion, 'gt', version]);
  // A VERSION the changelog lacks gets its own entry on top of the changelog's.
  const changelog = (await run('sh', ['-c', 'dpkg-deb --fsys-tarfile "$0" | tar -xO ./usr/share/doc/darch/changelog.Debian.gz | gzip -d', next])).stdout;
  assert.match(changelog, new RegExp(`^darch \\(${nextVersion.replaceAll('.', '\\.')}\\) `));
  assert.match(changelog, new RegExp(`\\ndarch \\(${version.replaceAll('.', '\\.')}\\) `));
});

test('contents: the executable, assets, in-image files, units, initramfs-tools hook, completions, man pages, docs', async () => {
  const files = await contents(deb);
  assert.equal(files.get('usr/bin/darch'), '-rwxr-xr-x');
  // The whole assets/ tree, executable where the checkout's file is.
  const assets = (await readdir(path.join(REPO, 'assets'), { recursive: true, withFileTypes: true })).filter((d) => d.isFile());
  for (const d of assets) {
    const rel = path.relative(REPO, path.join(d.parentPath, d.name));
    assert.equal(files.get(`usr/share/darch/${rel}`), modeString((await stat(path.join(REPO, rel))).mode), rel);
  }
  const packagedAssets = [...files].filter(([p, m]) => p.startsWith('usr/share/darch/assets/') && !m.startsWith('d'));
  assert.equal(packagedAssets.length, assets.length, 'nothing but assets/ under /usr/share/darch/assets');
  // What `darch recipes kit` installs into an image, units in the vendor directory.
  for (const f of [...KIT_FILES, ...TOOLS_FILES.map((t) => ({ path: t.dest, mode: t.mode }))]) {
    const dest = f.path.startsWith('etc/systemd/system/') ? `lib/systemd/system/${path.basename(f.path)}` : f.path;
    assert.equal(files.get(dest), modeString(f.mode), dest);
  }
  // Under /etc only the motd script (a conffile): /etc/grub.d/60_darch is written by `darch
  // boot install` with this machine's values, and its presence tells darch the machine boots
  // darch's menu.
  assert.deepEqual(
    [...files].filter(([p, m]) => p.startsWith('etc') && !m.startsWith('d')),
    [['etc/update-motd.d/50-darch', '-rwxr-xr-x']],
  );
  for (const u of ['darch-update.service', 'darch-update.timer', 'darch-boot-trace.service'])
    assert.equal(files.get(`lib/systemd/system/${u}`), '-rw-r--r--', u);
  assert.ok(files.has('usr/share/darch/assets/grub/60_darch'));
  for (const p of ['usr/share/bash-completion/completions/darch', 'usr/share/zsh/vendor-completions/_darch', 'usr/share/fish/vendor_completions.d/darch.fish'])
    assert.equal(files.get(p), '-rw-r--r--', p);
  const man = path.join(work, 'man');
  await run(DARCH_BIN, ['--quiet', 'man', '--output', man]);
  const pages = (await readdir(man)).map((p) => `usr/share/man/man1/${p}.gz`).sort();
  assert.ok(pages.includes('usr/share/man/man1/darch.1.gz'));
  assert.deepEqual([...files.keys()].filter((p) => p.startsWith('usr/share/man/man1/') && p.endsWith('.gz')).sort(), pages);
  for (const p of ['usr/share/doc/darch/changelog.Debian.gz', 'usr/share/doc/darch/copyright', 'usr/share/lintian/overrides/darch']) assert.ok(files.has(p), p);

  const field = async (name: string) => (await run('dpkg-deb', ['-f', deb, name])).stdout.trim();
  assert.match(await field('Depends'), /^libc6 \(>= [\d.]+\)/);
  assert.equal(await field('Provides'), `darch-initramfs-tools (= ${version})`);
  assert.equal(await field('Conflicts'), 'darch-initramfs-tools');
  assert.equal(await field('Replaces'), 'darch-initramfs-tools');
});

test('the packaged darch runs and finds the packaged assets (DARCH_ASSETS unset)', async () => {
  const root = path.join(work, 'extracted');
  await run('dpkg-deb', ['-x', deb, root]);
  const exe = path.join(root, 'usr/bin/darch');
  const env = { ...process.env };
  delete env.DARCH_ASSETS;
  assert.equal((await run(exe, ['--version'], { env })).stdout, (await run(DARCH_BIN, ['--version'])).stdout);
  // A marker in the packaged copy proves the kit came from /usr/share/darch/assets.
  await appendFile(path.join(root, 'usr/share/darch/assets/trial/darch-health'), '# packaged copy\n');
  const kit = path.join(work, 'kit');
  await mkdir(kit);
  await run(exe, ['recipes', 'kit', kit], { env });
  assert.match(await readFile(path.join(kit, 'darch-kit/root/usr/lib/darch/darch-health'), 'utf8'), /# packaged copy\n$/);

  // bash-completion loads completions/darch when `darch` is typed: it registers _darch.
  const bash = await run('bash', [
    '-c',
    `source "$0"; complete -p darch; COMP_WORDS=(darch st); COMP_CWORD=1; _darch; printf "%s\\n" "\${COMPREPLY[*]}"`,
    path.join(root, 'usr/share/bash-completion/completions/darch'),
  ]);
  assert.equal(bash.stdout, 'complete -F _darch darch\nstatus stage\n');
  // zsh's compinit autoloads files of $fpath that start with #compdef.
  assert.match(await readFile(path.join(root, 'usr/share/zsh/vendor-completions/_darch'), 'utf8'), /^#compdef darch\n/);
});

test('a missing or broken DARCH_EXE: a clear error, nothing on stdout, no .deb', async () => {
  const out = path.join(work, 'bad');
  const missing = await packageSh(out, { DARCH_EXE: path.join(work, 'no-such-darch') });
  assert.notEqual(missing.code, 0);
  assert.equal(missing.stdout, '');
  assert.match(missing.stderr, /no-such-darch does not exist or is not executable: build it first with `npm run -s build`/);
  // An executable that is not darch fails half-way through: the output directory stays empty.
  await mkdir(out, { recursive: true });
  const fake = path.join(work, 'fake-darch');
  await writeFile(fake, '#!/bin/sh\nexit 3\n');
  await chmod(fake, 0o755);
  const broken = await packageSh(out, { DARCH_EXE: fake });
  assert.notEqual(broken.code, 0);
  assert.equal(broken.stdout, '');
  assert.deepEqual(await readdir(out), []);
});

/** Where a package path lands in a merged-/usr root (bookworm: /lib is a link to usr/lib). */
const onDisk = (p: string) => p.replace(/^\/?(lib|bin|sbin)\//, 'usr/$1/').replace(/^\//, '');

/** Paths nothing of the package should touch but dpkg, the initramfs and the system do. */
const NOISE = /^(proc|sys|dev|run|tmp|var\/tmp|var\/log|var\/cache|var\/lib\/dpkg|var\/lib\/initramfs-tools|boot)(\/|$)/;

async function listRoot(root: string): Promise<Set<string>> {
  const out = new Set<string>();
  const walk = async (rel: string): Promise<void> => {
    for (const d of await readdir(path.join(root, rel), { withFileTypes: true })) {
      const p = rel ? `${rel}/${d.name}` : d.name;
      if (NOISE.test(p)) continue;
      if (d.isDirectory()) await walk(p);
      else out.add(p);
    }
  };
  await walk('');
  return out;
}

const minus = (a: Set<string>, b: Set<string>) => [...a].filter((x) => !b.has(x)).sort();

test('a bookworm root installs, upgrades, removes and purges it: units enabled, darch runs, nothing left behind', async (t) => {
  const tree = await debianSystemdTree();
  const root = path.join(work, 'root');
  await run('cp', ['-a', `${tree}/.`, root]);
  // Maintainer scripts and darch read /proc (darch finds its assets from /proc/self/exe first).
  await run('mount', ['-t', 'proc', 'proc', path.join(root, 'proc')]);
  t.after(() => run('umount', [path.join(root, 'proc')]).then(() => undefined));
  const env = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C', DEBIAN_FRONTEND: 'noninteractive' };
  const chroot = (args: string[]) => run('chroot', [root, ...args], { env });
  const status = async () =>
    (await run('chroot', [root, 'dpkg-query', '-W', `-f=\${db:Status-Abbrev}\${Version}`, 'darch'], { env, allowFailure: true })).stdout.trim();
  const packaged = async () => new Set((await chroot(['dpkg-query', '-L', 'darch'])).stdout.trim().split('\n').map(onDisk));
  await writeFile(path.join(root, 'tmp/darch.deb'), await readFile(deb));
  await writeFile(path.join(root, 'tmp/darch-next.deb'), await readFile(next));
  // A small initramfs (the modules the hooks name): MODULES=most takes a minute per update here.
  const conf = path.join(root, 'etc/initramfs-tools/initramfs.conf');
  await writeFile(conf, (await readFile(conf, 'utf8')).replace(/^MODULES=.*$/m, 'MODULES=list'));
  const initramfsHasHook = async () => (await chroot(['sh', '-c', 'lsinitramfs /boot/initrd.img-*'])).stdout.split('\n').includes('scripts/darch');
  assert.equal(await initramfsHasHook(), false);
  const before = await listRoot(root);

  // Install: Depends are met by the root as debootstrap made it.
  await chroot(['dpkg', '-i', '/tmp/darch.deb']);
  assert.equal(await status(), `ii ${version}`);
  assert.ok(await initramfsHasHook(), 'postinst updated the initramfs: it carries boot=darch');
  assert.equal((await chroot(['darch', '--version'])).stdout, (await run(DARCH_BIN, ['--version'])).stdout);
  await chroot(['darch', 'recipes', 'kit', '/tmp']);
  // Without /proc the executable cannot learn its own path; it falls back to the package's assets.
  await mkdir(path.join(root, 'tmp/noproc'));
  await run('umount', [path.join(root, 'proc')]);
  try {
    await chroot(['darch', 'recipes', 'kit', '/tmp/noproc']);
    await access(path.join(root, 'tmp/noproc/darch-kit/install'));
  } finally {
    await run('mount', ['-t', 'proc', 'proc', path.join(root, 'proc')]);
  }
  const units = [...KIT_UNITS, 'darch-update.timer', 'darch-boot-trace.service'];
  const enabled = (await chroot(['systemctl', 'is-enabled', ...units])).stdout.trim().split('\n');
  assert.deepEqual(
    enabled,
    units.map(() => 'enabled'),
  );
  // The motd script runs and has nothing to say on a machine that follows no image.
  assert.equal((await chroot(['/etc/update-motd.d/50-darch'])).stdout, '');
  const links = minus(await listRoot(root), before).filter((p) => p.startsWith('etc/systemd/system/'));
  assert.ok(links.length >= KIT_UNITS.length, links.join('\n'));

  // Upgrade: what is on disk is what the new version ships, plus the unit links. A masked
  // unit stays masked and off; a disabled one is enabled again (docs/PACKAGE.md).
  await chroot(['systemctl', 'disable', 'darch-mark-good.service', 'darch-health.service']);
  await chroot(['systemctl', 'mask', 'darch-mark-good.service']);
  await chroot(['dpkg', '-i', '/tmp/darch-next.deb']);
  assert.equal(await status(), `ii ${nextVersion}`);
  const isEnabled = async (unit: string) => (await run('chroot', [root, 'systemctl', 'is-enabled', unit], { env, allowFailure: true })).stdout.trim();
  assert.equal(await isEnabled('darch-mark-good.service'), 'masked');
  assert.equal(await isEnabled('darch-health.service'), 'enabled');
  // Unmasked it is disabled, as the administrator left it, until the next upgrade.
  await chroot(['systemctl', 'unmask', 'darch-mark-good.service']);
  assert.equal(await isEnabled('darch-mark-good.service'), 'disabled');
  const shipped = await packaged();
  const added = minus(await listRoot(root), before);
  assert.deepEqual(
    added.filter((p) => !shipped.has(p) && !links.includes(p)),
    [],
    'files the new version does not ship',
  );
  for (const p of shipped) await access(path.join(root, p));

  // Configuration: what a person writes, and what darch writes by itself.
  const userFiles = ['etc/darch/config.toml', 'etc/darch/hooks/hostname.config'];
  await mkdir(path.join(root, 'etc/darch/hooks'), { recursive: true });
  await writeFile(path.join(root, userFiles[0]!), '[boot]\nstage_fs_uuid = "0b5e4b9c-0000-4000-8000-000000000001"\nstage_fs_path = "/var/lib/darch/stage"\n');
  await writeFile(path.join(root, userFiles[1]!), '*=my-laptop\n');
  await chroot(['darch', 'boot', 'install']);
  // What the machine-id and ssh hooks keep on first use (copies of this machine's).
  await writeFile(path.join(root, 'etc/darch/machine-id'), '0123456789abcdef0123456789abcdef\n');
  await mkdir(path.join(root, 'etc/darch/ssh'), { recursive: true });
  await writeFile(path.join(root, 'etc/darch/ssh/ssh_host_ed25519_key'), 'key\n');
  const darchMade = ['etc/grub.d/60_darch', 'etc/darch/grub.cfg', 'etc/darch/machine-id', 'etc/darch/ssh/ssh_host_ed25519_key'];
  const staged = ['var/lib/darch/stage/grub.cfg'];
  assert.deepEqual(minus(await listRoot(root), before), [...added, ...darchMade, ...userFiles, ...staged].sort());

  // Remove: no file of the package but its conffile (the motd script), no unit link left dangling.
  await chroot(['dpkg', '-r', 'darch']);
  assert.equal(await status(), `rc ${nextVersion}`);
  assert.deepEqual(minus(await listRoot(root), before), [...darchMade, ...userFiles, ...staged, 'etc/update-motd.d/50-darch'].sort());

  // Purge: what darch wrote goes; what people wrote and the staged images stay.
  await chroot(['dpkg', '-P', 'darch']);
  assert.equal(await status(), '');
  assert.deepEqual(minus(await listRoot(root), before), [...userFiles, ...staged].sort());
  assert.deepEqual(minus(before, await listRoot(root)), []);
});

test('lintian: no errors, no warnings, and exactly the accepted overrides', async () => {
  const r = await lintian;
  const lines = r.stdout.split('\n');
  assert.deepEqual(
    lines.filter((l) => /^[EW]: /.test(l)),
    [],
    r.stdout,
  );
  const overridden = [...new Set(lines.filter((l) => l.startsWith('O: ')).map((l) => l.split(/\s+/)[2]!))].sort();
  assert.deepEqual(overridden, ACCEPTED, 'an override lintian no longer needs, or a new one: update docs/PACKAGE.md with it');
  // Exit 2: a shown hint is an error, the overridden embedded-library under --show-overrides
  // (lintian's Pool.pm); 1 would be a failed run.
  assert.ok(r.code === 0 || r.code === 2, `lintian exited ${r.code}: ${r.stderr}`);
});

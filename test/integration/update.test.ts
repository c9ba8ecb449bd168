/**
 * The update agent against a real registry (Debian's docker-registry on 127.0.0.1): a
 * publisher pushes versions of an image, "machines" (separate --root directories with a
 * mounted-ESP directory, a stage and a kernel command line) follow it with `darch update`.
 * Every policy, check's exit codes, only new layers downloaded, the fallback notice,
 * `--disk`, rollouts over many machine-ids, and errors that leave nothing behind.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { cp, mkdir, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DirEnvStorage } from '../../src/boot/grub/grubenv.js';
import { loadState, saveState } from '../../src/boot/grub/envstate.js';
import { DARCH_BIN, darch, darchOk, tempDir } from '../helpers/darch.js';
import { fakeStaged } from '../helpers/fakestage.js';
import { FaultyProxy } from '../helpers/faulty-proxy.js';
import { tarStreamLayer, writeOciLayout } from '../helpers/oci-layout.js';
import { startRegistry, type RegistryServer } from '../helpers/registry.js';

const KERNEL = [
  { name: 'boot/', type: 'directory' as const },
  { name: 'boot/vmlinuz-6.1.0-test', content: 'not really a kernel' },
  { name: 'etc/', type: 'directory' as const },
];

interface Machine {
  root: string;
  env: NodeJS.ProcessEnv;
  /** Pretend the machine booted staged image `id` (as a trial or not). */
  boot(id: string, trial?: boolean): Promise<void>;
}

describe('darch update', () => {
  let reg: RegistryServer;
  let work: string;
  let publisher: string;
  let image: string;
  // Temp dirs live until the whole suite ends (the machines outlive the test that made them).
  const cleanups: Array<() => Promise<void> | void> = [];
  const t = { after: (fn: () => Promise<void> | void) => void cleanups.push(fn) };

  /** Version N of the image: the base layer plus one small layer per version up to N. */
  async function publish(n: number, opts: { broken?: boolean } = {}): Promise<void> {
    const layers = [];
    const base = path.join(work, 'base.tar');
    await tarStreamLayer(base, KERNEL);
    layers.push({ tar: base, compression: 'gzip' as const });
    for (let i = 1; i <= n; i++) {
      const l = path.join(work, `v${i}.tar`);
      await tarStreamLayer(l, [{ name: `etc/v${i}`, content: `version ${i}\n${'x'.repeat(1000 * i)}` }]);
      layers.push({ tar: l, compression: 'gzip' as const });
    }
    const layout = path.join(work, `layout-${n}${opts.broken ? 'b' : ''}`);
    await writeOciLayout(layout, `desktop:${n}`, layers, { 'org.opencontainers.image.version': String(n) });
    await darchOk(['images', 'import', `oci:${layout}:desktop:${n}`, `desktop:${n}`], { root: publisher });
    await darchOk(['images', 'push', '--tls-verify=false', `desktop:${n}`, image], { root: publisher });
  }

  async function machine(policy: string, extra = ''): Promise<Machine> {
    const root = await tempDir(t);
    await mkdir(path.join(root, 'etc/darch'), { recursive: true });
    await mkdir(path.join(root, 'boot/efi/EFI'), { recursive: true });
    await writeFile(
      path.join(root, 'etc/darch/config.toml'),
      `[registry]\ninsecure = ["${reg.host}"]\n[update]\nimage = "${image}"\npolicy = "${policy}"\n${extra}`,
    );
    const cmdline = path.join(root, 'cmdline');
    await writeFile(cmdline, 'quiet\n');
    return {
      root,
      env: { DARCH_CMDLINE_FILE: cmdline },
      async boot(id, trial = false) {
        await writeFile(cmdline, `quiet darch_stageid=${id}${trial ? ' darch.trial=1' : ''}\n`);
      },
    };
  }

  const json = async (m: Machine, args: string[]) => (await darchOk(['--json', ...args], { root: m.root, env: m.env })).json();
  /** `update check`'s document and exit status (100 is not a failure). */
  const check = async (m: Machine) => {
    const r = await darch(['--json', 'update', 'check'], { root: m.root, env: m.env });
    if (r.code !== 0 && r.code !== 100) throw new Error(`update check exited ${r.code}: ${r.stderr}`);
    return { code: r.code, ...r.json() };
  };

  before(async () => {
    reg = await startRegistry();
    work = await tempDir(t);
    publisher = path.join(work, 'publisher');
    image = `${reg.host}/os/desktop:stable`;
    await publish(1);
  });
  after(async () => {
    await reg?.stop();
    for (const fn of cleanups) await fn();
  });

  it('check: exit 100 when an update is available, 0 when up to date, 1 and a clear error when the registry is down', async () => {
    const m = await machine('apply');
    const r = await darch(['--json', 'update', 'check'], { root: m.root, env: m.env });
    assert.equal(r.code, 100, r.stderr);
    const c = r.json();
    assert.equal(c.status, 'available');
    assert.equal(c.image, image);
    assert.equal(c.remote.version, '1');
    assert.match(r.stderr, /desktop 1 is available/);
    // Nothing was downloaded or staged by a check.
    assert.deepEqual((await json(m, ['images', 'list'])).images ?? [], []);

    const dead = await darch(['update', 'check', '127.0.0.1:9/os/desktop:stable', '--tls-verify=false'], { root: m.root, env: m.env });
    assert.equal(dead.code, 1);
    assert.match(dead.stderr, /^error: .*127\.0\.0\.1:9/m);

    const none = await machine('apply');
    await writeFile(path.join(none.root, 'etc/darch/config.toml'), '[update]\npolicy = "apply"\n');
    const noImage = await darch(['update', 'check'], { root: none.root, env: none.env });
    assert.equal(noImage.code, 78);
    assert.match(noImage.stderr, /error: no image to follow\nhint: set image = /);
  });

  it('each policy goes exactly as far as it allows; apply arms a trial, tells the motd, and the commit makes it current', async () => {
    const m = await machine('check');
    const cfg = path.join(m.root, 'etc/darch/config.toml');
    const setPolicy = (p: string) => writeFile(cfg, `[registry]\ninsecure = ["${reg.host}"]\n[update]\nimage = "${image}"\npolicy = "${p}"\n`);

    let run = await json(m, ['update', 'run']);
    assert.equal(run.outcome, 'available');
    assert.deepEqual((await json(m, ['images', 'list'])).images ?? [], []);

    await setPolicy('download');
    run = await json(m, ['update', 'run']);
    assert.equal(run.outcome, 'downloaded');
    assert.ok(run.download.blobsDownloaded >= 3, 'config and both layers downloaded');
    assert.deepEqual([(await check(m)).status, (await check(m)).code], ['downloaded', 100]);
    assert.deepEqual((await json(m, ['stage', 'list'])).staged, []);

    await setPolicy('stage');
    run = await json(m, ['update', 'run']);
    assert.equal(run.outcome, 'staged');
    assert.equal(run.download, undefined, 'nothing downloaded twice');
    const v1 = run.staged.id as string;
    assert.match(run.staged.tag, new RegExp(`^${reg.host.replace('.', '\\.')}/os/desktop:stable-[0-9a-f]{12}$`));
    assert.deepEqual([(await check(m)).status, (await check(m)).code], ['staged', 100]);
    assert.equal((await json(m, ['boot', 'status'])).trial, null, 'stage does not arm');

    await setPolicy('apply');
    run = await json(m, ['update', 'run']);
    assert.equal(run.outcome, 'armed');
    assert.equal(run.staged.id, v1, 'the staged image is reused, not staged again');
    assert.equal((await json(m, ['boot', 'status'])).trial.stage, v1);
    assert.deepEqual([(await check(m)).status, (await check(m)).code], ['armed', 0]);
    const motd = await darchOk(['update', 'status', '--motd'], { root: m.root, env: m.env });
    assert.equal(motd.stdout, 'darch: Restart to use desktop 1.\n');
    assert.match((await darchOk(['status'], { root: m.root, env: m.env })).stdout, /^update +Restart to use desktop 1\.$/m);

    // The trial boots and commits: now it is what runs, and the motd is quiet.
    await m.boot(v1, true);
    await darchOk(['boot', 'mark-good'], { root: m.root, env: m.env });
    const up = await darch(['--json', 'update', 'check'], { root: m.root, env: m.env });
    assert.equal(up.code, 0);
    assert.equal(up.json().status, 'up-to-date');
    assert.equal((await darchOk(['update', 'status', '--motd'], { root: m.root, env: m.env })).stdout, '');

    // Version 2: only its new layer is downloaded; a broken version 3 falls back and says so.
    await publish(2);
    run = await json(m, ['update', 'run']);
    assert.equal(run.outcome, 'armed');
    assert.equal(run.download.blobsDownloaded, 2, 'the new layer and the new config only');
    assert.ok(run.download.blobsSkipped >= 2);
    assert.equal(run.check.current.id, v1);
    assert.equal(run.notices[0]?.summary, 'Restart to use desktop 2');
    const v2 = run.staged.id as string;
    await m.boot(v2, true);
    await darchOk(['boot', 'mark-good'], { root: m.root, env: m.env });

    await publish(3);
    run = await json(m, ['update', 'run']);
    const v3 = run.staged.id as string;
    assert.equal(run.outcome, 'armed');
    // What GRUB's script leaves once the trial's tries ran out; the machine runs v2 again.
    const storage = new DirEnvStorage(path.join(m.root, 'boot/efi/EFI/darch'));
    const { state } = await loadState(storage);
    await saveState(storage, { ...state, trial: undefined, tries: 0, fellBack: true, fellBackFrom: v3, bad: [v3] });
    await m.boot(v2);
    run = await json(m, ['update', 'run']);
    assert.equal(run.outcome, 'failed-trial', 'a failed update is not armed again by itself');
    assert.equal(run.notices[0]?.summary, 'The update to desktop 3 failed to start; you are back on desktop 2');
    assert.equal((await json(m, ['update', 'run'])).notices.length, 0, 'each notice is given once');
    assert.equal(
      (await darchOk(['update', 'status', '--motd'], { root: m.root, env: m.env })).stdout,
      'darch: The update to desktop 3 failed to start; you are back on desktop 2.\n',
    );
    const status = await json(m, ['update', 'status']);
    assert.equal(status.fellBack.from, v3);
    assert.equal(status.lastCheck.outcome, 'failed-trial');
  });

  it('--scheduled runs only when the schedule says a check is due', async () => {
    const m = await machine('check', 'schedule = "daily"\nrandom_delay = "1h"\n');
    const first = await json(m, ['update', 'run', '--scheduled']);
    assert.equal(first.outcome, 'available');
    const second = await json(m, ['update', 'run', '--scheduled']);
    assert.equal(second.outcome, 'not-due');
    const next = Date.parse(second.nextCheck);
    assert.ok(next > Date.now() + 23 * 3600_000 && next <= Date.now() + 25 * 3600_000, second.nextCheck);
    assert.equal((await json(m, ['update', 'run'])).outcome, 'available', 'by hand it always checks');
  });

  it('a run cut off after staging but before the boot entries (power-cut campaign, systemd-boot) is finished by the next run', async () => {
    const m = await machine(
      'stage',
      `[boot]\nbootloader = "systemd-boot"\nstage_fs_uuid = "0f0e0d0c-0000-4000-8000-000000000014"\nstage_fs_path = "/var/lib/darch/stage"\n`,
    );
    const entries = path.join(m.root, 'boot/efi/loader/entries');
    // The machine runs an older image, the default.
    const old = await fakeStaged(m.root, ['os:old'], { created: new Date(Date.now() - 60_000) });
    await m.boot(old);
    await darchOk(['boot', 'sync'], { root: m.root, env: m.env });
    const staged = await json(m, ['update', 'run']);
    assert.equal(staged.outcome, 'staged');
    const id = staged.staged.id as string;
    assert.deepEqual((await readdir(entries)).sort(), [`darch-${id}.conf`, `darch-${old}.conf`].sort());
    // What the cut left: the image in the stage, its entry never written to the ESP.
    await rm(path.join(entries, `darch-${id}.conf`));
    const cfg = path.join(m.root, 'etc/darch/config.toml');
    await writeFile(cfg, (await readFile(cfg, 'utf8')).replace('policy = "stage"', 'policy = "apply"'));
    const run = await json(m, ['update', 'run']);
    assert.equal(run.outcome, 'armed');
    assert.equal(run.staged.id, id, 'the staged image is used, not staged again');
    assert.deepEqual((await readdir(entries)).sort(), [`darch-${id}+3.conf`, `darch-${old}.conf`].sort(), 'its entry is back, as a trial with 3 tries');
  });

  it('systemd-boot: boot files a cut left torn on the ESP are repaired before the agent reboots into the trial (power-cut campaign)', async () => {
    const m = await machine(
      'apply',
      `reboot = "00:00-24:00"\n[boot]\nbootloader = "systemd-boot"\nstage_fs_uuid = "0f0e0d0c-0000-4000-8000-000000000016"\nstage_fs_path = "/var/lib/darch/stage"\n`,
    );
    const esp = path.join(m.root, 'boot/efi');
    const old = await fakeStaged(m.root, ['os:old'], { created: new Date(Date.now() - 60_000) });
    await m.boot(old);
    await darchOk(['boot', 'sync'], { root: m.root, env: m.env });
    const armed = await json(m, ['update', 'run']);
    assert.equal(armed.outcome, 'armed');
    const id = armed.staged.id as string;
    const entry = path.join(esp, 'loader/entries', `darch-${id}+3.conf`);
    const good = await readFile(entry, 'utf8');
    const kernel = path.join(esp, 'darch', id, 'vmlinuz');
    const size = (await stat(kernel)).size;
    // What FAT kept after the cut: an entry with only its version, a kernel copy of 0 bytes,
    // and the temp copy of an initramfs whose writer (another boot) is gone.
    await writeFile(entry, '\nversion 30\n');
    await writeFile(kernel, '');
    const leftover = path.join(esp, 'darch', id, `.tmp-1-00000000${'cd'.repeat(6)}.initrd`);
    await writeFile(leftover, Buffer.alloc(4096));
    const run = await json(m, ['update', 'run']);
    assert.equal(run.outcome, 'armed');
    assert.match(run.reboot.reason, /would reboot now/, `the trial can boot again: ${run.reboot.reason}`);
    assert.equal(await readFile(entry, 'utf8'), good, 'the entry is whole again');
    assert.equal((await stat(kernel)).size, size, 'the kernel copy is whole again');
    assert.equal(await stat(leftover).catch(() => undefined), undefined, 'the dead temp copy is gone');
    // Beyond repair (its staged kernel is gone too): no reboot into a trial that cannot boot.
    await rm(path.join(m.root, 'var/lib/darch/stage/live', id, 'vmlinuz'));
    await writeFile(kernel, '');
    const stuck = await json(m, ['update', 'run']);
    assert.equal(stuck.reboot.due, false);
    assert.match(stuck.reboot.reason, /^the armed trial cannot boot yet \(.*vmlinuz/);
  });

  it('GRUB: arming an image the menu lost (a cut before its rewrite) writes the menu first', async () => {
    const m = await machine('stage', '[boot]\nstage_fs_uuid = "0f0e0d0c-0000-4000-8000-000000000015"\nstage_fs_path = "/var/lib/darch/stage"\n');
    const old = await fakeStaged(m.root, ['os:old'], { created: new Date(Date.now() - 60_000) });
    await m.boot(old);
    await darchOk(['boot', 'sync'], { root: m.root, env: m.env });
    const menu = path.join(m.root, 'var/lib/darch/stage/grub.cfg');
    const before = await readFile(menu, 'utf8');
    const staged = await json(m, ['update', 'run']);
    const tag = staged.staged.tag as string;
    const entry = `--id darch-${tag.replaceAll('/', '+').replaceAll(':', '@')} {`;
    assert.ok((await readFile(menu, 'utf8')).includes(entry), 'staging wrote its entry');
    await writeFile(menu, before);
    await darchOk(['boot', 'try', tag], { root: m.root, env: m.env });
    assert.ok((await readFile(menu, 'utf8')).includes(entry), 'the entry is back before the trial was armed');
    assert.equal((await json(m, ['boot', 'status'])).trial.stage, staged.staged.id);
  });

  it('apply --disk stages here and arms the update on a disk image', async () => {
    const m = await machine('check');
    // The disk starts with the version published now, staged and put on it by hand.
    await darchOk(['images', 'pull', '--tls-verify=false', image, '--name', 'desktop:old'], { root: m.root });
    await darchOk(['stage', 'upload', 'desktop:old'], { root: m.root });
    const disk = path.join(m.root, 'disk.img');
    await darchOk(['disk', 'create', disk, 'desktop:old'], { root: m.root });
    await publish(4);
    const res = await json(m, ['update', 'apply', '--disk', disk]);
    assert.equal(res.applied.target, disk);
    assert.equal(res.applied.changed, true);
    const s = (await darchOk(['--json', 'boot', 'status', '--disk', disk], { root: m.root })).json();
    assert.equal(s.trial.stage, res.staged.id);
    assert.deepEqual(s.trial.tags, [res.staged.tag]);
  });

  it('rollout: a percentage on the manifest selects a stable share of machine-ids, and raising it only adds machines', async () => {
    await darchOk(['update', 'rollout', '--tls-verify=false', image, '25'], { root: publisher });
    const machines: Machine[] = [];
    const N = 32;
    for (let i = 0; i < N; i++) {
      const m = await machine('check');
      await writeFile(path.join(m.root, 'etc/machine-id'), `${i.toString(16).padStart(4, '0')}${'a1b2c3d4'.repeat(3)}f00d\n`);
      machines.push(m);
    }
    const statuses = async () =>
      Promise.all(
        machines.map(async (m) => {
          const r = await darch(['--json', 'update', 'check'], { root: m.root, env: m.env });
          return { code: r.code, ...r.json() };
        }),
      );
    const at25 = await statuses();
    const in25 = at25.filter((s) => s.status === 'available');
    assert.ok(in25.every((s) => s.code === 100) && at25.filter((s) => s.status === 'deferred').every((s) => s.code === 0));
    assert.ok(in25.length >= 2 && in25.length <= 16, `${in25.length} of ${N} machines at 25 %`);
    assert.ok(at25.every((s) => s.rollout.percent === 25 && s.rollout.bucket < 25 === (s.status === 'available')));

    await darchOk(['update', 'rollout', '--tls-verify=false', image, '75'], { root: publisher });
    const at75 = await statuses();
    for (const [i, s] of at25.entries()) if (s.status === 'available') assert.equal(at75[i]?.status, 'available', 'raising the share keeps every machine in');
    assert.ok(at75.filter((s) => s.status === 'available').length > in25.length);
    const noId = await machine('check');
    assert.equal((await check(noId)).status, 'deferred', 'a machine without a machine-id waits for 100 %');
    await darchOk(['update', 'rollout', '--tls-verify=false', image, '100'], { root: publisher });
    assert.equal((await darch(['update', 'check'], { root: noId.root, env: noId.env })).code, 100);
  });

  it('a download killed mid-blob (SIGKILL) resumes in the next run: nothing is downloaded twice', async () => {
    // A version with a 4 MiB layer, reached through a proxy that stalls that layer at 1 MiB.
    const big = path.join(work, 'big.tar');
    await tarStreamLayer(big, [{ name: 'srv/big', content: randomBytes(4 * 1024 * 1024).toString('base64') }]);
    const layout = path.join(work, 'layout-big');
    await writeOciLayout(
      layout,
      'desktop:big',
      [
        { tar: path.join(work, 'base.tar'), compression: 'gzip' },
        { tar: big, compression: 'none' },
      ],
      {
        'org.opencontainers.image.version': 'big',
      },
    );
    await darchOk(['images', 'import', `oci:${layout}:desktop:big`, 'desktop:big'], { root: publisher });
    await darchOk(['images', 'push', '--tls-verify=false', 'desktop:big', `${reg.host}/os/big:stable`], { root: publisher });
    const proxy = await new FaultyProxy({ host: '127.0.0.1', port: reg.port }).start();
    try {
      const m = await machine('download');
      await writeFile(
        path.join(m.root, 'etc/darch/config.toml'),
        `[registry]\ninsecure = ["${proxy.host}"]\n[update]\nimage = "${proxy.host}/os/big:stable"\npolicy = "download"\n`,
      );
      const manifestDigest = JSON.parse(await readFile(path.join(layout, 'index.json'), 'utf8')).manifests[0].digest as string;
      const manifest = JSON.parse(await readFile(path.join(layout, 'blobs/sha256', manifestDigest.slice(7)), 'utf8'));
      const digest = manifest.layers[1].digest as string;
      const cutAt = 1024 * 1024;
      proxy.addRule({ method: 'GET', url: digest, fault: { kind: 'stall', afterBytes: cutAt } });
      const child = spawn(DARCH_BIN, ['--root', m.root, 'update', 'run'], { stdio: 'ignore', env: { ...process.env, ...m.env, DARCH_LOCK_TIMEOUT: '0' } });
      const partial = path.join(m.root, 'var/lib/darch/tmp', `pull-sha256-${digest.slice(7)}.partial`);
      let size = 0;
      for (let i = 0; i < 300 && size < cutAt; i++) {
        await sleep(100);
        size = await stat(partial).then(
          (st) => st.size,
          () => 0,
        );
      }
      assert.equal(size, cutAt, 'the download did not reach the stall');
      child.kill('SIGKILL');
      await new Promise((r) => child.once('close', r));
      const run = await json(m, ['update', 'run']);
      assert.equal(run.outcome, 'downloaded');
      assert.ok(run.download.bytesResumed >= cutAt, JSON.stringify(run.download));
      const gets = proxy.requests(digest);
      assert.equal(gets.at(-1)?.range, `bytes=${cutAt}-`);
      assert.equal(gets.at(-1)?.status, 206);
      assert.match(gets.at(-1)?.userAgent ?? '', /^darch\/\d+\.\d+\.\d+/, 'darch names itself to the registry');
      assert.equal((await darch(['images', 'verify'], { root: m.root })).code, 0);
    } finally {
      await proxy.stop();
    }
  });

  it('apply --from: a stage bundle, an OCI layout and an OCI archive, each verified before anything is staged; damaged ones change nothing', async () => {
    // The source machine took version 2 from the registry and exports it as a bundle.
    const src = await machine('stage');
    const staged = (await json(src, ['update', 'stage', image])).tag as string;
    const bundle = path.join(work, 'update.bundle');
    await darchOk(['stage', 'export', staged, '-o', bundle], { root: src.root });
    // The offline machine cannot reach any registry.
    const offline = async () => {
      const m = await machine('apply');
      await writeFile(path.join(m.root, 'etc/darch/config.toml'), '[update]\nimage = "127.0.0.1:9/os/desktop:stable"\n');
      return m;
    };
    const stageDir = (m: Machine) => path.join(m.root, 'var/lib/darch/stage/live');

    const b = await offline();
    const bad = path.join(work, 'bad.bundle');
    const bytes = await readFile(bundle);
    bytes[bytes.length - 2048] = (bytes[bytes.length - 2048] ?? 0) ^ 0xff;
    await writeFile(bad, bytes);
    const refused = await darch(['update', 'apply', '--from', bad], { root: b.root, env: b.env });
    assert.equal(refused.code, 1, refused.stderr);
    assert.match(refused.stderr, /^error: .*(sha256|truncated|corrupt)/m);
    assert.deepEqual(await readdir(stageDir(b)).catch(() => []), [], 'a damaged bundle stages nothing');
    const fromBundle = await json(b, ['update', 'apply', '--from', bundle]);
    assert.equal(fromBundle.kind, 'bundle');
    assert.equal(fromBundle.applied.changed, true);
    assert.equal((await json(b, ['boot', 'status'])).trial.stage, fromBundle.staged.id);
    assert.match(fromBundle.staged.tag, /^127\.0\.0\.1:9\/os\/desktop:stable-[0-9a-f]{12}$/);
    const again = await json(b, ['update', 'apply', '--from', bundle]);
    assert.equal(again.applied.changed, false, 'the same bundle twice arms nothing new');

    // An OCI layout (as `skopeo copy … oci:DIR` writes) and the same as an OCI archive.
    const layout = path.join(work, 'layout-1');
    const l = await offline();
    const flipped = path.join(work, 'layout-1-bad');
    await cp(layout, flipped, { recursive: true });
    const blobs = path.join(flipped, 'blobs/sha256');
    const biggest = (await Promise.all((await readdir(blobs)).map(async (f) => ({ f, size: (await stat(path.join(blobs, f))).size })))).sort(
      (x, y) => y.size - x.size,
    )[0]!.f;
    const blob = await readFile(path.join(blobs, biggest));
    blob[100] = (blob[100] ?? 0) ^ 0xff;
    await writeFile(path.join(blobs, biggest), blob);
    const badLayout = await darch(['update', 'apply', '--from', flipped], { root: l.root, env: l.env });
    assert.equal(badLayout.code, 1, badLayout.stderr);
    assert.match(badLayout.stderr, /^error: .*(digest|sha256)/im);
    assert.deepEqual(await readdir(stageDir(l)).catch(() => []), []);
    const fromLayout = await json(l, ['update', 'apply', '--from', layout]);
    assert.equal(fromLayout.kind, 'oci-layout');
    assert.equal(fromLayout.check.remote.version, '1');
    assert.equal((await json(l, ['boot', 'status'])).trial.stage, fromLayout.staged.id);

    const archive = path.join(work, 'update.oci.tar');
    await new Promise<void>((resolve, reject) => execFile('tar', ['-C', layout, '-cf', archive, '.'], (err) => (err ? reject(err) : resolve())));
    const a = await offline();
    const fromArchive = await json(a, ['update', 'apply', '--from', archive]);
    assert.equal(fromArchive.kind, 'oci-archive');
    assert.equal(fromArchive.applied.changed, true);

    const notUpdate = path.join(work, 'notes.txt');
    await writeFile(notUpdate, 'not an image\n');
    const wrong = await darch(['update', 'apply', '--from', notUpdate], { root: a.root, env: a.env });
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /is not a stage bundle, a delta, an OCI layout or an OCI archive/);
  });

  it('a pull-through mirror from registries.conf answers checks and serves downloads while the origin is down; without one: exit 1, nothing armed', async () => {
    const mirror = await startRegistry({ proxy: { remoteurl: reg.url } });
    try {
      const viaMirror = async () => {
        const m = await machine('apply');
        await mkdir(path.join(m.root, 'etc/containers'), { recursive: true });
        await writeFile(
          path.join(m.root, 'etc/containers/registries.conf'),
          `[[registry]]\nlocation = "${reg.host}"\ninsecure = true\n[[registry.mirror]]\nlocation = "${mirror.host}"\ninsecure = true\n`,
        );
        return m;
      };
      const first = await viaMirror();
      assert.equal((await json(first, ['update', 'run'])).outcome, 'armed');
      const plain = await machine('apply');
      const armed = (await json(plain, ['update', 'run'])).staged.id;

      await reg.stop();
      const second = await viaMirror();
      const run = await json(second, ['update', 'run']);
      assert.equal(run.outcome, 'armed', 'the mirror served the check and every blob');
      assert.equal(run.check.remote.digest, (await json(first, ['update', 'status'])).lastCheck.digest);

      // Without a mirror: an error, exit 1, nothing staged or armed beyond what was.
      const down = await darch(['update', 'run'], { root: plain.root, env: plain.env });
      assert.equal(down.code, 1);
      assert.match(down.stderr, /^error: .*127\.0\.0\.1/m);
      assert.equal((await json(plain, ['boot', 'status'])).trial.stage, armed);
      assert.deepEqual(await readdir(path.join(plain.root, 'var/lib/darch/stage/live')), [armed]);
      assert.match((await json(plain, ['update', 'status'])).lastCheck.error, /127\.0\.0\.1/);
    } finally {
      await mirror.stop();
    }
  });
});

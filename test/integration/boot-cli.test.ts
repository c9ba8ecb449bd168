/**
 * `darch boot …` on "this machine" (a --root with a mounted-ESP directory and a stage
 * store): the commands a user types, their --json, errors, and that retention keeps the
 * default and trial images.
 */
import assert from 'node:assert/strict';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { DirEnvStorage } from '../../src/boot/grub/grubenv.js';
import { loadState, saveState } from '../../src/boot/grub/envstate.js';
import { darch, darchOk, tempDir } from '../helpers/darch.js';

const A = 'a'.repeat(25);
const B = 'b'.repeat(25);

async function machine(t: Parameters<typeof tempDir>[0]): Promise<{ root: string; env: string; cmdline(c: string): Promise<NodeJS.ProcessEnv> }> {
  const root = await tempDir(t);
  const stage = path.join(root, 'var/lib/darch/stage');
  for (const id of [A, B]) {
    await mkdir(path.join(stage, 'live', id), { recursive: true });
    // A is the newer image: a menu sorted newest first would put it first.
    await writeFile(path.join(stage, 'live', id, 'meta.json'), JSON.stringify({ id, created: new Date(Date.now() - (id === A ? 0 : 60_000)).toISOString() }));
    await writeFile(path.join(stage, 'live', id, 'image.json'), JSON.stringify({ kernel: 'vmlinuz', initramfs: 'initrd.img', rootfs: 'rootfs.squash' }));
  }
  await writeFile(path.join(stage, 'images.json'), JSON.stringify({ version: 1, images: { [A]: { tags: ['os:a'] }, [B]: { tags: ['os:b', 'os:latest'] } } }));
  const file = path.join(root, 'cmdline');
  await writeFile(file, 'quiet\n');
  return {
    root,
    env: path.join(root, 'boot/efi/EFI/darch'),
    async cmdline(c) {
      await writeFile(file, `${c}\n`);
      return { DARCH_CMDLINE_FILE: file };
    },
  };
}

test('without an ESP, boot commands say where they looked and what to do', async (t) => {
  const m = await machine(t);
  const r = await darch(['boot', 'status'], { root: m.root });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /error: no EFI system partition found at .*boot\/efi/);
  assert.match(r.stderr, /hint: mount the ESP .*--disk/);
  const j = await darch(['boot', 'status', '--json'], { root: m.root });
  assert.equal(j.json().error.code, 'E_NO_ESP');
});

test('set-default, try, mark-good (only on the trial boot), rollback, mark-bad', async (t) => {
  const m = await machine(t);
  await mkdir(path.join(m.root, 'boot/efi/EFI'), { recursive: true });
  let s = (await darchOk(['boot', 'status', '--json'], { root: m.root })).json();
  assert.deepEqual([s.default, s.trial, s.env.primary, s.env.backup], [null, null, 'missing', 'missing']);

  await darchOk(['boot', 'set-default', 'os:a'], { root: m.root });
  const tried = await darchOk(['boot', 'try', 'os', '--tries', '2', '--json'], { root: m.root });
  s = tried.json().status;
  assert.equal(s.default.stage, A);
  assert.deepEqual([s.trial.stage, s.trial.entry, s.triesLeft], [B, 'darch-os@latest', 2]);
  assert.deepEqual([s.env.primary, s.env.backup], ['ok', 'ok']);

  // The human table names both images and the tries left.
  const table = await darchOk(['boot', 'status'], { root: m.root });
  assert.match(table.stdout, new RegExp(`^default +${A} +os:a +last good image$`, 'm'));
  assert.match(table.stdout, new RegExp(`^trial +${B} +os:b,os:latest +2 tries left of 2$`, 'm'));

  // An attempt that failed and could say why (the initramfs or a health check writes the
  // record on the stage file system): status shows it; a new `try` of the image starts clean.
  const record = path.join(m.root, 'var/lib/darch/stage/failed', B);
  await mkdir(path.dirname(record), { recursive: true });
  await writeFile(record, `stage=${B}\nwhere=initramfs\nreason=rootfs.squash not found in UUID=x:/stage/live/${B}\nuptime=4\n`);
  const failedOnce = await darchOk(['boot', 'status'], { root: m.root });
  assert.match(failedOnce.stdout, /^ +last attempt failed: initramfs: rootfs\.squash not found/m);
  assert.equal((await darchOk(['boot', 'status', '--json'], { root: m.root })).json().failure.where, 'initramfs');
  await darchOk(['boot', 'try', 'os', '--tries', '2'], { root: m.root });
  assert.equal((await darchOk(['boot', 'status', '--json'], { root: m.root })).json().failure, null);
  await assert.rejects(stat(record), /ENOENT/);

  // A boot that is not the trial changes nothing, byte for byte.
  const before = await readFile(path.join(m.env, 'grubenv'));
  for (const c of [`darch_stageid=${A}`, `darch_stageid=${B}`, `darch_stageid=${A} darch.trial=1`]) {
    const r = await darchOk(['boot', 'mark-good', '--json'], { root: m.root, env: await m.cmdline(c) });
    assert.equal(r.json().changed, false, c);
  }
  assert.deepEqual(await readFile(path.join(m.env, 'grubenv')), before);

  const booted = await darchOk(['boot', 'status', '--json'], { root: m.root, env: await m.cmdline(`BOOT_IMAGE=x darch_stageid=${B} darch.trial=1`) });
  assert.deepEqual([booted.json().booted.stage, booted.json().booted.trial], [B, true]);
  const good = await darchOk(['boot', 'mark-good', '--json'], { root: m.root, env: await m.cmdline(`BOOT_IMAGE=x darch_stageid=${B} darch.trial=1`) });
  // This boot proved itself: the mark darch-trial-failed's boot-complete deadline stands down on.
  await stat(path.join(m.root, 'run/darch/committed'));
  s = good.json().status;
  assert.equal(good.json().changed, true);
  assert.deepEqual([s.default.stage, s.previous.stage, s.trial], [B, A, null]);

  s = (await darchOk(['boot', 'rollback', '--json'], { root: m.root })).json().status;
  assert.deepEqual([s.default.stage, s.previous.stage], [A, B]);

  await darchOk(['boot', 'try', 'os:b'], { root: m.root });
  s = (await darchOk(['boot', 'mark-bad', '--json'], { root: m.root })).json().status;
  assert.deepEqual([s.trial, s.bad], [null, [B]]);
  // The bad image is still staged and tagged: its row shows the tags.
  assert.match((await darchOk(['boot', 'status'], { root: m.root })).stdout, new RegExp(`^bad +${B} +os:b,os:latest +not tried again without --force$`, 'm'));
  assert.deepEqual(s.badImages, [{ stage: B, tags: ['os:b', 'os:latest'] }]);
  const again = await darch(['boot', 'try', 'os:b'], { root: m.root });
  assert.equal(again.code, 1);
  assert.match(again.stderr, /error: .* failed before \(it is marked bad\)\nhint: .*--force/);
  await darchOk(['boot', 'try', 'os:b', '--force'], { root: m.root });
});

test('after GRUB fell back from a trial, status shows the tags of the image on the "fell back" and "bad" rows', async (t) => {
  const m = await machine(t);
  await mkdir(path.join(m.root, 'boot/efi/EFI'), { recursive: true });
  await darchOk(['boot', 'set-default', 'os:a'], { root: m.root });
  await darchOk(['boot', 'try', 'os:b', '--tries', '2'], { root: m.root });
  // What GRUB's script leaves once the tries ran out.
  const storage = new DirEnvStorage(m.env);
  const { state } = await loadState(storage);
  await saveState(storage, { ...state, trial: undefined, tries: 0, fellBack: true, fellBackFrom: B, bad: [B] });
  const out = (await darchOk(['boot', 'status'], { root: m.root })).stdout;
  assert.match(out, new RegExp(`^fell back +${B} +os:b,os:latest +the last trial failed after 2 tries$`, 'm'));
  assert.match(out, new RegExp(`^bad +${B} +os:b,os:latest +not tried again without --force$`, 'm'));
  const j = (await darchOk(['boot', 'status', '--json'], { root: m.root })).json();
  assert.deepEqual(j.fellBackFromTags, ['os:b', 'os:latest']);
});

test('bad arguments are usage errors; unknown images list what is staged', async (t) => {
  const m = await machine(t);
  await mkdir(path.join(m.root, 'boot/efi/EFI'), { recursive: true });
  const zero = await darch(['boot', 'try', 'os:b', '--tries', '0'], { root: m.root });
  assert.equal(zero.code, 2);
  assert.match(zero.stderr, /--tries must be a whole number from 1 to 20/);
  const nope = await darch(['boot', 'set-default', 'nope:1'], { root: m.root });
  assert.equal(nope.code, 1);
  assert.match(nope.stderr, /nope:1 is not staged\nhint: staged: .*os:a/);
  await darchOk(['boot', 'set-default', 'os:a'], { root: m.root });
  const self = await darch(['boot', 'try', 'os:a'], { root: m.root });
  assert.match(self.stderr, /already the default/);
  const noDisk = await darch(['boot', 'status', '--disk', path.join(m.root, 'nothing.img')], { root: m.root });
  assert.equal(noDisk.code, 1);
  assert.match(noDisk.stderr, /cannot open .*nothing.img/);
});

test('retention keeps the default and the trial even when their tags are removed', async (t) => {
  const m = await machine(t);
  await mkdir(path.join(m.root, 'boot/efi/EFI'), { recursive: true });
  await darchOk(['boot', 'set-default', 'os:a'], { root: m.root });
  await darchOk(['boot', 'try', 'os:b'], { root: m.root });
  await darchOk(['stage', 'remove', 'os:a', 'os:b', 'os:latest'], { root: m.root });
  for (const id of [A, B]) assert.ok((await stat(path.join(m.root, 'var/lib/darch/stage/live', id))).isDirectory(), `${id} must stay`);
});

test('a new default also becomes the first entry of darch grub.cfg (what a lost state boots)', async (t) => {
  const m = await machine(t);
  await mkdir(path.join(m.root, 'boot/efi/EFI'), { recursive: true });
  // A menu as `darch boot sync` writes it on a machine (its stage file system has a UUID).
  const cfg = path.join(m.root, 'var/lib/darch/stage/grub.cfg');
  const uuid = '0f0e0d0c-0000-4000-8000-000000000001';
  await writeFile(
    cfg,
    `search --no-floppy --fs-uuid --set=darch_fs ${uuid}\nmenuentry 'x' --id darch-os@b {\n\tlinux /var/lib/darch/stage/live/${B}/vmlinuz darch_dir=UUID=${uuid}:/var/lib/darch/stage/live/${B} darch_stageid=${B}\n}\n`,
  );
  const first = async () => /^menuentry .* --id (\S+) \{/m.exec(await readFile(cfg, 'utf8'))?.[1];
  await darchOk(['boot', 'set-default', 'os:a'], { root: m.root });
  assert.equal(await first(), 'darch-os@a');
  await darchOk(['boot', 'try', 'os:b'], { root: m.root });
  await darchOk(['boot', 'mark-good'], { root: m.root, env: await m.cmdline(`darch_stageid=${B} darch.trial=1`) });
  assert.equal(await first(), 'darch-os@b');
  // A later regeneration (`darch boot sync`, or after any stage change) keeps the default first.
  await mkdir(path.join(m.root, 'etc/darch'), { recursive: true });
  await writeFile(path.join(m.root, 'etc/darch/config.toml'), `[boot]\nstage_fs_uuid = "${uuid}"\nstage_fs_path = "/var/lib/darch/stage"\n`);
  await darchOk(['boot', 'sync'], { root: m.root });
  assert.equal(await first(), 'darch-os@b');
  // The trial script is part of the generated menu, before the entries.
  const text = await readFile(cfg, 'utf8');
  assert.ok(text.indexOf('darch trial boots') < text.indexOf('menuentry'));
  assert.match(text, new RegExp(`darch_dir=UUID=${uuid}:/var/lib/darch/stage/live/${A}`));
});

test('a trial boot under a watchdog: status shows it, mark-good stops it (magic close), a failed stop is reported', async (t) => {
  const m = await machine(t);
  await mkdir(path.join(m.root, 'boot/efi/EFI'), { recursive: true });
  await darchOk(['boot', 'set-default', 'os:a'], { root: m.root });
  await darchOk(['boot', 'try', 'os:b'], { root: m.root });
  // What darch's initramfs records when it arms one; a plain file stands in for /dev/watchdog0.
  const dev = path.join(m.root, 'watchdog0');
  await writeFile(dev, '');
  await mkdir(path.join(m.root, 'run/darch'), { recursive: true });
  const record = path.join(m.root, 'run/darch/watchdog');
  await writeFile(record, `device=${dev}\nseconds=60\ndriver=i6300esb\n`);
  const env = await m.cmdline(`darch_stageid=${B} darch.trial=1 darch.watchdog=60`);
  const st = await darchOk(['boot', 'status', '--json'], { root: m.root, env });
  assert.deepEqual(st.json().watchdog, { device: dev, seconds: 60, driver: 'i6300esb' });
  assert.match(
    (await darchOk(['boot', 'status'], { root: m.root, env })).stdout,
    /^watchdog +\S+watchdog0 +i6300esb +armed \(60 s\): reset unless `darch boot mark-good` runs$/m,
  );
  const good = await darchOk(['boot', 'mark-good', '--json'], { root: m.root, env });
  assert.equal(good.json().changed, true);
  assert.deepEqual(good.json().watchdog, { stopped: true, device: dev, seconds: 60, driver: 'i6300esb' });
  assert.equal(await readFile(dev, 'utf8'), 'V', "the magic 'V' was written before closing");
  assert.equal(
    await stat(record).then(
      () => true,
      () => false,
    ),
    false,
    'the record is gone',
  );
  assert.equal(good.json().status.watchdog, null);
  assert.match(good.stderr, /the trial's watchdog \(\S+watchdog0\) is stopped/);

  // No record (the image mounted a fresh /run): the command line says a watchdog was armed.
  await darchOk(['boot', 'try', 'os:a', '--force'], { root: m.root });
  const devDir = path.join(m.root, 'dev');
  await mkdir(devDir, { recursive: true });
  await writeFile(path.join(devDir, 'watchdog0'), '');
  const implied = await darchOk(['boot', 'mark-good', '--json'], { root: m.root, env: await m.cmdline(`darch_stageid=${A} darch.trial=1 darch.watchdog=60`) });
  assert.equal(implied.json().changed, true);
  assert.equal(implied.json().watchdog.stopped, true);
  assert.equal(await readFile(path.join(devDir, 'watchdog0'), 'utf8'), 'V');

  // A device that cannot be opened: the commit stands, the user is told the machine will be reset.
  await writeFile(record, `device=${path.join(m.root, 'no/such/watchdog')}\nseconds=60\n`);
  const again = await darchOk(['boot', 'mark-good'], { root: m.root, env });
  assert.match(again.stderr, /warning: cannot stop the trial's watchdog .*no\/such\/watchdog: .*: the machine will be reset/);
});

/**
 * The shell side of trial boots for images without darch: darch-commit and darch-health
 * (assets/trial) run under busybox alone, and must agree with darch's own state code
 * byte for byte: what the shell writes, darch and grub-editenv read, and the other way.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmod, mkdir, readFile, readdir, rm, stat, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { DirEnvStorage, serializeGrubEnv } from '../../src/boot/grub/grubenv.js';
import { emptyState, type ImageRef } from '../../src/boot/trial/state.js';
import { loadState, saveState, stateToVars } from '../../src/boot/grub/envstate.js';
import { REPO, tempDir } from '../helpers/darch.js';

const sh = promisify(execFile);
const A: ImageRef = { entry: 'darch-os@a', stage: 'a'.repeat(25) };
const B: ImageRef = { entry: 'darch-os@b', stage: 'b'.repeat(25) };
const C = 'c'.repeat(25);
const LIB = path.join(REPO, 'assets/trial');
const APPLETS = [
  'sh',
  'cat',
  'head',
  'tail',
  'tr',
  'wc',
  'grep',
  'sed',
  'dd',
  'rm',
  'sync',
  'mkdir',
  'printf',
  'echo',
  'blkid',
  'mount',
  'umount',
  'modprobe',
  'cut',
  'reboot',
  'awk',
  'ls',
  'mv',
];

/** A PATH with busybox applets only, so the scripts are proven to need nothing else. */
async function busyboxPath(dir: string): Promise<string> {
  const bin = path.join(dir, 'bb');
  await mkdir(bin, { recursive: true });
  const busybox = ['/bin/busybox', '/usr/bin/busybox'].find(Boolean)!;
  for (const a of APPLETS) await symlink(busybox, path.join(bin, a));
  return bin;
}

interface Setup {
  dir: string;
  esp: string;
  storage: DirEnvStorage;
  run(script: string, cmdline: string, args?: string[], env?: NodeJS.ProcessEnv): Promise<{ code: number; out: string }>;
}

async function setup(t: Parameters<typeof tempDir>[0]): Promise<Setup> {
  const dir = await tempDir(t);
  const esp = path.join(dir, 'esp');
  const storage = new DirEnvStorage(path.join(esp, 'EFI/darch'));
  await saveState(storage, { ...emptyState(), default: A, trial: B, tries: 2, bad: [C] });
  const bin = await busyboxPath(dir);
  return {
    dir,
    esp,
    storage,
    async run(script, cmdline, args = [], env = {}) {
      const cmdFile = path.join(dir, 'cmdline');
      await writeFile(cmdFile, `${cmdline}\n`);
      try {
        const r = await sh(path.join(bin, 'sh'), [path.join(LIB, script), ...args], {
          // DARCH_RUN_DIR: the scripts' /run/darch (watchdog record, commit mark) stays in the test's directory.
          env: {
            PATH: bin,
            DARCH_LIB: LIB,
            DARCH_ESP: esp,
            DARCH_CMDLINE_FILE: cmdFile,
            TMPDIR: dir,
            DARCH_NO_REBOOT: '1',
            DARCH_RUN_DIR: path.join(dir, 'run'),
            ...env,
          },
        });
        return { code: 0, out: r.stdout + r.stderr };
      } catch (err) {
        const e = err as { code: number; stdout: string; stderr: string };
        return { code: e.code, out: e.stdout + e.stderr };
      }
    },
  };
}

const files = async (s: Setup) => Promise.all(['grubenv', 'grubenv.bak'].map((f) => readFile(path.join(s.storage.dir, f))));

test('darch-commit under busybox: only the trial boot itself commits', async (t) => {
  const s = await setup(t);
  const before = await files(s);
  let r = await s.run('darch-commit', `console=ttyS0 darch_stageid=${B.stage}`);
  assert.equal(r.code, 0);
  assert.match(r.out, /not a trial boot/);
  r = await s.run('darch-commit', `darch_stageid=${A.stage} darch.trial=1`);
  assert.match(r.out, /not the pending trial/);
  assert.deepEqual(await files(s), before, 'a boot that is not the trial must change nothing');

  r = await s.run('darch-commit', `BOOT_IMAGE=x darch_stageid=${B.stage} darch.trial=1 quiet`);
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /is good/);
  const { state, pair } = await loadState(s.storage);
  assert.deepEqual([pair.status.primary, pair.status.backup], ['ok', 'ok']);
  assert.deepEqual([state.default, state.previous, state.trial, state.tries, state.bad], [B, A, undefined, 0, [C]]);
  // The block is exactly what darch itself would have written for that state.
  const expected = serializeGrubEnv([['darch_seq', '2'], ...stateToVars(state), ['darch_seal', '2']]);
  assert.deepEqual((await files(s))[0], expected);
  assert.match((await sh('grub-editenv', [path.join(s.storage.dir, 'grubenv'), 'list'])).stdout, new RegExp(`darch_default_stage=${B.stage}`));
});

test('darch-commit uses the backup when the primary is damaged, and GRUB-lengthened seals', async (t) => {
  const s = await setup(t);
  // GRUB lowered the counter and resealed the backup with "g"s; the primary is garbage.
  const vars = stateToVars({ ...emptyState(), default: A, trial: B, tries: 1, bad: [C] });
  await writeFile(path.join(s.storage.dir, 'grubenv.bak'), serializeGrubEnv([['darch_seq', '7gg'], ...vars, ['darch_seal', '7gg']]));
  await writeFile(path.join(s.storage.dir, 'grubenv'), Buffer.alloc(1024, 0x41));
  const r = await s.run('darch-commit', `darch_stageid=${B.stage} darch.trial=1`);
  assert.equal(r.code, 0, r.out);
  const { state, pair } = await loadState(s.storage);
  assert.deepEqual([pair.status.primary, pair.status.backup], ['ok', 'ok']);
  assert.deepEqual(state.default, B);
  assert.match(String((await files(s))[0]), /^# GRUB Environment Block\n[^]*darch_seq=8\n/);
  // Both copies damaged: nothing is written, and it says so.
  await writeFile(path.join(s.storage.dir, 'grubenv'), Buffer.alloc(1024, 0x41));
  await writeFile(path.join(s.storage.dir, 'grubenv.bak'), Buffer.alloc(1024, 0x41));
  const r2 = await s.run('darch-commit', `darch_stageid=${B.stage} darch.trial=1`);
  assert.equal(r2.code, 1);
  assert.match(r2.out, /neither copy/);
});

test('darch-health: a failing check fails the boot; on a trial boot it reboots; all passing commits', async (t) => {
  const s = await setup(t);
  const hd = path.join(s.dir, 'health.d');
  await mkdir(hd);
  await writeFile(path.join(hd, '10-ok'), '#!/bin/sh\nexit 0\n');
  await writeFile(path.join(hd, '20-disk'), '#!/bin/sh\n[ -e "$MARK" ]\n');
  await writeFile(path.join(hd, 'README'), 'not executable: skipped\n');
  await chmod(path.join(hd, '10-ok'), 0o755);
  await chmod(path.join(hd, '20-disk'), 0o755);
  const env = { DARCH_HEALTH_DIR: hd, MARK: path.join(s.dir, 'mark') };
  const before = await files(s);
  let r = await s.run('darch-health', `darch_stageid=${B.stage} darch.trial=1`, ['--commit'], env);
  assert.equal(r.code, 1);
  assert.match(r.out, /FAILED: 20-disk/);
  assert.match(r.out, /rebooting so the counter runs down/);
  r = await s.run('darch-health', `darch_stageid=${A.stage}`, ['--commit'], env);
  assert.equal(r.code, 1);
  assert.doesNotMatch(r.out, /rebooting/);
  assert.deepEqual(await files(s), before, 'a failed check commits nothing');
  await writeFile(env.MARK, '');
  r = await s.run('darch-health', `darch_stageid=${B.stage} darch.trial=1`, ['--commit'], env);
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /all checks passed[^]*is good/);
  assert.deepEqual((await loadState(s.storage)).state.default, B);
});

test('darch-commit on a systemd-boot ESP strips the counter like systemd-bless-boot, and darch agrees', async (t) => {
  const s = await setup(t);
  const { renderBlsEntry, readEntries, stateFromEntries, DirEntryFiles } = await import('../../src/boot/sdboot/sdboot.js');
  const entries = path.join(s.esp, 'loader/entries');
  await mkdir(entries, { recursive: true });
  const opts = (id: string) => ({ stage: id, title: id, linux: '/k', initrd: '/i', options: `darch_stageid=${id}` });
  await writeFile(path.join(entries, `darch-${A.stage}.conf`), renderBlsEntry(opts(A.stage), 20));
  // As `darch boot try` arms it: the flag, then the trial's own panic= and darch.watchdog=.
  await writeFile(
    path.join(entries, `darch-${B.stage}+1-2.conf`),
    renderBlsEntry({ ...opts(B.stage), options: `darch_stageid=${B.stage} darch.trial=1 panic=10 darch.watchdog=300` }, 30),
  );
  const r = await s.run('darch-commit', `darch_stageid=${B.stage} darch.trial=1`);
  assert.equal(r.code, 0, r.out);
  await stat(path.join(s.dir, 'run/committed')); // the boot proved itself: darch-trial-failed's deadline stands down
  const st = stateFromEntries(await readEntries(new DirEntryFiles(entries)));
  assert.deepEqual([st.default?.stage, st.trial], [B.stage, undefined]);
  assert.deepEqual((await readdir(entries)).sort(), [`darch-${A.stage}.conf`, `darch-${B.stage}.conf`]);
  // Its next boots are not trial boots: the flag and the trial's arguments left its options.
  assert.match(await readFile(path.join(entries, `darch-${B.stage}.conf`), 'utf8'), new RegExp(`^options darch_stageid=${B.stage}$`, 'm'));
  const again = await s.run('darch-commit', `darch_stageid=${B.stage} darch.trial=1`);
  assert.equal(again.code, 0, again.out);
  assert.match(again.out, /already committed/);
});

test('after systemd-bless-boot committed a trial: darch-commit drops the stale flag, and that entry is no trial any more', async (t) => {
  const s = await setup(t);
  const { renderBlsEntry } = await import('../../src/boot/sdboot/sdboot.js');
  const entries = path.join(s.esp, 'loader/entries');
  await mkdir(entries, { recursive: true });
  const cmdline = `darch_stageid=${B.stage} darch.trial=1 panic=10`;
  // systemd-bless-boot only renames darch-B+1-2.conf: the options keep darch.trial=1.
  await writeFile(path.join(entries, `darch-${B.stage}.conf`), renderBlsEntry({ stage: B.stage, title: 'b', linux: '/k', initrd: '/i', options: cmdline }, 30));
  const r = await s.run('darch-commit', cmdline);
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /committed by systemd-bless-boot: dropped darch\.trial=1/);
  assert.match(await readFile(path.join(entries, `darch-${B.stage}.conf`), 'utf8'), new RegExp(`^options darch_stageid=${B.stage}$`, 'm'));
  assert.deepEqual(await readdir(entries), [`darch-${B.stage}.conf`], 'no temporary file is left');

  // A boot of such an entry (the flag still on the command line, say after a power cut before
  // darch-commit ran) is not a trial when systemd-boot says it booted an entry without a counter.
  const hd = path.join(s.dir, 'health.d');
  await mkdir(hd);
  await writeFile(path.join(hd, '10-fail'), '#!/bin/sh\nexit 1\n', { mode: 0o755 });
  const efivars = path.join(s.dir, 'efivars');
  await mkdir(efivars);
  const guid = '4a67b082-0a4c-41cf-b6c7-440b29bb8c4f';
  // efivarfs files: 4 attribute bytes, then the UTF-16LE string.
  await writeFile(
    path.join(efivars, `LoaderInfo-${guid}`),
    Buffer.concat([Buffer.from([6, 0, 0, 0]), Buffer.from('systemd-boot 252.39-1~deb12u2\0', 'utf16le')]),
  );
  const env = { DARCH_HEALTH_DIR: hd, DARCH_EFIVARS: efivars };
  let h = await s.run('darch-health', cmdline, [], env);
  assert.equal(h.code, 1);
  assert.doesNotMatch(h.out, /rebooting/, h.out);
  assert.match(h.out, /unhealthy: 10-fail/);
  // While systemd-boot counts the booted entry down, it is a trial: a failure reboots.
  await writeFile(
    path.join(efivars, `LoaderBootCountPath-${guid}`),
    Buffer.concat([Buffer.from([6, 0, 0, 0]), Buffer.from(`\\loader\\entries\\darch-${B.stage}+1-2.conf\0`, 'utf16le')]),
  );
  h = await s.run('darch-health', cmdline, [], env);
  assert.equal(h.code, 1);
  assert.match(h.out, /rebooting so the counter runs down/);
});

test('darch-commit stops the watchdog the initramfs armed, on every successful path, and only then', async (t) => {
  const s = await setup(t);
  const run = path.join(s.dir, 'run');
  await mkdir(run);
  const dev = path.join(s.dir, 'watchdog0');
  const arm = async () => {
    await writeFile(dev, '');
    await writeFile(path.join(run, 'watchdog'), `device=${dev}\nseconds=60\ndriver=i6300esb\n`);
  };
  const env = { DARCH_RUN_DIR: run };
  // Not the pending trial (picked by hand during a trial): it passed its checks, so it is not reset.
  await arm();
  let r = await s.run('darch-commit', `darch_stageid=${C} darch.trial=1`, [], env);
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /not the pending trial[^]*watchdog .* is stopped/);
  assert.equal(await readFile(dev, 'utf8'), 'V');
  // The trial commits: the watchdog is stopped after the state is written.
  await arm();
  r = await s.run('darch-commit', `darch_stageid=${B.stage} darch.trial=1`, [], env);
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /is good: it is now the default\ndarch: the trial's watchdog \(.*watchdog0\) is stopped/);
  assert.equal(await readFile(dev, 'utf8'), 'V');
  assert.deepEqual(await readdir(run), ['committed'], 'the record is gone; the commit mark is there');
  // The image mounted a fresh /run over the record: the command line says one was armed.
  await writeFile(dev, '');
  await saveState(s.storage, { ...emptyState(), default: A, trial: B, tries: 2 });
  r = await s.run('darch-commit', `darch_stageid=${B.stage} darch.trial=1 darch.watchdog=45`, [], { ...env, DARCH_WATCHDOG_DEV: dev });
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /watchdog .* is stopped/);
  assert.equal(await readFile(dev, 'utf8'), 'V');
  // A commit that fails leaves it running: the machine is reset and the counter runs down,
  // and it leaves no commit mark (the boot-complete deadline still counts).
  await arm();
  await rm(path.join(run, 'committed'));
  await writeFile(path.join(s.storage.dir, 'grubenv'), 'garbage');
  await writeFile(path.join(s.storage.dir, 'grubenv.bak'), 'garbage');
  r = await s.run('darch-commit', `darch_stageid=${B.stage} darch.trial=1`, [], env);
  assert.equal(r.code, 1);
  assert.equal(await readFile(dev, 'utf8'), '', 'nothing written to the watchdog');
  assert.deepEqual(await readdir(run), ['watchdog']);
});

/** A stand-in for systemctl: boot-complete.target reached or not, two failed units, one waiting job; calls logged. */
async function fakeSystemctl(dir: string, completed: boolean): Promise<{ env: NodeJS.ProcessEnv; calls(): Promise<string> }> {
  const log = path.join(dir, 'systemctl.log');
  const bin = path.join(dir, 'fakebin');
  await mkdir(bin, { recursive: true });
  await writeFile(log, '');
  await writeFile(
    path.join(bin, 'systemctl'),
    '#!/bin/sh\n' +
      `echo "$*" >>${log}\n` +
      'case "$1" in\n' +
      `show) echo ${completed ? '81234567' : '0'} ;;\n` +
      'list-units) printf "darchbad.mount loaded failed failed /darchbad\\nlocal-fs.target loaded failed failed Local File Systems\\n" ;;\n' +
      'list-jobs) printf "41 darch-slow.service start running\\n" ;;\n' +
      'esac\n',
    { mode: 0o755 },
  );
  return { env: { PATH: `${bin}:${path.join(dir, 'bb')}`, DARCH_NO_CONSOLE: '1' }, calls: () => readFile(log, 'utf8') };
}

test('darch-trial-failed: a trial boot in emergency mode reboots (with why); any other boot keeps its shell', async (t) => {
  const s = await setup(t);
  let fake = await fakeSystemctl(s.dir, false);
  // A trial boot that failed into emergency mode: says why and reboots (DARCH_NO_REBOOT stops short: exit 1).
  let r = await s.run('darch-trial-failed', `darch_stageid=${B.stage} darch.trial=1`, ['emergency.target'], fake.env);
  assert.equal(r.code, 1, r.out);
  assert.match(
    r.out,
    /trial boot failed \(emergency\.target: the boot failed into emergency\.target; failed units: darchbad\.mount local-fs\.target\): rebooting/,
  );
  // Not a trial boot: emergency mode is left alone, systemd is not even asked.
  fake = await fakeSystemctl(s.dir, false);
  r = await s.run('darch-trial-failed', `darch_stageid=${A.stage}`, ['emergency.target'], fake.env);
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /not a trial boot: nothing to do/);
  assert.equal(await fake.calls(), '');
  // Someone asked for the shell on the command line of a trial boot.
  for (const ask of ['systemd.unit=emergency.target', 'single', 'rescue', 'break=darch-premove']) {
    r = await s.run('darch-trial-failed', `darch_stageid=${B.stage} darch.trial=1 ${ask}`, ['rescue.target'], fake.env);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /asks for a shell: this trial boot stays here/);
  }
  // The trial came up (boot-complete.target reached in this boot); rescue mode later is someone's choice.
  fake = await fakeSystemctl(s.dir, true);
  r = await s.run('darch-trial-failed', `darch_stageid=${B.stage} darch.trial=1`, ['rescue.target'], fake.env);
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /boot-complete\.target was reached in this boot/);
  // Under systemd-boot, an entry systemd-bless-boot committed still says darch.trial=1, but
  // systemd-boot set no LoaderBootCountPath: not a trial, no reboot.
  const efivars = path.join(s.dir, 'efivars');
  await mkdir(efivars, { recursive: true });
  await writeFile(path.join(efivars, 'LoaderInfo-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f'), 'systemd-boot 252');
  fake = await fakeSystemctl(s.dir, false);
  r = await s.run('darch-trial-failed', `darch_stageid=${B.stage} darch.trial=1`, ['emergency.target'], { ...fake.env, DARCH_EFIVARS: efivars });
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /not a trial boot/);
  await writeFile(path.join(efivars, 'LoaderBootCountPath-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f'), '\\loader\\entries\\darch-b+0-1.conf');
  r = await s.run('darch-trial-failed', `darch_stageid=${B.stage} darch.trial=1`, ['emergency.target'], { ...fake.env, DARCH_EFIVARS: efivars });
  assert.equal(r.code, 1, r.out);
  assert.match(r.out, /rebooting so the boot loader counts the attempt/);
  // Usage errors.
  r = await s.run('darch-trial-failed', `darch_stageid=${B.stage} darch.trial=1`, [], fake.env);
  assert.equal(r.code, 2, r.out);
});

test('darch-trial-failed --deadline: a trial that has not reached boot-complete.target in time reboots; one that reached it never does', async (t) => {
  const s = await setup(t);
  // The host's uptime is past a 1 s deadline, so the check runs at once.
  let fake = await fakeSystemctl(s.dir, false);
  let r = await s.run('darch-trial-failed', `darch_stageid=${B.stage} darch.trial=1 darch.trial_deadline=1`, ['--deadline'], fake.env);
  assert.equal(r.code, 1, r.out);
  assert.match(r.out, /within 1s of power-on/);
  assert.match(r.out, /trial boot failed \(deadline: boot-complete\.target not reached within 1s; waiting: darch-slow\.service; failed units: .*\): rebooting/);
  // Without darch.trial_deadline= the deadline is the watchdog's seconds.
  r = await s.run('darch-trial-failed', `darch_stageid=${B.stage} darch.trial=1 darch.watchdog=2`, ['--deadline'], fake.env);
  assert.equal(r.code, 1, r.out);
  assert.match(r.out, /within 2s of power-on/);
  // 0 turns it off; boots that are not trials have none.
  r = await s.run('darch-trial-failed', `darch_stageid=${B.stage} darch.trial=1 darch.trial_deadline=0`, ['--deadline'], fake.env);
  assert.equal(r.code, 0, r.out);
  r = await s.run('darch-trial-failed', `darch_stageid=${A.stage} darch.trial_deadline=1`, ['--deadline'], fake.env);
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /not a trial boot: no deadline/);
  // darch-commit (or darch boot mark-good) ran in this boot, e.g. by hand with no watchdog
  // armed: the boot proved itself, and the deadline is off although systemd says nothing.
  await mkdir(path.join(s.dir, 'run'), { recursive: true });
  await writeFile(path.join(s.dir, 'run/committed'), '');
  r = await s.run('darch-trial-failed', `darch_stageid=${B.stage} darch.trial=1 darch.trial_deadline=1`, ['--deadline'], fake.env);
  assert.equal(r.code, 0, r.out);
  await rm(path.join(s.dir, 'run/committed'));
  // boot-complete.target was reached (the commit follows it): the deadline is off.
  fake = await fakeSystemctl(s.dir, true);
  r = await s.run('darch-trial-failed', `darch_stageid=${B.stage} darch.trial=1 darch.trial_deadline=1`, ['--deadline'], fake.env);
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /boot-complete\.target reached after \d+s: the deadline is off/);
});

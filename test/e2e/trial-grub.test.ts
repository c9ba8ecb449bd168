/**
 * The GRUB side of trial boots, in real GRUB under OVMF across real resets, without a
 * kernel: the menu is darch's generated grub.cfg with each entry's `linux`/`initrd` lines
 * turned into "print the command line and reboot". That makes a boot take seconds and
 * proves the counting, the fallback and the damaged-environment paths in GRUB itself;
 * trial-linux.test.ts proves the same with real kernels and health checks.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { renderGrubCfg, type MenuEntry } from '../../src/boot/grub/grubcfg.js';
import { DirEnvStorage, serializeGrubEnv } from '../../src/boot/grub/grubenv.js';
import { emptyState } from '../../src/boot/trial/state.js';
import { saveState, stateToVars } from '../../src/boot/grub/envstate.js';
import { renderEmbeddedConfig } from '../../src/disk/layout.js';
import { darch, darchOk, REPO as REPO_ROOT } from '../helpers/darch.js';
import { Vm } from '../helpers/qemu.js';

const sh = promisify(execFile);
const A = { id: 'a'.repeat(25), tag: 'os:a', entry: 'darch-os@a' };
const B = { id: 'b'.repeat(25), tag: 'os:b', entry: 'darch-os@b' };
const MiB = 1024 * 1024;
const ESP_OFF = 1 * MiB;
const ESP_SIZE = 32 * MiB;
const FS_OFF = ESP_OFF + ESP_SIZE;
const FS_SIZE = 8 * MiB;
const ESP = (img: string) => `${img}@@${ESP_OFF}`;

let work: string;
let template: string;

/** A darch-layout disk whose menu entries print their kernel command line and reboot. */
async function buildTemplate(dir: string): Promise<string> {
  const uuid = '4d3b2a10-0000-4000-8000-00000000da7c';
  const serial = '1234ABCD';
  const embedded = path.join(dir, 'embedded.cfg');
  await writeFile(embedded, renderEmbeddedConfig({ darchUuid: uuid, espSerial: '1234-ABCD', kernelArgs: 'console=ttyS0', timeout: 0 }));
  const efi = path.join(dir, 'BOOTX64.EFI');
  await sh('grub-mkstandalone', [
    '-O',
    'x86_64-efi',
    '-o',
    efi,
    '--install-modules=part_gpt part_msdos gzio fat ext2 search search_fs_uuid search_fs_file normal echo test loadenv serial terminal reboot configfile all_video',
    '--modules=part_gpt fat ext2',
    '--locales=',
    '--fonts=',
    '--themes=',
    `boot/grub/grub.cfg=${embedded}`,
  ]);
  const loc = { uuid, path: '/stage' };
  const entries: MenuEntry[] = [A, B].map((x) => ({
    id: x.entry,
    title: `Darch: ${x.tag}`,
    tag: x.tag,
    stageId: x.id,
    kernelPath: '/stage/live/k',
    initrdPath: '/stage/live/i',
    cmdline: `darch_rootfs=rootfs.squash darch_dir=UUID=${uuid}:/stage/live/${x.id} darch_stageid=${x.id}`,
  }));
  // GRUB's serial terminal wraps long lines, so print the parts on short lines of their own.
  const cfg = renderGrubCfg(entries, loc).replace(/\tlinux \S+ (.*)\n\tinitrd .*\n/g, (_m, args: string) => {
    assert.match(args, / \$\{darch_cmdline\}$/);
    const stage = /darch_stageid=(\w+)/.exec(args)?.[1];
    assert.match(args, /^\$\{darch_trial_cmdline\} /, "the trial's own arguments come first, so the entry's and the user's win");
    return `\techo "DARCH-BOOT"\n\techo "stage=${stage}"\n\techo "flags=\${darch_cmdline}"\n\techo "targs=[\${darch_trial_cmdline}]"\n\techo "DARCH-END"\n\treboot\n`;
  });
  assert.match(cfg, /DARCH-BOOT/);
  const tree = path.join(dir, 'tree');
  await mkdir(path.join(tree, 'stage'), { recursive: true });
  await writeFile(path.join(tree, 'stage/grub.cfg'), cfg);
  const img = path.join(dir, 'template.img');
  await sh('truncate', ['-s', String(FS_OFF + FS_SIZE + MiB), img]);
  await sh('sh', [
    '-c',
    `printf 'label: gpt\\nstart=2048, size=${ESP_SIZE / 512}, type=U\\nstart=${FS_OFF / 512}, size=${FS_SIZE / 512}, type=L\\n' | sfdisk -q "${img}"`,
  ]);
  await sh('mformat', ['-i', ESP(img), '-F', '-N', serial, '-v', 'ESP', '::']);
  await sh('mmd', ['-i', ESP(img), '::/EFI', '::/EFI/BOOT', '::/EFI/darch']);
  await sh('mcopy', ['-i', ESP(img), efi, '::/EFI/BOOT/BOOTX64.EFI']);
  const diskJson = path.join(dir, 'disk.json');
  await writeFile(diskJson, JSON.stringify({ version: 1, images: [A, B].map((x) => ({ id: x.id, tags: [x.tag] })) }));
  await sh('mcopy', ['-i', ESP(img), diskJson, '::/EFI/darch/disk.json']);
  // The initial state `darch disk create` writes: A is the default, in two sealed copies.
  const env = new DirEnvStorage(path.join(dir, 'env'));
  await saveState(env, { ...emptyState(), default: { entry: A.entry, stage: A.id } });
  await sh('mcopy', ['-i', ESP(img), path.join(env.dir, 'grubenv'), path.join(env.dir, 'grubenv.bak'), '::/EFI/darch/']);
  await sh('mkfs.ext4', ['-q', '-F', '-U', uuid, '-d', tree, '-E', `offset=${FS_OFF}`, img, `${FS_SIZE / 1024}k`]);
  return img;
}

async function freshDisk(name: string): Promise<string> {
  const img = path.join(work, `${name}.img`);
  await sh('cp', ['--sparse=always', template, img]);
  return img;
}

interface Boot {
  entry: 'a' | 'b';
  trial: boolean;
  fellBack: boolean;
}

/** Watch `count` boots (GRUB's reboot resets the VM) and say which entry each one booted with which flags. */
async function watchBoots(
  name: string,
  disk: string,
  count: number,
  noReboot = false,
  readOnly = false,
): Promise<{ boots: Boot[]; vm: Vm; trialArgs: string[] }> {
  const vm = await Vm.qemu({ name, disk, noReboot, readOnly, memoryMiB: 128 });
  const boots: Boot[] = [];
  const trialArgs: string[] = [];
  let from = 0;
  try {
    for (let i = 0; i < count; i++) {
      const { match, end } = await vm.waitFor(/DARCH-BOOT([\s\S]*?)DARCH-END/, 60_000, from);
      from = end;
      const line = match[1]!;
      // OVMF echoes GRUB's console to the serial port too, so each line may appear twice.
      const stage = /stage=([a-z0-9]{25})/.exec(line)?.[1];
      assert.ok(stage === A.id || stage === B.id, `unexpected boot output: ${line}`);
      boots.push({ entry: stage === A.id ? 'a' : 'b', trial: /\bdarch\.trial=1\b/.test(line), fellBack: /\bdarch\.fell_back=1\b/.test(line) });
      trialArgs.push(/targs=\[([^\]]*)\]/.exec(line)?.[1]?.trim() ?? '?');
    }
  } finally {
    await vm.stop();
  }
  return { boots, vm, trialArgs };
}

async function status(disk: string): Promise<any> {
  return (await darchOk(['boot', 'status', '--disk', disk, '--json'])).json();
}

before(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'darch-trial-grub-'));
  template = await buildTemplate(work);
});
after(() => rm(work, { recursive: true, force: true }));

test('GRUB boots the trial while tries remain, then falls back to the default for good', async () => {
  const disk = await freshDisk('countdown');
  const armed = await darchOk(['boot', 'try', 'os:b', '--tries', '2', '--disk', disk, '--json']);
  assert.equal(armed.json().status.trial.stage, B.id);
  const { boots, trialArgs } = await watchBoots('trial-grub-countdown', disk, 4);
  assert.deepEqual(boots, [
    { entry: 'b', trial: true, fellBack: false },
    { entry: 'b', trial: true, fellBack: false },
    { entry: 'a', trial: false, fellBack: true },
    { entry: 'a', trial: false, fellBack: false },
  ]);
  // On defaults a trial reboots 10 s after a panic and runs under a 300 s watchdog; no other boot gets either.
  assert.deepEqual(trialArgs, ['panic=10 darch.watchdog=300', 'panic=10 darch.watchdog=300', '', '']);
  const s = await status(disk);
  assert.equal(s.trialTries, 2, 'status says how many tries the trial used');
  assert.equal(s.default.stage, A.id);
  assert.equal(s.trial, null);
  assert.equal(s.fellBack, true);
  assert.equal(s.fellBackFrom, B.id);
  assert.deepEqual(s.bad, [B.id]);
  assert.deepEqual([s.env.primary, s.env.backup], ['ok', 'ok']);
  // B failed: it is not tried again unless forced.
  const again = await darch(['boot', 'try', 'os:b', '--disk', disk]);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /marked bad/);
});

test('a corrupt primary copy: GRUB takes the backup and still counts', async () => {
  const disk = await freshDisk('corrupt-primary');
  await darchOk(['boot', 'try', B.id, '--tries', '1', '--disk', disk]);
  const junk = path.join(work, 'junk');
  await writeFile(junk, Buffer.alloc(1024, 0x5a));
  await sh('mcopy', ['-o', '-i', ESP(disk), junk, '::/EFI/darch/grubenv']);
  const { boots } = await watchBoots('trial-grub-corrupt-primary', disk, 2);
  assert.deepEqual(boots, [
    { entry: 'b', trial: true, fellBack: false },
    { entry: 'a', trial: false, fellBack: true },
  ]);
  const s = await status(disk);
  assert.equal(s.env.primary, 'corrupt');
  assert.equal(s.env.source, 'backup');
  assert.deepEqual(s.bad, [B.id]);
});

test('torn, garbage or missing state never stops the default from booting', async () => {
  // A torn block (seal from an older write) that names a trial must not be tried.
  const disk = await freshDisk('torn');
  const torn = new Map(stateToVars({ ...emptyState(), default: { entry: B.entry, stage: B.id }, trial: { entry: B.entry, stage: B.id }, tries: 3 }));
  const block = serializeGrubEnv([['darch_seq', '7'], ...torn, ['darch_seal', '6']]);
  const f = path.join(work, 'torn');
  await writeFile(f, block);
  await sh('mcopy', ['-o', '-i', ESP(disk), f, '::/EFI/darch/grubenv']);
  await writeFile(f, Buffer.alloc(1024, 0));
  await sh('mcopy', ['-o', '-i', ESP(disk), f, '::/EFI/darch/grubenv.bak']);
  const torn1 = await watchBoots('trial-grub-torn', disk, 1, true);
  assert.deepEqual(torn1.boots, [{ entry: 'a', trial: false, fellBack: false }]);
  assert.match(torn1.vm.text, /no boot state on the ESP/);

  const gone = await freshDisk('missing');
  await sh('mdel', ['-i', ESP(gone), '::/EFI/darch/grubenv', '::/EFI/darch/grubenv.bak']);
  const missing = await watchBoots('trial-grub-missing', gone, 1, true);
  assert.deepEqual(missing.boots, [{ entry: 'a', trial: false, fellBack: false }]);
  // darch repairs both copies on the next change.
  const s1 = await status(gone);
  assert.deepEqual([s1.env.primary, s1.env.backup], ['missing', 'missing']);
  await darchOk(['boot', 'set-default', 'os:a', '--disk', gone]);
  const s2 = await status(gone);
  assert.deepEqual([s2.env.primary, s2.env.backup, s2.default.stage], ['ok', 'ok', A.id]);
});

test('GRUB does not try an image when it cannot record the attempt (read-only disk)', async () => {
  const disk = await freshDisk('read-only');
  await darchOk(['boot', 'try', 'os:b', '--tries', '3', '--disk', disk]);
  const { boots, vm } = await watchBoots('trial-grub-read-only', disk, 1, true, true);
  assert.deepEqual(boots, [{ entry: 'a', trial: false, fellBack: false }]);
  assert.match(vm.text, /cannot record the boot attempt/);
  const s = await status(disk);
  assert.deepEqual([s.trial.stage, s.triesLeft], [B.id, 3], 'nothing was written, so the trial is still armed with 3 tries');
});

test('the standalone A/B script (assets/grub-ab) tries an entry and falls back without darch', async () => {
  const dir = path.join(work, 'ab');
  await mkdir(dir, { recursive: true });
  const embedded = path.join(dir, 'embedded.cfg');
  const entry = (name: string) =>
    `menuentry '${name}' --id ${name} {\n\techo "AB-BOOT"\n\techo "entry=${name}"\n\techo "flags=\${ab_cmdline}"\n\techo "AB-END"\n\treboot\n}\n`;
  await writeFile(
    embedded,
    `serial --unit=0 --speed=115200\nterminal_input serial\nterminal_output serial\nset timeout=0\nsearch --no-floppy --fs-uuid --set=root 5678-9ABC\n${entry('first')}${entry('second')}set ab_dir=/EFI/ab\nsource /EFI/ab/ab.cfg\n`,
  );
  const efi = path.join(dir, 'BOOTX64.EFI');
  await sh('grub-mkstandalone', [
    '-O',
    'x86_64-efi',
    '-o',
    efi,
    '--install-modules=part_gpt fat search search_fs_uuid search_fs_file normal echo test loadenv serial terminal reboot configfile',
    '--modules=part_gpt fat',
    '--locales=',
    '--fonts=',
    '--themes=',
    `boot/grub/grub.cfg=${embedded}`,
  ]);
  const img = path.join(dir, 'ab.img');
  await sh('truncate', ['-s', String(ESP_OFF + ESP_SIZE + MiB), img]);
  await sh('sh', ['-c', `printf 'label: gpt\\nstart=2048, size=${ESP_SIZE / 512}, type=U\\n' | sfdisk -q "${img}"`]);
  await sh('mformat', ['-i', ESP(img), '-F', '-N', '56789ABC', '-v', 'ESP', '::']);
  await sh('mmd', ['-i', ESP(img), '::/EFI', '::/EFI/BOOT', '::/EFI/ab']);
  await sh('mcopy', ['-i', ESP(img), efi, '::/EFI/BOOT/BOOTX64.EFI']);
  // ab-commit prepares the state in a directory; the copies then go onto the ESP.
  const state = path.join(dir, 'state');
  const commit = path.join(REPO_ROOT, 'assets/grub-ab/ab-commit');
  await sh(commit, ['init', 'first'], { env: { ...process.env, AB_DIR: state } });
  const tried = await sh(commit, ['try', 'second', '1'], { env: { ...process.env, AB_DIR: state } });
  assert.match(tried.stdout, /try second/);
  await sh('mcopy', ['-i', ESP(img), path.join(state, 'ab.env'), path.join(state, 'ab.env.bak'), path.join(REPO_ROOT, 'assets/grub-ab/ab.cfg'), '::/EFI/ab/']);
  const vm = await Vm.qemu({ name: 'trial-grub-ab', disk: img, memoryMiB: 128 });
  const seen: string[] = [];
  try {
    let from = 0;
    for (let i = 0; i < 3; i++) {
      const { match, end } = await vm.waitFor(/AB-BOOT([\s\S]*?)AB-END/, 60_000, from);
      from = end;
      const e = /entry=(first|second)/.exec(match[1]!)?.[1];
      const f = /flags=(ab\.\w+=1)/.exec(match[1]!)?.[1] ?? '';
      seen.push(`${e}${f ? ` ${f}` : ''}`);
    }
  } finally {
    await vm.stop();
  }
  assert.deepEqual(seen, ['second ab.try=1', 'first ab.fell_back=1', 'first']);
  await sh('mcopy', ['-o', '-i', ESP(img), '::/EFI/ab/ab.env', '::/EFI/ab/ab.env.bak', `${state}/`]);
  const st = await sh(commit, ['status'], { env: { ...process.env, AB_DIR: state } });
  assert.match(st.stdout, /default: +first\ntry: +none\nfell back: 1\nbad: +second/);
});

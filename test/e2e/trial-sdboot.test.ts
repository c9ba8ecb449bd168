/**
 * systemd-boot as the second backend, in real systemd-boot under OVMF with Debian's kernel
 * and a tiny initramfs that prints its command line and reboots: darch arms a trial by
 * renaming its BLS entry to `+N`, systemd-boot counts it down by renaming (`+2` → `+1-1` →
 * `+0-2`) and falls back to the default by itself, and darch reads and commits the names
 * systemd-boot left. (systemd-bless-boot, in systemd images, commits the same way:
 * trial-sdboot's unit test plays its part.)
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { access, chmod, copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { renderBlsEntry, VERSION } from '../../src/boot/sdboot/sdboot.js';
import { darch, darchOk } from '../helpers/darch.js';
import { debianKernel } from '../helpers/bootimage.js';
import { Vm } from '../helpers/qemu.js';

const sh = promisify(execFile);
const SDBOOT = '/usr/lib/systemd/boot/efi/systemd-bootx64.efi';
const A = 'a'.repeat(25);
const B = 'b'.repeat(25);
const MiB = 1024 * 1024;
const ESP = (img: string) => `${img}@@${MiB}`;
let work: string;
let template: string;

before(async () => {
  await access(SDBOOT).catch(() => {
    throw new Error(`${SDBOOT} is missing: apt-get install systemd-boot-efi`);
  });
  work = await mkdtemp(path.join(os.tmpdir(), 'darch-sdboot-'));
  const kernel = await debianKernel();
  // An initramfs of busybox and an /init that reports the command line and reboots.
  const ird = path.join(work, 'ird');
  await mkdir(path.join(ird, 'bin'), { recursive: true });
  for (const d of ['dev', 'proc']) await mkdir(path.join(ird, d));
  await copyFile('/bin/busybox', path.join(ird, 'bin/busybox'));
  await writeFile(
    path.join(ird, 'init'),
    '#!/bin/busybox sh\n/bin/busybox mount -t devtmpfs d /dev\nexec >/dev/console 2>&1\n/bin/busybox mount -t proc p /proc\necho "SDBOOT-BOOT $(/bin/busybox cat /proc/cmdline) SDBOOT-END"\n/bin/busybox reboot -f\n',
  );
  await chmod(path.join(ird, 'init'), 0o755);
  const initrd = path.join(work, 'initrd');
  await sh('sh', ['-c', `cd "${ird}" && find . | cpio -o -H newc --quiet | gzip -1 > "${initrd}"`]);
  template = path.join(work, 'template.img');
  await sh('truncate', ['-s', String(66 * MiB), template]);
  await sh('sh', ['-c', `printf 'label: gpt\\nstart=2048, size=${(64 * MiB) / 512}, type=U\\n' | sfdisk -q "${template}"`]);
  const e = ESP(template);
  await sh('mformat', ['-i', e, '-F', '-v', 'ESP', '::']);
  await sh('mmd', ['-i', e, '::/EFI', '::/EFI/BOOT', '::/EFI/darch', '::/loader', '::/loader/entries', '::/darch']);
  await sh('mcopy', ['-i', e, SDBOOT, '::/EFI/BOOT/BOOTX64.EFI']);
  await sh('mcopy', ['-i', e, kernel.vmlinuz, '::/darch/vmlinuz']);
  await sh('mcopy', ['-i', e, initrd, '::/darch/initrd']);
  const files = path.join(work, 'files');
  await mkdir(files);
  await writeFile(path.join(files, 'loader.conf'), 'timeout 0\ndefault darch-*\n');
  await sh('mcopy', ['-i', e, path.join(files, 'loader.conf'), '::/loader/loader.conf']);
  for (const [id, tag, version] of [
    [A, 'os:a', VERSION.default],
    [B, 'os:b', VERSION.other],
  ] as const) {
    const f = path.join(files, `darch-${id}.conf`);
    await writeFile(
      f,
      renderBlsEntry(
        {
          stage: id,
          title: `Darch: ${tag}`,
          linux: '/darch/vmlinuz',
          initrd: '/darch/initrd',
          options: `console=ttyS0 loglevel=3 no_timer_check darch_stageid=${id}`,
        },
        version,
      ),
    );
    await sh('mcopy', ['-i', e, f, `::/loader/entries/darch-${id}.conf`]);
  }
  await writeFile(
    path.join(files, 'disk.json'),
    JSON.stringify({
      version: 1,
      images: [
        { id: A, tags: ['os:a'] },
        { id: B, tags: ['os:b'] },
      ],
    }),
  );
  await sh('mcopy', ['-i', e, path.join(files, 'disk.json'), '::/EFI/darch/disk.json']);
});
after(() => rm(work, { recursive: true, force: true }));

async function disk(name: string): Promise<string> {
  const d = path.join(work, `${name}.img`);
  await sh('cp', ['--sparse=always', template, d]);
  return d;
}

async function watch(name: string, d: string, count: number, noReboot = false): Promise<string[]> {
  const vm = await Vm.qemu({ name, disk: d, memoryMiB: 256, noReboot });
  const seen: string[] = [];
  try {
    let from = 0;
    for (let i = 0; i < count; i++) {
      const { match, end } = await vm.waitFor(/SDBOOT-BOOT ([^\n]*?) SDBOOT-END/, 120_000, from);
      from = end;
      const id = /darch_stageid=([a-z0-9]{25})/.exec(match[1]!)?.[1];
      seen.push(`${id === A ? 'a' : id === B ? 'b' : '?'}${/darch\.trial=1/.test(match[1]!) ? ' trial' : ''}`);
    }
  } finally {
    await vm.stop();
  }
  return seen;
}

const entries = async (d: string) =>
  (await sh('mdir', ['-b', `-i`, ESP(d), '::/loader/entries'])).stdout
    .split('\n')
    .map((l) => l.split('/').pop())
    .filter(Boolean)
    .sort();
const status = async (d: string) => (await darchOk(['boot', 'status', '--disk', d, '--json'])).json();

test('systemd-boot counts a darch trial down by itself and falls back to the default', async () => {
  const d = await disk('fallback');
  await darchOk(['boot', 'try', 'os:b', '--tries', '2', '--disk', d]);
  assert.deepEqual(await entries(d), [`darch-${A}.conf`, `darch-${B}+2.conf`]);
  assert.deepEqual(await watch('trial-sdboot-fallback', d, 3), ['b trial', 'b trial', 'a']);
  assert.deepEqual(await entries(d), [`darch-${A}.conf`, `darch-${B}+0-2.conf`]);
  const s = await status(d);
  assert.equal(s.backend, 'systemd-boot');
  assert.deepEqual([s.default.stage, s.trial, s.bad, s.fellBack], [A, null, [B], true]);
  const again = await darch(['boot', 'try', 'os:b', '--disk', d]);
  assert.match(again.stderr, /marked bad/);
});

test('a trial committed after one systemd-boot attempt becomes the default', async () => {
  const d = await disk('commit');
  await darchOk(['boot', 'try', 'os:b', '--tries', '3', '--disk', d]);
  assert.deepEqual(await watch('trial-sdboot-commit-1', d, 1, true), ['b trial']);
  assert.deepEqual(await entries(d), [`darch-${A}.conf`, `darch-${B}+2-1.conf`]);
  assert.equal((await status(d)).triesLeft, 2);
  await darchOk(['boot', 'mark-good', '--disk', d]);
  assert.deepEqual(await entries(d), [`darch-${A}.conf`, `darch-${B}.conf`]);
  const s = await status(d);
  assert.deepEqual([s.default.stage, s.previous.stage, s.trial], [B, A, null]);
  assert.deepEqual(await watch('trial-sdboot-commit-2', d, 1, true), ['b']);
});

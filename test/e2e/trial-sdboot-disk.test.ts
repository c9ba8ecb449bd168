/**
 * The trial-boot failure matrix on systemd-boot, with disks made by darch itself:
 * `darch disk create --bootloader systemd-boot` from real staged busybox images (Debian's
 * kernel, darch's universal initramfs, busybox init). OVMF → systemd-boot (the entries and
 * kernel copies darch wrote on the ESP) → kernel → initramfs → busybox init, which runs
 * `/usr/lib/darch/darch-health --commit` (the documented no-systemd path): on systemd-boot,
 * darch-commit commits by renaming the entry on the ESP, as systemd-bless-boot would.
 *
 * Image A is the default; image B is staged as variants that are good, panic, miss their
 * init, fail a health.d check or hang. Each case arms B with `darch boot try --disk` on a
 * sparse copy of one disk and reads every boot from the serial console. systemd-boot cannot
 * add darch.fell_back=1 to the boot that falls back: the `+0` entry name is how
 * `darch boot status` knows. A hang is reset by the VM's watchdog, which darch's initramfs
 * arms on trial boots (darch.watchdog=): here an added i6300esb, in trial-linux.test.ts
 * q35's own iTCO.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { darch, darchOk, tempDir } from '../helpers/darch.js';
import { mls } from '../helpers/espfiles.js';
import { BOOTED, TRIAL_KARGS, TRIAL_TAGS, stageTrialImages, trialBoots, type TrialBoot } from '../helpers/trialimages.js';
import { SerialVm } from '../helpers/serialvm.js';

const sh = promisify(execFile);
describe('systemd-boot trial boots of real images on a disk made by darch', () => {
  let work: string;
  let root: string;
  let disk: string;
  let espOffset: number;
  const ids: Record<string, string> = {};
  const cleanups: Array<() => Promise<void> | void> = [];

  before(async () => {
    work = await tempDir({ after: (fn) => void cleanups.push(fn) }, 'darch-trial-sdboot-disk-');
    root = path.join(work, 'root');
    Object.assign(ids, await stageTrialImages(root, work));
    disk = path.join(work, 'disk.img');
    const made = (
      await darchOk(
        ['--json', 'disk', 'create', disk, ...TRIAL_TAGS, '--bootloader', 'systemd-boot', '--kernel-args', TRIAL_KARGS, '--timeout', '0'],
        { root, timeoutMs: 600_000 },
      )
    ).json();
    assert.equal(made.bootloader, 'systemd-boot');
    espOffset = made.espOffset;
  });
  after(async () => {
    for (const c of cleanups.reverse()) await c();
  });

  async function diskCopy(name: string): Promise<string> {
    const d = path.join(work, `${name}.img`);
    await sh('cp', ['--sparse=always', disk, d]);
    return d;
  }

  const entries = async (d: string): Promise<string[]> => (await mls(d, espOffset, 'loader/entries')).filter((f) => f.endsWith('.conf'));
  const entryOf = async (d: string, variant: string): Promise<string | undefined> => (await entries(d)).find((f) => f.startsWith(`darch-${ids[variant]}`));
  const status = async (d: string): Promise<any> => (await darchOk(['boot', 'status', '--disk', d, '--json'])).json();

  async function assertFallsBack(variant: string, tries: number, perBoot: (b: TrialBoot) => void, qemuArgs: string[] = []): Promise<void> {
    const d = await diskCopy(variant);
    await darchOk(['boot', 'try', `test/b:${variant}`, '--tries', String(tries), '--disk', d]);
    assert.equal(await entryOf(d, variant), `darch-${ids[variant]}+${tries}.conf`);
    const list = await trialBoots(`trial-sdboot-disk-${variant}`, d, tries + 1, qemuArgs);
    for (const b of list.slice(0, tries)) {
      // A failing health check reboots in the background, so rcS may still report the trial boot.
      if (b.booted) assert.deepEqual(b.booted, { version: 'B', stage: ids[variant], trial: true, fellBack: false }, `${variant}: every boot before the fallback is the trial`);
      perBoot(b);
    }
    // The boot after the last try is A, the default, and not a trial.
    assert.deepEqual(list[tries]!.booted, { version: 'A', stage: ids.a, trial: false, fellBack: false });
    // systemd-boot counted B down to +0 by itself; nothing else changed.
    assert.equal(await entryOf(d, variant), `darch-${ids[variant]}+0-${tries}.conf`);
    assert.equal(await entryOf(d, 'a'), `darch-${ids.a}.conf`);
    const s = await status(d);
    assert.equal(s.backend, 'systemd-boot');
    assert.equal(s.default.stage, ids.a);
    assert.equal(s.trial, null);
    assert.equal(s.fellBack, true, 'status reports the fallback from the +0 entry');
    assert.equal(s.fellBackFrom, ids[variant]);
    assert.deepEqual(s.bad, [ids[variant]]);
    const again = await darch(['boot', 'try', `test/b:${variant}`, '--disk', d]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /marked bad/);
  }

  it('a fresh disk boots the default image A', async () => {
    const list = await trialBoots('trial-sdboot-disk-fresh', await diskCopy('fresh'), 1);
    assert.deepEqual(list[0]!.booted, { version: 'A', stage: ids.a, trial: false, fellBack: false });
  });

  it('a good trial commits itself in the guest (darch-commit renames its entry): after one boot it is the default', async () => {
    const d = await diskCopy('good');
    await darchOk(['boot', 'try', 'test/b:good', '--tries', '3', '--disk', d]);
    const vm = await SerialVm.start({ name: 'trial-sdboot-disk-good', disk: d, memoryMiB: 512 });
    try {
      const first = await vm.waitFor(new RegExp(`${BOOTED} version=B stage=${ids.good} trial=1 fell_back=0`), 180_000);
      assert.match(vm.text, /darch-commit: [a-z0-9]{25} is good: it is now the default/);
      vm.send('reboot -f');
      const second = await vm.waitFor(new RegExp(`${BOOTED} version=(\\w) stage=([a-z0-9]+) trial=(\\d)`), 180_000, first.end);
      assert.deepEqual([second.match[1], second.match[2], second.match[3]], ['B', ids.good, '0'], 'the second boot is B as the default, not a trial');
      assert.match(vm.text.slice(first.end), /not a trial boot: nothing to do/);
    } finally {
      await vm.stop();
    }
    assert.equal(await entryOf(d, 'good'), `darch-${ids.good}.conf`);
    const s = await status(d);
    assert.equal(s.default.stage, ids.good);
    assert.equal(s.previous.stage, ids.a);
    assert.equal(s.trial, null);
    assert.equal(s.fellBack, false);
    assert.deepEqual(s.bad, []);
  });

  it('a failing health.d check reboots the trial until its 2 tries are used, then A boots', async () => {
    await assertFallsBack('health', 2, (b) => {
      assert.match(b.text, /darch-health: FAILED: 10-test/);
      assert.match(b.text, /rebooting so the counter runs down/);
    });
  });

  it('a kernel panic (panic=2 reboots) falls back to A', async () => {
    await assertFallsBack('panic', 1, (b) => assert.match(b.text, /TRIAL-TEST: panic[^]*Kernel panic/));
  });

  it('a missing init falls back to A', async () => {
    await assertFallsBack('noinit', 1, (b) => assert.match(b.text, /no-such-init/));
  });

  it('a hang is reset by the hardware watchdog the trial runs under, and falls back to A', async () => {
    // With an i6300esb added (as a VM's owner would), darch prefers it over q35's TCO.
    await assertFallsBack('hang', 1, (b) => assert.match(b.text, /trial boot: watchdog armed \(i6300esb, \d+s\)[^]*TRIAL-TEST: hang/), ['-device', 'i6300esb']);
  });
});

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
 * `darch boot status` knows. The disk's kernel arguments are only a serial console: what
 * makes a failing trial reboot is darch's defaults (panic=10 darch.watchdog=300 on the
 * trial's entry, the initramfs rebooting instead of opening a shell). A hang is reset by the
 * VM's watchdog, which darch's initramfs arms on trial boots: here an added i6300esb, in
 * trial-linux.test.ts q35's own iTCO; the hang case sets `[boot] trial_watchdog = 45` so
 * it does not wait out the default 300 s.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { darch, darchOk, tempDir } from '../helpers/darch.js';
import { mls } from '../helpers/espfiles.js';
import {
  BOOTED,
  HANG_WATCHDOG_SECONDS,
  TRIAL_KARGS,
  TRIAL_TAGS,
  removeFromDarchPartition,
  stageTrialImages,
  trialBoots,
  withTrialWatchdog,
  type TrialBoot,
} from '../helpers/trialimages.js';
import { Vm } from '../helpers/qemu.js';

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
      await darchOk(['--json', 'disk', 'create', disk, ...TRIAL_TAGS, '--bootloader', 'systemd-boot', '--kernel-args', TRIAL_KARGS, '--timeout', '0'], {
        root,
        timeoutMs: 600_000,
      })
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

  interface FallBack {
    tries: number;
    perBoot: (b: TrialBoot) => void;
    /** What `darch boot status` says the trial died of, or null (a panic or a hang records none). */
    why: { where: string; reason: RegExp } | null;
    qemuArgs?: string[];
    prepare?: (disk: string) => Promise<void>;
    /** `[boot] trial_watchdog` for this trial (a hang): else darch's default. */
    watchdog?: number;
  }

  async function assertFallsBack(variant: string, o: FallBack): Promise<void> {
    const { tries, perBoot } = o;
    const d = await diskCopy(variant);
    // With --root: the config.toml there is the one a hang case writes its trial_watchdog into.
    const arm = () => darchOk(['boot', 'try', `test/b:${variant}`, '--tries', String(tries), '--disk', d], { root });
    await (o.watchdog ? withTrialWatchdog(root, o.watchdog, arm) : arm());
    assert.equal(await entryOf(d, variant), `darch-${ids[variant]}+${tries}.conf`);
    await o.prepare?.(d);
    const list = await trialBoots(`trial-sdboot-disk-${variant}`, d, tries + 1, o.qemuArgs);
    for (const b of list.slice(0, tries)) {
      // A failing health check reboots in the background, so rcS may still report the trial boot.
      if (b.booted)
        assert.deepEqual(
          b.booted,
          { version: 'B', stage: ids[variant], trial: true, fellBack: false },
          `${variant}: every boot before the fallback is the trial`,
        );
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
    assert.equal(s.trialTries, tries, "status says how many tries the trial used (systemd-boot's +0-N)");
    assert.deepEqual(s.bad, [ids[variant]]);
    if (o.why) {
      assert.equal(s.failure?.where, o.why.where);
      assert.match(s.failure?.reason ?? '', o.why.reason);
    } else {
      assert.equal(s.failure, null, 'nothing recorded a reason');
    }
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
    const vm = await Vm.qemu({ name: 'trial-sdboot-disk-good', disk: d, memoryMiB: 512 });
    try {
      const first = await vm.waitFor(new RegExp(`${BOOTED} version=B stage=${ids.good} trial=1 fell_back=0`), 180_000);
      assert.match(vm.text, /darch-commit: [a-z0-9]{25} is good: it is now the default/);
      vm.send('reboot -f\n');
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
    await assertFallsBack('health', {
      tries: 2,
      why: { where: 'health', reason: /10-test/ },
      perBoot: (b) => {
        assert.match(b.text, /darch-health: FAILED: 10-test/);
        assert.match(b.text, /rebooting so the counter runs down/);
      },
    });
  });

  it("a kernel panic reboots by darch's default panic=10 (the trial entry carries it) and falls back to A", async () => {
    await assertFallsBack('panic', {
      tries: 1,
      why: null,
      perBoot: (b) => assert.match(b.text, /TRIAL-TEST: panic[^]*Kernel panic[^]*Rebooting in 10 seconds/),
    });
  });

  // An init that dies is a kernel panic too ("Attempted to kill init"): the same reboot and the
  // same count-down as above, so it is covered once, under GRUB (trial-linux.test.ts).

  it('a missing init falls back to A without a rescue shell, and status says why', async () => {
    await assertFallsBack('noinit', {
      tries: 1,
      why: { where: 'initramfs', reason: /no-such-init/ },
      perBoot: (b) => {
        assert.match(b.text, /no-such-init[^]*trial boot failed: rebooting in 10s/);
        assert.doesNotMatch(b.text, /starting a rescue shell/);
      },
    });
  });

  it('a missing squashfs falls back to A', async () => {
    await assertFallsBack('nosquash', {
      tries: 1,
      why: { where: 'initramfs', reason: /rootfs\.squash not found/ },
      prepare: (d) => removeFromDarchPartition(d, `/stage/live/${ids.nosquash}/rootfs.squash`),
      perBoot: (b) => assert.match(b.text, /rootfs\.squash not found[^]*trial boot failed: rebooting/),
    });
  });

  it('a hang is reset by the hardware watchdog the trial runs under, and falls back to A', async () => {
    // With an i6300esb added (as a VM's owner would), darch prefers it over q35's TCO.
    await assertFallsBack('hang', {
      tries: 1,
      why: null,
      watchdog: HANG_WATCHDOG_SECONDS,
      qemuArgs: ['-device', 'i6300esb'],
      perBoot: (b) => assert.match(b.text, new RegExp(`trial boot: watchdog armed \\(i6300esb, ${HANG_WATCHDOG_SECONDS}s\\)[^]*TRIAL-TEST: hang`)),
    });
  });
});

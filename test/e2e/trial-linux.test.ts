/**
 * Trial boots across real reboots of real kernels: OVMF → GRUB (darch's grub.cfg with the
 * trial script) → Debian's kernel → darch's universal initramfs → busybox init, which runs
 * the documented no-systemd equivalent of the health and mark-good units
 * (`/usr/lib/darch/darch-health --commit` from rcS).
 *
 * On darch's defaults: the disk's kernel arguments are only a serial console. What turns a
 * failure into a reboot is what darch adds to trial boots by itself (panic=10 and
 * darch.watchdog=300 from `[boot] trial_panic`/`trial_watchdog`, put on the trial's command
 * line by `darch boot try`) and the initramfs rebooting a trial instead of opening a shell.
 * Only the hang cases set `trial_watchdog = 45` in config.toml (the default would wait
 * 300 s, twice that on Intel's TCO).
 *
 * Image A is the good default; image B is staged as variants with kernel parameters that
 * make it good, panic, die as init, miss its init, fail a health.d check or hang, and one
 * whose squashfs the test deletes from the disk. Each case arms B as a trial on a copy of
 * one disk (`darch boot try --disk`) and reads every boot from the serial console, then
 * `darch boot status` for the fallback, the tries used and the recorded reason. Every trial
 * boot runs under the q35 machine's Intel TCO watchdog (iTCO_wdt), which darch's initramfs
 * arms and only a commit stops: it is what resets the hung trial; nothing in the harness
 * does. The hang is booted once more on the i440fx machine, which has no watchdog: there
 * softdog resets it. The same faults on a boot that is not a trial still stop for the
 * person at the console (rescue shell, kernel panic without reboot).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { darch, darchOk, tempDir } from '../helpers/darch.js';
import {
  BOOTED,
  DEFAULT_WATCHDOG_SECONDS,
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

interface Boot extends TrialBoot {
  /** Which staged image GRUB loaded. */
  image: string;
}

describe('trial boots of real kernels with automatic fallback', () => {
  let work: string;
  let root: string;
  let disk: string;
  const ids: Record<string, string> = {};
  const cleanups: Array<() => Promise<void> | void> = [];

  before(async () => {
    work = await tempDir({ after: (fn) => void cleanups.push(fn) }, 'darch-trial-linux-');
    root = path.join(work, 'root');
    Object.assign(ids, await stageTrialImages(root, work));
    disk = path.join(work, 'disk.img');
    await darchOk(['disk', 'create', disk, ...TRIAL_TAGS, '--kernel-args', TRIAL_KARGS, '--timeout', '0'], { root, timeoutMs: 600_000 });
  });
  after(async () => {
    for (const c of cleanups.reverse()) await c();
  });

  async function diskCopy(name: string): Promise<string> {
    const d = path.join(work, `${name}.img`);
    await sh('cp', ['--sparse=always', disk, d]);
    return d;
  }

  function imageOf(seg: string): string {
    const id = /Loading \S+ \(([a-z0-9]{25})\)/.exec(seg)?.[1];
    return Object.entries(ids).find(([, v]) => v === id)?.[0] ?? `unknown(${id ?? 'no entry loaded'})`;
  }

  async function boots(name: string, d: string, count: number, qemuArgs: string[] = []): Promise<Boot[]> {
    return (await trialBoots(name, d, count, qemuArgs)).map((b) => ({ ...b, image: imageOf(b.text) }));
  }

  async function status(d: string): Promise<any> {
    return (await darchOk(['boot', 'status', '--disk', d, '--json'])).json();
  }

  interface FallBack {
    tries: number;
    perBoot: (b: Boot) => void;
    /** What `darch boot status` says the trial died of: a recorded reason, or null (a panic or a hang records none). */
    why: { where: string; reason: RegExp } | null;
    name?: string;
    qemuArgs?: string[];
    /** Done to the disk after the trial is armed (e.g. losing the squashfs). */
    prepare?: (disk: string) => Promise<void>;
    /** `[boot] trial_watchdog` for this trial (a hang): else darch's default. */
    watchdog?: number;
  }

  /** A bad trial: `tries` boots of it, then A with the fallback flag; B is bad and not tried again. */
  async function assertFallsBack(variant: string, o: FallBack): Promise<void> {
    const name = o.name ?? variant;
    const d = await diskCopy(name);
    // With --root: the config.toml there is the one a hang case writes its trial_watchdog into.
    const arm = () => darchOk(['boot', 'try', `test/b:${variant}`, '--tries', String(o.tries), '--disk', d], { root });
    await (o.watchdog ? withTrialWatchdog(root, o.watchdog, arm) : arm());
    await o.prepare?.(d);
    const list = await boots(`trial-linux-${name}`, d, o.tries + 1, o.qemuArgs);
    assert.deepEqual(
      list.map((b) => b.image),
      [...Array(o.tries).fill(variant), 'a'],
      `boot order for ${variant}`,
    );
    for (const b of list.slice(0, o.tries)) o.perBoot(b);
    // The default still boots (and knows it fell back).
    assert.deepEqual(list[o.tries]!.booted, { version: 'A', stage: ids.a, trial: false, fellBack: true });
    const s = await status(d);
    assert.equal(s.default.stage, ids.a);
    assert.equal(s.trial, null);
    assert.equal(s.fellBack, true);
    assert.equal(s.fellBackFrom, ids[variant]);
    assert.equal(s.trialTries, o.tries, 'status says how many tries the trial used');
    assert.deepEqual(s.bad, [ids[variant]]);
    if (o.why) {
      assert.equal(s.failure?.stage, ids[variant]);
      assert.equal(s.failure?.where, o.why.where);
      assert.match(s.failure?.reason ?? '', o.why.reason);
    } else {
      assert.equal(s.failure, null, 'nothing recorded a reason');
    }
    const again = await darch(['boot', 'try', `test/b:${variant}`, '--disk', d]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /marked bad/);
  }

  /** Not a trial: the same fault waits for the person at the console and never reboots by itself. */
  async function assertStays(variant: string, waitFor: RegExp): Promise<void> {
    const d = await diskCopy(`${variant}-default`);
    await darchOk(['disk', 'set-default', d, `test/b:${variant}`]);
    const vm = await Vm.qemu({ name: `trial-linux-${variant}-default`, disk: d, memoryMiB: 512 });
    try {
      const seen = await vm.waitFor(waitFor, 180_000);
      assert.doesNotMatch(vm.text, /darch\.trial=1|watchdog armed/, 'not a trial boot');
      // Longer than a trial's reboot delay (10 s): a trial would have rebooted by now.
      await new Promise((r) => setTimeout(r, 15_000));
      assert.equal(vm.text.split('BdsDxe: starting Boot').length - 1, 1, `${variant}: no reboot 15 s after: ${vm.text.slice(seen.end).slice(-400)}`);
    } finally {
      await vm.stop();
    }
  }

  it('a good trial commits itself: after one boot it is the default and no trial remains', async () => {
    const d = await diskCopy('good');
    await darchOk(['boot', 'try', 'test/b:good', '--tries', '3', '--disk', d]);
    const vm = await Vm.qemu({ name: 'trial-linux-good', disk: d, memoryMiB: 512 });
    try {
      const first = await vm.waitFor(new RegExp(`${BOOTED} version=B stage=${ids.good} trial=1 fell_back=0`), 180_000);
      // darch's default: every trial boot runs under a 300 s watchdog, with nothing on the disk's command line asking for it.
      assert.match(vm.text, new RegExp(`darch: trial boot: watchdog armed \\(iTCO_wdt, ${DEFAULT_WATCHDOG_SECONDS}s\\)`));
      assert.match(vm.text, /darch-commit: [a-z0-9]{25} is good: it is now the default\s+darch: the trial's watchdog \(\/dev\/watchdog0\) is stopped/);
      // Stopped for real, as the kernel sees it.
      vm.send('echo "WD=$(cat /sys/class/watchdog/watchdog0/state)"\n');
      const wd = await vm.waitFor(/WD=(active|inactive)/, 30_000, first.end);
      assert.equal(wd.match[1], 'inactive', 'the commit stopped the watchdog');
      assert.equal(vm.text.split('BdsDxe: starting Boot').length - 1, 1, 'no reset after the commit');
      vm.send('reboot -f\n');
      const second = await vm.waitFor(new RegExp(`${BOOTED} version=(\\w) stage=[a-z0-9]+ trial=(\\d)`), 180_000, first.end);
      assert.deepEqual([second.match[1], second.match[2]], ['B', '0'], 'the second boot is B as the default, not a trial');
      assert.match(vm.text.slice(first.end), /not a trial boot: nothing to do/);
      assert.doesNotMatch(vm.text.slice(first.end), /watchdog armed/, 'a boot that is not a trial arms nothing');
    } finally {
      await vm.stop();
    }
    const s = await status(d);
    assert.equal(s.default.stage, ids.good);
    assert.equal(s.previous.stage, ids.a);
    assert.equal(s.trial, null);
    assert.deepEqual(s.bad, []);
  });

  it('a failing health.d check reboots the trial until its 3 tries are used, then A boots for good', async () => {
    await assertFallsBack('health', {
      tries: 3,
      why: { where: 'health', reason: /health check failed: 10-test/ },
      perBoot: (b) => {
        assert.match(b.text, /darch-health: FAILED: 10-test/);
        assert.match(b.text, /rebooting so the counter runs down/);
      },
    });
  });

  it("a kernel panic reboots by darch's default panic=10 and falls back to A", async () => {
    await assertFallsBack('panic', { tries: 1, why: null, perBoot: (b) => assert.match(b.text, /Kernel panic[^]*Rebooting in 10 seconds/) });
  });

  it('an init that dies (the kernel panics) falls back to A', async () => {
    await assertFallsBack('initexit', { tries: 1, why: null, perBoot: (b) => assert.match(b.text, /Attempted to kill init[^]*Rebooting in 10 seconds/) });
  });

  it('a missing init: the initramfs records why and reboots instead of opening a shell; falls back to A', async () => {
    await assertFallsBack('noinit', {
      tries: 1,
      why: { where: 'initramfs', reason: /has no \/sbin\/no-such-init/ },
      perBoot: (b) => {
        assert.match(b.text, /no-such-init[^]*trial boot failed: rebooting in 10s/);
        assert.doesNotMatch(b.text, /starting a rescue shell/);
      },
    });
  });

  it('a missing squashfs falls back to A, and status says why', async () => {
    await assertFallsBack('nosquash', {
      tries: 1,
      why: { where: 'initramfs', reason: /rootfs\.squash not found/ },
      prepare: (d) => removeFromDarchPartition(d, `/stage/live/${ids.nosquash}/rootfs.squash`),
      perBoot: (b) => assert.match(b.text, /rootfs\.squash not found[^]*trial boot failed: rebooting/),
    });
  });

  it('a hang is reset by the hardware watchdog the trial runs under, and falls back to A', async () => {
    await assertFallsBack('hang', {
      tries: 1,
      why: null,
      watchdog: HANG_WATCHDOG_SECONDS,
      perBoot: (b) => assert.match(b.text, new RegExp(`trial boot: watchdog armed \\(iTCO_wdt, ${HANG_WATCHDOG_SECONDS}s\\)[^]*TRIAL-TEST: hang`)),
    });
  });

  it('on a machine with no hardware watchdog (i440fx) softdog resets the hang, and it falls back to A', async () => {
    await assertFallsBack('hang', {
      tries: 1,
      why: null,
      watchdog: HANG_WATCHDOG_SECONDS,
      name: 'hang-softdog',
      qemuArgs: ['-machine', 'pc'],
      perBoot: (b) => {
        assert.match(b.text, new RegExp(`trial boot: watchdog armed \\(softdog, ${HANG_WATCHDOG_SECONDS}s\\)[^]*TRIAL-TEST: hang`));
        assert.match(b.text, /softdog: Initiating system reboot/, 'the reset came from softdog');
      },
    });
  });

  it('not a trial: a missing init still opens the rescue shell, and a dying init still stops at the panic', async () => {
    await assertStays('noinit', /starting a rescue shell/);
    await assertStays('initexit', /Attempted to kill init/);
  });

  it('a corrupted environment block still boots A', async () => {
    const d = await diskCopy('corrupt');
    await darchOk(['boot', 'try', 'test/b:good', '--tries', '3', '--disk', d]);
    const junk = path.join(work, 'junk');
    await writeFile(junk, Buffer.from('# GRUB Environment Block\n' + 'x'.repeat(999)));
    const off = 1024 * 1024;
    for (const f of ['grubenv', 'grubenv.bak']) await sh('mcopy', ['-o', '-i', `${d}@@${off}`, junk, `::/EFI/darch/${f}`]);
    const list = await boots('trial-linux-corrupt', d, 1);
    assert.equal(list[0]!.image, 'a');
    assert.deepEqual(list[0]!.booted, { version: 'A', stage: ids.a, trial: false, fellBack: false });
  });
});

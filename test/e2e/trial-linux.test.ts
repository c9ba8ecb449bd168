/**
 * Trial boots across real reboots of real kernels: OVMF → GRUB (darch's grub.cfg with the
 * trial script) → Debian's kernel → darch's universal initramfs → busybox init, which runs
 * the documented no-systemd equivalent of the health and mark-good units
 * (`/usr/lib/darch/darch-health --commit` from rcS).
 *
 * Image A is the good default; image B is staged five times with different kernel
 * parameters that make it good, panic, miss its init, fail a health.d check, or hang. Each
 * case arms B as a trial on a copy of one disk (`darch boot try --disk`) and reads every
 * boot from the serial console. Every trial boot runs under the q35 machine's Intel TCO
 * watchdog (iTCO_wdt), which darch's initramfs arms (darch.watchdog=) and only a commit
 * stops: it is what resets the hung trial; nothing in the harness does. The hang is booted
 * once more on the i440fx machine, which has no watchdog: there softdog resets it. The health-check case uses 3 tries, the other
 * failures 1 try (the cheapest variant: the counting itself is covered in trial-grub.test.ts).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { darch, darchOk, tempDir } from '../helpers/darch.js';
import { BOOTED, TRIAL_KARGS, TRIAL_TAGS, WATCHDOG_SECONDS, stageTrialImages, trialBoots, type TrialBoot } from '../helpers/trialimages.js';
import { SerialVm } from '../helpers/serialvm.js';

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

  /** A bad trial: `tries` boots of it, then A with the fallback flag; B is bad and not tried again. */
  async function assertFallsBack(variant: string, tries: number, perBoot: (b: Boot) => void, vm: { name?: string; qemuArgs?: string[] } = {}): Promise<void> {
    const name = vm.name ?? variant;
    const d = await diskCopy(name);
    await darchOk(['boot', 'try', `test/b:${variant}`, '--tries', String(tries), '--disk', d]);
    const list = await boots(`trial-linux-${name}`, d, tries + 1, vm.qemuArgs);
    assert.deepEqual(list.map((b) => b.image), [...Array(tries).fill(variant), 'a'], `boot order for ${variant}`);
    for (const b of list.slice(0, tries)) perBoot(b);
    assert.deepEqual(list[tries]!.booted, { version: 'A', stage: ids.a, trial: false, fellBack: true });
    const s = await status(d);
    assert.equal(s.default.stage, ids.a);
    assert.equal(s.trial, null);
    assert.equal(s.fellBack, true);
    assert.deepEqual(s.bad, [ids[variant]]);
    const again = await darch(['boot', 'try', `test/b:${variant}`, '--disk', d]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /marked bad/);
  }

  it('a good trial commits itself: after one boot it is the default and no trial remains', async () => {
    const d = await diskCopy('good');
    await darchOk(['boot', 'try', 'test/b:good', '--tries', '3', '--disk', d]);
    const vm = await SerialVm.start({ name: 'trial-linux-good', disk: d, memoryMiB: 512 });
    try {
      const first = await vm.waitFor(new RegExp(`${BOOTED} version=B stage=${ids.good} trial=1 fell_back=0`), 180_000);
      assert.match(vm.text, new RegExp(`darch: trial boot: watchdog armed \\(iTCO_wdt, ${WATCHDOG_SECONDS}s\\)`));
      assert.match(vm.text, /darch-commit: [a-z0-9]{25} is good: it is now the default\s+darch: the trial's watchdog \(\/dev\/watchdog0\) is stopped/);
      // Stopped for real, as the kernel sees it.
      vm.send('echo "WD=$(cat /sys/class/watchdog/watchdog0/state)"');
      const wd = await vm.waitFor(/WD=(active|inactive)/, 30_000, first.end);
      assert.equal(wd.match[1], 'inactive', 'the commit stopped the watchdog');
      assert.equal(vm.text.split('BdsDxe: starting Boot').length - 1, 1, 'no reset after the commit');
      vm.send('reboot -f');
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
    await assertFallsBack('health', 3, (b) => {
      assert.match(b.text, /darch-health: FAILED: 10-test/);
      assert.match(b.text, /rebooting so the counter runs down/);
    });
  });

  it('a kernel panic (panic=2 reboots) falls back to A', async () => {
    await assertFallsBack('panic', 1, (b) => assert.match(b.text, /Kernel panic/));
  });

  it('a missing init falls back to A', async () => {
    await assertFallsBack('noinit', 1, (b) => assert.match(b.text, /no-such-init/));
  });

  it('a hang is reset by the hardware watchdog the trial runs under, and falls back to A', async () => {
    await assertFallsBack('hang', 1, (b) => assert.match(b.text, /trial boot: watchdog armed \(iTCO_wdt[^]*TRIAL-TEST: hang/));
  });

  it('on a machine with no hardware watchdog (i440fx) softdog resets the hang, and it falls back to A', async () => {
    await assertFallsBack('hang', 1, (b) => {
      assert.match(b.text, new RegExp(`trial boot: watchdog armed \\(softdog, ${WATCHDOG_SECONDS}s\\)[^]*TRIAL-TEST: hang`));
      assert.match(b.text, /softdog: Initiating system reboot/, 'the reset came from softdog');
    }, { name: 'hang-softdog', qemuArgs: ['-machine', 'pc'] });
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

/**
 * The original Darch's way, booted: a distribution installed with its own GRUB, and darch's
 * entries added to that GRUB's menu through /etc/grub.d. A Debian bookworm root
 * (grub-efi-amd64, linux-image) on a GPT disk image, `grub-install --removable` and
 * `update-grub` run inside it (chroot); darch runs from the host with --root on the mounted
 * system, as it would inside it: it stages the busybox trial images into the installed
 * /var/lib/darch, `darch boot install --mkconfig` hooks them into the distribution's
 * grub.cfg, `darch boot set-default` makes image A the default. Then OVMF boots the disk:
 * the distribution's menu shows darch's entries and A boots; a trial of a bad image armed
 * with `darch boot try` boots once, fails, and GRUB falls back to A by itself. Only the
 * serial console is added to the kernel's arguments (GRUB_CMDLINE_LINUX): the trial's
 * panic=/watchdog come from darch's defaults. Needs root (loop devices, mount, chroot).
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { darchOk, tempDir } from '../helpers/darch.js';
import { distGrubCfg, installedDebianDisk, withInstall } from '../helpers/installedgrub.js';
import { BOOTED, stageTrialImages, trialBoots } from '../helpers/trialimages.js';
import { Vm } from '../helpers/qemu.js';

/** The bad image: a kernel panic, which only darch's trial defaults (panic=) turn into a reboot. */
const BAD = 'panic';

describe("a distribution's own GRUB boots darch's images and falls back from a bad trial", () => {
  let work: string;
  let disk: string;
  let mnt: string;
  let ids: Record<string, string> = {};
  const cleanups: Array<() => Promise<void> | void> = [];

  before(async () => {
    work = await tempDir({ after: (fn) => void cleanups.push(fn) }, 'darch-installed-grub-');
    mnt = path.join(work, 'mnt');
    disk = await installedDebianDisk(work);
    await withInstall(disk, mnt, async (m) => {
      ids = await stageTrialImages(m.root, work);
      await darchOk(['boot', 'install', '--mkconfig'], { root: m.root });
      await darchOk(['boot', 'set-default', 'test/a:1'], { root: m.root });
    });
  });
  after(async () => {
    for (const c of cleanups.reverse()) await c();
  });

  function imageOf(seg: string): string {
    const id = /Loading \S+ \(([a-z0-9]{25})\)/.exec(seg)?.[1];
    return Object.entries(ids).find(([, v]) => v === id)?.[0] ?? `unknown(${id ?? 'no darch entry loaded'})`;
  }

  it("update-grub puts darch's hook into the distribution's grub.cfg, next to its own kernel", async () => {
    await withInstall(disk, mnt, async (m) => {
      const cfg = await distGrubCfg(m);
      assert.match(cfg, /menuentry 'Debian GNU\/Linux'/, "the distribution's own entry is still there");
      const darch = /### BEGIN \/etc\/grub\.d\/60_darch ###([^]*?)### END/.exec(cfg)?.[1] ?? '';
      assert.match(darch, /source \(\$darch_fs\)\/var\/lib\/darch\/stage\/grub\.cfg/);
      assert.match(darch, /set darch_cmdline="console=ttyS0,115200"/, "the distribution's GRUB_CMDLINE_LINUX reaches darch's entries");
      const own = await readFile(path.join(m.root, 'var/lib/darch/stage/grub.cfg'), 'utf8');
      assert.match(own, /menuentry 'Darch: test\/a:1' --id darch-test\+a@1/);
      assert.ok(own.indexOf("'Darch: test/a:1'") < own.indexOf("'Darch: test/b:good'"), "the default is darch's first entry");
    });
  });

  it("the distribution's GRUB menu shows darch's entries and boots the default image, A", async () => {
    const vm = await Vm.qemu({ name: 'boot-installed-grub-default', disk, memoryMiB: 512 });
    try {
      // What GRUB picked, before waiting for a boot that would never report if it was Debian's.
      const picked = await vm.waitFor(/Booting `([^']+)'/, 180_000);
      assert.equal(picked.match[1], 'Darch: test/a:1', "GRUB booted darch's default entry, not the distribution's");
      const booted = await vm.waitFor(new RegExp(`${BOOTED} version=(\\w+) stage=([a-z0-9]+) trial=(\\d) fell_back=(\\d)`), 180_000, picked.end);
      const menu = vm.text.slice(0, booted.end);
      assert.match(menu, /Debian GNU\/Linux/, "the distribution's menu was shown");
      for (const tag of ['test/a:1', 'test/b:good', `test/b:${BAD}`]) assert.ok(menu.includes(`Darch: ${tag}`), `the menu shows "Darch: ${tag}"`);
      assert.equal(imageOf(menu), 'a', "GRUB took darch's default entry, not the distribution's");
      assert.deepEqual(booted.match.slice(1), ['A', ids.a, '0', '0']);
    } finally {
      await vm.stop();
    }
  });

  it('a trial of a bad image armed with `darch boot try` boots once, fails, and GRUB falls back to A by itself', async () => {
    await withInstall(disk, mnt, async (m) => {
      await darchOk(['boot', 'try', `test/b:${BAD}`, '--tries', '1'], { root: m.root });
      // The state is on the installed system's ESP, where the trial script looks for it.
      assert.match(await readFile(path.join(m.root, 'boot/efi/EFI/darch/grubenv'), 'utf8'), new RegExp(`darch_trial_stage=${ids[BAD]}`));
    });
    const boots = await trialBoots('boot-installed-grub-trial', disk, 2);
    assert.deepEqual(
      boots.map((b) => imageOf(b.text)),
      [BAD, 'a'],
      'the bad trial, then the default',
    );
    assert.match(boots[0]!.text, /darch: trial boot of [a-z0-9]+, 0 more tries after this one/);
    assert.match(boots[0]!.text, /Kernel panic/);
    // Nothing but the console was configured: the reboot after the panic is darch's trial default.
    assert.match(boots[0]!.text, /Command line: [^\n]*\bpanic=\d+ [^\n]*console=ttyS0,115200 darch\.trial=1/);
    assert.equal(boots[0]!.booted, undefined, 'the bad image never came up');
    assert.match(boots[1]!.text, new RegExp(`darch: trial ${ids[BAD]} ran out of tries; back to darch-test\\+a@1`));
    assert.deepEqual(boots[1]!.booted, { version: 'A', stage: ids.a, trial: false, fellBack: true });
    await withInstall(disk, mnt, async (m) => {
      const s = (await darchOk(['boot', 'status', '--json'], { root: m.root })).json();
      assert.equal(s.default.stage, ids.a);
      assert.equal(s.trial, null);
      assert.equal(s.fellBack, true);
      assert.deepEqual(s.bad, [ids[BAD]]);
    });
  });
});

/**
 * The power-cut campaign's bookkeeping (test/soak/powercut.ts): which phase a cut fell in,
 * which version a console says was committed, the seeded fractions, and the per-phase
 * figures docs/RELIABILITY.md publishes. A mistake here would misreport every campaign.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { byPhase, committedAfter, phaseAt, rng, type RoundReport } from '../soak/powercut.js';

const CONSOLE = [
  'CUT-BOOTED version=1 stage=aaa trial=0 fell_back=0',
  'CUT-COMMIT rc=0 trial=0',
  'CUT-VERIFY rc=0',
  'CUT-UPDATE-START',
  '==> checking 10.0.2.100:5000/os/cut:stable',
  '==> pulling 10.0.2.100:5000/os/cut@sha256:00',
  '==> writing squashfs with tar2sqfs (lz4) from 2 layers',
  'stage step: darch-boot',
  'darch initramfs: kernel 6.1.0-57-amd64, 62 modules, 5.6 MiB',
  '==> rebooting into the update (window 00:00-24:00, nobody logged in)',
  'The system is going down NOW!',
  'BdsDxe: loading Boot0002 "UEFI Misc Device"',
  'Welcome to GRUB!',
  'darch: darch initramfs 3 (kernel 6.1.0-57-amd64)',
  'CUT-BOOTED version=2 stage=bbb trial=1 fell_back=0',
  'darch-health: all checks passed',
  'darch-commit: bbb is good: it is now the default',
  'CUT-COMMIT rc=0 trial=1',
].join('\n');

const upTo = (line: string) => CONSOLE.slice(0, CONSOLE.indexOf(line) + line.length);

describe('power-cut bookkeeping', () => {
  it('names the phase by the last marker before the cut, counted from the check', () => {
    const from = CONSOLE.indexOf('CUT-VERIFY');
    assert.equal(phaseAt(upTo('CUT-VERIFY rc=0'), from), 'verify');
    assert.equal(phaseAt(upTo('==> pulling 10.0.2.100:5000/os/cut@sha256:00'), from), 'update: download');
    assert.equal(phaseAt(upTo('==> writing squashfs with tar2sqfs (lz4) from 2 layers'), from), 'update: squashfs');
    assert.equal(phaseAt(upTo('stage step: darch-boot'), from), 'update: kernel and initramfs');
    assert.equal(phaseAt(upTo('darch initramfs: kernel 6.1.0-57-amd64, 62 modules, 5.6 MiB'), from), 'update: boot entries and arming');
    assert.equal(phaseAt(upTo('The system is going down NOW!'), from), 'shutdown');
    assert.equal(phaseAt(upTo('Welcome to GRUB!'), from), 'trial boot: boot loader');
    assert.equal(phaseAt(upTo('CUT-BOOTED version=2 stage=bbb trial=1 fell_back=0'), from), 'trial boot: init');
    assert.equal(phaseAt(upTo('darch-health: all checks passed'), from), 'commit');
    assert.equal(phaseAt(CONSOLE, from), 'after the commit');
    // The first boot's own commit, before the check, is not this cut's phase.
    assert.equal(phaseAt(upTo('CUT-COMMIT rc=0 trial=0'), 0), 'boot');
  });

  it('counts a trial as committed only when its own boot says so', () => {
    assert.equal(committedAfter(CONSOLE, 1), 2);
    assert.equal(committedAfter(upTo('darch-health: all checks passed'), 1), 1, 'cut before the commit: still 1');
    assert.equal(committedAfter(`${CONSOLE}\nCUT-BOOTED version=3 stage=ccc trial=1 fell_back=0\n`, 1), 2, 'a later trial that did not commit leaves 2');
    assert.equal(committedAfter('', 4), 4);
    // GRUB booted another image with the trial flag: its commit changed nothing.
    const wrong =
      'CUT-BOOTED version=4 stage=ddd trial=1 fell_back=0\ndarch-commit: this boot (ddd) is not the pending trial (bbb): nothing changed\nCUT-COMMIT rc=0 trial=1\n';
    assert.equal(committedAfter(wrong, 5), 5);
  });

  it('gives the same fractions for the same seed, in [0, 1)', () => {
    const a = rng(7);
    const b = rng(7);
    const xs = Array.from({ length: 50 }, () => a());
    assert.deepEqual(
      xs,
      Array.from({ length: 50 }, () => b()),
    );
    assert.ok(xs.every((x) => x >= 0 && x < 1));
    assert.notDeepEqual(xs.slice(0, 5), Array.from({ length: 5 }, rng(8)));
  });

  it('files what came up under the phase of the cut it checked', () => {
    const r = (phase: string, verdict: RoundReport['verdict']) => ({ checked: { round: 0, phase, cutAtSec: 1 }, verdict }) as RoundReport;
    assert.deepEqual(byPhase([r('shutdown', 'previous'), r('shutdown', 'new'), r('commit', 'new'), r('shutdown', 'previous')]), {
      shutdown: { previous: 2, new: 1 },
      commit: { new: 1 },
    });
  });
});

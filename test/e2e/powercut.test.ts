/**
 * SLOW (qemu under TCG, a few update cycles per boot loader): the power-cut campaign's CI
 * sample (test/soak/powercut.ts; the full campaign is `npm run -s soak:powercut`,
 * docs/RELIABILITY.md). A busybox machine with the darch executable updates itself from a
 * registry on the host's 127.0.0.1 through darch's update agent; round 0 goes through a whole
 * cycle (download, stage, arm, reboot, trial boot, commit) and is killed after its commit;
 * on GRUB the next round checks that cut and pulls the plug at a moment fixed by the seed;
 * a last boot checks the last cut (two cuts on GRUB, one on systemd-boot).
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { tempDir } from '../helpers/darch.js';
import { ARTIFACTS } from '../helpers/qemu.js';
import { campaign, failed, type Bootloader } from '../soak/powercut.js';

/** Cuts per boot loader in CI, and the seeds that place them (fixed: a failure here replays with the same seed). */
const SAMPLE: Record<Bootloader, { seed: number; rounds: number }> = {
  grub: { seed: 1, rounds: 1 },
  // Round 0's cut after the commit only: the full campaign covers the rest (CI time).
  'systemd-boot': { seed: 2, rounds: 0 },
};

describe('power cuts during updates leave a machine that boots a good image', () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  after(async () => {
    for (const c of cleanups.reverse()) await c();
  });

  for (const bootloader of ['grub', 'systemd-boot'] as const) {
    it(`${bootloader}: an update cycle on the machine's own agent, then cuts at random moments; every boot after a cut comes up and updates on`, async () => {
      const work = await tempDir({ after: (fn) => void cleanups.push(fn) }, `darch-powercut-${bootloader}-`);
      const { seed, rounds: n } = SAMPLE[bootloader];
      const { summary, rounds } = await campaign({
        bootloader,
        rounds: n,
        seed,
        work,
        reportFile: path.join(ARTIFACTS, `powercut-${bootloader}-${seed}.jsonl`),
        log: (s) => console.error(`powercut ${bootloader}: ${s}`),
      });
      assert.equal(rounds.length, n + 1, 'every cut was checked by a boot');
      assert.equal(summary.cuts, n + 1);
      for (const r of rounds) {
        assert.ok(!failed(r), `round ${r.round} (seed ${seed}): ${JSON.stringify(r)}`);
        assert.ok(r.verdict === 'previous' || r.verdict === 'new', `round ${r.round}: what came up was the last good image or the new one`);
        assert.equal(r.verify, 0, `round ${r.round}: darch images verify on the machine`);
      }
      // The machine kept updating through the cuts: round 0 committed v2 at least.
      assert.ok(summary.versionsCommitted >= 2, JSON.stringify(summary));
    });
  }
});

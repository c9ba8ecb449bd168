/**
 * The power-cut campaign's command (issue 19; docs/RELIABILITY.md):
 *
 *   npm run -s soak:powercut -- [--bootloader grub|systemd-boot|both] [--rounds 100] [--seed 1] [--work DIR]
 *
 * One JSON line per round and a summary line in test-artifacts/powercut-<bootloader>-<seed>.jsonl,
 * a line per round on stderr, the summaries as JSON on stdout. Exit 1 when any round failed.
 */
import os from 'node:os';
import path from 'node:path';
import { mkdtemp, rm } from 'node:fs/promises';
import { ARTIFACTS } from '../helpers/qemu.js';
import { campaign, type Bootloader, type CampaignSummary } from './powercut.js';

const arg = (name: string, def: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? (process.argv[i + 1] ?? def) : def;
};
const which = arg('bootloader', 'both');
const loaders: Bootloader[] = which === 'both' ? ['grub', 'systemd-boot'] : [which as Bootloader];
if (!loaders.every((l) => l === 'grub' || l === 'systemd-boot')) throw new Error(`--bootloader must be grub, systemd-boot or both, not ${which}`);
const rounds = Number(arg('rounds', '100'));
const seed = Number(arg('seed', '1'));
const keep = process.argv.includes('--work');
const work = keep ? path.resolve(arg('work', '')) : await mkdtemp(path.join(os.tmpdir(), 'darch-powercut-'));

const summaries: CampaignSummary[] = [];
try {
  for (const bootloader of loaders) {
    const reportFile = path.join(ARTIFACTS, `powercut-${bootloader}-${seed}.jsonl`);
    const { summary } = await campaign({ bootloader, rounds, seed, work, reportFile, log: (s) => console.error(`powercut ${bootloader}: ${s}`) });
    summaries.push(summary);
    console.error(`powercut ${bootloader}: ${JSON.stringify(summary)} (report: ${reportFile})`);
  }
} finally {
  if (!keep) await rm(work, { recursive: true, force: true });
}
console.log(JSON.stringify(summaries, null, 2));
process.exitCode = summaries.some((s) => s.failedRounds.length > 0) ? 1 : 0;

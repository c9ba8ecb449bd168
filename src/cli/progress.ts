/**
 * Progress for long byte-oriented work (imports, downloads, staging). A live bar on a
 * terminal, a line every few seconds otherwise (logs, CI), nothing under --quiet or --json
 * beyond the final result.
 */
import cliProgress from 'cli-progress';
import { formatBytes } from '../lib/format.js';
import type { Progress, ProgressGroup } from '../lib/report.js';
import { ui } from './ui.js';

const LINE_INTERVAL_MS = 5000;

export function byteProgress(label: string, total?: number): Progress {
  let done = 0;
  let tot = total ?? 0;
  if (ui.quiet || ui.json) {
    return { tick: (n) => void (done += n), setTotal: (t) => void (tot = t), done: () => undefined };
  }
  if (ui.interactive) {
    const bar = new cliProgress.SingleBar(
      {
        stream: process.stderr,
        format: `${label} [{bar}] {percentage}% {doneh}/{totalh}`,
        hideCursor: true,
        clearOnComplete: true,
        barsize: 30,
      },
      cliProgress.Presets.shades_classic,
    );
    bar.start(tot || 1, 0, { doneh: formatBytes(0), totalh: tot ? formatBytes(tot) : '?' });
    return {
      tick(n) {
        done += n;
        bar.update(Math.min(done, tot || done), { doneh: formatBytes(done), totalh: tot ? formatBytes(tot) : '?' });
      },
      setTotal(t) {
        tot = t;
        bar.setTotal(t);
      },
      done(message) {
        bar.stop();
        if (message) ui.success(message);
      },
    };
  }
  let last = Date.now();
  return {
    tick(n) {
      done += n;
      const now = Date.now();
      if (now - last >= LINE_INTERVAL_MS) {
        last = now;
        ui.info(`${label}: ${formatBytes(done)}${tot ? ` of ${formatBytes(tot)}` : ''}`);
      }
    },
    setTotal(t) {
      tot = t;
    },
    done(message) {
      if (message) ui.success(message);
    },
  };
}

/**
 * Several transfers at once (a pull's blobs): one bar each on a terminal, one line every
 * few seconds for the whole group otherwise, nothing under --quiet or --json.
 */
export function byteProgressGroup(label: string, total: number): ProgressGroup {
  if (ui.quiet || ui.json || !ui.interactive) {
    const line = byteProgress(label, total);
    return {
      item: () => ({ tick: (n) => line.tick(n), setTotal: () => undefined, done: () => undefined }),
      done: (m) => line.done(m),
    };
  }
  const multi = new cliProgress.MultiBar(
    {
      stream: process.stderr,
      format: '{name} [{bar}] {percentage}% {doneh}/{totalh}',
      hideCursor: true,
      clearOnComplete: true,
      barsize: 30,
    },
    cliProgress.Presets.shades_classic,
  );
  return {
    item(name, itemTotal) {
      let done = 0;
      const bar = multi.create(itemTotal || 1, 0, { name, doneh: formatBytes(0), totalh: formatBytes(itemTotal) });
      return {
        tick(n) {
          done += n;
          bar.update(Math.min(done, itemTotal || done), { name, doneh: formatBytes(done), totalh: formatBytes(itemTotal) });
        },
        setTotal(t) {
          bar.setTotal(t);
        },
        done() {
          bar.update(itemTotal, { name, doneh: formatBytes(itemTotal), totalh: formatBytes(itemTotal) });
        },
      };
    },
    done(message) {
      multi.stop();
      if (message) ui.success(message);
    },
  };
}

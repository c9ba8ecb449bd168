/** The CLI's reporter: library messages and progress go to stderr through `ui`, as darch's own. */
import { byteProgress, byteProgressGroup } from './progress.js';
import type { Reporter } from '../lib/report.js';
import { ui } from './ui.js';

export const uiReporter: Reporter = {
  info: (m) => ui.info(m),
  step: (m) => ui.step(m),
  success: (m) => ui.success(m),
  warn: (m) => ui.warn(m),
  verbose: (m) => ui.verbose(m),
  debug: (m) => ui.debug(m),
  output(label, line, level = 'info') {
    if (ui.quiet || (level === 'verbose' && ui.verbosity < 1)) return;
    ui.err.write(`${ui.colors.dim(`[${label}]`)} ${line}\n`);
  },
  progress: (label, total) => byteProgress(label, total),
  progressGroup: (label, total) => byteProgressGroup(label, total),
};

/**
 * Runs a builder command with its output streamed live, each line prefixed with the recipe
 * name, and remembers what is needed for a useful error: the last build step announced and
 * the tail of the output.
 */
import type { Reporter } from '../lib/report.js';
import { spawnChild, waitChild } from '../lib/proc.js';

export interface StreamResult {
  code: number;
  signal: NodeJS.Signals | null;
  /** The last `STEP n/m: …` line a Containerfile build printed. */
  lastStep?: string;
  tail: string[];
}

export interface StreamOptions {
  prefix: string;
  signal?: AbortSignal;
  env?: NodeJS.ProcessEnv;
  /** Where the program's lines go as they come (they are also captured for errors). */
  report: Reporter;
  /** 'verbose': lines a person sees only with -v (buildah's chatter). */
  level?: 'info' | 'verbose';
}

const TAIL_LINES = 20;

/** Process groups of running builder commands: a forced exit (second Ctrl-C) kills them too. */
const activeGroups = new Set<number>();
let exitHookInstalled = false;
function trackGroup(pid: number | undefined): void {
  if (!pid) return;
  activeGroups.add(pid);
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on('exit', () => {
      for (const g of activeGroups) {
        try {
          process.kill(-g, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
    });
  }
}

export async function runStreaming(cmd: string, args: string[], opts: StreamOptions): Promise<StreamResult> {
  // Its own process group: buildah's chroot runtime leaves the recipe's processes in the
  // builder's group, and a killed script's children (a `sleep`, a daemon apt started) would
  // otherwise outlive the build. The whole group gets the signal.
  const child = spawnChild(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: opts.env ?? process.env, detached: true });
  trackGroup(child.pid);
  const killGroup = (sig: NodeJS.Signals) => {
    try {
      if (child.pid) process.kill(-child.pid, sig);
    } catch {
      /* already gone */
    }
  };
  // On abort, SIGINT (buildah treats it like Ctrl-C at a terminal and stops its container),
  // then wait for the child to exit so cleanup never races a builder that is still running.
  let killTimer: NodeJS.Timeout | undefined;
  const onAbort = () => {
    killGroup('SIGINT');
    killTimer = setTimeout(() => killGroup('SIGKILL'), 15_000);
  };
  if (opts.signal?.aborted) onAbort();
  else opts.signal?.addEventListener('abort', onAbort, { once: true });
  const tail: string[] = [];
  let lastStep: string | undefined;
  const onText = (() => {
    const partial = { out: '', err: '' };
    return (which: 'out' | 'err', chunk: Buffer | undefined) => {
      const text = partial[which] + (chunk ? chunk.toString('utf8') : '');
      const lines = text.split(/\r?\n|\r/);
      partial[which] = chunk ? (lines.pop() ?? '') : '';
      for (const line of lines) {
        if (!chunk && line === '') continue;
        if (/^STEP \d+\/\d+: /.test(line)) lastStep = line;
        tail.push(line);
        if (tail.length > TAIL_LINES) tail.shift();
        opts.report.output(opts.prefix, line, opts.level);
      }
    };
  })();
  child.stdout?.on('data', (b: Buffer) => onText('out', b));
  child.stderr?.on('data', (b: Buffer) => onText('err', b));
  child.stdout?.on('end', () => onText('out', undefined));
  child.stderr?.on('end', () => onText('err', undefined));
  try {
    const res = await waitChild(child, cmd);
    return { ...res, lastStep, tail };
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
    if (killTimer) clearTimeout(killTimer);
    killGroup('SIGKILL'); // stragglers of a finished or interrupted step
    if (child.pid) activeGroups.delete(child.pid);
  }
}

/** What every command gets: resolved paths, loaded config, lazily opened stores, and the run's services. */
import { loadConfig, type Config } from '../lib/config.js';
import { resolvePaths, type DarchPaths } from '../lib/paths.js';
import type { Reporter } from '../lib/report.js';
import type { ImageStore } from '../oci/store.js';
import { uiReporter } from './reporter.js';
import { makeServices, type Services } from './services.js';

export type { Services } from './services.js';

/** The global options of every command (main.ts defines them). */
export interface GlobalOptions {
  json?: boolean;
  quiet?: boolean;
  verbose?: number;
  color?: 'auto' | 'always' | 'never';
  debug?: boolean;
  root?: string;
  user?: boolean;
}

export interface Context extends Services {
  globals: GlobalOptions;
  paths: DarchPaths;
  config: Config;
  /** The image store, loaded on first use (a command that reads no images starts without it). */
  imageStore(): Promise<ImageStore>;
  /**
   * Before darch writes its state: on a booted darch machine the stage file system is
   * mounted read-only, and this remounts it read-write (once per run; nothing elsewhere).
   */
  stateWritable: () => Promise<unknown>;
  /** Cancelled on SIGINT/SIGTERM; long work passes it down to children and streams. */
  signal: AbortSignal;
  /** Where library code reports progress and messages: `ui` on stderr. */
  report: Reporter;
}

export async function makeContext(globals: GlobalOptions, signal: AbortSignal): Promise<Context> {
  const paths = resolvePaths({ root: globals.root, user: globals.user });
  const config = await loadConfig(paths.configFile);
  let store: Promise<ImageStore> | undefined;
  const base = { globals, paths, config, signal, report: uiReporter };
  let remounted: Promise<unknown> | undefined;
  const stateWritable = () => {
    remounted ??= import('../lib/writable.js').then((w) => w.ensureWritable(paths.stateDir, { root: paths.root, report: uiReporter }));
    return remounted;
  };
  return {
    ...base,
    ...makeServices(base),
    stateWritable,
    imageStore() {
      store ??= import('../oci/store.js').then((m) => new m.ImageStore(paths.imagesDir, paths.tmpDir, lockTimeout(config), stateWritable));
      return store;
    },
  };
}

export function lockTimeout(config: Config): number {
  const env = process.env.DARCH_LOCK_TIMEOUT;
  if (env !== undefined && env !== '' && Number.isFinite(Number(env))) return Number(env);
  return config.store.lock_timeout;
}

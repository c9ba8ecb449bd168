/** What every command gets: resolved paths, loaded config, lazily opened stores, and the run's services. */
import type { Puller } from '../build/external.js';
import { loadConfig, type Config } from '../lib/config.js';
import { resolvePaths, type DarchPaths } from '../lib/paths.js';
import type { Reporter } from '../lib/report.js';
import { ImageStore } from '../oci/store.js';
import type { ProtectionSource } from '../stage/protect.js';
import type { StageStep } from '../stage/stage.js';
import type { GlobalOptions } from './globals.js';
import { uiReporter } from './reporter.js';
import { makeServices } from './services.js';

export type { GlobalOptions } from './globals.js';

/**
 * What library code needs from other parts of darch, handed to it explicitly. They used to be
 * module-level registries filled in as import side effects, so a caller that skipped the
 * import (any `stageImage` outside `stage upload`) silently got less.
 */
export interface Services {
  /** How `darch build --pull` fetches an external base: the registry client. */
  puller: Puller;
  /** Staged ids retention, `stage remove` and `stage clean` keep besides the booted one. */
  protection: ProtectionSource[];
  /** What every stage runs before committing: darch's initramfs and the tags' hooks. */
  stageSteps: StageStep[];
}

export interface Context extends Services {
  globals: GlobalOptions;
  paths: DarchPaths;
  config: Config;
  imageStore(): ImageStore;
  /** Cancelled on SIGINT/SIGTERM; long work passes it down to children and streams. */
  signal: AbortSignal;
  /** Where library code reports progress and messages: `ui` on stderr. */
  report: Reporter;
}

export async function makeContext(globals: GlobalOptions, signal: AbortSignal): Promise<Context> {
  const paths = resolvePaths({ root: globals.root, user: globals.user });
  const config = await loadConfig(paths.configFile);
  let store: ImageStore | undefined;
  const base = { globals, paths, config, signal, report: uiReporter };
  return {
    ...base,
    ...makeServices(base),
    imageStore() {
      store ??= new ImageStore(paths.imagesDir, paths.tmpDir, lockTimeout(config));
      return store;
    },
  };
}

export function lockTimeout(config: Config): number {
  const env = process.env.DARCH_LOCK_TIMEOUT;
  if (env !== undefined && env !== '' && Number.isFinite(Number(env))) return Number(env);
  return config.store.lock_timeout;
}


/** What every command gets: resolved paths, loaded config, and lazily opened stores. */
import { loadConfig, type Config } from '../lib/config.js';
import { resolvePaths, type DarchPaths } from '../lib/paths.js';
import { ImageStore } from '../oci/store.js';

export interface GlobalOptions {
  json?: boolean;
  quiet?: boolean;
  verbose?: number;
  color?: 'auto' | 'always' | 'never';
  debug?: boolean;
  root?: string;
  user?: boolean;
}

export interface Context {
  globals: GlobalOptions;
  paths: DarchPaths;
  config: Config;
  imageStore(): ImageStore;
  /** Cancelled on SIGINT/SIGTERM; long work passes it down to children and streams. */
  signal: AbortSignal;
}

export async function makeContext(globals: GlobalOptions, signal: AbortSignal): Promise<Context> {
  const paths = resolvePaths({ root: globals.root, user: globals.user });
  const config = await loadConfig(paths.configFile);
  let store: ImageStore | undefined;
  return {
    globals,
    paths,
    config,
    signal,
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

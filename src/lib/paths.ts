/**
 * Where darch keeps things. System mode (root) uses the FHS paths; `--root DIR` or
 * DARCH_ROOT relocates every one of them under DIR (tests rely on this to stay isolated);
 * user mode (not root, no --root) uses XDG directories so building and staging need no root.
 */
import os from 'node:os';
import path from 'node:path';

export type Mode = 'system' | 'user';

export interface DarchPaths {
  mode: Mode;
  /** The relocation prefix, '/' in a normal system install. */
  root: string;
  configDir: string;
  configFile: string;
  stateDir: string;
  imagesDir: string;
  stageDir: string;
  /** Scratch space on the same file system as the stores, so renames are atomic. */
  tmpDir: string;
  runDir: string;
  cacheDir: string;
  /**
   * The containers tools' configuration (`registries.conf`, `registries.conf.d/`):
   * `/etc/containers`, relocated by --root like darch's own files.
   */
  containersConfDir: string;
  /**
   * User mode only: `$XDG_CONFIG_HOME/containers` (`~/.config/containers`), where a user's
   * own registries.conf replaces the system one (containers-registries.conf(5)).
   */
  userContainersConfDir?: string;
}

export interface PathOptions {
  root?: string;
  /** Force user mode even as root (mostly for tests of the rootless path). */
  user?: boolean;
  env?: NodeJS.ProcessEnv;
  uid?: number;
}

export function resolvePaths(opts: PathOptions = {}): DarchPaths {
  const env = opts.env ?? process.env;
  const root = opts.root ?? env.DARCH_ROOT;
  const uid = opts.uid ?? (typeof process.getuid === 'function' ? process.getuid() : 0);
  if (root !== undefined && root !== '') return systemPaths(path.resolve(root));
  if (opts.user || env.DARCH_USER_MODE === '1' || uid !== 0) return userPaths(env);
  return systemPaths('/');
}

function systemPaths(root: string): DarchPaths {
  const r = (p: string) => path.join(root, p);
  const stateDir = r('/var/lib/darch');
  return {
    mode: 'system',
    root,
    configDir: r('/etc/darch'),
    configFile: r('/etc/darch/config.toml'),
    stateDir,
    imagesDir: path.join(stateDir, 'images'),
    stageDir: path.join(stateDir, 'stage'),
    tmpDir: path.join(stateDir, 'tmp'),
    runDir: r('/run/darch'),
    cacheDir: r('/var/cache/darch'),
    containersConfDir: r('/etc/containers'),
  };
}

function userPaths(env: NodeJS.ProcessEnv): DarchPaths {
  const home = env.HOME || os.homedir();
  const xdg = (name: string, fallback: string) => {
    const v = env[name];
    return v && path.isAbsolute(v) ? v : path.join(home, fallback);
  };
  const configHome = xdg('XDG_CONFIG_HOME', '.config');
  const configDir = path.join(configHome, 'darch');
  const dataDir = path.join(xdg('XDG_DATA_HOME', '.local/share'), 'darch');
  const stateDir = path.join(xdg('XDG_STATE_HOME', '.local/state'), 'darch');
  const runtime = env.XDG_RUNTIME_DIR && path.isAbsolute(env.XDG_RUNTIME_DIR) ? env.XDG_RUNTIME_DIR : undefined;
  return {
    mode: 'user',
    root: '/',
    configDir,
    configFile: path.join(configDir, 'config.toml'),
    stateDir,
    imagesDir: path.join(dataDir, 'images'),
    stageDir: path.join(dataDir, 'stage'),
    tmpDir: path.join(dataDir, 'tmp'),
    runDir: runtime ? path.join(runtime, 'darch') : path.join(stateDir, 'run'),
    cacheDir: path.join(xdg('XDG_CACHE_HOME', '.cache'), 'darch'),
    containersConfDir: '/etc/containers',
    userContainersConfDir: path.join(configHome, 'containers'),
  };
}

/**
 * Registry credentials where podman, skopeo and docker keep them, read in the order
 * containers-auth.json(5) gives (containers/image pkg/docker/config):
 *   1. --authfile, else REGISTRY_AUTH_FILE, else ${XDG_RUNTIME_DIR}/containers/auth.json
 *      (root without XDG_RUNTIME_DIR: /run/containers/0/auth.json)
 *   2. $XDG_CONFIG_HOME/containers/auth.json (~/.config/containers/auth.json)
 *   3. $DOCKER_CONFIG/config.json or ~/.docker/config.json (incl. credHelpers / credsStore)
 *   4. ~/.dockercfg
 * `darch login` writes to the first. Secrets never leave this module except as headers.
 */
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { mkdir } from 'node:fs/promises';
import { writeFileAtomic } from '../lib/scratch.js';
import { DarchError, isErrno } from '../lib/errors.js';
import { run } from '../lib/proc.js';

export interface Credentials {
  username: string;
  password: string;
  /** The file or helper they came from (for messages; never the secret). */
  source: string;
}

interface AuthEntry {
  auth?: string;
  username?: string;
  password?: string;
  identitytoken?: string;
}

interface AuthFileDoc {
  auths?: Record<string, AuthEntry>;
  credHelpers?: Record<string, string>;
  credsStore?: string;
  [k: string]: unknown;
}

export interface AuthFileOptions {
  /** --authfile: replaces the first file of the lookup order. */
  authFile?: string;
  env?: NodeJS.ProcessEnv;
}

function home(env: NodeJS.ProcessEnv): string {
  return env.HOME || os.homedir();
}

/** The file `darch login` writes and the first one lookups read. */
export function primaryAuthFile(opts: AuthFileOptions = {}): string {
  const env = opts.env ?? process.env;
  if (opts.authFile) return path.resolve(opts.authFile);
  if (env.REGISTRY_AUTH_FILE) return path.resolve(env.REGISTRY_AUTH_FILE);
  if (env.XDG_RUNTIME_DIR) return path.join(env.XDG_RUNTIME_DIR, 'containers', 'auth.json');
  const uid = typeof process.getuid === 'function' ? process.getuid() : 0;
  if (uid === 0) return '/run/containers/0/auth.json';
  return path.join(configHome(env), 'containers', 'auth.json');
}

function configHome(env: NodeJS.ProcessEnv): string {
  return env.XDG_CONFIG_HOME && path.isAbsolute(env.XDG_CONFIG_HOME) ? env.XDG_CONFIG_HOME : path.join(home(env), '.config');
}

/** Every file consulted, in order, without duplicates. */
export function authFileOrder(opts: AuthFileOptions = {}): Array<{ file: string; legacy: boolean }> {
  const env = opts.env ?? process.env;
  const list = [
    { file: primaryAuthFile(opts), legacy: false },
    { file: path.join(configHome(env), 'containers', 'auth.json'), legacy: false },
    { file: path.join(env.DOCKER_CONFIG ? path.resolve(env.DOCKER_CONFIG) : path.join(home(env), '.docker'), 'config.json'), legacy: false },
    { file: path.join(home(env), '.dockercfg'), legacy: true },
  ];
  const seen = new Set<string>();
  return list.filter((e) => {
    if (seen.has(e.file)) return false;
    seen.add(e.file);
    return true;
  });
}

async function readAuthFile(file: string, legacy: boolean): Promise<AuthFileDoc | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if (isErrno(err, 'ENOENT') || isErrno(err, 'ENOTDIR')) return undefined;
    throw new DarchError('E_AUTH_FILE', `cannot read ${file}: ${(err as Error).message}`);
  }
  if (text.trim() === '') return undefined;
  try {
    const doc = JSON.parse(text) as AuthFileDoc | Record<string, AuthEntry>;
    // ~/.dockercfg is the bare map of the old format.
    return legacy ? { auths: doc as Record<string, AuthEntry> } : (doc as AuthFileDoc);
  } catch (err) {
    throw new DarchError('E_AUTH_FILE', `${file} is not valid JSON: ${(err as Error).message}`, {
      hint: 'fix or remove the file, then `darch login` again',
    });
  }
}

/** Docker writes "https://index.docker.io/v1/" and "http://host"; containers writes "host[/repo]". */
function normalizeKey(key: string): string {
  let k = key.replace(/^https?:\/\//, '');
  k = k.replace(/\/v[12]\/?$/, '').replace(/\/+$/, '');
  if (k === 'index.docker.io' || k === 'registry-1.docker.io') k = 'docker.io';
  return k;
}

function decodeEntry(e: AuthEntry, source: string): Credentials | undefined {
  if (e.username && e.password) return { username: e.username, password: e.password, source };
  if (!e.auth) return undefined;
  const decoded = Buffer.from(e.auth, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return undefined;
  return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1), source };
}

/** Keys to try for a repository, most specific first: host/a/b, host/a, host. */
function candidateKeys(host: string, repoPath?: string): string[] {
  const keys: string[] = [];
  if (repoPath) {
    const parts = repoPath.split('/');
    for (let i = parts.length; i >= 1; i--) keys.push(`${host}/${parts.slice(0, i).join('/')}`);
  }
  keys.push(host);
  return keys;
}

async function fromHelper(helper: string, host: string): Promise<Credentials | undefined> {
  const res = await run(`docker-credential-${helper}`, ['get'], { input: host, allowFailure: true }).catch(() => undefined);
  if (res?.code !== 0) return undefined;
  try {
    const doc = JSON.parse(res.stdout) as { Username?: string; Secret?: string };
    if (doc.Username && doc.Secret) return { username: doc.Username, password: doc.Secret, source: `docker-credential-${helper}` };
  } catch {
    /* a helper that prints no JSON has nothing for us */
  }
  return undefined;
}

export async function findCredentials(host: string, repoPath: string | undefined, opts: AuthFileOptions = {}): Promise<Credentials | undefined> {
  const keys = candidateKeys(normalizeKey(host), repoPath);
  for (const { file, legacy } of authFileOrder(opts)) {
    const doc = await readAuthFile(file, legacy);
    if (!doc) continue;
    const helper = doc.credHelpers?.[host] ?? doc.credHelpers?.[normalizeKey(host)];
    if (helper) {
      const c = await fromHelper(helper, host);
      if (c) return c;
    }
    const auths = new Map<string, AuthEntry>();
    for (const [k, v] of Object.entries(doc.auths ?? {})) if (!auths.has(normalizeKey(k))) auths.set(normalizeKey(k), v);
    for (const k of keys) {
      const e = auths.get(k);
      const c = e ? decodeEntry(e, file) : undefined;
      if (c) return c;
    }
    if (doc.credsStore) {
      const c = await fromHelper(doc.credsStore, host);
      if (c) return c;
    }
  }
  return undefined;
}

/** Record credentials in the primary auth file (0600, atomic), keeping everything else in it. */
export async function saveCredentials(host: string, username: string, password: string, opts: AuthFileOptions = {}): Promise<string> {
  const file = primaryAuthFile(opts);
  const doc = (await readAuthFile(file, false)) ?? {};
  doc.auths = { ...(doc.auths ?? {}), [normalizeKey(host)]: { auth: Buffer.from(`${username}:${password}`).toString('base64') } };
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  await writeFileAtomic(file, `${JSON.stringify(doc, null, '\t')}\n`, 0o600);
  return file;
}

/** Remove a registry's entry from the primary auth file; false if there was none. */
export async function removeCredentials(host: string, opts: AuthFileOptions = {}): Promise<{ removed: boolean; file: string }> {
  const file = primaryAuthFile(opts);
  const doc = await readAuthFile(file, false);
  const key = normalizeKey(host);
  if (!doc?.auths) return { removed: false, file };
  const before = Object.keys(doc.auths).length;
  doc.auths = Object.fromEntries(Object.entries(doc.auths).filter(([k]) => normalizeKey(k) !== key));
  if (Object.keys(doc.auths).length === before) return { removed: false, file };
  await writeFileAtomic(file, `${JSON.stringify(doc, null, '\t')}\n`, 0o600);
  return { removed: true, file };
}

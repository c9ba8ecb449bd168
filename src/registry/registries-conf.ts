/**
 * containers-registries.conf(5), version 2: which registry an image name really comes from,
 * its mirrors, and whether pulling it is allowed. The owner of the format: the zod schema,
 * the only reader (`loadRegistriesConf`) and the pure choice of sources (`sourcesFor`).
 *
 * Files, as podman and skopeo read them:
 *   - `CONTAINERS_REGISTRIES_CONF` set: that file alone;
 *   - otherwise `<root>/etc/containers/registries.conf`, then
 *     `<root>/etc/containers/registries.conf.d/*.conf` in sorted order; a user (user mode)
 *     whose `$XDG_CONFIG_HOME/containers/registries.conf` exists reads it instead of the system
 *     file and only its own `registries.conf.d`, otherwise the system files and then
 *     `$XDG_CONFIG_HOME/containers/registries.conf.d/*.conf`.
 * A later file's `[[registry]]` replaces an earlier one with the same prefix. Keys darch does
 * not use (unqualified-search-registries, aliases, short-name-mode, credential-helpers, …)
 * are ignored; the version 1 tables (`[registries.search]` …) are not read.
 */
import type { Dirent } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { DarchError, isErrno } from '../lib/errors.js';
import type { DarchPaths } from '../lib/paths.js';
import { loadValidated } from '../lib/validated.js';
import * as z from '../lib/zod.js';
import { type ImageRef, isRegistryHost, isRepositoryPath, isTag } from '../oci/reference.js';
import { remoteOf } from './remote.js';

export const REGISTRIES_CONF_ENV = 'CONTAINERS_REGISTRIES_CONF';
const CONF_FILE = 'registries.conf';
const CONF_DIR = 'registries.conf.d';

export type PullFromMirror = 'all' | 'digest-only' | 'tag-only';

const MirrorSchema = z.object({
  location: z.string(),
  insecure: z.optional(z.boolean()),
  'pull-from-mirror': z.optional(z.enum(['', 'all', 'digest-only', 'tag-only'])),
});

const RegistrySchema = z.object({
  prefix: z.optional(z.string()),
  location: z.optional(z.string()),
  insecure: z.optional(z.boolean()),
  blocked: z.optional(z.boolean()),
  'mirror-by-digest-only': z.optional(z.boolean()),
  mirror: z.optional(z.array(MirrorSchema)),
});

/** One file. z.object drops the keys it does not name: the ones darch has no use for. */
export const RegistriesConfSchema = z.object({
  registry: z.optional(z.array(RegistrySchema)),
});

export interface MirrorEntry {
  /** `host[:port][/path]`, no trailing slash. */
  location: string;
  insecure: boolean;
  pullFromMirror: PullFromMirror;
}

export interface RegistryEntry {
  /** `host[:port][/path][:tag|@digest]` or `*.domain`; defaults to the location. */
  prefix: string;
  /** Where the prefix's images really are; '' only for a wildcard prefix (no rewrite). */
  location: string;
  insecure: boolean;
  blocked: boolean;
  mirrors: MirrorEntry[];
  /** The file that defined it, for messages. */
  file: string;
}

export interface RegistriesConf {
  /** The files read, in order (those that exist). */
  files: string[];
  registries: RegistryEntry[];
}

export const NO_REGISTRIES_CONF: RegistriesConf = { files: [], registries: [] };

/** Where a pull can come from, in the order to try. */
export interface PullSource {
  /** host[:port] to connect to. */
  host: string;
  /** The repository at that host (the rewritten location path). */
  repo: string;
  /** The tag or digest to ask that host for. */
  reference: string;
  /** Plain HTTP and unverified TLS allowed (the entry's or the mirror's `insecure`). */
  insecure: boolean;
  /** false for the last source: the registry's location, or the reference's own host. */
  mirror: boolean;
}

function confError(file: string, msg: string): DarchError {
  return new DarchError('E_REGISTRIES_CONF', `${file}: ${msg}`, {
    hint: 'see containers-registries.conf(5); `[[registry]]` takes prefix, location, insecure, blocked and `[[registry.mirror]]` tables',
  });
}

// ---------------------------------------------------------------------------------------
// Which files

/** The `*.conf` files of a drop-in directory, sorted; other files and sub-directories are ignored. */
async function confFilesIn(dir: string): Promise<string[]> {
  let entries: Dirent[];
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (err) {
    if (isErrno(err, 'ENOENT') || isErrno(err, 'ENOTDIR')) return [];
    throw new DarchError('E_REGISTRIES_CONF', `cannot read ${dir}: ${(err as Error).message}`, { cause: err });
  }
  return entries
    .filter((e) => e.name.endsWith('.conf') && !e.isDirectory())
    .map((e) => e.name)
    .sort()
    .map((n) => path.join(dir, n));
}

async function exists(file: string): Promise<boolean> {
  try {
    return (await stat(file)).isFile();
  } catch {
    return false;
  }
}

/**
 * The files to read, in order, and whether the first one must exist (the one
 * CONTAINERS_REGISTRIES_CONF names). Files in the .d directories exist by construction.
 */
export async function registriesConfFiles(
  paths: Pick<DarchPaths, 'containersConfDir' | 'userContainersConfDir'>,
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ files: string[]; explicit: boolean }> {
  const named = env[REGISTRIES_CONF_ENV];
  if (named) return { files: [path.resolve(named)], explicit: true };
  const user = paths.userContainersConfDir;
  if (user && (await exists(path.join(user, CONF_FILE)))) {
    return { files: [path.join(user, CONF_FILE), ...(await confFilesIn(path.join(user, CONF_DIR)))], explicit: false };
  }
  const system = [path.join(paths.containersConfDir, CONF_FILE), ...(await confFilesIn(path.join(paths.containersConfDir, CONF_DIR)))];
  return { files: user ? [...system, ...(await confFilesIn(path.join(user, CONF_DIR)))] : system, explicit: false };
}

// ---------------------------------------------------------------------------------------
// Reading and checking

const SCHEME = /^[a-z][a-z0-9+.-]*:\/\//i;

/** A `host[:port][/path]` location, trailing slashes dropped. */
function checkLocation(file: string, key: string, value: string): string {
  const v = value.trim().replace(/\/+$/, '');
  if (SCHEME.test(v)) throw confError(file, `${key}: "${value}" has a URL scheme; give host[:port][/path] (use insecure = true for plain HTTP)`);
  const at = v.indexOf('@');
  const [host = '', ...rest] = (at < 0 ? v : v.slice(0, at)).split('/');
  if (!isRegistryHost(host)) throw confError(file, `${key}: "${value}" does not start with a registry host[:port]`);
  if (rest.length && !isRepositoryPath(splitNameTag(rest.join('/')).name)) throw confError(file, `${key}: "${value}" is not a valid repository path`);
  return v;
}

/** `*.example.com`: a wildcard only at the start, a domain after it, nothing else. */
function checkWildcard(file: string, key: string, value: string): string {
  const domain = value.slice(2);
  if (!domain || domain.includes('*') || domain.includes('/') || domain.includes(':') || !isRegistryHost(domain)) {
    throw confError(file, `${key}: "${value}" is not a valid wildcard prefix; only *.example.com is allowed`);
  }
  return value;
}

/** What loadValidated hands back for a file that does not exist (compared by identity). */
const MISSING: z.output<typeof RegistriesConfSchema> = {};

/** One file's entries, checked; relative order kept. */
function entriesOf(file: string, doc: z.output<typeof RegistriesConfSchema>): RegistryEntry[] {
  const out: RegistryEntry[] = [];
  const seen = new Set<string>();
  (doc.registry ?? []).forEach((r, i) => {
    const at = `registry.${i}`;
    const location = r.location?.trim() ? checkLocation(file, `${at}.location`, r.location) : '';
    let prefix: string;
    if (r.prefix?.trim()) {
      const p = r.prefix.trim().replace(/\/+$/, '');
      if (p.startsWith('*.')) prefix = checkWildcard(file, `${at}.prefix`, p);
      else if (p.includes('*')) throw confError(file, `${at}.prefix: "${r.prefix}": a wildcard is allowed only at the start (*.example.com)`);
      else prefix = checkLocation(file, `${at}.prefix`, p);
    } else if (location) {
      prefix = location;
    } else {
      throw confError(file, `${at}: neither prefix nor location is set`);
    }
    if (seen.has(prefix)) throw confError(file, `${at}: prefix "${prefix}" is defined twice in this file`);
    seen.add(prefix);
    const digestOnly = r['mirror-by-digest-only'] === true;
    const mirrors = (r.mirror ?? []).map((m, j): MirrorEntry => {
      const mat = `${at}.mirror.${j}`;
      if (!m.location.trim()) throw confError(file, `${mat}.location: empty`);
      if (m.location.includes('*')) throw confError(file, `${mat}.location: "${m.location}": a mirror location cannot have a wildcard`);
      const pull = m['pull-from-mirror'] || undefined;
      if (pull && digestOnly) {
        throw confError(file, `${mat}.pull-from-mirror: not allowed when the registry sets mirror-by-digest-only`);
      }
      return {
        location: checkLocation(file, `${mat}.location`, m.location),
        insecure: m.insecure === true,
        pullFromMirror: digestOnly ? 'digest-only' : (pull ?? 'all'),
      };
    });
    out.push({
      prefix,
      location: location || (prefix.startsWith('*.') ? '' : prefix),
      insecure: r.insecure === true,
      blocked: r.blocked === true,
      mirrors,
      file,
    });
  });
  return out;
}

/**
 * Read the registries.conf files of this darch root (`paths`) and the environment, merged:
 * a later file's `[[registry]]` with the same prefix replaces an earlier one. No file at
 * all is no configuration (every pull goes to the reference's own registry).
 */
export async function loadRegistriesConf(
  paths: Pick<DarchPaths, 'containersConfDir' | 'userContainersConfDir'>,
  env: NodeJS.ProcessEnv = process.env,
): Promise<RegistriesConf> {
  const { files, explicit } = await registriesConfFiles(paths, env);
  const byPrefix = new Map<string, RegistryEntry>();
  const read: string[] = [];
  for (const [i, file] of files.entries()) {
    const doc = await loadValidated(file, RegistriesConfSchema, {
      code: 'E_REGISTRIES_CONF',
      ...(explicit && i === 0 ? {} : { missing: () => MISSING }),
      schemaHint: 'see containers-registries.conf(5): [[registry]] takes prefix, location, insecure, blocked and [[registry.mirror]] tables',
      readHint: explicit ? `${REGISTRIES_CONF_ENV} names this file` : undefined,
    });
    if (doc === MISSING) continue;
    read.push(file);
    for (const e of entriesOf(file, doc)) {
      byPrefix.delete(e.prefix);
      byPrefix.set(e.prefix, e);
    }
  }
  return { files: read, registries: [...byPrefix.values()] };
}

// ---------------------------------------------------------------------------------------
// Choosing sources

/** `name[:tag]` → parts; a colon after the last slash starts the tag. */
function splitNameTag(s: string): { name: string; tag?: string } {
  const colon = s.lastIndexOf(':');
  return colon > s.lastIndexOf('/') ? { name: s.slice(0, colon), tag: s.slice(colon + 1) } : { name: s };
}

/** The image name the prefixes are matched against: `host/repo:tag` or `host/repo@digest`. */
export function matchName(ref: ImageRef): string {
  // index.docker.io is Docker Hub's old name: prefixes say docker.io.
  const r = remoteOf(ref.domain === 'index.docker.io' ? { ...ref, domain: 'docker.io' } : ref);
  return `${r.host}/${r.repo}${ref.digest ? `@${ref.digest}` : `:${ref.tag}`}`;
}

/**
 * How many characters of `name` the prefix covers, or -1. A plain prefix must be followed by
 * a separator (`/`, or `:`/`@` after a repository; a bare host is never followed by `:`, so
 * `example.com` does not match `example.com:5000`). `*.example.com` covers the host part of
 * any subdomain of example.com, with or without a port.
 */
export function prefixMatch(name: string, prefix: string): number {
  if (prefix.startsWith('*.')) {
    const slash = name.indexOf('/');
    const host = slash < 0 ? name : name.slice(0, slash);
    const hostname = host.replace(/:\d+$/, '');
    return hostname.endsWith(prefix.slice(1)) && hostname.length > prefix.length - 1 ? host.length : -1;
  }
  if (!name.startsWith(prefix)) return -1;
  if (name.length === prefix.length) return prefix.length;
  const next = name[prefix.length];
  return next === '/' || (prefix.includes('/') && (next === ':' || next === '@')) ? prefix.length : -1;
}

/** The entry for an image name: the longest matching prefix; on a tie a plain prefix beats a wildcard. */
export function findRegistry(name: string, conf: RegistriesConf): { entry: RegistryEntry; matched: number } | undefined {
  let best: { entry: RegistryEntry; matched: number } | undefined;
  for (const entry of conf.registries) {
    const matched = prefixMatch(name, entry.prefix);
    if (matched < 0) continue;
    const longer = !best || entry.prefix.length > best.entry.prefix.length;
    const tieWin = best && entry.prefix.length === best.entry.prefix.length && best.entry.prefix.startsWith('*.') && !entry.prefix.startsWith('*.');
    if (longer || tieWin) best = { entry, matched };
  }
  return best;
}

/** `location + rest` split back into host, repository and tag or digest. */
function rewrite(location: string, rest: string, entry: RegistryEntry, original: string): Omit<PullSource, 'insecure' | 'mirror'> {
  const full = location + rest;
  const bad = (why: string) =>
    new DarchError('E_REGISTRIES_CONF', `${entry.file}: the [[registry]] with prefix "${entry.prefix}" turns ${original} into "${full}", ${why}`, {
      hint: 'a location replaces exactly the part of the name the prefix matched; check that both end at the same level',
    });
  const at = full.indexOf('@');
  const digest = at >= 0 ? full.slice(at + 1) : undefined;
  const named = at >= 0 ? full.slice(0, at) : full;
  const slash = named.indexOf('/');
  if (slash < 0) throw bad('which names no repository');
  const host = named.slice(0, slash);
  const { name, tag } = splitNameTag(named.slice(slash + 1));
  if (!isRegistryHost(host) || !isRepositoryPath(name)) throw bad('which is not a valid image name');
  if (digest !== undefined && !/^sha256:[a-f0-9]{64}$/.test(digest)) throw bad('whose digest is not sha256:<64 hex digits>');
  if (tag !== undefined && !isTag(tag)) throw bad(`whose tag "${tag}" is not valid`);
  // Docker Hub's official images live under library/, as everywhere else.
  const repo = (host === 'docker.io' || host === 'index.docker.io') && !name.includes('/') ? `library/${name}` : name;
  const reference = digest ?? tag;
  if (!reference) throw bad('which has neither tag nor digest');
  return { host, repo, reference };
}

/**
 * The sources to try for `ref`, in order: the mirrors of the matching `[[registry]]` (those
 * its pull-from-mirror allows for a pull by tag or by digest), then its location, or the
 * reference's own registry when no entry matches. A blocked entry is refused here.
 */
export function sourcesFor(ref: ImageRef, conf: RegistriesConf): PullSource[] {
  const name = matchName(ref);
  const found = findRegistry(name, conf);
  if (!found) {
    const r = remoteOf(ref);
    return [{ host: r.host, repo: r.repo, reference: ref.digest ?? ref.tag, insecure: false, mirror: false }];
  }
  const { entry, matched } = found;
  if (entry.blocked) {
    throw new DarchError('E_REGISTRY_BLOCKED', `pulling ${name} is blocked by ${entry.file} ([[registry]] prefix "${entry.prefix}", blocked = true)`, {
      hint: 'pull from another registry, or change that entry',
    });
  }
  const rest = name.slice(matched);
  const byDigest = ref.digest !== undefined;
  const sources: PullSource[] = [];
  for (const m of entry.mirrors) {
    if (m.pullFromMirror === 'digest-only' && !byDigest) continue;
    if (m.pullFromMirror === 'tag-only' && byDigest) continue;
    sources.push({ ...rewrite(m.location, rest, entry, name), insecure: m.insecure, mirror: true });
  }
  const origin = entry.location ? rewrite(entry.location, rest, entry, name) : rewrite(name.slice(0, matched), rest, entry, name);
  sources.push({ ...origin, insecure: entry.insecure, mirror: false });
  return sources;
}

/**
 * Image references: `[registry/]name[:tag][@digest]`, the grammar of the distribution
 * spec. Names in the local store are kept as the user wrote them (no docker.io expansion),
 * stored in the OCI layout as `name:tag` so skopeo and umoci address them the same way.
 */
import { DarchError } from '../lib/errors.js';

const COMPONENT = '[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*';
const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const DOMAIN = `(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[0-9a-fA-F:]+\\])(?::[0-9]+)?`;
const TAG = '[\\w][\\w.-]{0,127}';
const NAME_RE = new RegExp(`^(?:(${DOMAIN})/)?(${COMPONENT}(?:/${COMPONENT})*)$`);
const TAG_RE = new RegExp(`^${TAG}$`);
const PATH_RE = new RegExp(`^${COMPONENT}(?:/${COMPONENT})*$`);
const DOMAIN_RE = new RegExp(`^${DOMAIN}$`);

export interface ImageRef {
  /** Registry host[:port] if the reference names one. */
  domain?: string;
  /** Repository path without the domain. */
  path: string;
  tag: string;
  digest?: string;
}

export const DEFAULT_TAG = 'latest';

/** Where a reference's repository is: its registry host and path there. */
export interface Remote {
  host: string;
  repo: string;
  /** host/repo as the user sees it. */
  display: string;
}

/** A reference without a registry means Docker Hub, as in docker and podman (short names are not searched). */
export function remoteOf(ref: ImageRef): Remote {
  const host = ref.domain ?? 'docker.io';
  const repo = host === 'docker.io' && !ref.path.includes('/') ? `library/${ref.path}` : ref.path;
  return { host, repo, display: `${host}/${repo}` };
}

export function parseRef(input: string, defaultTag = DEFAULT_TAG): ImageRef {
  const bad = (why: string) =>
    new DarchError('E_BAD_REFERENCE', `invalid image reference "${input}": ${why}`, {
      hint: 'use NAME[:TAG], for example example/busybox:latest (lowercase name, tag of letters, digits, . _ -)',
    });
  if (!input) throw bad('empty');
  let rest = input;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!/^sha256:[a-f0-9]{64}$/.test(digest)) throw bad('the digest must be sha256:<64 hex digits>');
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf('/');
  const lastColon = rest.lastIndexOf(':');
  if (lastColon > lastSlash) {
    tag = rest.slice(lastColon + 1);
    rest = rest.slice(0, lastColon);
    if (!TAG_RE.test(tag)) throw bad(`"${tag}" is not a valid tag`);
  }
  const m = NAME_RE.exec(rest);
  if (!m) {
    if (/[A-Z]/.test(rest)) throw bad('repository names must be lowercase');
    throw bad('not a valid repository name');
  }
  let domain = m[1];
  let path = m[2] ?? '';
  // "localhost/foo" or "host.example/foo" name a registry; "library/foo" does not.
  if (domain && !(domain.includes('.') || domain.includes(':') || domain === 'localhost' || domain.startsWith('['))) {
    path = `${domain}/${path}`;
    domain = undefined;
  }
  if ((domain ? domain.length + 1 : 0) + path.length > 255) throw bad('longer than 255 characters');
  return { ...(domain ? { domain } : {}), path, tag: tag ?? defaultTag, ...(digest ? { digest } : {}) };
}

/** A repository path at a registry (`library/busybox`), without the registry. */
export function isRepositoryPath(s: string): boolean {
  return PATH_RE.test(s);
}

/** A registry's `host[:port]` as the reference grammar allows it. */
export function isRegistryHost(s: string): boolean {
  return DOMAIN_RE.test(s);
}

/** A tag as the reference grammar allows it. */
export function isTag(s: string): boolean {
  return TAG_RE.test(s);
}

/** Repository name including domain. */
export function repoName(ref: ImageRef): string {
  return ref.domain ? `${ref.domain}/${ref.path}` : ref.path;
}

/** The `name:tag` form used as the OCI layout ref.name. */
export function refString(ref: ImageRef): string {
  return `${repoName(ref)}:${ref.tag}`;
}

export function normalizeRef(input: string): string {
  return refString(parseRef(input));
}

/** Split a stored ref name back into repository and tag. */
export function splitRefName(name: string): { repository: string; tag: string } {
  const lastSlash = name.lastIndexOf('/');
  const lastColon = name.lastIndexOf(':');
  if (lastColon > lastSlash) return { repository: name.slice(0, lastColon), tag: name.slice(lastColon + 1) };
  return { repository: name, tag: '' };
}

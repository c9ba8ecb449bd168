/**
 * The signature policy, in the containers-policy.json format podman and skopeo read (the
 * owner of policy.json): which images may be pulled, staged and booted, by the keys that
 * must have signed them. darch reads `/etc/darch/policy.json`, else the containers tools'
 * own `/etc/containers/policy.json` (under `--root`, the root's copies; a user's
 * `~/.config/containers/policy.json` first in user mode), so one file can govern podman,
 * skopeo and darch alike. No file at all: anything is accepted, as before.
 *
 * What darch implements of the format: `insecureAcceptAnything`, `reject` and
 * `sigstoreSigned` with public keys (`keyPath`, `keyPaths`, `keyData`, `keyDatas`) and every
 * `signedIdentity`; the most specific `docker` scope wins (the full reference, then each
 * parent namespace, the host, `*.domain` wildcards, the transport's `""`, then `default`),
 * and every requirement of the chosen list must accept. Requirements darch cannot check
 * (GPG `signedBy`, `sigstoreSigned` with Fulcio, PKI or Rekor) refuse the image, with a
 * message that says so: never a silent pass.
 */
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import type { KeyObject } from 'node:crypto';
import { DarchError } from '../lib/errors.js';
import { loadValidated } from '../lib/validated.js';
import { type ImageRef, parseRef, remoteOf } from '../oci/reference.js';
import * as z from '../lib/zod.js';
import { loadPublicKey } from './keys.js';

export const POLICY_FILE = 'policy.json';

const Identity = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('matchExact') }),
  z.strictObject({ type: z.literal('matchRepoDigestOrExact') }),
  z.strictObject({ type: z.literal('matchRepository') }),
  z.strictObject({ type: z.literal('exactReference'), dockerReference: z.string() }),
  z.strictObject({ type: z.literal('exactRepository'), dockerRepository: z.string() }),
  z.strictObject({ type: z.literal('remapIdentity'), prefix: z.string(), signedPrefix: z.string() }),
]);
export type SignedIdentity = z.output<typeof Identity>;

const Requirement = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('insecureAcceptAnything') }),
  z.strictObject({ type: z.literal('reject') }),
  z.strictObject({
    type: z.literal('sigstoreSigned'),
    keyPath: z.optional(z.string()),
    keyPaths: z.optional(z.array(z.string()).check(z.minLength(1))),
    keyData: z.optional(z.string()),
    keyDatas: z.optional(z.array(z.string()).check(z.minLength(1))),
    fulcio: z.optional(z.unknown()),
    pki: z.optional(z.unknown()),
    rekorPublicKeyPath: z.optional(z.string()),
    rekorPublicKeyPaths: z.optional(z.array(z.string())),
    rekorPublicKeyData: z.optional(z.string()),
    rekorPublicKeyDatas: z.optional(z.array(z.string())),
    signedIdentity: z.optional(Identity),
  }),
  // GPG signatures: parsed so a shared policy.json loads; darch cannot check them.
  z.looseObject({ type: z.literal('signedBy') }),
  z.looseObject({ type: z.literal('signedBaseLayer') }),
]);
export type PolicyRequirement = z.output<typeof Requirement>;

const Requirements = z.array(Requirement).check(z.minLength(1, 'a list of requirements must not be empty'));

export const PolicySchema = z.strictObject({
  default: Requirements,
  transports: z.optional(z.record(z.string(), z.record(z.string(), Requirements))),
});
export type Policy = z.output<typeof PolicySchema>;

export interface LoadedPolicy {
  /** The file it came from; undefined: there is none, and anything goes. */
  file?: string;
  policy: Policy;
}

export const ACCEPT_ANYTHING: Policy = { default: [{ type: 'insecureAcceptAnything' }] };

/** Where a policy may be, most specific first. */
export function policyFiles(dirs: { configDir: string; containersConfDir: string; userContainersConfDir?: string }): string[] {
  return [
    path.join(dirs.configDir, POLICY_FILE),
    ...(dirs.userContainersConfDir ? [path.join(dirs.userContainersConfDir, POLICY_FILE)] : []),
    path.join(dirs.containersConfDir, POLICY_FILE),
  ];
}

/** The first policy file that exists, checked; none: accept anything. `explicit` (a --policy) must exist. */
export async function loadPolicy(candidates: string[], explicit?: string): Promise<LoadedPolicy> {
  for (const file of explicit ? [explicit] : candidates) {
    if (!explicit && !(await isFile(file))) continue;
    const policy = await loadValidated(file, PolicySchema, {
      code: 'E_POLICY',
      schemaHint: 'see containers-policy.json(5) and docs/TRUST.md for the format darch reads',
    });
    for (const reqs of [policy.default, ...Object.values(policy.transports ?? {}).flatMap((t) => Object.values(t))])
      for (const r of reqs) checkRequirement(r, file);
    return { file, policy };
  }
  return { policy: ACCEPT_ANYTHING };
}

const isFile = (f: string): Promise<boolean> =>
  stat(f).then(
    (st) => st.isFile(),
    () => false,
  );

/** The rules the format puts on a sigstoreSigned requirement beyond its shape. */
function checkRequirement(r: PolicyRequirement, file: string): void {
  if (r.type !== 'sigstoreSigned') return;
  const sources = [r.keyPath, r.keyPaths, r.keyData, r.keyDatas, r.fulcio, r.pki].filter((x) => x !== undefined).length;
  if (sources !== 1) {
    throw new DarchError(
      'E_POLICY',
      `${file}: a sigstoreSigned requirement needs exactly one of keyPath, keyPaths, keyData, keyDatas, fulcio, pki (it has ${sources})`,
      {
        hint: 'name the public key file with keyPath',
      },
    );
  }
}

// ---------------------------------------------------------------------------------------
// Scopes

/** The image as the policy sees it: `host[:port]`, the repository path, and a tag or digest. */
export interface PolicyImage {
  host: string;
  repo: string;
  tag?: string;
  digest?: string;
}

/** An image reference as the policy judges it (docker.io's implicit parts filled in), and its display name. */
export function policyImageOf(ref: string | ImageRef): { img: PolicyImage; display: string } {
  const r = typeof ref === 'string' ? parseRef(ref) : ref;
  const { host, repo, display } = remoteOf(r);
  return { img: { host, repo, ...(r.digest ? { digest: r.digest } : { tag: r.tag }) }, display };
}

/** The docker scopes to try for an image, most specific first (containers/image's order). */
export function scopesFor(img: PolicyImage): string[] {
  const repo = `${img.host}/${img.repo}`;
  const out = [img.digest ? `${repo}@${img.digest}` : `${repo}:${img.tag ?? 'latest'}`];
  const parts = img.repo.split('/');
  for (let i = parts.length; i >= 1; i--) out.push(`${img.host}/${parts.slice(0, i).join('/')}`);
  out.push(img.host);
  const labels = img.host.replace(/:\d+$/, '').split('.');
  for (let i = 1; i < labels.length; i++) out.push(`*.${labels.slice(i).join('.')}`);
  return out;
}

/** The requirement list for an image, and the scope that chose it (for messages). */
export function requirementsFor(policy: Policy, img: PolicyImage): { scope: string; requirements: PolicyRequirement[] } {
  const docker = policy.transports?.docker ?? {};
  for (const s of scopesFor(img)) {
    const reqs = docker[s];
    if (reqs) return { scope: `docker ${s}`, requirements: reqs };
  }
  if (docker['']) return { scope: 'docker ""', requirements: docker[''] };
  return { scope: 'default', requirements: policy.default };
}

/**
 * The requirement list for a local image (transport `oci`, `oci-archive` or `docker-archive`),
 * scoped like containers/image's path transports: the path, then each parent directory.
 */
export function requirementsForPath(policy: Policy, transport: string, absPath: string): { scope: string; requirements: PolicyRequirement[] } {
  const scopes = policy.transports?.[transport] ?? {};
  for (let p = absPath; ; p = path.dirname(p)) {
    const reqs = scopes[p];
    if (reqs) return { scope: `${transport} ${p}`, requirements: reqs };
    if (p === path.dirname(p)) break;
  }
  if (scopes['']) return { scope: `${transport} ""`, requirements: scopes[''] };
  return { scope: 'default', requirements: policy.default };
}

// ---------------------------------------------------------------------------------------
// Keys named by a requirement

export interface NamedKey {
  key: KeyObject;
  /** keyPath's file, or "keyData". */
  from: string;
}

/** The public keys a sigstoreSigned requirement trusts. keyPath under `root` (--root). */
export async function requirementKeys(r: Extract<PolicyRequirement, { type: 'sigstoreSigned' }>, root: string): Promise<NamedKey[]> {
  const out: NamedKey[] = [];
  for (const p of [...(r.keyPath ? [r.keyPath] : []), ...(r.keyPaths ?? [])]) {
    const file = path.join(root, p);
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      throw new DarchError('E_POLICY', `the policy names the key ${p}, which cannot be read: ${(err as Error).message}`, {
        hint: 'install the public key there',
        cause: err,
      });
    }
    out.push({ key: loadPublicKey(text, file), from: p });
  }
  for (const d of [...(r.keyData ? [r.keyData] : []), ...(r.keyDatas ?? [])]) {
    // keyData is the PEM file's bytes in base64 (a Go []byte), not the PEM text itself.
    out.push({ key: loadPublicKey(Buffer.from(d, 'base64').toString('utf8'), 'keyData'), from: 'keyData' });
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Identities

/** `host[:port]/path` of a `host[:port]/path[:tag|@digest]`, and its tag or digest. */
export function splitReference(ref: string): { repo: string; tag?: string; digest?: string } {
  const at = ref.indexOf('@');
  if (at >= 0) return { repo: ref.slice(0, at), digest: ref.slice(at + 1) };
  const slash = ref.lastIndexOf('/');
  const colon = ref.lastIndexOf(':');
  return colon > slash ? { repo: ref.slice(0, colon), tag: ref.slice(colon + 1) } : { repo: ref };
}

/** docker.io's implicit parts, as containers/image normalises both sides before comparing. */
export function normalizeDockerRef(ref: string): string {
  const first = ref.split('/')[0] ?? '';
  const hasHost = ref.includes('/') && (first.includes('.') || first.includes(':') || first === 'localhost');
  let r = hasHost ? ref : `docker.io/${ref}`;
  if (r.startsWith('docker.io/') && r.split('/').length === 2) r = r.replace('docker.io/', 'docker.io/library/');
  return r;
}

/** Whether a signature's `docker-reference` is acceptable for the image, under `signedIdentity`. */
export function identityMatches(id: SignedIdentity | undefined, img: PolicyImage, signedRef: string): boolean {
  const signed = splitReference(normalizeDockerRef(signedRef));
  const repo = `${img.host}/${img.repo}`;
  const type = id?.type ?? 'matchRepoDigestOrExact';
  switch (type) {
    case 'matchExact':
      return img.tag !== undefined && !img.digest && signed.repo === repo && signed.tag === img.tag;
    case 'matchRepoDigestOrExact':
      if (!signed.tag && !signed.digest) return false;
      return img.digest ? signed.repo === repo : signed.repo === repo && signed.tag === img.tag;
    case 'matchRepository':
      return signed.repo === repo;
    case 'exactReference': {
      const want = splitReference(normalizeDockerRef((id as { dockerReference: string }).dockerReference));
      return signed.repo === want.repo && signed.tag === want.tag && signed.digest === want.digest;
    }
    case 'exactRepository':
      return signed.repo === normalizeDockerRef((id as { dockerRepository: string }).dockerRepository);
    case 'remapIdentity': {
      const { prefix, signedPrefix } = id as { prefix: string; signedPrefix: string };
      const mapped = repo === prefix || repo.startsWith(`${prefix}/`) ? `${signedPrefix}${repo.slice(prefix.length)}` : repo;
      if (!signed.tag && !signed.digest) return false;
      return img.digest ? signed.repo === mapped : signed.repo === mapped && signed.tag === img.tag;
    }
  }
}

/**
 * Whether the policy lets an image in: the requirement list its most specific scope
 * chooses, every requirement checked against the image's sigstore signatures. A signature
 * counts when it verifies over its payload's bytes with a key the requirement trusts, the
 * payload names this manifest's digest, and its reference passes `signedIdentity`, as in
 * containers/image. A refusal names the image, the scope, and the keys that were expected.
 */
import { verify as verifySignature } from 'node:crypto';
import { DarchError } from '../lib/errors.js';
import { keyFingerprint } from './keys.js';
import { parsePayload } from './payload.js';
import {
  identityMatches,
  type LoadedPolicy,
  type NamedKey,
  type PolicyImage,
  policyImageOf,
  type PolicyRequirement,
  requirementKeys,
  requirementsFor,
} from './policy.js';

/** One signature as stored: the payload's bytes and the base64 signature over them. */
export interface Signature {
  payload: Uint8Array;
  signature: string;
}

export interface Verdict {
  /** The policy file, or undefined (none: anything goes). */
  policy?: string;
  scope: string;
  /** What accepted the image: "insecureAcceptAnything", or the keys whose signatures did. */
  acceptedBy: string[];
}

export interface VerifyOptions {
  /** The digests a signature may name: the image's manifest (this platform's) and, for a multi-platform image, its index. */
  digests: string[];
  /** Fetched only when a requirement needs them. */
  signatures: () => Promise<Signature[]>;
  /** keyPath is read under this root (--root). */
  root: string;
  /** How to name the image in messages. */
  display: string;
}

/** Check an image against the policy; E_UNTRUSTED when it is refused. */
export async function verifyImage(loaded: LoadedPolicy, img: PolicyImage, o: VerifyOptions): Promise<Verdict> {
  const { scope, requirements } = requirementsFor(loaded.policy, img);
  const where = `${loaded.file ?? 'the default policy'} (${scope})`;
  const acceptedBy: string[] = [];
  let sigs: Signature[] | undefined;
  for (const r of requirements) {
    if (r.type === 'insecureAcceptAnything') {
      acceptedBy.push('insecureAcceptAnything');
      continue;
    }
    if (r.type === 'reject')
      throw new DarchError('E_UNTRUSTED', `${o.display} is refused: ${where} rejects it`, { hint: 'change the policy if this image should be allowed' });
    if (r.type !== 'sigstoreSigned') {
      throw new DarchError('E_UNTRUSTED', `${o.display} is refused: ${where} asks for ${r.type} (GPG) signatures, which darch cannot check`, {
        hint: 'use sigstoreSigned with a public key (docs/TRUST.md)',
      });
    }
    if (r.fulcio !== undefined || r.pki !== undefined || r.rekorPublicKeyPath || r.rekorPublicKeyPaths || r.rekorPublicKeyData || r.rekorPublicKeyDatas) {
      throw new DarchError('E_UNTRUSTED', `${o.display} is refused: ${where} asks for Fulcio, PKI or Rekor checks, which darch does not do`, {
        hint: 'use sigstoreSigned with keyPath (docs/TRUST.md)',
      });
    }
    const keys = await requirementKeys(r, o.root);
    sigs ??= await o.signatures();
    const by = acceptingKey(r, keys, sigs, img, o.digests);
    if (!by) throw refusal(o, where, keys, sigs, img);
    acceptedBy.push(by);
  }
  return { ...(loaded.file ? { policy: loaded.file } : {}), scope, acceptedBy };
}

/**
 * The check a signed stage bundle gets (update apply --from, stage import): under each name
 * it is staged as, the policy either takes it unsigned or wants a signature, from `loadSigs`
 * (its FILE.sig), over the digest of the bundle's manifest. Returns what accepted it per name.
 */
export async function verifyBundle(
  loaded: LoadedPolicy,
  root: string,
  names: string[],
  digest: string,
  loadSigs: () => Promise<Signature[]>,
  from: string,
): Promise<Verdict[]> {
  const out: Verdict[] = [];
  let sigs: Promise<Signature[]> | undefined;
  for (const name of names) {
    const { img, display } = policyImageOf(name);
    out.push(await verifyImage(loaded, img, { digests: [digest], signatures: () => (sigs ??= loadSigs()), root, display: `${from} (as ${display})` }));
  }
  return out;
}

/** Whether the policy takes this image on trust (every requirement of its scope is insecureAcceptAnything). */
export function acceptsUnsigned(loaded: LoadedPolicy, img: PolicyImage): boolean {
  return requirementsFor(loaded.policy, img).requirements.every((r) => r.type === 'insecureAcceptAnything');
}

type SigstoreRequirement = Extract<PolicyRequirement, { type: 'sigstoreSigned' }>;

function keyName(k: NamedKey): string {
  return `${k.from} (${keyFingerprint(k.key)})`;
}

/** The first trusted key with a valid signature for this image, or undefined. */
function acceptingKey(r: SigstoreRequirement, keys: NamedKey[], sigs: Signature[], img: PolicyImage, digests: string[]): string | undefined {
  for (const s of sigs) {
    const key = keys.find((k) => verifies(k, s));
    if (!key) continue;
    const p = parsePayloadOrUndefined(s.payload);
    if (p && digests.includes(p.digest) && identityMatches(r.signedIdentity, img, p.reference)) return keyName(key);
  }
  return undefined;
}

function verifies(k: NamedKey, s: Signature): boolean {
  try {
    return verifySignature('sha256', s.payload, { key: k.key, dsaEncoding: 'der' }, Buffer.from(s.signature, 'base64'));
  } catch {
    return false;
  }
}

function parsePayloadOrUndefined(b: Uint8Array) {
  try {
    return parsePayload(b);
  } catch {
    return undefined;
  }
}

/** Why no signature was good enough, as specifically as the signatures allow. */
function refusal(o: VerifyOptions, where: string, keys: NamedKey[], sigs: Signature[], img: PolicyImage): DarchError {
  const expected = keys.map(keyName).join(', ');
  const base = `${o.display} is refused by ${where}`;
  const hint = 'sign it with that key (darch sign IMAGE --key FILE), or change the policy; nothing of it was kept';
  if (!sigs.length) return new DarchError('E_UNTRUSTED', `${base}: it has no signatures; expected one by ${expected}`, { hint });
  const byTrusted = sigs.filter((s) => keys.some((k) => verifies(k, s)));
  if (!byTrusted.length)
    return new DarchError('E_UNTRUSTED', `${base}: its ${sigs.length} signature(s) are by other keys; expected one by ${expected}`, { hint });
  const payloads = byTrusted.map((s) => parsePayloadOrUndefined(s.payload));
  const ours = (p: ReturnType<typeof parsePayloadOrUndefined>) => p !== undefined && o.digests.includes(p.digest);
  if (!payloads.some(ours)) {
    return new DarchError(
      'E_UNTRUSTED',
      `${base}: the signature by ${expected} is for other content (${payloads[0]?.digest ?? 'no digest'}), not ${o.digests[0]}`,
      { hint },
    );
  }
  const names = payloads.filter(ours).map((p) => p?.reference);
  return new DarchError(
    'E_UNTRUSTED',
    `${base}: signed by ${expected} for ${names.join(', ')}, which signedIdentity does not accept for ${img.host}/${img.repo}`,
    {
      hint: 'sign it under the name it is pulled by, or set signedIdentity (matchRepository) in the policy',
    },
  );
}

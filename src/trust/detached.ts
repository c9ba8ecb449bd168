/**
 * Detached signatures of a file that travels without a registry (a stage bundle on a USB
 * stick): `FILE.sig` next to it (the owner of that format), JSON holding the same
 * signatures a registry keeps (a simple-signing payload and its base64 ECDSA signature),
 * so the policy checks them exactly like a pulled image's. For a bundle the payload names
 * the digest of the bundle's manifest, which holds every file's sha256.
 */
import { readFile } from 'node:fs/promises';
import { DarchError, isErrno } from '../lib/errors.js';
import { writeFileAtomic } from '../lib/scratch.js';
import * as z from '../lib/zod.js';
import type { Signature } from './verify.js';

export const DETACHED_SUFFIX = '.sig';

const b64 = z.string().check(z.regex(/^[A-Za-z0-9+/]*={0,2}$/, 'not base64'));
const DetachedSchema = z.strictObject({
  schemaVersion: z.literal(1),
  signatures: z.array(z.strictObject({ payload: b64, signature: b64 })),
});

/** The file's detached signatures; none when FILE.sig does not exist. */
export async function readDetached(file: string): Promise<Signature[]> {
  const sigFile = `${file}${DETACHED_SUFFIX}`;
  let text: string;
  try {
    text = await readFile(sigFile, 'utf8');
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return [];
    throw new DarchError('E_UNTRUSTED', `cannot read ${sigFile}: ${(err as Error).message}`);
  }
  let doc: z.output<typeof DetachedSchema>;
  try {
    doc = z.parse(DetachedSchema, JSON.parse(text));
  } catch {
    throw new DarchError('E_UNTRUSTED', `${sigFile} is not a darch signature file`, { hint: 'sign the file again: darch sign NAME --bundle FILE --key KEY' });
  }
  return doc.signatures.map((s) => ({ payload: Buffer.from(s.payload, 'base64'), signature: s.signature }));
}

/** Add a signature to FILE.sig (made if missing); returns how many it holds. */
export async function appendDetached(file: string, sig: Signature): Promise<{ file: string; signatures: number }> {
  const sigs = await readDetached(file);
  const entry = { payload: Buffer.from(sig.payload).toString('base64'), signature: sig.signature };
  const all = [...sigs.map((s) => ({ payload: Buffer.from(s.payload).toString('base64'), signature: s.signature })), entry];
  const sigFile = `${file}${DETACHED_SUFFIX}`;
  await writeFileAtomic(sigFile, `${JSON.stringify({ schemaVersion: 1, signatures: all }, null, 2)}\n`);
  return { file: sigFile, signatures: all.length };
}

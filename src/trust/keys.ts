/**
 * Signing keys in the format cosign and the containers tools (skopeo, podman) use, so a key
 * made by one works with the others: the private key is a PEM block `ENCRYPTED SIGSTORE
 * PRIVATE KEY` (cosign before 2.0 wrote `ENCRYPTED COSIGN PRIVATE KEY`; both are read) whose
 * body is JSON: scrypt (N=65536, r=8, p=1, a 32-byte salt) derives a key that opens a NaCl
 * secretbox (XSalsa20-Poly1305) holding the PKCS#8 DER of an ECDSA P-256 key. The public key
 * is a plain `PUBLIC KEY` (SPKI) PEM block. The passphrase may be empty (automation).
 *
 * Node has scrypt and ECDSA but not XSalsa20, which comes from @noble/ciphers.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, scrypt, type KeyObject } from 'node:crypto';
import { xsalsa20poly1305 } from '@noble/ciphers/salsa.js';
import { DarchError } from '../lib/errors.js';
import * as z from '../lib/zod.js';

const PRIVATE_TYPES = ['ENCRYPTED SIGSTORE PRIVATE KEY', 'ENCRYPTED COSIGN PRIVATE KEY'] as const;
const PUBLIC_TYPE = 'PUBLIC KEY';
/** What cosign writes; readers accept exactly these three cost settings (go-securesystemslib). */
const SCRYPT_WRITE = { N: 65536, r: 8, p: 1 };
const SCRYPT_ACCEPTED = [32768, 65536, 131072];

const b64 = z.string().check(z.regex(/^[A-Za-z0-9+/]*={0,2}$/, 'not base64'));
const EncryptedKeySchema = z.strictObject({
  kdf: z.strictObject({
    name: z.literal('scrypt'),
    params: z.strictObject({ N: z.number(), r: z.literal(8), p: z.literal(1) }),
    salt: b64,
  }),
  cipher: z.strictObject({ name: z.literal('nacl/secretbox'), nonce: b64 }),
  ciphertext: b64,
});

interface PemBlock {
  type: string;
  body: Buffer;
}

/** The first PEM block of a text. */
export function parsePem(text: string, file: string): PemBlock {
  const m = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n([A-Za-z0-9+/=\r\n]*?)-----END \1-----/.exec(text);
  if (!m)
    throw new DarchError('E_KEY', `${file} holds no PEM block`, {
      hint: 'give a key made by darch keygen, cosign generate-key-pair or skopeo generate-sigstore-key',
    });
  return { type: m[1] as string, body: Buffer.from((m[2] as string).replace(/\s+/g, ''), 'base64') };
}

function pem(type: string, body: Buffer): string {
  const lines = body.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${type}-----\n${lines.join('\n')}\n-----END ${type}-----\n`;
}

function deriveKey(passphrase: string, salt: Buffer, N: number): Promise<Buffer> {
  // Node's default scrypt memory cap (32 MiB) is below what N=32768 already needs.
  const maxmem = 128 * N * 8 + 2 * 1024 * 1024;
  return new Promise((resolve, reject) => scrypt(passphrase, salt, 32, { N, r: 8, p: 1, maxmem }, (err, key) => (err ? reject(err) : resolve(key))));
}

export interface KeyPair {
  /** The encrypted private key, PEM. */
  privatePem: string;
  /** The public key, PEM. */
  publicPem: string;
}

/** A new ECDSA P-256 key pair, the private half encrypted with `passphrase`. */
export async function generateKeyPair(passphrase: string): Promise<KeyPair> {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const der = privateKey.export({ type: 'pkcs8', format: 'der' });
  const salt = randomBytes(32);
  const nonce = randomBytes(24);
  const key = await deriveKey(passphrase, salt, SCRYPT_WRITE.N);
  const sealed = xsalsa20poly1305(key, nonce).encrypt(der);
  const doc = {
    kdf: { name: 'scrypt', params: SCRYPT_WRITE, salt: salt.toString('base64') },
    cipher: { name: 'nacl/secretbox', nonce: nonce.toString('base64') },
    ciphertext: Buffer.from(sealed).toString('base64'),
  };
  return {
    privatePem: pem(PRIVATE_TYPES[0], Buffer.from(JSON.stringify(doc))),
    publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  };
}

/** The signing key in an encrypted private key file. A wrong passphrase is E_KEY_PASSPHRASE. */
export async function loadPrivateKey(text: string, passphrase: string, file: string): Promise<KeyObject> {
  const block = parsePem(text, file);
  if (!(PRIVATE_TYPES as readonly string[]).includes(block.type)) {
    throw new DarchError('E_KEY', `${file} is a ${block.type}, not an encrypted sigstore private key`, {
      hint: 'sign with the .key file darch keygen wrote (the .pub file is for verifying)',
    });
  }
  let doc: z.output<typeof EncryptedKeySchema>;
  try {
    doc = z.parse(EncryptedKeySchema, JSON.parse(block.body.toString('utf8')));
  } catch {
    throw new DarchError('E_KEY', `${file}: the encrypted key is malformed`, { hint: 'make a new key pair with darch keygen' });
  }
  if (!SCRYPT_ACCEPTED.includes(doc.kdf.params.N)) throw new DarchError('E_KEY', `${file}: scrypt N=${doc.kdf.params.N} is not one cosign uses`);
  const key = await deriveKey(passphrase, Buffer.from(doc.kdf.salt, 'base64'), doc.kdf.params.N);
  let der: Uint8Array;
  try {
    der = xsalsa20poly1305(key, Buffer.from(doc.cipher.nonce, 'base64')).decrypt(Buffer.from(doc.ciphertext, 'base64'));
  } catch {
    throw new DarchError('E_KEY_PASSPHRASE', `wrong passphrase for ${file}`, {
      hint: 'give the passphrase the key was made with (--passphrase-file, or type it)',
    });
  }
  let k: KeyObject;
  try {
    k = createPrivateKey({ key: Buffer.from(der), format: 'der', type: 'pkcs8' });
  } catch {
    throw new DarchError('E_KEY', `${file}: the decrypted key is not a PKCS#8 private key`);
  }
  if (k.asymmetricKeyType !== 'ec' || k.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new DarchError('E_KEY', `${file}: a ${k.asymmetricKeyType} key; darch signs with ECDSA P-256 keys only (what cosign makes)`);
  }
  return k;
}

/** A public key from a PEM file (`PUBLIC KEY`, SPKI). */
export function loadPublicKey(text: string, file: string): KeyObject {
  const block = parsePem(text, file);
  if (block.type !== PUBLIC_TYPE) throw new DarchError('E_KEY', `${file} is a ${block.type}, not a PUBLIC KEY`, { hint: 'give the .pub file of the key pair' });
  try {
    return createPublicKey({ key: block.body, format: 'der', type: 'spki' });
  } catch {
    throw new DarchError('E_KEY', `${file}: the public key cannot be read`);
  }
}

const publicOf = (k: KeyObject): KeyObject => (k.type === 'public' ? k : createPublicKey(k));

/** The public half, PEM. */
export function publicPemOf(k: KeyObject): string {
  return publicOf(k).export({ type: 'spki', format: 'pem' }).toString();
}

/** A short, stable name for a key in messages: the sha256 of its SPKI, first 16 hex digits. */
export function keyFingerprint(k: KeyObject): string {
  const der = publicOf(k).export({ type: 'spki', format: 'der' });
  return process.getBuiltinModule('node:crypto').createHash('sha256').update(der).digest('hex').slice(0, 16);
}

/** `darch keygen` and `darch sign`: cosign-format keys and signatures in the registry (docs/TRUST.md). */
import { readFile, writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { DarchError, fsError, isErrno, usageError } from '../../lib/errors.js';
import { parseRef } from '../../oci/reference.js';
import { remoteOf } from '../../registry/remote.js';
import { signRemote } from '../../registry/sign.js';
import { signDigest } from '../../trust/payload.js';
import { generateKeyPair, keyFingerprint, loadPrivateKey, loadPublicKey } from '../../trust/keys.js';
import type { ContextFactory } from '../globals.js';
import { VERSION } from '../globals.js';
import { emit } from '../output.js';
import { promptHidden } from '../prompt.js';
import { ui } from '../ui.js';
import { type ConnectFlags, connectOptions, settings } from './registry.js';

/** The passphrase: the first line of --passphrase-file (as skopeo reads it), else asked on the terminal. */
async function passphrase(file: string | undefined, confirm: boolean): Promise<string> {
  if (file !== undefined) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      throw fsError(err, `cannot read the passphrase file ${file}`);
    }
    return text.split('\n')[0]?.replace(/\r$/, '') ?? '';
  }
  if (!process.stdin.isTTY) throw usageError('no passphrase: give --passphrase-file FILE (an empty file for a key without one), or run on a terminal');
  const first = await promptHidden('Passphrase: ');
  if (confirm && (await promptHidden('Passphrase again: ')) !== first) throw usageError('the two passphrases differ');
  return first;
}

/** Write a file that must not exist yet (or may be replaced with --force), with its mode. */
async function writeNew(file: string, text: string, mode: number, force: boolean): Promise<void> {
  try {
    await writeFile(file, text, { mode, flag: force ? 'w' : 'wx' });
  } catch (err) {
    if (isErrno(err, 'EEXIST'))
      throw new DarchError('E_USAGE', `${file} exists already`, { hint: 'choose another prefix, or add --force to replace the key pair' });
    throw fsError(err, `cannot write ${file}`);
  }
}

export function registerKeygen(cmd: Command, ctx: ContextFactory): void {
  cmd
    .argument('<prefix>', 'writes PREFIX.key (encrypted private key, mode 0600) and PREFIX.pub')
    .option('--passphrase-file <file>', 'the passphrase is the first line of this file (empty: no passphrase); default: asked on the terminal')
    .option('--force', 'replace an existing key pair')
    .action(async (prefix: string, opts: { passphraseFile?: string; force?: boolean }, command: Command) => {
      await ctx(command);
      const pass = await passphrase(opts.passphraseFile, true);
      const pair = await generateKeyPair(pass);
      const key = `${prefix}.key`;
      const pub = `${prefix}.pub`;
      await writeNew(key, pair.privatePem, 0o600, Boolean(opts.force));
      await writeNew(pub, pair.publicPem, 0o644, Boolean(opts.force));
      const fingerprint = keyFingerprint(loadPublicKey(pair.publicPem, pub));
      ui.success(`wrote ${key} (keep it secret) and ${pub} (put it where the policy names it: docs/TRUST.md); key ${fingerprint}`);
      await emit({ privateKey: key, publicKey: pub, fingerprint }, () => undefined);
    });
}

export function registerSign(cmd: Command, ctx: ContextFactory): void {
  connectOptions(
    cmd
      .argument('<ref>', 'the image as machines follow it: HOST[:PORT]/NAME:TAG (signed in its registry, or the name a --bundle is signed for)')
      .requiredOption('--key <file>', 'the private key (darch keygen, cosign generate-key-pair, skopeo generate-sigstore-key)')
      .option('--passphrase-file <file>', "the key's passphrase is the first line of this file; default: asked on the terminal")
      .option(
        '--bundle <file>',
        'sign a stage bundle (darch stage export) or a delta (darch delta create) for offline updates instead: writes FILE.sig next to it',
      ),
  ).action(async (ref: string, opts: ConnectFlags & { key: string; passphraseFile?: string; bundle?: string }, command: Command) => {
    const c = await ctx(command);
    let text: string;
    try {
      text = await readFile(opts.key, 'utf8');
    } catch (err) {
      throw fsError(err, `cannot read the key ${opts.key}`);
    }
    const key = await loadPrivateKey(text, await passphrase(opts.passphraseFile, false), opts.key);
    const fingerprint = keyFingerprint(key);
    if (opts.bundle) {
      const { readBundleManifest } = await import('../../stage/bundle.js');
      const { isDeltaFile, readDeltaHeader } = await import('../../stage/delta.js');
      const { appendDetached } = await import('../../trust/detached.js');
      // A delta is signed by its header, which holds its patch's sha256 and the target's digests.
      const { digest } = (await isDeltaFile(opts.bundle)) ? await readDeltaHeader(opts.bundle) : await readBundleManifest(opts.bundle);
      const r = parseRef(ref);
      const reference = `${remoteOf(r).display}${r.digest ? `@${r.digest}` : `:${r.tag}`}`;
      const res = await appendDetached(opts.bundle, signDigest(reference, digest, key, `darch ${VERSION}`));
      ui.success(`signed ${opts.bundle} as ${reference} with key ${fingerprint}; ${res.file} holds ${res.signatures} signature(s)`);
      await emit({ reference, digest, tag: res.file, signatures: res.signatures, key: fingerprint }, (r) => r.digest);
      return;
    }
    const res = await signRemote(ref, key, `darch ${VERSION}`, settings(c, opts));
    ui.success(`signed ${res.reference} (${res.digest}) with key ${fingerprint}; ${res.tag} holds ${res.signatures} signature(s)`);
    await emit({ ...res, key: fingerprint }, (r) => r.digest);
  });
}

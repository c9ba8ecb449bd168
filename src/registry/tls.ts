/**
 * TLS trust for one registry: the system CA store plus the containers certs.d layout
 * (`<dir>/<host[:port]>/*.crt` are extra CAs, `*.cert` + `*.key` a client certificate).
 * Node's built-in roots are Mozilla's list, not the system's, so the Debian bundle is added.
 */
import { readFile, readdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { rootCertificates } from 'node:tls';
import { isErrno } from '../lib/errors.js';

const SYSTEM_BUNDLES = ['/etc/ssl/certs/ca-certificates.crt', '/etc/pki/tls/certs/ca-bundle.crt'];

export interface TlsSettings {
  ca: string[];
  cert?: string;
  key?: string;
  rejectUnauthorized: boolean;
  /** Files that contributed (for -v output). */
  files: string[];
}

/** certs.d directories searched, in order: darch's own config dir first (relocated by --root). */
export function certsDirs(darchConfigDir: string, env: NodeJS.ProcessEnv = process.env): string[] {
  const home = env.HOME || os.homedir();
  return [path.join(darchConfigDir, 'certs.d'), '/etc/containers/certs.d', '/etc/docker/certs.d', path.join(home, '.config', 'containers', 'certs.d')];
}

async function listDir(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir)).sort();
  } catch (err) {
    if (isErrno(err, 'ENOENT') || isErrno(err, 'ENOTDIR')) return [];
    throw err;
  }
}

export async function tlsSettingsFor(host: string, opts: { certDir?: string; configDir: string; verify: boolean }): Promise<TlsSettings> {
  // Nothing is verified, so no CA list is needed (parsing one costs ~100 ms per run).
  if (!opts.verify) return { ca: [], rejectUnauthorized: false, files: [] };
  const files: string[] = [];
  // The distribution's bundle (a superset of Node's built-in Mozilla list where present).
  let ca: string[] = [...rootCertificates];
  for (const b of SYSTEM_BUNDLES) {
    try {
      ca = [await readFile(b, 'utf8')];
      break;
    } catch {
      /* not on this distribution */
    }
  }
  // --cert-dir replaces the per-host lookup, as in podman.
  const dirs = opts.certDir ? [opts.certDir] : certsDirs(opts.configDir).map((d) => path.join(d, host));
  let cert: string | undefined;
  let key: string | undefined;
  for (const dir of dirs) {
    for (const name of await listDir(dir)) {
      const p = path.join(dir, name);
      if (name.endsWith('.crt')) {
        ca.push(await readFile(p, 'utf8'));
        files.push(p);
      } else if (name.endsWith('.cert') && !cert) {
        const keyFile = p.replace(/\.cert$/, '.key');
        cert = await readFile(p, 'utf8');
        key = await readFile(keyFile, 'utf8');
        files.push(p, keyFile);
      }
    }
  }
  return { ca, cert, key, rejectUnauthorized: opts.verify, files };
}

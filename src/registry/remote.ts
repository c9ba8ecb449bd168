/** From an image reference to a registry connection: host mapping, repository path, client settings. */
import { DarchError } from '../lib/errors.js';
import { type ImageRef, type Remote, remoteOf } from '../oci/reference.js';
import { RegistryClient } from './client.js';
import type { Reporter } from '../lib/report.js';

export interface ConnectSettings {
  tlsVerify?: boolean;
  /** Registries (host[:port]) where TLS is not verified and plain HTTP is allowed. */
  insecure: string[];
  certDir?: string;
  configDir: string;
  authFile?: string;
  credentials?: { username: string; password: string };
  retries: number;
  timeoutSec: number;
  signal?: AbortSignal;
  report?: Reporter;
}

export { type Remote, remoteOf } from '../oci/reference.js';

export function requireRegistry(ref: ImageRef, input: string): Remote {
  if (!ref.domain) {
    throw new DarchError('E_USAGE', `"${input}" names no registry`, {
      hint: 'give the destination with its registry, e.g. `darch images push NAME:TAG registry.example:5000/NAME:TAG`',
    });
  }
  return remoteOf(ref);
}

/**
 * A client for `host`. `insecure` (a registries.conf entry or mirror that says so) adds to
 * the `insecure` list of config.toml; an explicit --tls-verify wins over both.
 */
export async function connectFor(host: string, s: ConnectSettings, insecureHere = false): Promise<RegistryClient> {
  const insecure = insecureHere || s.insecure.includes(host);
  return RegistryClient.connect({
    host,
    tlsVerify: s.tlsVerify ?? !insecure,
    certDir: s.certDir,
    configDir: s.configDir,
    authFile: s.authFile,
    credentials: s.credentials,
    retries: s.retries,
    timeoutSec: s.timeoutSec,
    signal: s.signal,
    report: s.report,
  });
}

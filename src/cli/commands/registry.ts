/** `darch images pull|push` and `darch login|logout`: thin wrappers over src/registry. */
import type { Command } from 'commander';
import { DarchError, usageError } from '../../lib/errors.js';
import { emit } from '../output.js';
import { formatBytes } from '../../lib/format.js';
import { ui } from '../ui.js';
import { parsePlatform } from '../../registry/manifest.js';
import { login, logout, registryHost } from '../../registry/login.js';
import { pullImage } from '../../registry/pull.js';
import { loadRegistriesConf } from '../../registry/registries-conf.js';
import { pushImage } from '../../registry/push.js';
import type { ConnectSettings } from '../../registry/remote.js';
import { ROLLOUT_ANNOTATION } from '../../update/rollout.js';
import type { Context } from '../context.js';
import { promptHidden } from '../prompt.js';
import { registryDefaults } from '../services.js';
import type { Reporter } from '../../lib/report.js';
import type { ContextFactory } from '../globals.js';

export interface ConnectFlags {
  tlsVerify?: boolean;
  certDir?: string;
  authfile?: string;
  retries?: string;
  timeout?: string;
}

function parseBool(v: string | undefined): boolean {
  if (v === undefined || v === 'true' || v === '1' || v === 'yes') return true;
  if (v === 'false' || v === '0' || v === 'no') return false;
  throw usageError(`--tls-verify takes true or false, not "${v}"`, 'for a local registry without TLS: --tls-verify=false');
}

/** A whole-number option as typed (`name` for the error), or the config's value when absent. */
export function int(name: string, v: string | undefined, fallback: number): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw usageError(`${name} must be a whole number, not "${v}"`);
  return n;
}

export function connectOptions(cmd: Command): Command {
  return cmd
    .option('--tls-verify [bool]', 'verify TLS certificates; =false also allows plain HTTP (local registries)', parseBool)
    .option('--cert-dir <dir>', 'CA certificates (*.crt) and client certificate for the registry, instead of certs.d')
    .option('--authfile <file>', 'credentials file (auth.json); default: REGISTRY_AUTH_FILE, then the containers/docker files')
    .option('--retries <n>', 'retries after 5xx, 429, resets and stalls (config registry.retries)')
    .option('--timeout <seconds>', 'seconds without progress before a request counts as stalled (config registry.timeout)');
}

export function settings(c: Context, f: ConnectFlags): ConnectSettings & { report: Reporter } {
  return {
    ...registryDefaults(c),
    tlsVerify: f.tlsVerify,
    certDir: f.certDir,
    authFile: f.authfile,
    retries: int('--retries', f.retries, c.config.registry.retries),
    timeoutSec: Math.max(1, int('--timeout', f.timeout, c.config.registry.timeout)),
    report: c.report,
  };
}

/** A rollout percentage as typed: 0 to 100, decimals allowed. */
export function parsePercent(v: string): number {
  const n = Number(v.replace(/%$/, ''));
  if (!/^\d+(\.\d+)?%?$/.test(v) || n > 100) throw usageError(`a rollout percentage is a number from 0 to 100, not "${v}"`);
  return n;
}

export function registerRegistryImageCommands(images: Command, ctx: ContextFactory): void {
  connectOptions(
    images
      .command('pull')
      .description('download an image from a registry into the store (only blobs the store lacks; resumes interrupted downloads)')
      .argument('<ref>', 'HOST[:PORT]/NAME[:TAG|@DIGEST]')
      .option('--name <name:tag>', 'store it under this name instead of <ref>')
      .option('--platform <os/arch[/variant]>', "which image of a multi-platform index (default: this machine's)")
      .option('-j, --jobs <n>', 'blobs downloaded at the same time (config registry.jobs)'),
  ).action(async (ref: string, opts: ConnectFlags & { name?: string; platform?: string; jobs?: string }, cmd: Command) => {
    const c = await ctx(cmd);
    const res = await pullImage(await c.imageStore(), ref, {
      ...settings(c, opts),
      name: opts.name,
      platform: opts.platform ? parsePlatform(opts.platform) : undefined,
      jobs: Math.max(1, int('--jobs', opts.jobs, c.config.registry.jobs)),
      registries: await loadRegistriesConf(c.paths),
      trust: await c.trust(),
    });
    ui.success(
      `pulled ${res.name} (${res.layers} layer${res.layers === 1 ? '' : 's'}: ${formatBytes(res.bytesDownloaded)} downloaded, ${formatBytes(res.bytesSkipped)} already here${res.bytesResumed ? `, ${formatBytes(res.bytesResumed)} resumed` : ''})`,
    );
    await emit(res, (r) => r.digest);
  });

  connectOptions(
    images
      .command('push')
      .description('upload an image to a registry (blobs it has are skipped; manifest last)')
      .argument('<name:tag>', 'the local image')
      .argument('[ref]', 'destination HOST[:PORT]/NAME[:TAG] (default: the local name)')
      .option('-j, --jobs <n>', 'blobs uploaded at the same time (config registry.jobs)')
      .option('--chunk-size <MiB>', 'upload in chunks of this size (0: one request per blob; config registry.chunk_size_mib)')
      .option('--rollout <percent>', 'offer the image to this share of the machines that follow the tag (see `darch update rollout`)'),
  ).action(async (name: string, dest: string | undefined, opts: ConnectFlags & { jobs?: string; chunkSize?: string; rollout?: string }, cmd: Command) => {
    const c = await ctx(cmd);
    const res = await pushImage(await c.imageStore(), name, dest, {
      ...settings(c, opts),
      ...(opts.rollout !== undefined ? { annotations: { [ROLLOUT_ANNOTATION]: String(parsePercent(opts.rollout)) } } : {}),
      jobs: Math.max(1, int('--jobs', opts.jobs, c.config.registry.jobs)),
      chunkSize: int('--chunk-size', opts.chunkSize, c.config.registry.chunk_size_mib) * 1024 * 1024,
    });
    ui.success(
      `pushed ${res.destination} (${res.blobsUploaded} blob(s) uploaded, ${formatBytes(res.bytesUploaded)}; ${res.blobsExisting} already there, ${res.blobsMounted} mounted)`,
    );
    await emit(res, (r) => r.digest);
  });
}

async function readPassword(opts: { password?: string; passwordStdin?: boolean }): Promise<string> {
  if (opts.password !== undefined) {
    ui.warn('a password on the command line is visible to other users (ps); prefer --password-stdin');
    return opts.password;
  }
  if (opts.passwordStdin || !process.stdin.isTTY) {
    const parts: Buffer[] = [];
    for await (const b of process.stdin as AsyncIterable<Buffer>) parts.push(b);
    const pw = Buffer.concat(parts)
      .toString('utf8')
      .replace(/\r?\n$/, '');
    if (!pw) throw usageError('no password on standard input', 'echo "$PASSWORD" | darch login HOST -u USER --password-stdin');
    return pw;
  }
  return promptHidden('Password: ');
}

export function registerLogin(loginCmd: Command, ctx: ContextFactory): void {
  connectOptions(
    loginCmd
      .argument('<registry>', 'HOST[:PORT]')
      .requiredOption('-u, --username <user>', 'user name')
      .option('-p, --password <password>', 'password (visible in ps; prefer --password-stdin)')
      .option('--password-stdin', 'read the password from standard input'),
  ).action(async (reg: string, opts: ConnectFlags & { username: string; password?: string; passwordStdin?: boolean }, cmd: Command) => {
    const c = await ctx(cmd);
    const host = registryHost(reg);
    const password = await readPassword(opts);
    const res = await login(host, opts.username, password, settings(c, opts));
    ui.success(`logged in to ${host} (credentials in ${res.file})`);
    await emit({ registry: host, username: opts.username, file: res.file }, () => undefined);
  });
}

export function registerLogout(logoutCmd: Command, ctx: ContextFactory): void {
  logoutCmd
    .argument('<registry>', 'HOST[:PORT]')
    .option('--authfile <file>', 'credentials file (default: REGISTRY_AUTH_FILE, or the containers auth.json)')
    .action(async (reg: string, opts: { authfile?: string }, cmd: Command) => {
      await ctx(cmd);
      const host = registryHost(reg);
      const res = await logout(host, { authFile: opts.authfile });
      if (!res.removed) {
        throw new DarchError('E_NOT_LOGGED_IN', `not logged in to ${host} (no entry in ${res.file})`, {
          hint: "credentials in ~/.docker/config.json are docker's: remove them with `docker logout`",
        });
      }
      ui.success(`logged out of ${host}`);
      await emit({ registry: host, file: res.file }, () => undefined);
    });
}

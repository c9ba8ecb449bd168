/** `darch serve`: staged images for diskless machines, over HTTP or as files (docs/NETBOOT.md). */
import os from 'node:os';
import path from 'node:path';
import type { Command } from 'commander';
import { DarchError, usageError } from '../../lib/errors.js';
import { which } from '../../lib/proc.js';
import { buildFirstStage } from '../../serve/first-stage.js';
import { normalizeBaseUrl, servedImages } from '../../serve/catalog.js';
import { exportServed } from '../../serve/export.js';
import { indexOf, startServer, type ServeOptions } from '../../serve/server.js';
import { DEFAULT_KERNEL_ARGS } from '../../disk/create.js';
import { formatBytes } from '../../lib/format.js';
import type { ContextFactory } from '../globals.js';
import { emit, stoppedBySignalIsSuccess } from '../output.js';
import { ui } from '../ui.js';

/** The guest-side address `darch vm netboot` forwards to a server on this host's loopback. */
export const QEMU_SERVER_ADDRESS = '10.0.2.100';

function parseListen(s: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:]*)):(\d+)$/.exec(s) ?? /^()()(\d+)$/.exec(s);
  const port = Number(m?.[3]);
  if (!m || !Number.isInteger(port) || port < 0 || port > 65535)
    throw usageError(`--listen ${s} is not ADDRESS:PORT`, 'for example --listen 0.0.0.0:8080, --listen 127.0.0.1:8080 or --listen 8080');
  return { host: m[1] || m[2] || '0.0.0.0', port };
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}

/**
 * Where clients reach a server listening on `host:port` when --url does not say: that address
 * itself, this machine's first non-loopback IPv4 address for a wildcard, and qemu's forwarded
 * address for loopback (only `darch vm netboot`'s guests can reach a loopback server).
 */
export function defaultUrl(host: string, port: number): string {
  if (isLoopback(host)) return `http://${QEMU_SERVER_ADDRESS}:${port}`;
  if (host !== '0.0.0.0' && host !== '::') return `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  for (const addrs of Object.values(os.networkInterfaces()))
    for (const a of addrs ?? []) if (a.family === 'IPv4' && !a.internal) return `http://${a.address}:${port}`;
  throw usageError('this machine has no network address clients could reach', 'give --url with the address clients use');
}

interface ServeFlags {
  listen: string;
  url?: string;
  kernelArgs: string;
  machines?: string;
  timeout: string;
  export?: string;
  firstStage: boolean;
}

export function registerServe(serve: Command, ctx: ContextFactory): void {
  serve
    .argument('[staged...]', 'staged images to serve, by tag or id (default: all of them)')
    .option('--listen <addr:port>', 'address and port to listen on', '0.0.0.0:8080')
    .option('--url <url>', 'where clients reach this server, when that differs from --listen (a proxy, NAT, or qemu)')
    .option('--kernel-args <args>', 'added to every entry (the console of the machines)', DEFAULT_KERNEL_ARGS)
    .option('--machines <dir>', 'per-machine hook files: DIR/<MAC>/<hook>/… (default: <config>/machines)')
    .option('--timeout <s>', 'seconds the boot menu waits', '5')
    .option('--export <dir>', 'write the same files into DIR for any web or TFTP server, and exit')
    .option('--no-first-stage', 'do not build bootx64.efi (darch GRUB for UEFI network boot)')
    .action(async (select: string[], opts: ServeFlags, cmd: Command) => {
      const c = await ctx(cmd);
      const timeout = Number(opts.timeout);
      if (!Number.isInteger(timeout) || timeout < 0 || timeout > 3600)
        throw usageError(`--timeout must be whole seconds from 0 to 3600, not "${opts.timeout}"`);
      if (opts.export && !opts.url)
        throw usageError(
          '--export needs --url: the files name the address clients fetch them from',
          'darch serve --export /srv/darch --url http://192.168.1.10',
        );
      const listen = parseListen(opts.listen);
      // Names that match nothing are a mistake now; an image removed later just leaves the menu.
      await servedImages(c.paths.stageDir, select, true);
      const machinesDir = opts.machines ?? path.join(c.paths.configDir, 'machines');
      const base: Omit<ServeOptions, 'baseUrl'> = {
        stageDir: c.paths.stageDir,
        select,
        kernelArgs: opts.kernelArgs,
        machinesDir,
        timeout,
      };
      const firstStage = async (baseUrl: string): Promise<Buffer | undefined> => {
        if (!opts.firstStage) return undefined;
        if (!baseUrl.startsWith('http:')) {
          ui.warn(`no bootx64.efi: GRUB fetches over plain http only, not ${baseUrl} (boot through iPXE, or give an http:// --url)`);
          return undefined;
        }
        if (!(await which('grub-mkstandalone'))) {
          ui.warn('no bootx64.efi: grub-mkstandalone is missing (apt-get install grub-efi-amd64-bin); the scripts are served all the same');
          return undefined;
        }
        return buildFirstStage(baseUrl, c.paths.tmpDir);
      };

      if (opts.export) {
        const baseUrl = normalizeBaseUrl(opts.url!);
        const res = await exportServed(opts.export, { ...base, baseUrl, firstStage: await firstStage(baseUrl) });
        for (const w of res.warnings) ui.warn(w);
        ui.success(
          `exported ${res.images.length} staged image(s) to ${res.dir} for ${baseUrl}: ${res.files.length} file(s) written` +
            (res.removed.length ? `, ${res.removed.length} no longer served removed` : ''),
        );
        await emit({ ...res, url: baseUrl }, () => undefined);
        return;
      }

      // Listen first: with port 0 the URL's port is the one the kernel chose.
      const given = opts.url ? normalizeBaseUrl(opts.url) : undefined;
      let options: ServeOptions = { ...base, baseUrl: given ?? 'http://pending' };
      const server = await startServer(
        listen,
        () => options,
        (r) => {
          const what = `${r.method} ${r.path} → ${r.status}${r.bytes ? ` (${formatBytes(r.bytes)})` : ''}${r.range ? ` [${r.range}]` : ''}`;
          ui.info(`${r.client ?? '?'} ${what}`);
        },
      );
      const baseUrl = given ?? normalizeBaseUrl(defaultUrl(listen.host, server.address.port));
      options = { ...base, baseUrl, firstStage: await firstStage(baseUrl) };
      const images = await servedImages(c.paths.stageDir, select);
      const listening = `${server.address.family === 'IPv6' ? `[${server.address.address}]` : server.address.address}:${server.address.port}`;
      ui.success(`serving ${images.length} staged image(s) on ${listening} for clients at ${baseUrl}`);
      ui.info(`GRUB: ${baseUrl}/grub/grub.cfg · iPXE: ${baseUrl}/boot.ipxe · UEFI first stage: ${baseUrl}/bootx64.efi`);
      if (isLoopback(listen.host) && !opts.url) ui.info(`only qemu guests reach it: darch vm netboot http://${listening}`);
      ui.info('stop with Ctrl-C');
      await emit({ listen: listening, ...indexOf(images, options) }, () => undefined);
      await new Promise<void>((resolve) => {
        if (c.signal.aborted) resolve();
        c.signal.addEventListener('abort', () => resolve(), { once: true });
      });
      await server.close();
      ui.info('stopped');
      stoppedBySignalIsSuccess();
      if (!c.signal.aborted) throw new DarchError('E_INTERNAL', 'the server stopped unexpectedly');
    });
}

/**
 * `darch serve`'s HTTP server (docs/NETBOOT.md): the boot scripts, darch's first-stage
 * bootx64.efi, and the staged files under the same paths as in the stage directory
 * (`live/<id>/<file>`), hooks as tars beside them. Everything is looked up for each request:
 * what is staged or tagged while it runs is served at once, what is removed is gone.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { DarchError } from '../lib/errors.js';
import { tagKey } from '../stage/layout.js';
import { FIRST_STAGE_REL, GRUB_MENU_REL, INDEX_REL, IPXE_REL, renderGrubMenu, renderIpxe } from './boot-scripts.js';
import { netEntries, servedImages, type ServedFile, type ServedImage } from './catalog.js';
import { bufferBody, diskBody, sendFile, type FileBody } from './http-files.js';
import { hooksTar, normalizeMac } from './hooks-tar.js';
import { createHash } from 'node:crypto';

export interface ServeOptions {
  stageDir: string;
  /** Tags or ids to serve; empty: every staged image. */
  select: readonly string[];
  /** Where clients reach the server (normalized, no trailing slash). */
  baseUrl: string;
  /** Added to every entry's kernel command line (a console, say). */
  kernelArgs?: string;
  /** Per-machine hook files: `<dir>/<mac>/<hook>/…`. */
  machinesDir?: string;
  /** Menu timeout in seconds. */
  timeout: number;
  /** darch's first-stage GRUB for this URL, when it could be built. */
  firstStage?: Buffer;
}

export interface RequestLog {
  method: string;
  path: string;
  status: number;
  bytes: number;
  range?: string;
  client?: string;
}

/** The machine directory for a MAC (`52-54-00-…`), whatever spelling its name uses. */
export async function machineDirFor(machinesDir: string | undefined, mac: string): Promise<string | undefined> {
  if (!machinesDir) return undefined;
  const names = await readdir(machinesDir).catch(() => [] as string[]);
  const hit = names.find((n) => normalizeMac(n) === mac);
  return hit ? path.join(machinesDir, hit) : undefined;
}

async function fileBody(f: ServedFile): Promise<FileBody | undefined> {
  const st = await stat(f.local).catch(() => undefined);
  if (!st?.isFile()) return undefined;
  return diskBody(f.local, st.size, `"${f.sha256 ?? `${st.size.toString(16)}-${Math.trunc(st.mtimeMs).toString(16)}`}"`);
}

function textBody(text: string, type: string): FileBody {
  const data = Buffer.from(text);
  return bufferBody(data, `"${createHash('sha256').update(data).digest('hex')}"`, type);
}

/** The index: what is served, for people and tools (`darch serve --json` prints the same). */
export function indexOf(images: readonly ServedImage[], opts: Pick<ServeOptions, 'baseUrl' | 'kernelArgs'>) {
  return {
    schemaVersion: 1 as const,
    url: opts.baseUrl,
    grub: `${opts.baseUrl}/${GRUB_MENU_REL}`,
    ipxe: `${opts.baseUrl}/${IPXE_REL}`,
    firstStage: `${opts.baseUrl}/${FIRST_STAGE_REL}`,
    images: images.map((i) => ({
      id: i.id,
      tags: i.tags,
      created: i.created.toISOString(),
      rootfs: { url: `${opts.baseUrl}/${i.rootfs.rel}`, sha256: i.rootfs.sha256 },
    })),
    entries: netEntries(images, opts.baseUrl, opts.kernelArgs),
  };
}

/** What a path under the base asks for, as a body; undefined: 404. */
async function resolve(rel: string, opts: ServeOptions): Promise<FileBody | undefined> {
  const images = await servedImages(opts.stageDir, opts.select);
  const entries = () => netEntries(images, opts.baseUrl, opts.kernelArgs);
  if (rel === GRUB_MENU_REL) return textBody(renderGrubMenu(entries(), opts), 'text/plain; charset=utf-8');
  if (rel === IPXE_REL) return textBody(renderIpxe(entries(), opts), 'text/plain; charset=utf-8');
  if (rel === INDEX_REL) return textBody(`${JSON.stringify(indexOf(images, opts), null, 2)}\n`, 'application/json');
  if (rel === FIRST_STAGE_REL)
    return opts.firstStage ? bufferBody(opts.firstStage, `"${createHash('sha256').update(opts.firstStage).digest('hex')}"`, 'application/efi') : undefined;
  const m = /^live\/([a-z0-9]+)\/(.+)$/.exec(rel);
  if (!m) return undefined;
  const img = images.find((i) => i.id === m[1]);
  if (!img) return undefined;
  const name = m[2]!;
  for (const f of [img.kernel, img.initramfs, img.rootfs]) if (f.rel === rel) return fileBody(f);
  const h = /^hooks\/([^/]+?)(?:\.([0-9a-f]{2}(?:-[0-9a-f]{2}){5}))?\.tar$/.exec(name);
  if (!h) return undefined;
  const tag = img.tags.find((t) => tagKey(t) === h[1]);
  if (!tag) return undefined;
  let machine: string | undefined;
  if (h[2]) {
    machine = await machineDirFor(opts.machinesDir, h[2]);
    // No directory for this machine: 404, and the client takes the image's own hooks.
    if (!machine) return undefined;
  }
  const tar = await hooksTar(img.dir, tag, machine);
  return tar ? bufferBody(tar.data, tar.etag, 'application/x-tar') : undefined;
}

export interface RunningServer {
  server: Server;
  /** The address it listens on (the port the kernel chose for :0). */
  address: AddressInfo;
  close(): Promise<void>;
}

/** `options` is asked on every request: the URL may be known only once the port is (listen on :0). */
export async function startServer(listen: { host: string; port: number }, options: () => ServeOptions, log: (r: RequestLog) => void): Promise<RunningServer> {
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const opts = options();
    const basePath = new URL(opts.baseUrl).pathname.replace(/\/+$/, '');
    const url = new URL(req.url ?? '/', 'http://x');
    let p = decodeURIComponent(url.pathname);
    // Behind a proxy that keeps --url's path, or reached directly: both work.
    if (basePath && (p === basePath || p.startsWith(`${basePath}/`))) p = p.slice(basePath.length);
    const rel = p.replace(/^\/+/, '');
    const entry: RequestLog = {
      method: req.method ?? '?',
      path: url.pathname,
      status: 0,
      bytes: 0,
      ...(req.headers.range ? { range: req.headers.range } : {}),
      ...(req.socket.remoteAddress ? { client: req.socket.remoteAddress } : {}),
    };
    try {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { Allow: 'GET, HEAD' }).end();
        entry.status = 405;
      } else if (rel.split('/').includes('..')) {
        res.writeHead(400).end();
        entry.status = 400;
      } else {
        const body = await resolve(rel, opts);
        if (!body) {
          res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not served\n');
          entry.status = 404;
        } else Object.assign(entry, await sendFile(req, res, body));
      }
    } catch (err) {
      // A broken stage (a corrupt meta.json) is the server's problem: 500, said in the log.
      if (!res.headersSent) res.writeHead(500, { 'Content-Type': 'text/plain' }).end(`${err instanceof Error ? err.message : String(err)}\n`);
      else res.destroy();
      entry.status = 500;
      entry.path += ` (${err instanceof DarchError ? err.message : String(err)})`;
    }
    log(entry);
  };
  const server = createServer((req, res) => void handle(req, res));
  // Boot clients are few and slow (a squashfs over a slow link): no idle cut-off mid-file.
  server.requestTimeout = 0;
  await new Promise<void>((ok, fail) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      fail(
        new DarchError(
          'E_SERVE_LISTEN',
          `cannot listen on ${listen.host}:${listen.port}: ${err.code === 'EADDRINUSE' ? 'the address is in use' : err.code === 'EACCES' ? 'permission denied (ports below 1024 need root)' : err.message}`,
          {
            hint: 'pick another --listen address or port',
            cause: err,
          },
        ),
      ),
    );
    server.listen(listen.port, listen.host, () => ok());
  });
  return {
    server,
    address: server.address() as AddressInfo,
    close: () =>
      new Promise<void>((ok) => {
        server.close(() => ok());
        server.closeAllConnections();
      }),
  };
}

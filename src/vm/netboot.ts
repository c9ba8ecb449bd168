/**
 * A diskless qemu machine that boots from `darch serve` (docs/NETBOOT.md), networked the way
 * a lab machine is and no further: qemu's user networking with `restrict=on` (no way out),
 * its DHCP and TFTP handing out darch's bootx64.efi, and one `guestfwd` rule that takes the
 * guest's connections to the server's client address (its --url) to the server on this host.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { DarchError } from '../lib/errors.js';
import { findStaticBusybox } from '../initramfs/busybox.js';

/** qemu's user network: the guest gets .15, .2 is the gateway, .3 DNS. */
const SLIRP_NET = /^10\.0\.2\.(\d{1,3})$/;

export interface NetbootNic {
  /** The `-nic` spec. */
  nic: string;
  /** More qemu arguments. */
  extraArgs: string[];
  /** The client URL the menus use (the server's --url). */
  clientUrl: string;
}

async function get(url: string, what: string): Promise<Response> {
  let res: Response;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(30_000) });
  } catch (err) {
    throw new DarchError('E_SERVE_UNREACHABLE', `cannot reach darch serve at ${url}: ${(err as Error).message}`, {
      hint: 'start it first: darch serve --listen 127.0.0.1:8080',
      cause: err,
    });
  }
  if (!res.ok) throw new DarchError('E_SERVE_UNREACHABLE', `${url} answered ${res.status} for ${what}`, { hint: 'is that address darch serve?' });
  return res;
}

/**
 * The network of a VM that boots from the server at `serverUrl` (as this host reaches it).
 * The server's client URL must be an address of qemu's network (darch serve picks
 * http://10.0.2.100:PORT when it listens on loopback); bootx64.efi is fetched from the server
 * into `workDir` for qemu's TFTP.
 */
export async function netbootNic(serverUrl: string, workDir: string): Promise<NetbootNic> {
  const server = new URL(serverUrl);
  const base = serverUrl.replace(/\/+$/, '');
  const index = (await (await get(`${base}/index.json`, 'its index')).json()) as { url?: string; firstStage?: string };
  if (typeof index.url !== 'string')
    throw new DarchError('E_SERVE_UNREACHABLE', `${base}/index.json is not darch serve's index`, { hint: 'give the address darch serve listens on' });
  const client = new URL(index.url);
  const m = SLIRP_NET.exec(client.hostname);
  if (client.protocol !== 'http:' || !m || ['0', '2', '3', '15', '255'].includes(m[1]!)) {
    throw new DarchError('E_USAGE', `darch serve gives clients ${index.url}, which a qemu guest cannot be forwarded to`, {
      hint: 'serve for qemu on loopback (darch serve --listen 127.0.0.1:8080 picks http://10.0.2.100:8080), or give --url http://10.0.2.100:PORT',
    });
  }
  const efi = Buffer.from(await (await get(`${base}/bootx64.efi`, 'bootx64.efi')).arrayBuffer());
  const tftp = path.join(workDir, 'tftp');
  await mkdir(tftp, { recursive: true });
  await writeFile(path.join(tftp, 'bootx64.efi'), efi);
  const busybox = await findStaticBusybox();
  const clientPort = client.port || '80';
  const serverPort = server.port || (server.protocol === 'https:' ? '443' : '80');
  const parts = [tftp, busybox, server.hostname];
  if (parts.some((p) => p.includes(',')))
    throw new DarchError('E_USAGE', `qemu cannot take a path with a comma (${parts.find((p) => p.includes(','))})`, {
      hint: 'use a work directory without commas',
    });
  // One `nc` per connection: the guest's TCP to the client address becomes the server's.
  const fwd = `guestfwd=tcp:${client.hostname}:${clientPort}-cmd:${busybox} nc ${server.hostname} ${serverPort}`;
  return {
    nic: `user,model=virtio-net-pci,restrict=on,tftp=${tftp},bootfile=bootx64.efi,${fwd}`,
    // OVMF's own virtio-net driver (no iPXE option ROM prompt on the way), and no default
    // devices: a diskless machine has no empty CD drive for the firmware to try first.
    extraArgs: ['-global', 'virtio-net-pci.romfile=', '-nodefaults'],
    clientUrl: index.url,
  };
}

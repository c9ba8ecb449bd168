/**
 * The network side of darch-lib.sh (assets/initramfs) run on this host under busybox alone,
 * against real servers on 127.0.0.1: the squashfs download (resume after a cut, restart after
 * a stall, the sha256 check, https without a certificate store) and the hooks tar with its
 * per-machine fallback. The qemu test (test/e2e/netboot.test.ts) boots the same code; this
 * one reaches the paths a boot test would take minutes for.
 */
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, symlink } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pack as tarPack } from 'tar-stream';
import { REPO, tempDir } from '../helpers/darch.js';
import { FaultyProxy } from '../helpers/faulty-proxy.js';

const LIB = path.join(REPO, 'assets/initramfs/darch-lib.sh');
const APPLETS = ['sh', 'wget', 'sha256sum', 'cut', 'ls', 'df', 'awk', 'sleep', 'kill', 'rm', 'mkdir', 'tar', 'tr', 'date', 'cat', 'echo', 'ssl_client'];

interface Run {
  code: number;
  out: string;
}

/** Runs `script` after darch-lib.sh in busybox sh, with busybox applets only on PATH and the console on stdout. */
function runLib(dir: string, script: string, timeoutMs = 120_000): Promise<Run> {
  const full = `. ${LIB}\ndarch_log() { echo "darch: $*"; }\ndarch_shell() { echo RESCUE-SHELL; }\nDARCH_RUN=${dir}/run\nmkdir -p $DARCH_RUN\n${script}`;
  return new Promise((resolve) => {
    execFile('/bin/busybox', ['sh', '-c', full], { env: { PATH: path.join(dir, 'bb') }, timeout: timeoutMs }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out: stdout + stderr });
    });
  });
}

describe('darch-lib.sh network boot functions (busybox on this host)', () => {
  let dir: string;
  let data: Buffer;
  let sum: string;
  let server: http.Server;
  let proxy: FaultyProxy;
  let tls: https.Server;
  const cleanups: (() => Promise<unknown> | unknown)[] = [];

  before(async () => {
    dir = await tempDir({ after: (fn) => void cleanups.push(fn) }, 'darch-netsh-');
    await mkdir(path.join(dir, 'bb'));
    for (const a of APPLETS) await symlink('/bin/busybox', path.join(dir, 'bb', a));
    data = randomBytes(3 * 2 ** 20);
    sum = createHash('sha256').update(data).digest('hex');
    const p = tarPack();
    const chunks: Buffer[] = [];
    p.on('data', (c: unknown) => void chunks.push(c as Buffer));
    p.entry({ name: '00000001_hostname/hostname' }, 'pc-07\n');
    p.finalize();
    await new Promise<void>((r) => p.on('end', () => r()));
    const machineTar = Buffer.concat(chunks);
    // A plain server with ranges, as darch serve answers (the serve tests prove darch serve does).
    const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
      if (req.url === '/live/x/rootfs.squash') {
        const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
        const start = m ? Number(m[1]) : 0;
        res.writeHead(m ? 206 : 200, {
          'Content-Length': data.length - start,
          ...(m ? { 'Content-Range': `bytes ${start}-${data.length - 1}/${data.length}` } : {}),
          Connection: 'close',
        });
        res.end(data.subarray(start));
      } else if (req.url === '/live/x/hooks/os@1.52-54-00-aa-bb-cc.tar') {
        res.writeHead(200, { 'Content-Length': machineTar.length, Connection: 'close' }).end(machineTar);
      } else res.writeHead(404, { Connection: 'close' }).end();
    };
    server = http.createServer(handler);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    cleanups.push(() => new Promise((r) => server.close(r)));
    proxy = await new FaultyProxy({ host: '127.0.0.1', port: (server.address() as AddressInfo).port }).start();
    cleanups.push(() => proxy.stop());
    await new Promise<void>((resolve) => {
      execFile(
        'openssl',
        ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', path.join(dir, 'k.pem'), '-out', path.join(dir, 'c.pem'), '-days', '1', '-subj', '/CN=x'],
        () => resolve(),
      );
    });
    // busybox 1.35's TLS client signs its handshake only in ways OpenSSL 3 refuses at its default
    // security level (docs/NETBOOT.md says so): this server allows them, as one must for it.
    tls = https.createServer(
      { key: await readFile(path.join(dir, 'k.pem')), cert: await readFile(path.join(dir, 'c.pem')), ciphers: 'DEFAULT:@SECLEVEL=0' },
      handler,
    );
    await new Promise<void>((r) => tls.listen(0, '127.0.0.1', () => r()));
    cleanups.push(() => new Promise((r) => tls.close(r)));
  });
  after(async () => {
    for (const c of cleanups.reverse()) await c();
  });

  const fetchRoot = (url: string, extra = '') =>
    runLib(
      dir,
      `rm -f ${dir}/root.sq\ndarch_rootfs=${url}\ndarch_rootfs_sha256=${sum}\ndarch_net_retries=5\ndarch_net_stall=3\n${extra}\ndarch_net_fetch_root ${dir}/root.sq; echo "RC=$?"`,
    );

  it('resumes a download the server cut, restarts one that stalls, and checks the sha256', async () => {
    proxy.clear();
    proxy.addRule({ url: 'rootfs.squash', fault: { kind: 'cut', afterBytes: 2 ** 20 } });
    proxy.addRule({ url: 'rootfs.squash', fault: { kind: 'stall', afterBytes: 2 ** 19 } });
    const r = await fetchRoot(`http://${proxy.host}/live/x/rootfs.squash`);
    assert.match(r.out, /RC=0/, r.out);
    assert.deepEqual(await readFile(path.join(dir, 'root.sq')), data);
    assert.deepEqual(
      proxy.requests('rootfs.squash').map((q) => q.range),
      [undefined, `bytes=${2 ** 20}-`, `bytes=${2 ** 20 + 2 ** 19}-`],
    );
    assert.match(r.out, /nothing received for 3s: starting the download again/);
    assert.match(r.out, new RegExp(`sha256 checked: ${sum}`));
  });

  it('downloads again from scratch on a mismatch, and refuses a second one without mounting', async () => {
    proxy.clear();
    proxy.addRule({ url: 'rootfs.squash', fault: { kind: 'flip', atByte: 1000 }, times: 1 });
    const once = await fetchRoot(`http://${proxy.host}/live/x/rootfs.squash`);
    assert.match(once.out, /sha256 mismatch \([0-9a-f]{64}\): downloading again/);
    assert.match(once.out, /RC=0/, 'damage on the way: the second download is good');

    proxy.clear();
    proxy.addRule({ url: 'rootfs.squash', fault: { kind: 'flip', atByte: 1000 }, times: Number.POSITIVE_INFINITY });
    const twice = await fetchRoot(`http://${proxy.host}/live/x/rootfs.squash`);
    assert.match(twice.out, /ERROR: .* does not match darch_rootfs_sha256=.*refused, not mounted/);
    assert.match(twice.out, /RESCUE-SHELL/);
    assert.match(twice.out, /RC=1/);
    assert.equal(proxy.requests('rootfs.squash').length, 2);
  });

  it('gives up after darch_net_retries attempts when the server is gone, with a clear error', async () => {
    const r = await fetchRoot('http://127.0.0.1:1/live/x/rootfs.squash', 'darch_net_retries=2');
    assert.match(r.out, /ERROR: cannot download http:\/\/127\.0\.0\.1:1\/live\/x\/rootfs\.squash \(2 attempts\)/);
    assert.match(r.out, /RC=1/);
  });

  it('fetches over https with no certificate store (the sha256 vouches for the bytes)', async () => {
    const r = await fetchRoot(`https://127.0.0.1:${(tls.address() as AddressInfo).port}/live/x/rootfs.squash`);
    assert.match(r.out, /RC=0/, r.out);
    assert.deepEqual(await readFile(path.join(dir, 'root.sq')), data);
  });

  it("takes this machine's hooks tar by MAC, else the tag's; none is fine", async () => {
    const base = `darch_rootfs=http://${proxy.host}/live/x/rootfs.squash\ndarch_hooks=hooks/os@1\n`;
    proxy.clear();
    const mine = await runLib(
      dir,
      `${base}mkdir -p $DARCH_RUN/ram\ndarch_net_mac=52:54:00:AA:BB:CC\ndarch_net_hooks\necho "DIR=$darch_hooks_dir"\ncat $DARCH_RUN/hooks/00000001_hostname/hostname`,
    );
    assert.match(mine.out, /hooks from os@1\.52-54-00-aa-bb-cc\.tar/);
    assert.match(mine.out, /DIR=.*\/run\/hooks/);
    assert.match(mine.out, /pc-07/);
    proxy.clear();
    const other = await runLib(dir, `${base}rm -rf $DARCH_RUN/hooks\ndarch_net_mac=52:54:00:00:00:01\ndarch_net_hooks\necho "DIR=$darch_hooks_dir."`);
    assert.deepEqual(
      proxy.requests('hooks').map((q) => q.url),
      ['/live/x/hooks/os@1.52-54-00-00-00-01.tar', '/live/x/hooks/os@1.tar'],
    );
    assert.match(other.out, /DIR=\./, 'no hooks anywhere: the boot goes on without');
  });
});

// busybox must be the static one the initramfs ships, which has every applet used here.
execFileSync('/bin/busybox', ['--list']);

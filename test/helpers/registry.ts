/**
 * A real OCI registry for tests: Debian's docker-registry (distribution 2.8) on a free
 * 127.0.0.1 port with its storage in a temp dir. Plain HTTP by default; with `tls` it
 * serves a certificate signed by a CA made here with openssl, with `auth` it wants
 * htpasswd (bcrypt, `htpasswd -B`) Basic auth, with `proxy` it is a pull-through cache of
 * another registry (distribution's proxy mode: read-only, fetches what it lacks from the
 * remote and keeps it).
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import http from 'node:http';
import https from 'node:https';
import { readFileSync } from 'node:fs';

export interface RegistryServer {
  /** 127.0.0.1:PORT */
  host: string;
  port: number;
  url: string;
  dir: string;
  /** PEM file of the CA that signed the server certificate (tls only). */
  caFile?: string;
  user?: string;
  password?: string;
  stop(): Promise<void>;
}

export interface RegistryOptions {
  tls?: boolean;
  auth?: { user: string; password: string };
  /** Bearer tokens from a token service (see token-server.ts) instead of htpasswd. */
  token?: { realm: string; service: string; issuer: string; certFile: string };
  /** A pull-through cache of this registry (`proxy: remoteurl:` in distribution's config). */
  proxy?: { remoteurl: string };
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

/** A CA and a server certificate for 127.0.0.1 and localhost. */
export function makeCertificates(dir: string): { caFile: string; certFile: string; keyFile: string } {
  const o = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  o(['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=darch test CA']);
  o(['req', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1']);
  execFileSync('sh', ['-c', 'printf "subjectAltName=IP:127.0.0.1,DNS:localhost\\n" > ext.cnf'], { cwd: dir });
  o(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.crt', '-days', '2', '-extfile', 'ext.cnf']);
  return { caFile: path.join(dir, 'ca.crt'), certFile: path.join(dir, 'server.crt'), keyFile: path.join(dir, 'server.key') };
}

export async function startRegistry(opts: RegistryOptions = {}): Promise<RegistryServer> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'darch-registry-'));
  let caFile: string | undefined;
  let tlsBlock = '';
  if (opts.tls) {
    const c = makeCertificates(dir);
    caFile = c.caFile;
    tlsBlock = `  tls:\n    certificate: ${c.certFile}\n    key: ${c.keyFile}\n`;
  }
  let authBlock = '';
  if (opts.auth) {
    const htpasswd = path.join(dir, 'htpasswd');
    execFileSync('htpasswd', ['-Bbc', htpasswd, opts.auth.user, opts.auth.password], { stdio: 'ignore' });
    authBlock = `auth:\n  htpasswd:\n    realm: darch-test\n    path: ${htpasswd}\n`;
  }
  if (opts.token) {
    const t = opts.token;
    authBlock = `auth:\n  token:\n    realm: ${t.realm}\n    service: ${t.service}\n    issuer: ${t.issuer}\n    rootcertbundle: ${t.certFile}\n`;
  }
  const proxyBlock = opts.proxy ? `proxy:\n  remoteurl: ${opts.proxy.remoteurl}\n` : '';
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    const config = path.join(dir, 'config.yml');
    await writeFile(
      config,
      `version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: ${path.join(dir, 'data')}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:${port}
  secret: ${Math.random().toString(36).slice(2)}
${tlsBlock}${authBlock}${proxyBlock}`,
    );
    const child = spawn('docker-registry', ['serve', config], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr?.on('data', (b: Buffer) => void (stderr += b.toString()));
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    const url = `${opts.tls ? 'https' : 'http'}://127.0.0.1:${port}`;
    if (await waitReady(url, child, caFile)) {
      return {
        host: `127.0.0.1:${port}`,
        port,
        url,
        dir,
        caFile,
        user: opts.auth?.user,
        password: opts.auth?.password,
        async stop() {
          if (child.exitCode === null) {
            child.kill('SIGTERM');
            await Promise.race([exited, sleep(5000)]);
            if (child.exitCode === null) child.kill('SIGKILL');
          }
          await rm(dir, { recursive: true, force: true });
        },
      };
    }
    child.kill('SIGKILL');
    await exited;
    if (!/address already in use/.test(stderr)) throw new Error(`docker-registry did not start: ${stderr.slice(-2000)}`);
  }
  throw new Error('docker-registry: no free port after 5 attempts');
}

async function waitReady(url: string, child: ChildProcess, caFile?: string): Promise<boolean> {
  const ca = caFile ? readFileSync(caFile) : undefined;
  for (let i = 0; i < 100; i++) {
    if (child.exitCode !== null) return false;
    const ok = await new Promise<boolean>((resolve) => {
      const mod = url.startsWith('https') ? https : http;
      const req = mod.get(`${url}/v2/`, { ca, timeout: 1000 } as https.RequestOptions, (res) => {
        res.resume();
        resolve(true);
      });
      req.on('error', () => resolve(false));
      req.on('timeout', () => req.destroy());
    });
    if (ok) return true;
    await sleep(100);
  }
  return false;
}

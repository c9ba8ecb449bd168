/**
 * One registry, spoken to over the OCI distribution API with undici: TLS per registry,
 * the /v2/ ping that finds the scheme and the auth challenge, Basic and Bearer auth with
 * tokens cached per scope, retries with backoff on 5xx/429/connection failures, and
 * redirects followed by hand so Authorization never reaches another host.
 * Credentials and tokens stay inside this object: nothing here logs a header.
 */
import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { EnvHttpProxyAgent, request, type Dispatcher } from 'undici';
import { DarchError } from '../lib/errors.js';
import { silentReporter, type Reporter } from '../lib/report.js';
import { findCredentials, type Credentials } from './auth-file.js';
import { type Challenge, parseChallenges } from './challenge.js';
import { tlsSettingsFor } from './tls.js';

export interface ClientOptions {
  /** host[:port] as written in the reference (docker.io is mapped to its API host here). */
  host: string;
  /** false: accept any certificate and fall back to plain HTTP if the server speaks no TLS. */
  tlsVerify: boolean;
  certDir?: string;
  configDir: string;
  authFile?: string;
  /** Use these instead of looking in auth files (darch login). */
  credentials?: { username: string; password: string };
  signal?: AbortSignal;
  /** Attempts after the first, for 5xx/429/connection failures. */
  retries: number;
  /** Seconds without progress (headers or body bytes) before a request is abandoned. */
  timeoutSec: number;
  report?: Reporter;
}

export interface Response {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Readable & { dump(opts?: { limit: number }): Promise<void> };
  url: string;
}

export interface SendOptions {
  method?: 'GET' | 'HEAD' | 'PUT' | 'POST' | 'PATCH' | 'DELETE';
  /** A path under the registry (/v2/…) or an absolute URL (upload Locations). */
  url: string;
  headers?: Record<string, string>;
  /** A factory, so a retry can send the body again. */
  body?: () => Readable | Buffer | string | undefined;
  /** Auth scopes, e.g. ["repository:foo/bar:pull"]. */
  scopes: string[];
  /** Retry on 5xx/429/connection errors (default true). */
  retry?: boolean;
}

const RETRY_BASE_MS = 300;

declare const __DARCH_VERSION__: string | undefined;
/** Registries log it, and a site's operators can tell darch's requests (the update agent's) from others. */
const USER_AGENT = `darch/${typeof __DARCH_VERSION__ === 'string' ? __DARCH_VERSION__ : '0.0.0-dev'}`;
const RETRY_CAP_MS = 10_000;
const REDIRECT_LIMIT = 5;

/** docker.io is an alias: the API lives elsewhere. */
export function apiHost(host: string): string {
  return host === 'docker.io' || host === 'index.docker.io' ? 'registry-1.docker.io' : host;
}

export function headerValue(h: Response['headers'], name: string): string | undefined {
  const v = h[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}

export function isRetryableNetworkError(err: unknown): boolean {
  if (err instanceof DarchError) return err.code === 'E_REGISTRY_INTERRUPTED';
  const e = err as { code?: string; name?: string; cause?: { code?: string } };
  const code = e?.code ?? e?.cause?.code ?? '';
  return [
    'ECONNRESET',
    'ECONNREFUSED',
    'EPIPE',
    'ETIMEDOUT',
    'EAI_AGAIN',
    'ENETUNREACH',
    'EHOSTUNREACH',
    'UND_ERR_SOCKET',
    'UND_ERR_CLOSED',
    'UND_ERR_BODY_TIMEOUT',
    'UND_ERR_HEADERS_TIMEOUT',
    'UND_ERR_CONNECT_TIMEOUT',
    'UND_ERR_RES_CONTENT_LENGTH_MISMATCH',
    'ERR_STREAM_PREMATURE_CLOSE',
  ].includes(code);
}

const TLS_VERIFY_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_HAS_EXPIRED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_UNTRUSTED',
  'CERT_NOT_YET_VALID',
]);

function errCode(err: unknown): string {
  const e = err as { code?: string; cause?: { code?: string } };
  return e?.code ?? e?.cause?.code ?? '';
}

/** The server answered our TLS hello with plain HTTP (or hung up on it). */
function looksLikePlainHttp(err: unknown): boolean {
  const msg = String((err as Error)?.message ?? '');
  return errCode(err) === 'EPROTO' || /wrong version number|packet length too long|ECONNRESET/i.test(msg) || errCode(err) === 'ECONNRESET';
}

/** Delay before retry n (0-based): exponential with jitter, or the server's Retry-After. */
export function backoffMs(attempt: number, retryAfter?: string): number {
  if (retryAfter && /^\d+$/.test(retryAfter.trim())) return Math.min(Number(retryAfter) * 1000, 30_000);
  const base = Math.min(RETRY_CAP_MS, RETRY_BASE_MS * 2 ** attempt);
  return Math.round(base / 2 + Math.random() * (base / 2));
}

export class RegistryClient {
  readonly host: string;
  private origin = '';
  private dispatcher!: Dispatcher;
  private challenge: Challenge | undefined;
  private credentials: Credentials | undefined;
  private credentialsLooked = false;
  private credentialsLookup: Promise<Credentials | undefined> | undefined;
  /** Authorization header per scope set ("" for Basic, which covers every scope). */
  private readonly authCache = new Map<string, string>();

  /** Where this client and the transfers over it report retries and progress. */
  readonly report: Reporter;

  private constructor(private readonly opts: ClientOptions) {
    this.host = apiHost(opts.host);
    this.report = opts.report ?? silentReporter;
  }

  /** Build the transport and ping /v2/ (finds the scheme and the auth challenge). */
  static async connect(opts: ClientOptions): Promise<RegistryClient> {
    const c = new RegistryClient(opts);
    if (opts.credentials) {
      c.credentials = { ...opts.credentials, source: 'the command line' };
      c.credentialsLooked = true;
    }
    const tls = await tlsSettingsFor(opts.host, { certDir: opts.certDir, configDir: opts.configDir, verify: opts.tlsVerify });
    for (const f of tls.files) c.report.debug(`tls: using ${f}`);
    const connect = { ...(tls.ca.length ? { ca: tls.ca } : {}), cert: tls.cert, key: tls.key, rejectUnauthorized: tls.rejectUnauthorized };
    const timeout = opts.timeoutSec * 1000;
    c.dispatcher = new EnvHttpProxyAgent({ connect, requestTls: connect, headersTimeout: timeout, bodyTimeout: timeout, connectTimeout: timeout });
    await c.ping();
    return c;
  }

  async close(): Promise<void> {
    await this.dispatcher.close().catch(() => undefined);
  }

  get baseUrl(): string {
    return this.origin;
  }

  private async ping(): Promise<void> {
    const tryOrigin = async (origin: string) => {
      const res = await this.retrying(() => this.raw('GET', `${origin}/v2/`, {}), true, true);
      await res.body.dump().catch(() => undefined);
      return res;
    };
    let res: Response;
    try {
      this.origin = `https://${this.host}`;
      res = await tryOrigin(this.origin);
    } catch (err) {
      if (this.opts.tlsVerify || !looksLikePlainHttp(err)) throw this.networkError(err);
      this.report.debug(`${this.host} speaks no TLS; using plain HTTP (--tls-verify=false)`);
      this.origin = `http://${this.host}`;
      try {
        res = await tryOrigin(this.origin);
      } catch (err2) {
        throw this.networkError(err2);
      }
    }
    if (res.status === 401) this.challenge = parseChallenges(res.headers['www-authenticate'])[0];
    else if (res.status >= 400 && res.status !== 404) {
      throw new DarchError('E_REGISTRY', `${this.host} answered ${res.status} to /v2/: not an OCI registry?`, {
        hint: 'check the registry address (host[:port])',
      });
    }
  }

  /** One HTTP exchange, following redirects; Authorization is dropped when the origin changes. */
  private async raw(method: string, url: string, headers: Record<string, string>, body?: Readable | Buffer | string): Promise<Response> {
    let cur = new URL(url);
    let hdrs: Record<string, string> = { 'user-agent': USER_AGENT, ...headers };
    let m = method;
    let b = body;
    for (let i = 0; ; i++) {
      this.report.debug(`http: ${m} ${cur.origin}${cur.pathname}`);
      const res = await request(cur, {
        method: m as Dispatcher.HttpMethod,
        headers: hdrs,
        body: b,
        dispatcher: this.dispatcher,
        signal: this.opts.signal,
      });
      const location = headerValue(res.headers, 'location');
      if (
        [301, 302, 303, 307, 308].includes(res.statusCode) &&
        location &&
        i < REDIRECT_LIMIT &&
        !(m === 'POST' || m === 'PATCH' || (m === 'PUT' && res.statusCode !== 307 && res.statusCode !== 308))
      ) {
        await res.body.dump().catch(() => undefined);
        const next = new URL(location, cur);
        if (next.origin !== cur.origin) {
          // Blob storage (S3, a CDN) gets a signed URL; our registry credentials are not for it.
          const { authorization: _drop, Authorization: _drop2, ...rest } = hdrs;
          hdrs = rest;
        }
        if (res.statusCode === 303) {
          m = 'GET';
          b = undefined;
        }
        cur = next;
        continue;
      }
      if ([301, 302, 303, 307, 308].includes(res.statusCode) && i >= REDIRECT_LIMIT) {
        await res.body.dump().catch(() => undefined);
        throw new DarchError('E_REGISTRY', `${this.host}: more than ${REDIRECT_LIMIT} redirects for ${new URL(url).pathname}`, {
          hint: 'the registry or a proxy in front of it redirects in a loop',
        });
      }
      return { status: res.statusCode, headers: res.headers, body: res.body, url: cur.toString() };
    }
  }

  private async retrying(fn: () => Promise<Response>, retry: boolean, firstContact = false): Promise<Response> {
    for (let attempt = 0; ; attempt++) {
      let res: Response;
      try {
        res = await fn();
      } catch (err) {
        if (this.opts.signal?.aborted) throw this.opts.signal.reason ?? err;
        // Nobody listening at the very first contact is a wrong address, not a hiccup: say so at once.
        const refusedAtFirst = firstContact && errCode(err) === 'ECONNREFUSED';
        if (!retry || refusedAtFirst || attempt >= this.opts.retries || !isRetryableNetworkError(err)) throw err;
        const wait = backoffMs(attempt);
        this.report.warn(`${this.host}: ${describe(err)}; retrying in ${(wait / 1000).toFixed(1)} s (${attempt + 1}/${this.opts.retries})`);
        await sleep(wait, undefined, { signal: this.opts.signal });
        continue;
      }
      if (retry && (res.status === 429 || res.status >= 500) && attempt < this.opts.retries) {
        await res.body.dump().catch(() => undefined);
        const wait = backoffMs(attempt, headerValue(res.headers, 'retry-after'));
        this.report.warn(`${this.host} answered ${res.status}; retrying in ${(wait / 1000).toFixed(1)} s (${attempt + 1}/${this.opts.retries})`);
        await sleep(wait, undefined, { signal: this.opts.signal });
        continue;
      }
      return res;
    }
  }

  /** Send a request with auth and retries. Callers own the response body (consume or dump it). */
  async send(o: SendOptions): Promise<Response> {
    const url = o.url.startsWith('http://') || o.url.startsWith('https://') ? o.url : `${this.origin}${o.url}`;
    const method = o.method ?? 'GET';
    // The ping told us the registry wants auth: get it now rather than send a body twice.
    if (this.challenge && !this.cachedAuth(o.scopes) && (this.challenge.scheme === 'bearer' || (await this.creds(o.scopes[0]?.split(':')[1])))) {
      await this.authenticate(this.challenge, o.scopes);
    }
    const exchange = async () => {
      const headers = { ...(o.headers ?? {}) };
      const auth = this.cachedAuth(o.scopes);
      if (auth && new URL(url).origin === this.origin) headers.authorization = auth;
      return this.raw(method, url, headers, o.body?.());
    };
    let res = await this.retrying(exchange, o.retry !== false).catch((err) => {
      throw this.networkError(err);
    });
    if (res.status !== 401) return res;
    // Challenged: authenticate for these scopes and try once more.
    await res.body.dump().catch(() => undefined);
    const ch = parseChallenges(res.headers['www-authenticate'])[0] ?? this.challenge;
    if (!ch) throw this.authError(false, 'answered 401 without a WWW-Authenticate challenge');
    this.challenge = ch;
    await this.authenticate(ch, o.scopes);
    res = await this.retrying(exchange, o.retry !== false).catch((err) => {
      throw this.networkError(err);
    });
    if (res.status === 401) {
      await res.body.dump().catch(() => undefined);
      throw this.authError(Boolean(this.credentials));
    }
    return res;
  }

  /** Check that we may talk to the registry at all (darch login): authenticates against /v2/. */
  async checkLogin(): Promise<void> {
    if (!this.challenge) return;
    await this.authenticate(this.challenge, []);
    const res = await this.send({ url: '/v2/', scopes: [] });
    await res.body.dump().catch(() => undefined);
    if (res.status !== 200) throw this.authError(Boolean(this.credentials));
  }

  private cachedAuth(scopes: string[]): string | undefined {
    return this.authCache.get('') ?? this.authCache.get(scopeKey(scopes));
  }

  private async creds(repoHint?: string): Promise<Credentials | undefined> {
    // One lookup shared by parallel transfers: they must not see a lookup half done.
    this.credentialsLookup ??= this.credentialsLooked
      ? Promise.resolve(this.credentials)
      : findCredentials(this.opts.host, repoHint, { authFile: this.opts.authFile }).then((c) => {
          this.credentials = c;
          this.credentialsLooked = true;
          if (c) this.report.debug(`auth: credentials for ${this.opts.host} from ${c.source}`);
          return c;
        });
    return this.credentialsLookup;
  }

  private async authenticate(ch: Challenge, scopes: string[]): Promise<void> {
    const repo = scopes[0]?.split(':')[1];
    const creds = await this.creds(repo);
    if (ch.scheme === 'basic') {
      if (!creds) throw this.authError(false);
      this.authCache.set('', `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}`);
      return;
    }
    const realm = ch.params.realm;
    if (!realm) throw this.authError(false, 'sent a Bearer challenge without a realm');
    const tokenUrl = new URL(realm);
    if (ch.params.service) tokenUrl.searchParams.set('service', ch.params.service);
    const wanted = new Set(scopes);
    if (ch.params.scope) for (const s of ch.params.scope.split(' ')) wanted.add(s);
    for (const s of wanted) tokenUrl.searchParams.append('scope', s);
    const headers: Record<string, string> = {};
    if (creds) headers.authorization = `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}`;
    let res: Response;
    try {
      res = await this.retrying(() => this.raw('GET', tokenUrl.toString(), headers), true);
    } catch (err) {
      throw this.networkError(err, `the token service of ${this.host}`);
    }
    if (res.status === 401 || res.status === 403) {
      await res.body.dump().catch(() => undefined);
      throw this.authError(Boolean(creds));
    }
    if (res.status !== 200) {
      await res.body.dump().catch(() => undefined);
      throw new DarchError('E_AUTH', `the token service of ${this.host} answered ${res.status}`, { hint: 'try again later; check `darch login`' });
    }
    const doc = JSON.parse((await readSmall(res.body, 1024 * 1024)).toString('utf8')) as { token?: string; access_token?: string };
    const token = doc.token ?? doc.access_token;
    if (!token) throw new DarchError('E_AUTH', `the token service of ${this.host} returned no token`);
    this.authCache.set(scopeKey(scopes), `Bearer ${token}`);
  }

  authError(hadCredentials: boolean, why?: string): DarchError {
    if (why) return new DarchError('E_AUTH', `${this.host} ${why}`, { hint: 'is this an OCI registry?' });
    if (hadCredentials) {
      return new DarchError(
        'E_AUTH_FAILED',
        `authentication to ${this.host} failed: user name or password rejected (credentials from ${this.credentials?.source ?? 'unknown'})`,
        {
          hint: `log in again: darch login ${this.opts.host}`,
        },
      );
    }
    return new DarchError('E_AUTH_REQUIRED', `${this.host} requires authentication and no credentials are stored for it`, {
      hint: `darch login ${this.opts.host} (or set REGISTRY_AUTH_FILE to an auth.json that has them)`,
    });
  }

  networkError(err: unknown, what = this.host): DarchError {
    if (err instanceof DarchError) return err;
    if (this.opts.signal?.aborted) {
      const r = this.opts.signal.reason as unknown;
      return r instanceof DarchError ? r : new DarchError('E_ABORTED', 'interrupted');
    }
    const code = errCode(err);
    if (TLS_VERIFY_CODES.has(code)) {
      return new DarchError('E_TLS', `cannot verify the TLS certificate of ${what}: ${code}`, {
        hint: `put the registry's CA certificate in /etc/containers/certs.d/${this.opts.host}/ca.crt (or pass --cert-dir DIR), or use --tls-verify=false for a local test registry`,
      });
    }
    if (looksLikePlainHttp(err) && this.opts.tlsVerify) {
      const plain = /wrong version number|packet length too long/i.test(String((err as Error)?.message));
      return new DarchError('E_TLS', plain ? `${what} does not speak TLS (a plain-HTTP registry?)` : `TLS handshake with ${what} failed (${describe(err)})`, {
        hint: 'if this registry serves plain HTTP, use --tls-verify=false (or list it in registry.insecure in config.toml)',
      });
    }
    return new DarchError('E_REGISTRY_UNREACHABLE', `cannot reach ${what}: ${describe(err)}`, {
      hint:
        code === 'ECONNREFUSED' || code === 'ENOTFOUND'
          ? 'check the host and port, and that the registry is running'
          : 'the network or the registry failed repeatedly (darch retried with backoff); run the command again to resume',
      cause: err,
    });
  }
}

export function scopeKey(scopes: string[]): string {
  return [...scopes].sort().join(' ') || '-';
}

export function describe(err: unknown): string {
  const code = errCode(err);
  const msg = (err instanceof Error ? err.message : String(err)).split('\n')[0]?.trim() ?? '';
  return code && !msg.includes(code) ? `${msg} (${code})` : msg;
}

/** Read a small body whole (manifests, token answers), refusing more than `max` bytes. */
export async function readSmall(body: Readable, max: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let n = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    n += chunk.length;
    if (n > max) {
      body.destroy();
      throw new DarchError('E_REGISTRY', `response larger than ${max} bytes where a small JSON document was expected`);
    }
    parts.push(chunk);
  }
  return Buffer.concat(parts);
}

/**
 * A fault-injecting HTTP proxy between darch and a plain-HTTP registry. Each rule matches
 * requests (method and URL) and applies a fault a number of times: answer a status (500,
 * 429) without asking the registry, cut the response body after N bytes (socket
 * destroyed), stall after N bytes (nothing more is sent, the socket stays open), or flip
 * one byte of the body. Every request is logged (method, URL, Range, status, whether it
 * carried Authorization) so tests can assert what went over the wire.
 */
import http from 'node:http';
import type net from 'node:net';

export type Fault =
  | { kind: 'status'; status: number; retryAfter?: string }
  | { kind: 'cut'; afterBytes: number }
  | { kind: 'stall'; afterBytes: number }
  | { kind: 'flip'; atByte: number }
  /** 307 to http://localhost:PORT/_storage/…: another origin, like blob storage behind a CDN. */
  | { kind: 'redirect' }
  /** Drop the Range header on the way, like a server or cache that ignores ranges (answers 200). */
  | { kind: 'ignore-range' };

export interface Rule {
  method?: string;
  /** Substring or pattern of the request URL. */
  url: string | RegExp;
  fault: Fault;
  /** How many matching requests get the fault (default 1; Infinity for all). */
  times?: number;
}

export interface LoggedRequest {
  method: string;
  url: string;
  host?: string;
  range?: string;
  status?: number;
  hadAuthorization: boolean;
  userAgent?: string;
  fault?: Fault['kind'];
  /** Body bytes sent to the client. */
  bytes: number;
}

export class FaultyProxy {
  readonly log: LoggedRequest[] = [];
  private rules: Array<Rule & { left: number }> = [];
  private readonly sockets = new Set<net.Socket>();
  private server!: http.Server;
  port = 0;

  /**
   * @param storageAuthorization what the pretend blob storage (/_storage/…) uses to fetch
   *   from the registry itself; the client must not send its own credentials there.
   */
  constructor(
    private readonly upstream: { host: string; port: number },
    private readonly storageAuthorization?: () => Promise<string>,
  ) {}

  get host(): string {
    return `127.0.0.1:${this.port}`;
  }

  async start(): Promise<this> {
    this.server = http.createServer((req, res) => this.handle(req, res));
    this.server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', () => r()));
    this.port = (this.server.address() as net.AddressInfo).port;
    return this;
  }

  addRule(rule: Rule): void {
    this.rules.push({ ...rule, left: rule.times ?? 1 });
  }

  clear(): void {
    this.rules = [];
    this.log.length = 0;
  }

  requests(match: string | RegExp, method = 'GET'): LoggedRequest[] {
    return this.log.filter((l) => l.method === method && (typeof match === 'string' ? l.url.includes(match) : match.test(l.url)));
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  private take(req: http.IncomingMessage): Fault | undefined {
    const rule = this.rules.find(
      (r) => r.left > 0 && (!r.method || r.method === req.method) && (typeof r.url === 'string' ? (req.url ?? '').includes(r.url) : r.url.test(req.url ?? '')),
    );
    if (!rule) return undefined;
    rule.left--;
    return rule.fault;
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const entry: LoggedRequest = {
      method: req.method ?? 'GET',
      url: req.url ?? '/',
      host: req.headers.host,
      range: req.headers.range,
      hadAuthorization: req.headers.authorization !== undefined,
      userAgent: req.headers['user-agent'],
      bytes: 0,
    };
    this.log.push(entry);
    const fault = (req.url ?? '').startsWith('/_storage/') ? undefined : this.take(req);
    entry.fault = fault?.kind;
    if (fault?.kind === 'status') {
      req.resume();
      entry.status = fault.status;
      res.writeHead(fault.status, { 'content-type': 'application/json', ...(fault.retryAfter ? { 'retry-after': fault.retryAfter } : {}) });
      res.end('{"errors":[{"code":"UNAVAILABLE","message":"injected fault"}]}');
      return;
    }
    if (fault?.kind === 'redirect') {
      req.resume();
      entry.status = 307;
      res.writeHead(307, { location: `http://localhost:${this.port}/_storage${req.url}` }).end();
      return;
    }
    if ((req.url ?? '').startsWith('/_storage/')) {
      const storagePath = (req.url ?? '').slice('/_storage'.length);
      void (this.storageAuthorization?.() ?? Promise.resolve(undefined)).then((auth) =>
        this.forward(req, res, entry, undefined, storagePath, auth ? { authorization: auth } : {}),
      );
      return;
    }
    this.forward(req, res, entry, fault, req.url ?? '/', {});
  }

  private forward(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    entry: LoggedRequest,
    fault: Fault | undefined,
    upstreamPath: string,
    extra: Record<string, string>,
  ): void {
    const headers = { ...req.headers, ...extra };
    if (fault?.kind === 'ignore-range') delete headers.range;
    if (extra.authorization === undefined && upstreamPath !== req.url) delete headers.authorization;
    const up = http.request({ host: this.upstream.host, port: this.upstream.port, method: req.method, path: upstreamPath, headers }, (upRes) => {
      entry.status = upRes.statusCode;
      // The upstream's own header spelling: GRUB's http client matches "Content-Length: " case-sensitively.
      res.writeHead(upRes.statusCode ?? 502, upRes.rawHeaders);
      let sent = 0;
      let over = false;
      upRes.on('data', (chunk: Buffer) => {
        if (over) return;
        let out = chunk;
        if (fault?.kind === 'flip' && fault.atByte >= sent && fault.atByte < sent + chunk.length) {
          out = Buffer.from(chunk);
          out[fault.atByte - sent] = (out[fault.atByte - sent] ?? 0) ^ 0xff;
        }
        if ((fault?.kind === 'cut' || fault?.kind === 'stall') && sent + out.length >= fault.afterBytes) {
          const head = out.subarray(0, fault.afterBytes - sent);
          sent += head.length;
          entry.bytes = sent;
          over = true;
          upRes.destroy();
          res.write(head, () => {
            // cut: hang up mid-body; stall: keep the socket open and send nothing more.
            // end(), not destroy(): a reset could discard bytes still in flight.
            if (fault.kind === 'cut') res.socket?.end();
          });
          return;
        }
        sent += out.length;
        entry.bytes = sent;
        if (!res.write(out)) {
          upRes.pause();
          res.once('drain', () => upRes.resume());
        }
      });
      upRes.on('end', () => {
        if (!over) res.end();
      });
      upRes.on('error', () => undefined);
    });
    up.on('error', () => {
      if (!res.headersSent) res.writeHead(502);
      res.end();
    });
    req.pipe(up);
  }
}

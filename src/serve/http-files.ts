/**
 * HTTP answers for files as network boot clients fetch them: GET and HEAD, one byte range
 * (busybox wget -c resumes with `Range: bytes=N-`), strong ETags with If-None-Match and
 * If-Range, streamed from disk. RFC 9110's rules, only the parts boot clients use.
 */
import { createReadStream } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream/promises';

export interface FileBody {
  size: number;
  etag: string;
  type: string;
  /** Bytes [start, end] inclusive. */
  open(start: number, end: number): NodeJS.ReadableStream;
}

export function diskBody(file: string, size: number, etag: string, type = 'application/octet-stream'): FileBody {
  return { size, etag, type, open: (start, end) => createReadStream(file, { start, end }) };
}

export function bufferBody(data: Buffer, etag: string, type: string): FileBody {
  return {
    size: data.length,
    etag,
    type,
    open: (start, end) => {
      const { Readable } = process.getBuiltinModule('node:stream');
      return Readable.from([data.subarray(start, end + 1)]);
    },
  };
}

/** `bytes=a-b`, `bytes=a-`, `bytes=-n` against a size: the range, 'unsatisfiable', or undefined to send it all. */
export function parseRange(header: string | undefined, size: number): { start: number; end: number } | 'unsatisfiable' | undefined {
  if (!header) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  // Several ranges or another unit: the whole file, as the spec allows.
  if (!m || (m[1] === '' && m[2] === '')) return undefined;
  if (m[1] === '') {
    const n = Number(m[2]);
    if (n === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (start >= size || end < start) return 'unsatisfiable';
  return { start, end };
}

function etagMatches(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  return header.split(',').some((t) => {
    const v = t.trim();
    return v === '*' || v === etag || v === `W/${etag}`;
  });
}

/** Answers req with body; resolves when the response is finished (or the client went away). */
export async function sendFile(req: IncomingMessage, res: ServerResponse, body: FileBody): Promise<{ status: number; bytes: number }> {
  res.setHeader('ETag', body.etag);
  res.setHeader('Accept-Ranges', 'bytes');
  res.setHeader('Content-Type', body.type);
  res.setHeader('Cache-Control', 'no-cache');
  // One file per connection, closed by the server while the client still listens: boot
  // clients open a connection per file anyway, and GRUB starts its source ports at the same
  // number on every boot, so a connection left open across a reboot collides with the next
  // boot's in NATs and qemu's user network ("connection timeout").
  res.setHeader('Connection', 'close');
  if (etagMatches(req.headers['if-none-match'], body.etag)) {
    res.writeHead(304).end();
    return { status: 304, bytes: 0 };
  }
  const ifRange = req.headers['if-range'];
  let range = parseRange(req.headers.range, body.size);
  if (ifRange !== undefined && ifRange !== body.etag) range = undefined;
  if (range === 'unsatisfiable') {
    res.setHeader('Content-Range', `bytes */${body.size}`);
    res.writeHead(416).end();
    return { status: 416, bytes: 0 };
  }
  const start = range?.start ?? 0;
  const end = range?.end ?? body.size - 1;
  const length = Math.max(0, end - start + 1);
  res.setHeader('Content-Length', length);
  if (range) res.setHeader('Content-Range', `bytes ${start}-${end}/${body.size}`);
  const status = range ? 206 : 200;
  res.writeHead(status);
  if (req.method === 'HEAD' || length === 0) {
    res.end();
    return { status, bytes: 0 };
  }
  let bytes = 0;
  const src = body.open(start, end);
  src.on('data', (c: Buffer) => (bytes += c.length));
  // A client that hangs up mid-file is normal (a stalled wget restarts): not an error here.
  await pipeline(src, res).catch(() => undefined);
  return { status, bytes };
}

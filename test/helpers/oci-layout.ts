/**
 * Assemble an OCI image layout from layer tar files a test made itself (GNU tar, tar-stream),
 * compressing each as asked, so `darch images import oci:DIR:ref` and umoci see real layers.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { gzipSync } from 'node:zlib';
import tar from 'tar-stream';

export const LAYER_MTIME = new Date(1_600_000_000_000);

export type TarEntry = Partial<tar.Header> & { name: string; content?: string };

/** A layer tar written by tar-stream: lets a test put hard links to lower layers, whiteouts and bad names in it. */
export async function tarStreamLayer(out: string, entries: TarEntry[]): Promise<void> {
  const pack = tar.pack();
  const done = pipeline(pack, createWriteStream(out));
  for (const e of entries) {
    const { content, ...h } = e;
    await new Promise<void>((resolve, reject) =>
      pack.entry({ uid: 0, gid: 0, mode: h.type === 'directory' ? 0o755 : 0o644, mtime: LAYER_MTIME, ...h } as tar.Header, content ?? '', (err) =>
        err ? reject(err) : resolve(),
      ),
    );
  }
  pack.finalize();
  await done;
}

export type LayerCompression = 'gzip' | 'zstd' | 'none';

export interface LayerSpec {
  /** An uncompressed tar file. */
  tar: string;
  compression: LayerCompression;
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function putBlob(dir: string, data: Buffer): Promise<string> {
  const h = sha(data);
  await writeFile(path.join(dir, 'blobs', 'sha256', h), data);
  return `sha256:${h}`;
}

export async function writeOciLayout(dir: string, ref: string, layers: LayerSpec[], labels: Record<string, string> = {}): Promise<void> {
  await mkdir(path.join(dir, 'blobs', 'sha256'), { recursive: true });
  await writeFile(path.join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  const descs = [];
  const diffIds = [];
  for (const l of layers) {
    const raw = await readFile(l.tar);
    diffIds.push(`sha256:${sha(raw)}`);
    let blob: Buffer;
    let mediaType: string;
    if (l.compression === 'gzip') {
      blob = gzipSync(raw);
      mediaType = 'application/vnd.oci.image.layer.v1.tar+gzip';
    } else if (l.compression === 'zstd') {
      const r = spawnSync('zstd', ['-q', '-c'], { input: raw, maxBuffer: 1 << 30 });
      if (r.status !== 0) throw new Error(`zstd failed: ${r.stderr}`);
      blob = r.stdout;
      mediaType = 'application/vnd.oci.image.layer.v1.tar+zstd';
    } else {
      blob = raw;
      mediaType = 'application/vnd.oci.image.layer.v1.tar';
    }
    descs.push({ mediaType, digest: await putBlob(dir, blob), size: blob.length });
  }
  const config = Buffer.from(
    JSON.stringify({
      created: '2024-01-01T00:00:00Z',
      architecture: 'amd64',
      os: 'linux',
      config: { Labels: labels },
      rootfs: { type: 'layers', diff_ids: diffIds },
      history: layers.map(() => ({ created: '2024-01-01T00:00:00Z', created_by: 'test' })),
    }),
  );
  const configDesc = { mediaType: 'application/vnd.oci.image.config.v1+json', digest: await putBlob(dir, config), size: config.length };
  const manifest = Buffer.from(
    JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: configDesc, layers: descs }),
  );
  const mdesc = { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: await putBlob(dir, manifest), size: manifest.length };
  await writeFile(
    path.join(dir, 'index.json'),
    JSON.stringify({ schemaVersion: 2, manifests: [{ ...mdesc, annotations: { 'org.opencontainers.image.ref.name': ref } }] }),
  );
}

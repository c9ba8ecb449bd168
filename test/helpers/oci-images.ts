/**
 * Test images with several layers, written as OCI layouts: a base image copied from a
 * layout (e.g. the store `darch demo` filled) plus layers of random, incompressible data,
 * so each layer has a known size and a digest no other test shares.
 */
import { createHash, randomBytes } from 'node:crypto';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import tar from 'tar-stream';

const REF = 'org.opencontainers.image.ref.name';

export interface LayoutImage {
  ref: string;
  manifestDigest: string;
  manifestSize: number;
  configDigest: string;
  configSize: number;
  layers: Array<{ digest: string; size: number }>;
}

function sha(b: Buffer): string {
  return `sha256:${createHash('sha256').update(b).digest('hex')}`;
}

async function tarOf(name: string, content: Buffer): Promise<Buffer> {
  const pack = tar.pack();
  const parts: Buffer[] = [];
  pack.on('data', (b: unknown) => void parts.push(b as Buffer));
  const done = new Promise<void>((r) => pack.on('end', () => r()));
  pack.entry({ name, size: content.length, mode: 0o644, mtime: new Date(1704067200000), uid: 0, gid: 0 }, content);
  pack.finalize();
  await done;
  return Buffer.concat(parts);
}

async function readIndex(
  dir: string,
): Promise<{ manifests: Array<{ digest: string; mediaType: string; size: number; annotations?: Record<string, string> }> }> {
  try {
    return JSON.parse(await readFile(path.join(dir, 'index.json'), 'utf8'));
  } catch {
    return { manifests: [] };
  }
}

async function putBlob(dir: string, data: Buffer): Promise<string> {
  const d = sha(data);
  await mkdir(path.join(dir, 'blobs', 'sha256'), { recursive: true });
  await writeFile(path.join(dir, 'blobs', 'sha256', d.slice(7)), data);
  return d;
}

/**
 * Write `toRef` into layout `outDir`: the image `fromRef` of layout `fromDir` plus one new
 * layer per entry of `addLayers` (bytes of random data each).
 */
export async function deriveImage(fromDir: string, fromRef: string, outDir: string, toRef: string, addLayers: number[]): Promise<LayoutImage> {
  const src = await readIndex(fromDir);
  const base = src.manifests.find((m) => m.annotations?.[REF] === fromRef);
  if (!base) throw new Error(`${fromRef} not in ${fromDir}`);
  const blob = (d: string) => path.join(fromDir, 'blobs', 'sha256', d.slice(7));
  const manifest = JSON.parse(await readFile(blob(base.digest), 'utf8'));
  const config = JSON.parse(await readFile(blob(manifest.config.digest), 'utf8'));
  await mkdir(path.join(outDir, 'blobs', 'sha256'), { recursive: true });
  await writeFile(path.join(outDir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  for (const l of manifest.layers) {
    if (fromDir !== outDir) await copyFile(blob(l.digest), path.join(outDir, 'blobs', 'sha256', l.digest.slice(7)));
  }
  for (const [i, size] of addLayers.entries()) {
    const t = await tarOf(`data/${toRef.replace(/[^a-z0-9]/gi, '_')}-${i}.bin`, randomBytes(size));
    const gz = gzipSync(t, { level: 1 });
    const digest = await putBlob(outDir, gz);
    manifest.layers.push({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest, size: gz.length });
    config.rootfs.diff_ids.push(sha(t));
    (config.history ??= []).push({ created: new Date().toISOString(), created_by: `test layer ${i}` });
  }
  config.created = new Date().toISOString();
  const cfg = Buffer.from(JSON.stringify(config));
  manifest.config = { ...manifest.config, mediaType: 'application/vnd.oci.image.config.v1+json', digest: await putBlob(outDir, cfg), size: cfg.length };
  manifest.mediaType = 'application/vnd.oci.image.manifest.v1+json';
  const man = Buffer.from(JSON.stringify(manifest));
  const manDigest = await putBlob(outDir, man);
  const idx = await readIndex(outDir);
  idx.manifests = idx.manifests.filter((m) => m.annotations?.[REF] !== toRef);
  idx.manifests.push({ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: manDigest, size: man.length, annotations: { [REF]: toRef } });
  await writeFile(path.join(outDir, 'index.json'), JSON.stringify({ schemaVersion: 2, ...idx }));
  return {
    ref: toRef,
    manifestDigest: manDigest,
    manifestSize: man.length,
    configDigest: manifest.config.digest,
    configSize: cfg.length,
    layers: manifest.layers.map((l: { digest: string; size: number }) => ({ digest: l.digest, size: l.size })),
  };
}

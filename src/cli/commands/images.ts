/** `darch images …`: the local OCI image store. */
import path from 'node:path';
import type { Command } from 'commander';
import { Option } from 'commander';
import { DarchError } from '../../lib/errors.js';
import { emit, table } from '../output.js';
import { byteProgress } from '../progress.js';
import { formatAge, formatBytes } from '../../lib/format.js';
import { ui } from '../ui.js';
import { detectFormat, importImage, type ImportFormat, parseOciDirSource } from '../../oci/importer.js';
import { normalizeRef, splitRefName } from '../../oci/reference.js';
import type { ImageStore } from '../../oci/store.js';
import type { Context } from '../context.js';
import type { ContextFactory } from '../globals.js';
import { registerRegistryImageCommands } from './registry.js';

export interface ImageSummary {
  name: string;
  repository: string;
  tag: string;
  digest: string;
  mediaType: string;
  created?: string;
  /** Bytes of config and layers as stored (compressed). */
  size: number;
  layers: number;
  architecture?: string;
  os?: string;
}

export async function summarize(store: ImageStore, name: string): Promise<ImageSummary> {
  const ref = await store.resolve(name);
  const { repository, tag } = splitRefName(ref.name);
  try {
    const img = await store.resolveImage(ref.name);
    const size = img.manifest.config.size + img.manifest.layers.reduce((a, l) => a + l.size, 0);
    return {
      name: ref.name,
      repository,
      tag,
      digest: ref.descriptor.digest,
      mediaType: ref.descriptor.mediaType,
      created: img.config.created,
      size,
      layers: img.manifest.layers.length,
      architecture: img.config.architecture,
      os: img.config.os,
    };
  } catch (err) {
    // One damaged image must not hide the others in a listing.
    ui.debug(`cannot read ${ref.name}: ${(err as Error).message}`);
    return { name: ref.name, repository, tag, digest: ref.descriptor.digest, mediaType: ref.descriptor.mediaType, size: 0, layers: 0 };
  }
}

/**
 * The source's format, once the policy has let it in. OCI layouts and archives are container
 * images like any other: the signature policy's
 * scopes for their transport (`oci`, `oci-archive`, `docker-archive`, by path) decide, as
 * for skopeo. They carry no signatures darch checks, so only a scope that takes them
 * unsigned lets them in. Root file system tarballs are not container images: no policy.
 */
async function refuseUnlessPolicyAllows(c: Context, source: string, format: ImportFormat | undefined): Promise<ImportFormat> {
  const oci = parseOciDirSource(source);
  const detected = oci ? 'oci-dir' : source === '-' ? 'rootfs' : (format ?? (await detectFormat(source)));
  const kind = detected === 'oci-dir' ? 'oci' : detected;
  if (kind === 'rootfs') return detected;
  const { requirementsForPath } = await import('../../trust/policy.js');
  const trust = await c.trust();
  const file = path.resolve(oci?.dir ?? source);
  const { scope, requirements } = requirementsForPath(trust.policy.policy, kind, file);
  if (requirements.every((r) => r.type === 'insecureAcceptAnything')) return detected;
  throw new DarchError(
    'E_UNTRUSTED',
    `${source} is refused: ${trust.policy.file ?? 'the policy'} (${scope}) does not take ${kind} images unsigned, and they carry no signatures darch checks`,
    {
      hint: `pull it from a registry where it is signed, or allow the path in the policy (transports.${kind}); nothing was imported`,
    },
  );
}

export function registerImages(images: Command, ctx: ContextFactory): void {
  images
    .command('import')
    .description('import a root file system tarball, an OCI archive, a docker-save archive or an OCI layout (oci:DIR[:REF])')
    .argument('<source>', 'a file (.tar, .tar.gz, .tar.zst, .tar.xz), - for stdin, or oci:DIR[:REF]')
    .argument('<name:tag>', 'the name to give the image')
    .addOption(new Option('--format <format>', 'do not detect the format').choices(['rootfs', 'oci-archive', 'docker-archive', 'oci-dir']))
    .option('--source-ref <ref>', 'which image to take from an archive or layout holding several')
    .addOption(new Option('--compression <kind>', 'layer compression for root file system tarballs').choices(['gzip', 'none']))
    .action(async (source: string, target: string, opts: { format?: ImportFormat; sourceRef?: string; compression?: 'gzip' | 'none' }, cmd: Command) => {
      const c = await ctx(cmd);
      const store = await c.imageStore();
      // The format is detected once: the policy's transport depends on it, and so does the import.
      const format = await refuseUnlessPolicyAllows(c, source, opts.format);
      ui.step(`importing ${source} as ${normalizeRef(target)}`);
      const res = await importImage(store, source, target, {
        format,
        sourceRef: opts.sourceRef,
        compression: opts.compression ?? c.config.store.compression,
        signal: c.signal,
        report: c.report,
      });
      ui.success(`imported ${res.name} (${res.format}, ${res.layers} layer${res.layers === 1 ? '' : 's'}, ${formatBytes(res.bytesWritten)} new)`);
      await emit(res, (r) => r.digest);
    });

  registerRegistryImageCommands(images, ctx);

  images
    .command('list')
    .alias('ls')
    .description('list images in the local store')
    .option('--names', 'print only NAME:TAG, one per line')
    .option('--digests', 'show full digests')
    .action(async (opts: { names?: boolean; digests?: boolean }, cmd: Command) => {
      const store = await (await ctx(cmd)).imageStore();
      const refs = await store.refs();
      const list = await Promise.all(refs.map((r) => summarize(store, r.name)));
      await emit({ images: list }, ({ images: l }) => {
        if (opts.names) return l.map((i) => i.name).join('\n');
        if (l.length === 0) {
          ui.info('no images yet: `darch images import` or `darch build` adds one');
          return undefined;
        }
        return table(
          ['REPOSITORY', 'TAG', 'IMAGE ID', 'CREATED', 'SIZE'],
          l.map((i) => [
            i.repository,
            i.tag,
            opts.digests ? i.digest : i.digest.slice(7, 19),
            formatAge(i.created ? new Date(i.created) : undefined),
            formatBytes(i.size),
          ]),
        );
      });
    });

  images
    .command('inspect')
    .description('show an image: manifest, config and layers')
    .argument('<image>', 'NAME[:TAG] or digest')
    .action(async (image: string, _opts: unknown, cmd: Command) => {
      const store = await (await ctx(cmd)).imageStore();
      const img = await store.resolveImage(image);
      const data = {
        name: img.name,
        digest: img.descriptor.digest,
        manifestDigest: img.manifestDigest,
        mediaType: img.descriptor.mediaType,
        created: img.config.created,
        architecture: img.config.architecture,
        os: img.config.os,
        config: img.config.config ?? {},
        layers: img.manifest.layers.map((l, i) => ({ ...l, diffId: img.config.rootfs?.diff_ids?.[i] })),
        history: img.config.history ?? [],
        manifest: img.manifest,
      };
      await emit(data, (d) =>
        [
          `Name:          ${d.name}`,
          `Digest:        ${d.digest}`,
          `Created:       ${d.created ?? '-'}`,
          `Platform:      ${d.os}/${d.architecture}`,
          `Layers:        ${d.layers.length}`,
          ...d.layers.map((l) => `  ${l.digest}  ${formatBytes(l.size).padStart(9)}  ${l.mediaType}`),
          `Cmd:           ${JSON.stringify(d.config.Cmd ?? d.config.Entrypoint ?? [])}`,
        ].join('\n'),
      );
    });

  images
    .command('tag')
    .description('give an image another name')
    .argument('<source>', 'existing NAME[:TAG] or digest')
    .argument('<target>', 'new NAME[:TAG]')
    .action(async (source: string, target: string, _o: unknown, cmd: Command) => {
      const store = await (await ctx(cmd)).imageStore();
      const name = normalizeRef(target);
      const res = await store.withLock(async () => {
        const ref = await store.resolve(source);
        const { annotations: _a, ...desc } = ref.descriptor;
        await store.setRef(name, desc);
        return { source: ref.name, target: name, digest: desc.digest };
      });
      ui.success(`tagged ${res.source} as ${res.target}`);
      await emit(res, () => undefined);
    });

  images
    .command('remove')
    .alias('rm')
    .description('remove image names (blobs stay until `darch images prune`)')
    .argument('<image...>', 'NAME[:TAG]')
    .option('--prune', 'also remove blobs no image uses any more')
    .action(async (names: string[], opts: { prune?: boolean }, cmd: Command) => {
      const store = await (await ctx(cmd)).imageStore();
      const res = await store.withLock(async () => {
        const removed: string[] = [];
        for (const n of names) {
          const ref = await store.resolve(n);
          await store.removeRef(ref.name);
          removed.push(ref.name);
        }
        const pruned = opts.prune ? await store.prune() : undefined;
        return { removed, ...(pruned ? { bytesFreed: pruned.bytesFreed, blobsRemoved: pruned.removed.length } : {}) };
      });
      for (const r of res.removed) ui.success(`removed ${r}`);
      await emit(res, () => undefined);
    });

  images
    .command('prune')
    .description('delete blobs no image name reaches, and leftovers of interrupted imports')
    .option('-n, --dry-run', 'only report what would be removed')
    .action(async (opts: { dryRun?: boolean }, cmd: Command) => {
      const store = await (await ctx(cmd)).imageStore();
      const res = await store.withLock(() => store.prune(Boolean(opts.dryRun)));
      ui.success(
        `${opts.dryRun ? 'would remove' : 'removed'} ${res.removed.length} blob(s), ${formatBytes(res.bytesFreed)}${res.tempFilesRemoved ? `, ${res.tempFilesRemoved} leftover temp file(s)` : ''}`,
      );
      await emit({ dryRun: Boolean(opts.dryRun), ...res }, () => undefined);
    });

  images
    .command('verify')
    .description('re-hash every blob and check every image has all it needs')
    .action(async (_o: unknown, cmd: Command) => {
      const store = await (await ctx(cmd)).imageStore();
      await store.init();
      const all = await store.listBlobs();
      const progress = byteProgress(
        'verifying',
        all.reduce((a, b) => a + b.size, 0),
      );
      const report = await store.verify((_d, size) => progress.tick(size));
      progress.done();
      if (report.problems.length > 0) {
        // Under --json the error document carries the report, so stdout stays one document.
        if (!ui.json) {
          process.stdout.write(
            table(
              ['DIGEST', 'PROBLEM', 'USED BY', 'DETAIL'],
              report.problems.map((p) => [p.digest.slice(0, 19), p.problem, p.refs.join(',') || '-', p.detail]),
            ),
          );
        }
        throw new DarchError('E_VERIFY_FAILED', `${report.problems.length} problem(s) in the image store`, {
          hint: 'remove the affected images (`darch images remove`), run `darch images prune`, and import or pull them again',
          details: { ...report },
        });
      }
      await emit({ ok: true, ...report }, () => undefined);
      ui.success(`${report.blobsChecked} blob(s), ${formatBytes(report.bytesChecked)}: all match their digests`);
    });
}

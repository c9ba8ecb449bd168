/** `darch delta …`: binary deltas between images, applied against what a machine has staged (src/stage/delta.ts). */
import type { Command } from 'commander';
import { Option } from 'commander';
import { usageError } from '../../lib/errors.js';
import { formatBytes } from '../../lib/format.js';
import { applyDelta, createDelta, DEFAULT_DELTA_LEVEL, readDeltaInfo } from '../../stage/delta.js';
import { DEFAULT_SEGMENT_BYTES } from '../../stage/delta-segments.js';
import { SQUASHFS_COMPRESSORS, type SquashfsCompressor } from '../../stage/squashfs.js';
import { ROOTFS_FILE } from '../../stage/store.js';
import type { ContextFactory } from '../globals.js';
import { emit } from '../output.js';
import { ui } from '../ui.js';
import { afterStaging, openStageStore } from './stage.js';
import { connectOptions, type ConnectFlags, int, settings } from './registry.js';

const collect = (v: string, prev: string[]) => [...prev, v];

export function registerDelta(delta: Command, ctx: ContextFactory): void {
  delta
    .command('create')
    .description('a delta that stages TO on a machine that has FROM staged (a zstd patch of the root, a few % of the image)')
    .argument('<from>', 'the image machines have staged: NAME[:TAG] or digest in the image store')
    .argument('<to>', 'the image they update to')
    .requiredOption('-o, --output <file>', 'where to write the delta')
    .option('--level <n>', `zstd level, 1-22 (default ${DEFAULT_DELTA_LEVEL}; lower is faster and larger)`, (v: string) => Number(v))
    .option(
      '--segment-size <MiB>',
      `patch roots over twice this in segments of about this size, so applying needs memory for one segment, not the root (default ${DEFAULT_SEGMENT_BYTES / 2 ** 20}; 0: one patch, up to 2 GiB roots)`,
    )
    .addOption(
      new Option('--compression <c>', 'the squashfs compressor the machines stage with (default: stage.compression)').choices([...SQUASHFS_COMPRESSORS]),
    )
    .action(
      async (from: string, to: string, opts: { output: string; level?: number; segmentSize?: string; compression?: SquashfsCompressor }, cmd: Command) => {
        const c = await ctx(cmd);
        if (!opts.output) throw usageError('--output needs a file name', 'darch delta create os:1 os:2 -o os-1-2.delta');
        const segment = opts.segmentSize === undefined ? undefined : Number(opts.segmentSize);
        if (segment !== undefined && (!Number.isInteger(segment) || segment < 0 || segment > 1024))
          throw usageError(
            `--segment-size must be a whole number of MiB from 0 to 1024, not "${opts.segmentSize}"`,
            'darch delta create os:1 os:2 -o os-1-2.delta --segment-size 128',
          );
        const store = await c.imageStore();
        const res = await createDelta(store, from, to, opts.output, {
          tmpDir: store.tmpDir,
          level: opts.level,
          ...(segment !== undefined ? { segmentBytes: segment * 2 ** 20 } : {}),
          compressor: opts.compression ?? c.config.stage.compression,
          signal: c.signal,
          report: c.report,
        });
        ui.success(
          `wrote ${res.file}: ${formatBytes(res.size)}, ${((100 * res.size) / res.info.squashfs.size).toFixed(1)} % of the ${formatBytes(res.info.squashfs.size)} squashfs, in ${res.seconds.toFixed(1)} s`,
        );
        const { manifest: _m, config: _c, ...to_ } = res.info.to;
        await emit({ file: res.file, size: res.size, seconds: res.seconds, ...res.info, to: to_ }, (r) => r.file);
      },
    );

  delta
    .command('apply')
    .description('stage the image a delta rebuilds, from the staged image it was made against (the same bytes `stage upload` writes)')
    .argument('<file>', 'a delta from `darch delta create`')
    .option('-t, --tag <tag>', 'a name for the staged image, repeatable (default: the image name the delta carries)', collect, [])
    .option('--base <staged>', 'the staged image (id or tag) to start from (default: the one the delta names, found by its config digest)')
    .option('-f, --force', 're-stage even if the tag is already staged (the tag moves to the new image)')
    .option('--verity', 'add a dm-verity hash tree and boot through it (default: stage.verity)')
    .option('--no-verity', 'stage without dm-verity even when stage.verity is on')
    .action(async (file: string, opts: { tag?: string[]; base?: string; force?: boolean; verity?: boolean }, cmd: Command) => {
      const c = await ctx(cmd);
      const res = await applyDelta(openStageStore(c), file, {
        tags: opts.tag,
        base: opts.base,
        force: opts.force,
        keep: c.config.stage.keep,
        verity: opts.verity ?? c.config.stage.verity,
        signal: c.signal,
        steps: c.stageSteps,
        report: c.report,
      });
      await afterStaging(c, res.removed);
      ui.success(
        `staged ${res.tags.join(', ')} as ${res.id} from ${res.base}: ${formatBytes(res.meta.sizes[ROOTFS_FILE] ?? 0)} squashfs in ${res.stats.seconds.toFixed(1)} s`,
      );
      await emit({ id: res.id, tags: res.tags, dir: res.dir, base: res.base, meta: res.meta, removed: res.removed }, (r) => r.id);
    });

  delta
    .command('inspect')
    .description('what a delta starts from, what it rebuilds, and its checks')
    .argument('<file>', 'a delta from `darch delta create`')
    .action(async (file: string, _opts: unknown, cmd: Command) => {
      await ctx(cmd);
      const info = await readDeltaInfo(file);
      const { manifest: _m, config: _c, ...to } = info.to;
      await emit({ ...info, to }, (i) =>
        [
          `from     ${i.from.name ?? '-'} (config ${i.from.config}, root ${formatBytes(i.from.rootSize)})`,
          `to       ${i.to.name} (manifest ${i.to.manifestDigest}, root ${formatBytes(i.to.rootSize)})`,
          `squashfs ${i.squashfs.compression}, ${formatBytes(i.squashfs.size)}, sha256 ${i.squashfs.sha256}`,
          `patch    ${formatBytes(i.patch.size)} (zstd -${i.patch.level}, window 2^${i.patch.windowLog}), made ${i.created}`,
        ].join('\n'),
      );
    });

  connectOptions(
    delta
      .command('push')
      .description('attach a delta to its image in the registry, where `darch update` finds it (with the signatures of FILE.sig)')
      .argument('<file>', 'a delta from `darch delta create`')
      .argument('[ref]', 'the image it rebuilds as machines follow it: HOST[:PORT]/NAME:TAG (default: the name in the delta)')
      .option('--chunk-size <MiB>', 'upload in chunks of this size (0: one request; config registry.chunk_size_mib)'),
  ).action(async (file: string, ref: string | undefined, opts: ConnectFlags & { chunkSize?: string }, cmd: Command) => {
    const c = await ctx(cmd);
    const { pushDelta } = await import('../../registry/delta.js');
    const res = await pushDelta(file, ref, {
      ...settings(c, opts),
      chunkSize: int('--chunk-size', opts.chunkSize, c.config.registry.chunk_size_mib) * 1024 * 1024,
    });
    ui.success(
      `attached ${file} (${formatBytes(res.size)}${res.uploaded ? '' : ', already there'}) to ${res.destination} (${res.subject.slice(0, 19)}) as ${res.digest.slice(0, 19)}, ${res.via === 'api' ? "through the registry's referrers API" : `listed under the tag ${res.subject.replace(':', '-')}`}${res.signatures ? `, with ${res.signatures} signature(s)` : ', unsigned'}`,
    );
    await emit(res, (r) => r.digest);
  });

  connectOptions(
    delta
      .command('list')
      .description('the deltas attached to an image in a registry: which image each starts from, and its size')
      .argument('<ref>', 'HOST[:PORT]/NAME:TAG or @DIGEST'),
  ).action(async (ref: string, opts: ConnectFlags, cmd: Command) => {
    const c = await ctx(cmd);
    const { listDeltas } = await import('../../registry/delta.js');
    const res = await listDeltas(ref, settings(c, opts));
    await emit(res, (r) =>
      r.deltas.length
        ? r.deltas
            .map((d) => `${d.digest.slice(0, 19)}  from ${d.fromName ?? d.from.slice(0, 19)}  ${formatBytes(d.size)}  ${d.created ?? ''}`.trimEnd())
            .join('\n')
        : `no deltas are attached to ${r.image} (${r.subject.slice(0, 19)})`,
    );
  });
}

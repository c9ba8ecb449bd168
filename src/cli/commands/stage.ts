/** `darch stage …`: staged images (squashfs + kernel + initramfs) that a machine can boot. */
import { readOrderFile } from '../../stage/boot-order.js';
import type { Command } from 'commander';
import { Option } from 'commander';
import { DarchError, usageError } from '../../lib/errors.js';
import { emit, table } from '../output.js';
import { byteProgress } from '../progress.js';
import { formatAge, formatBytes } from '../../lib/format.js';
import { ui } from '../ui.js';
import { normalizeRef } from '../../oci/reference.js';
import { exportStaged, importBundle } from '../../stage/bundle.js';
import { bootedId } from '../../stage/protect.js';
import { SQUASHFS_COMPRESSORS, type SquashfsCompressor, type SquashfsWriter } from '../../stage/squashfs.js';
import { stageImage } from '../../stage/stage.js';
import { verityFileOf } from '../../stage/verity.js';
import { protectedIds, ROOTFS_FILE, StageStore, type StagedImage } from '../../stage/store.js';
import { type Context, lockTimeout } from '../context.js';
import { reconcileBoot } from '../../boot/reconcile.js';
import { sweepDeadOwners } from '../../lib/scratch.js';
import type { ContextFactory } from '../globals.js';

const collect = (v: string, prev: string[]) => [...prev, v];

function normalizeOrUndefined(ref: string): string | undefined {
  try {
    return normalizeRef(ref);
  } catch {
    return undefined;
  }
}

export function openStageStore(c: Context): StageStore {
  return new StageStore(c.paths.stageDir, lockTimeout(c.config), c.protection, c.stateWritable);
}

/** After an image is staged: the boot side learns of it, and retention says what it removed. */
export async function afterStaging(c: Context, removed: string[]): Promise<void> {
  await reconcileBoot(c.paths, c.config, lockTimeout(c.config), c.report);
  for (const r of removed) ui.info(`retention (stage.keep = ${c.config.stage.keep}): removed staged image ${r}`);
}

interface StagedSummary {
  id: string;
  tags: string[];
  created?: string;
  size: number;
  kernel?: string;
  source?: string;
  sourceDigest?: string;
  booted: boolean;
  /** Staged with a dm-verity hash tree: every boot checks the squashfs (stage upload --verity). */
  verity: boolean;
  problem?: string;
  dir: string;
}

function summary(i: StagedImage, booted?: string): StagedSummary {
  return {
    id: i.id,
    tags: i.tags,
    created: i.meta?.created,
    size: i.meta?.totalSize ?? 0,
    kernel: i.meta?.kernel?.version ?? i.meta?.kernel?.path,
    source: i.meta?.source?.name,
    sourceDigest: i.meta?.source?.digest,
    booted: i.id === booted,
    verity: Boolean(i.meta?.sizes?.[verityFileOf(ROOTFS_FILE)]),
    ...(i.problem ? { problem: i.problem } : {}),
    dir: i.dir,
  };
}

export function registerStage(stage: Command, ctx: ContextFactory): void {
  stage
    .command('upload')
    .alias('add')
    .description('stage an image from the local store (no container runtime, no root, nothing from the image runs)')
    .argument('<image>', 'NAME[:TAG] or digest in the image store')
    .option('-t, --tag <tag>', 'a name for the staged image, repeatable (default: the image name)', collect, [])
    .option('-f, --force', 're-stage even if the tag is already staged (the tag moves to the new image)')
    .addOption(new Option('--compression <c>', 'squashfs compressor (default: stage.compression)').choices([...SQUASHFS_COMPRESSORS]))
    .option('--block-size <bytes>', 'squashfs block size', (v: string) => Number(v))
    .addOption(new Option('--writer <prog>', 'squashfs writer (default: tar2sqfs if installed, else sqfstar)').choices(['sqfstar', 'tar2sqfs']))
    .option('--two-pass', 'index every layer before writing (the only way with sqfstar; one pass is faster and gives the same root)')
    .option('--verity', 'add a dm-verity hash tree and boot through it: a changed block stops the boot (default: stage.verity)')
    .option('--no-verity', 'stage without dm-verity even when stage.verity is on')
    .option(
      '--order <file>',
      'write the files this boot order lists first, in that order (a trace from `darch boot trace`, or one path per line; default: the trace of the newest staged version of the image)',
    )
    .option('--no-order', "write the files in the image's own order, even when a version of it was traced")
    .action(
      async (
        image: string,
        opts: {
          order?: string | false;
          tag?: string[];
          force?: boolean;
          compression?: SquashfsCompressor;
          blockSize?: number;
          writer?: SquashfsWriter;
          twoPass?: boolean;
          verity?: boolean;
        },
        cmd: Command,
      ) => {
        const c = await ctx(cmd);
        if (
          opts.blockSize !== undefined &&
          (!Number.isInteger(opts.blockSize) || opts.blockSize < 4096 || opts.blockSize > 1048576 || (opts.blockSize & (opts.blockSize - 1)) !== 0)
        ) {
          throw usageError(`--block-size ${opts.blockSize} is not a power of two between 4096 and 1048576`);
        }
        const res = await stageImage(await c.imageStore(), openStageStore(c), image, {
          tags: opts.tag,
          force: opts.force,
          compressor: opts.compression ?? c.config.stage.compression,
          blockSize: opts.blockSize,
          writer: opts.writer,
          passes: opts.twoPass ? 2 : undefined,
          keep: c.config.stage.keep,
          verity: opts.verity ?? c.config.stage.verity,
          ...(opts.order === false ? { order: false as const } : opts.order ? { order: { ...(await readOrderFile(opts.order)), source: opts.order } } : {}),
          signal: c.signal,
          steps: c.stageSteps,
          report: c.report,
        });
        await afterStaging(c, res.removed);
        ui.success(
          `staged ${res.tags.join(', ')} as ${res.id}: ${formatBytes(res.meta.sizes[ROOTFS_FILE] ?? 0)} squashfs, kernel ${res.meta.kernel.version ?? res.meta.kernel.path}` +
            `${res.meta.initramfs ? '' : ' (no initramfs in the image)'} in ${res.stats.seconds.toFixed(1)} s`,
        );
        await emit({ id: res.id, tags: res.tags, dir: res.dir, meta: res.meta, removed: res.removed, stats: res.stats }, (r) => r.id);
      },
    );

  stage
    .command('list')
    .alias('ls')
    .description('list staged images (* marks the one this system booted)')
    .option('--names', 'print only the tags (and the ids of untagged images), one per line')
    .action(async (opts: { names?: boolean }, cmd: Command) => {
      const c = await ctx(cmd);
      const store = openStageStore(c);
      const booted = await bootedId();
      const list = (await store.list()).map((i) => summary(i, booted));
      await emit({ staged: list }, ({ staged }) => {
        if (opts.names) return staged.flatMap((s) => (s.tags.length ? s.tags : [s.id])).join('\n') || undefined;
        if (staged.length === 0) {
          ui.info('nothing staged yet: `darch stage upload IMAGE` stages one');
          return undefined;
        }
        return table(
          ['', 'TAGS', 'ID', 'CREATED', 'SIZE', 'VERITY', 'KERNEL', 'SOURCE'],
          staged.map((s) => [
            s.booted ? '*' : '',
            s.tags.join(',') || '<none>',
            s.id,
            formatAge(s.created ? new Date(s.created) : undefined),
            s.problem ? 'damaged' : formatBytes(s.size),
            s.verity ? 'yes' : '-',
            s.kernel ?? '-',
            s.source ? `${s.source}@${(s.sourceDigest ?? '').slice(7, 19)}` : '-',
          ]),
        );
      });
    });

  stage
    .command('current')
    .description('the staged image this system booted (darch_stageid= on the kernel command line)')
    .action(async (_o: unknown, cmd: Command) => {
      const c = await ctx(cmd);
      const id = await bootedId();
      if (!id) throw new DarchError('E_NOT_BOOTED', 'this system was not booted from a staged image (no darch_stageid= in /proc/cmdline)');
      const store = openStageStore(c);
      const img = (await store.list()).find((i) => i.id === id);
      if (!img)
        throw new DarchError('E_NOT_STAGED', `booted staged image ${id} is not in ${store.dir}`, {
          hint: 'it was removed from disk, or the stage directory is elsewhere (--root)',
        });
      await emit(summary(img, id), (s) => s.tags[0] ?? s.id);
    });

  stage
    .command('tag')
    .description('give a staged image another name')
    .argument('<staged>', 'tag or id of a staged image')
    .argument('<tag>', 'new NAME[:TAG]')
    .option('-f, --force', 'move the tag if another staged image has it')
    .action(async (src: string, tag: string, opts: { force?: boolean }, cmd: Command) => {
      const c = await ctx(cmd);
      const store = openStageStore(c);
      const res = await store.withLock(async () => {
        const img = await store.get(src);
        const owner = await store.idOfTag(tag);
        if (owner && owner !== img.id && !opts.force) {
          throw new DarchError('E_ALREADY_STAGED', `${tag} already names staged image ${owner}`, { hint: 'use --force to move it' });
        }
        await store.setTags(img.id, [tag]);
        return { id: img.id, tags: (await store.get(img.id)).tags };
      });
      await reconcileBoot(c.paths, c.config, lockTimeout(c.config), c.report);
      ui.success(`${res.id} is now ${res.tags.join(', ')}`);
      await emit(res, () => undefined);
    });

  stage
    .command('remove')
    .alias('rm')
    .description('remove staged images by tag or id (the booted image loses its tag but stays on disk)')
    .argument('<staged...>', 'tags or ids')
    .action(async (refs: string[], _o: unknown, cmd: Command) => {
      const c = await ctx(cmd);
      const store = openStageStore(c);
      const res = await store.withLock(async () => {
        const prot = await protectedIds(store);
        const out: Array<{ ref: string; id: string; deleted: boolean }> = [];
        for (const ref of refs) {
          const img = await store.get(ref);
          const tag = img.tags.find((t) => t === ref || t === normalizeOrUndefined(ref));
          const byTag = tag !== undefined;
          if (byTag) await store.untag(tag);
          const left = byTag ? ((await store.list()).find((i) => i.id === img.id)?.tags.length ?? 0) : 0;
          let deleted = false;
          if (left === 0) {
            if (prot.has(img.id)) ui.warn(`${img.id} is protected (booted, default or trial): kept on disk`);
            else {
              await store.deleteImage(img.id);
              deleted = true;
            }
          }
          out.push({ ref, id: img.id, deleted });
        }
        return { removed: out };
      });
      await reconcileBoot(c.paths, c.config, lockTimeout(c.config), c.report);
      for (const r of res.removed) ui.success(r.deleted ? `removed ${r.ref} (${r.id})` : `untagged ${r.ref} (${r.id} kept)`);
      await emit(res, () => undefined);
    });

  stage
    .command('clean')
    .description('delete untagged staged images (never a protected one) and leftovers of interrupted stages')
    .option('-n, --dry-run', 'only report')
    .action(async (opts: { dryRun?: boolean }, cmd: Command) => {
      const c = await ctx(cmd);
      const store = openStageStore(c);
      const res = await store.withLock(async () => {
        const prot = await protectedIds(store);
        const untagged = (await store.list()).filter((i) => i.tags.length === 0 && !prot.has(i.id));
        if (!opts.dryRun) for (const i of untagged) await store.deleteImage(i.id);
        // Also darch's own scratch directory: work files of killed `vm run`s and `disk create`s.
        const temp = opts.dryRun ? 0 : (await store.sweepTemp()) + (await sweepDeadOwners(c.paths.tmpDir));
        return {
          dryRun: Boolean(opts.dryRun),
          removed: untagged.map((i) => i.id),
          bytesFreed: untagged.reduce((a, i) => a + (i.meta?.totalSize ?? 0), 0),
          tempRemoved: temp,
        };
      });
      if (!res.dryRun) await reconcileBoot(c.paths, c.config, lockTimeout(c.config), c.report);
      ui.success(
        `${res.dryRun ? 'would remove' : 'removed'} ${res.removed.length} staged image(s), ${formatBytes(res.bytesFreed)}${res.tempRemoved ? `, ${res.tempRemoved} leftover work dir(s)` : ''}`,
      );
      await emit(res, () => undefined);
    });

  stage
    .command('export')
    .description('write a staged image as one verifiable bundle file (or to stdout with -o -)')
    .argument('<staged>', 'tag or id')
    .requiredOption('-o, --output <file>', 'bundle file, or - for stdout')
    .action(async (ref: string, opts: { output: string }, cmd: Command) => {
      const store = openStageStore(await ctx(cmd));
      if (opts.output === '-' && process.stdout.isTTY) throw usageError('refusing to write a bundle to a terminal', 'redirect stdout, or use -o FILE');
      const img = await store.get(ref);
      const progress = byteProgress('exporting', img.meta?.totalSize);
      const res = await exportStaged(store, ref, opts.output === '-' ? process.stdout : opts.output, (n) => progress.tick(n));
      progress.done(`exported ${res.tags.join(', ') || res.id} (${formatBytes(res.bytes)})${opts.output === '-' ? '' : ` to ${res.output}`}`);
      // stdout carries the bundle itself with -o -, so no data document goes there.
      if (opts.output !== '-') await emit(res, () => undefined);
    });

  stage
    .command('import')
    .description('stage a bundle made by `darch stage export`, verifying every checksum first')
    .argument('<file>', 'bundle file, or - for stdin')
    .option('-t, --tag <tag>', 'a tag to give instead of the bundle’s own, repeatable', collect, [])
    .option('-f, --force', 'move tags that already name another staged image')
    .action(async (file: string, opts: { tag?: string[]; force?: boolean }, cmd: Command) => {
      const c = await ctx(cmd);
      if (file === '-' && process.stdin.isTTY) throw usageError('refusing to read a bundle from a terminal', 'pipe one in, or give a file');
      const store = openStageStore(c);
      const progress = byteProgress('importing');
      const trust = await c.trust();
      const res = await importBundle(store, file, {
        tags: opts.tag,
        force: opts.force,
        keep: c.config.stage.keep,
        onBytes: (n) => progress.tick(n),
        onManifest: (m) => progress.setTotal(m.files.reduce((a, f) => a + f.size, 0)),
        // Judged under every name it is staged as; its signatures are FILE.sig (none from stdin).
        verify: async (digest, m) => {
          const { verifyBundle } = await import('../../trust/verify.js');
          const { readDetached } = await import('../../trust/detached.js');
          const names = opts.tag?.length ? opts.tag : m.tags;
          await verifyBundle(
            trust.policy,
            trust.root,
            names,
            digest,
            async () => (file === '-' ? [] : readDetached(file)),
            file === '-' ? 'the bundle on stdin' : file,
          );
        },
        report: c.report,
      });
      await reconcileBoot(c.paths, c.config, lockTimeout(c.config), c.report);
      progress.done(`${res.alreadyStaged ? 'already staged' : 'imported'} ${res.tags.join(', ') || res.id} as ${res.id}`);
      await emit(res, (r) => r.id);
    });
}

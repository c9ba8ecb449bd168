/**
 * What booting needs from every stage (the CLI passes it to every `stageImage` through its context's stageSteps):
 * an initramfs that understands darch, and the hook output of each tag. Runs on the work
 * directory before it is renamed into place, so a failure stages nothing.
 */
import path from 'node:path';
import { DirFiles } from '../lib/smallfs.js';
import type { Config } from '../lib/config.js';
import { DarchError, type ErrorCode } from '../lib/errors.js';
import type { DarchPaths } from '../lib/paths.js';
import { formatBytes } from '../lib/format.js';
import { silentReporter, type Reporter } from '../lib/report.js';
import { buildInitramfs } from '../initramfs/build.js';
import { applyHooks } from '../hooks/install.js';
import { INITRD_FILE, readImageJsonIn, writeImageJsonIn } from '../stage/image-json.js';

/** The parts of src/stage's StageStepContext this step reads. */
export interface BootStepContext {
  id: string;
  dir: string;
  tags: string[];
  boot: { kernel: { path: string; version?: string }; initramfs?: { path: string }; kernelparams?: string };
  index: { lookup(p: string): unknown };
  report?: Reporter;
}

/** Files by which an image's own initramfs generator shows it knows darch's parameters. */
export const DARCH_AWARE_INITRAMFS = [
  'usr/share/initramfs-tools/scripts/darch', // darch's and the original Darch's initramfs-tools hook
  'usr/lib/initcpio/hooks/darch', // Darch's mkinitcpio hook
  'etc/initcpio/hooks/darch',
  'usr/lib/dracut/modules.d/90darch/module-setup.sh', // darch's dracut module (assets/dracut/90darch)
  'usr/lib/dracut/modules.d/99darch/module-setup.sh', // Darch's dracut module
];

/** Failures of darch's initramfs that an image's own initramfs may not share. */
const MODULES_PROBLEMS = new Set<ErrorCode>(['E_MODULES_MISSING', 'E_MODULES_BROKEN', 'E_KERNEL_UNKNOWN']);

function lookupOk(index: BootStepContext['index'], p: string): boolean {
  try {
    return Boolean(index.lookup(p));
  } catch {
    return false;
  }
}

export function chooseInitramfs(policy: 'auto' | 'darch' | 'image', ctx: BootStepContext): 'darch' | 'image' {
  if (policy === 'darch') return 'darch';
  if (policy === 'image') {
    if (!ctx.boot.initramfs) {
      throw new DarchError('E_NO_INITRAMFS', 'boot.initramfs = "image" but the image has no initramfs', {
        hint: 'build one in the image (update-initramfs -c -k all), or set boot.initramfs = "auto"',
      });
    }
    return 'image';
  }
  if (!ctx.boot.initramfs) return 'darch';
  if (DARCH_AWARE_INITRAMFS.some((p) => lookupOk(ctx.index, p))) return 'image';
  // darch's initramfs needs the image's modules; an image without any (a kernel with all
  // drivers built in) is better served by the initramfs it brought.
  const hasModules = ['lib/modules', 'usr/lib/modules'].some((p) => lookupOk(ctx.index, p));
  return hasModules ? 'darch' : 'image';
}

/**
 * An image's own initramfs opens dm-verity only through darch's initramfs-tools hook, which
 * copies the image's dmsetup. Without dmsetup the entry would name a root hash nothing
 * checks: refuse rather than boot unchecked.
 */
function refuseVerityWithout(ctx: BootStepContext): void {
  const has = (p: string) => lookupOk(ctx.index, p);
  // darch's initramfs-tools hook copies dmsetup; its dracut module asks dracut for it (-o).
  const hook =
    has('usr/share/initramfs-tools/hooks/darch') || has('etc/initramfs-tools/hooks/darch') || has('usr/lib/dracut/modules.d/90darch/module-setup.sh');
  const dmsetup = ['usr/sbin/dmsetup', 'sbin/dmsetup'].some(has);
  if (!hook || !dmsetup) {
    throw new DarchError(
      'E_VERITY_UNSUPPORTED',
      `the image's own initramfs cannot open dm-verity: ${!hook ? 'it has no darch initramfs-tools hook or dracut module' : 'the image has no dmsetup'}`,
      {
        hint: 'boot it with darch\'s initramfs ([boot] initramfs = "darch"), or install darch\'s hook (darch initramfs install) and dmsetup in the image',
      },
    );
  }
}

export function bootStageStep(paths: DarchPaths, config: Config) {
  return {
    name: 'darch-boot',
    async run(ctx: BootStepContext): Promise<void> {
      const report = ctx.report ?? silentReporter;
      const dir = new DirFiles(ctx.dir);
      const image = await readImageJsonIn(dir);
      let which = chooseInitramfs(config.boot.initramfs, ctx);
      if (which === 'darch') {
        try {
          const res = await buildInitramfs({
            rootfs: path.join(ctx.dir, image.rootfs),
            kernel: path.join(ctx.dir, image.kernel),
            release: ctx.boot.kernel.version,
            out: path.join(ctx.dir, INITRD_FILE),
            tmpDir: paths.tmpDir,
            verity: Boolean(image.verity),
            report,
          });
          report.verbose(`darch initramfs: kernel ${res.release}, ${res.modules.length} modules, ${formatBytes(res.size)}`);
          await writeImageJsonIn(dir, { ...image, initramfs: INITRD_FILE });
        } catch (err) {
          // In auto mode an image that brought its own initramfs is never worse off than
          // before: keep it, say why darch's could not be built.
          const modulesProblem = err instanceof DarchError && MODULES_PROBLEMS.has(err.code);
          if (config.boot.initramfs !== 'auto' || !ctx.boot.initramfs || !modulesProblem || image.verity) throw err;
          report.warn(`darch's initramfs cannot be built (${(err as Error).message}); keeping the image's own`);
          which = 'image';
        }
      }
      if (which === 'image') {
        // The image's initramfs-tools (darch's dracut module, Darch's mkinitcpio/dracut hooks)
        // select darch's script with boot=darch.
        const aware = DARCH_AWARE_INITRAMFS.some((p) => lookupOk(ctx.index, p));
        const params = image.kernelparams ?? '';
        if (image.verity) refuseVerityWithout(ctx);
        if (aware && !/(^|\s)boot=darch(\s|$)/.test(params)) await writeImageJsonIn(dir, { ...image, kernelparams: `${params} boot=darch`.trim() });
        if (!aware)
          report.warn(
            `keeping the image's own initramfs (${ctx.boot.initramfs?.path}): it has no darch hook and the image has no kernel modules for darch's; it may not understand darch_dir=`,
          );
        report.verbose(`using the image's own initramfs (${ctx.boot.initramfs?.path}) with boot=darch`);
      }
      const staged = { id: ctx.id, dir: ctx.dir, tags: ctx.tags };
      for (const tag of ctx.tags) {
        const r = await applyHooks(paths, staged, tag);
        for (const h of r.hooks) for (const m of h.messages) report.warn(`${tag}: hook ${h.hook}: ${m}`);
      }
    },
  };
}

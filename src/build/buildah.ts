/**
 * The buildah backend (the default). It keeps its own containers-storage under darch's
 * cache directory, so darch builds never see or disturb other buildah/podman work and a
 * cleanup can remove everything in it. Builds run with `--isolation chroot`, which works
 * where OCI runtimes do not (nested containers, cgroup v1 hybrids).
 *
 * Darch-format recipes: one working container from the parent, the recipes tree mounted
 * read-only at /recipes, `./script` run in /recipes/<name>, committed as one new layer.
 * Containerfile recipes: `buildah build` without --layers, i.e. one new layer per stage.
 */
import { lstat, readFile, readdir, rm, rmdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { missingTool, run, which } from '../lib/proc.js';
import type { Reporter } from '../lib/report.js';
import { requireRootless } from './rootless.js';
import { BuildStepError, OUTPUT_REF, ociStorePath, type Builder, type ContainerfileStep, type DarchStep, type Probe } from './builder.js';
import { runStreaming } from './stream.js';

/** Files and directories `buildah run` creates as mount points; removed again if the parent had none. */
const MOUNT_ARTIFACTS = ['etc/hosts', 'etc/resolv.conf', 'etc/hostname', 'recipes'];

export class BuildahBuilder implements Builder {
  readonly kind = 'buildah' as const;
  private seq = 0;

  constructor(
    private readonly storageDir: string,
    private readonly report: Reporter,
  ) {}

  private get globalArgs(): string[] {
    return ['--root', path.join(this.storageDir, 'storage'), '--runroot', path.join(this.storageDir, 'run')];
  }

  private get env(): NodeJS.ProcessEnv {
    return { ...process.env, BUILDAH_ISOLATION: 'chroot', BUILDAH_LAYERS: 'false' };
  }

  async probe(): Promise<Probe> {
    if (!(await which('buildah'))) return { kind: this.kind, usable: false, detail: 'not installed (apt-get install buildah)' };
    const v = await run('buildah', ['--version'], { allowFailure: true });
    if (v.code !== 0) return { kind: this.kind, usable: false, detail: `buildah --version failed: ${v.stderr.trim().split('\n').pop() ?? ''}` };
    return { kind: this.kind, usable: true, detail: `${v.stdout.trim()} (chroot isolation)` };
  }

  /** A buildah command whose output only matters when it fails. */
  private async quiet(step: string, args: string[], prefix: string, signal?: AbortSignal): Promise<string[]> {
    const res = await runStreaming('buildah', [...this.globalArgs, ...args], { prefix, signal, env: this.env, report: this.report, level: 'verbose' });
    if (res.code !== 0) throw new BuildStepError(step, res.signal ?? res.code, res.tail);
    return res.tail;
  }

  private readonly links = new Set<string>();

  async imageSource(storeDir: string, ref: string): Promise<string> {
    const p = await ociStorePath(storeDir);
    if (p !== storeDir) this.links.add(p);
    return `oci:${p}:${ref}`;
  }

  async prepare(): Promise<void> {
    if (!(await which('buildah'))) throw missingTool('buildah');
    await requireRootless();
    await this.removeAll();
  }

  private async removeAll(): Promise<void> {
    // Only darch uses this storage and the build lock is held, so "all" is ours.
    await run('buildah', [...this.globalArgs, 'rm', '--all'], { allowFailure: true, env: this.env });
    await run('buildah', [...this.globalArgs, 'rmi', '--all', '--force'], { allowFailure: true, env: this.env });
  }

  async cleanup(): Promise<void> {
    await this.removeAll();
    // Safe: the build lock of this store's builder workspace is still held.
    for (const l of this.links) await rm(l, { force: true });
    this.links.clear();
  }

  private names(recipe: string): { container: string; image: string } {
    const n = `${process.pid}-${++this.seq}-${recipe}`;
    return { container: `darch-${n}`, image: `localhost/darch-build/${recipe}:${process.pid}-${this.seq}` };
  }

  async buildDarch(step: DarchStep): Promise<string> {
    const { recipe } = step;
    const { container, image } = this.names(recipe.name);
    const p = step.prefix;
    try {
      await this.quiet('create the working container', ['from', '--pull-never', '--name', container, step.parentSource], p, step.signal);
      const mount = await this.mountPoint(container, p, step.signal);
      const existed = mount ? await presentPaths(mount) : undefined;
      // buildah bind-mounts a generated /etc/hostname, so a script's write to it would be
      // lost; mount our own copy instead and carry a changed one into the image afterwards.
      const hostname = mount ? await HostnameCarrier.prepare(mount, `${step.outDir}.hostname`) : undefined;
      const envArgs = Object.entries({ ...step.runEnv, DARCH_RECIPE: recipe.name }).flatMap(([k, v]) => ['-e', `${k}=${v}`]);
      const res = await runStreaming(
        'buildah',
        [
          ...this.globalArgs,
          'run',
          '--isolation',
          'chroot',
          '-v',
          `${path.resolve(step.recipesDir)}:/recipes:ro`,
          ...(hostname ? ['-v', `${hostname.file}:/etc/hostname`] : []),
          '--no-hosts',
          '--workingdir',
          `/recipes/${recipe.name}`,
          ...envArgs,
          container,
          '--',
          // Absolute: buildah looks a bare "./script" up in PATH and finds util-linux's script(1).
          `/recipes/${recipe.name}/script`,
        ],
        { prefix: p, env: this.env, signal: step.signal, report: this.report },
      );
      if (step.signal.aborted) throw step.signal.reason;
      if (res.code !== 0) throw new BuildStepError('./script', res.signal ?? res.code, res.tail);
      await hostname?.carryInto(mount!);
      if (mount && existed) await removeMountArtifacts(mount, existed);
      if (mount) await this.quiet('unmount the working container', ['umount', container], p);
      const cfg = [
        ...Object.entries(step.labels).flatMap(([k, v]) => ['--label', `${k}=${v}`]),
        ...Object.entries(step.imageEnv).flatMap(([k, v]) => ['--env', `${k}=${v}`]),
        '--created-by',
        `darch recipe ${recipe.name}: ./script`,
      ];
      await this.quiet('set the image config', ['config', ...cfg, container], p, step.signal);
      await this.quiet('commit', ['commit', '--quiet', '--rm', container, image], p, step.signal);
      return await this.push(image, step.outDir, p, step.signal);
    } finally {
      await run('buildah', [...this.globalArgs, 'rm', container], { allowFailure: true, env: this.env });
      await run('buildah', [...this.globalArgs, 'rmi', '--force', image], { allowFailure: true, env: this.env });
    }
  }

  async buildContainerfile(step: ContainerfileStep): Promise<string> {
    const { image } = this.names(step.recipe.name);
    const file = `${step.outDir}.Containerfile`;
    await writeFile(file, step.containerfile);
    try {
      const args = [
        ...this.globalArgs,
        'build',
        '--isolation',
        'chroot',
        '--pull-never',
        '--layers=false',
        '--no-hosts',
        '-f',
        file,
        '-t',
        image,
        ...Object.entries(step.labels).flatMap(([k, v]) => ['--label', `${k}=${v}`]),
        ...Object.entries({ ...step.imageEnv, ...step.env }).flatMap(([k, v]) => ['--env', `${k}=${v}`]),
        ...Object.entries(step.buildArgs).flatMap(([k, v]) => ['--build-arg', `${k}=${v}`]),
        ...(step.noCache ? ['--no-cache'] : []),
        step.recipe.dir,
      ];
      const res = await runStreaming('buildah', args, { prefix: step.prefix, env: this.env, signal: step.signal, report: this.report });
      if (step.signal.aborted) throw step.signal.reason;
      if (res.code !== 0) {
        const status = /exit status (\d+)/.exec(res.tail.join('\n'))?.[1] ?? String(res.signal ?? res.code);
        throw new BuildStepError(res.lastStep ?? 'buildah build', Number.isNaN(Number(status)) ? status : Number(status), res.tail);
      }
      return await this.push(image, step.outDir, step.prefix, step.signal);
    } finally {
      await rm(file, { force: true });
      await run('buildah', [...this.globalArgs, 'rmi', '--force', image], { allowFailure: true, env: this.env });
    }
  }

  private async push(image: string, outDir: string, prefix: string, signal: AbortSignal): Promise<string> {
    const dest = `oci:${outDir}:${OUTPUT_REF}`;
    await this.quiet('export the image', ['push', '--quiet', image, dest], prefix, signal);
    return dest;
  }

  /** The working container's root, or undefined where mounting needs `buildah unshare` (rootless). */
  private async mountPoint(container: string, prefix: string, signal: AbortSignal): Promise<string | undefined> {
    const res = await run('buildah', [...this.globalArgs, 'mount', container], { allowFailure: true, env: this.env, signal });
    if (res.code !== 0) {
      this.report.debug(`[${prefix}] cannot mount ${container} (${res.stderr.trim()}); mount-point files stay in the layer`);
      return undefined;
    }
    return res.stdout.trim();
  }
}

class HostnameCarrier {
  private constructor(
    readonly file: string,
    private readonly initial: Buffer,
  ) {}

  static async prepare(root: string, file: string): Promise<HostnameCarrier | undefined> {
    const target = path.join(root, 'etc/hostname');
    const s = await lstat(target).catch(() => undefined);
    if (s && !s.isFile()) return undefined; // a symlink: leave it to buildah
    const initial = s ? await readFile(target) : Buffer.from('darch-build\n');
    await writeFile(file, initial);
    return new HostnameCarrier(file, initial);
  }

  async carryInto(root: string): Promise<void> {
    try {
      const now = await readFile(this.file);
      if (now.equals(this.initial)) return;
      const target = path.join(root, 'etc/hostname');
      const s = await lstat(target).catch(() => undefined);
      if (s && !s.isFile()) return;
      await writeFile(target, now);
    } finally {
      await rm(this.file, { force: true });
    }
  }
}

async function presentPaths(root: string): Promise<Set<string>> {
  const out = new Set<string>();
  for (const p of MOUNT_ARTIFACTS) {
    if (
      await lstat(path.join(root, p)).then(
        () => true,
        () => false,
      )
    )
      out.add(p);
  }
  return out;
}

/** Undo what `buildah run` created for its mounts when the parent image had no such path. */
async function removeMountArtifacts(root: string, existed: Set<string>): Promise<void> {
  for (const p of MOUNT_ARTIFACTS) {
    if (existed.has(p)) continue;
    const abs = path.join(root, p);
    const s = await lstat(abs).catch(() => undefined);
    if (!s) continue;
    if (s.isFile() && s.size === 0) await rm(abs, { force: true });
    else if (s.isDirectory()) {
      // /recipes/<name>: empty mount points only; a script that wrote there keeps its files.
      for (const d of await readdir(abs)) await rmdir(path.join(abs, d)).catch(() => undefined);
      await rmdir(abs).catch(() => undefined);
    }
  }
}

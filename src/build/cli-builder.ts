/**
 * podman and docker backends. Neither can run Darch's `buildah from/run/commit` sequence,
 * so a Darch-format recipe becomes a two-line Containerfile: FROM the parent, then one RUN
 * with the recipes tree bind-mounted read-only at /recipes (one new layer, as in Darch).
 * podman reads darch's store directly (oci: transport); docker needs the parent loaded
 * into its daemon first (skopeo copy … docker-daemon:) and its result comes back through
 * `docker save`. podman is tested through a shim over buildah (podman is not installed
 * and `podman run` fails on these machines); docker is not tested (no daemon runs here).
 */
import { rm, writeFile } from 'node:fs/promises';
import { missingTool, run, which } from '../lib/proc.js';
import { BuildStepError, OUTPUT_REF, ociStorePath, type Builder, type BuilderKind, type ContainerfileStep, type DarchStep, type Probe } from './builder.js';
import { runStreaming } from './stream.js';
import type { Reporter } from '../lib/report.js';

export class ContainerCliBuilder implements Builder {
  private seq = 0;
  private readonly images = new Set<string>();

  constructor(
    readonly kind: Exclude<BuilderKind, 'buildah'>,
    private readonly report: Reporter,
  ) {}

  async probe(): Promise<Probe> {
    if (!(await which(this.kind))) return { kind: this.kind, usable: false, detail: 'not installed' };
    const args = this.kind === 'docker' ? ['version', '--format', '{{.Server.Version}}'] : ['info', '--format', '{{.Version.Version}}'];
    const v = await run(this.kind, args, { allowFailure: true });
    if (v.code !== 0)
      return { kind: this.kind, usable: false, detail: `${this.kind} ${args[0]} failed: ${(v.stderr.trim().split('\n').pop() ?? '').slice(0, 80)}` };
    if (this.kind === 'docker' && !(await which('skopeo'))) return { kind: this.kind, usable: false, detail: 'needs skopeo to load parents into the daemon' };
    return { kind: this.kind, usable: true, detail: `${this.kind} ${v.stdout.trim()}` };
  }

  private readonly links = new Set<string>();

  async imageSource(storeDir: string, ref: string, signal: AbortSignal): Promise<string> {
    const store = await ociStorePath(storeDir);
    if (store !== storeDir) this.links.add(store);
    if (this.kind === 'podman') return `oci:${store}:${ref}`;
    const name = `darch-parent/${ref.replace(/[^a-z0-9._-]+/g, '-')}`;
    await run('skopeo', ['copy', '--quiet', `oci:${store}:${ref}`, `docker-daemon:${name}:latest`], { signal });
    this.images.add(`${name}:latest`);
    return `${name}:latest`;
  }

  async prepare(): Promise<void> {
    if (!(await which(this.kind))) throw missingTool(this.kind);
  }

  async cleanup(): Promise<void> {
    for (const img of this.images) await run(this.kind, ['rmi', '--force', img], { allowFailure: true });
    this.images.clear();
    for (const l of this.links) await rm(l, { force: true });
    this.links.clear();
  }

  buildDarch(step: DarchStep): Promise<string> {
    const env = { ...step.runEnv, DARCH_RECIPE: step.recipe.name };
    const text = [
      `FROM ${step.parentSource}`,
      ...Object.keys(env).map((k) => `ARG ${k}`),
      ...Object.entries(step.imageEnv).map(([k, v]) => `ENV ${k}=${JSON.stringify(v)}`),
      `RUN --mount=type=bind,source=.,target=/recipes,readonly cd /recipes/${step.recipe.name} && ./script`,
      '',
    ].join('\n');
    return this.build(step.prefix, step.recipe.name, text, step.recipesDir, step.outDir, step.labels, {}, env, step.noCache, step.signal);
  }

  buildContainerfile(step: ContainerfileStep): Promise<string> {
    return this.build(
      step.prefix,
      step.recipe.name,
      step.containerfile,
      step.recipe.dir,
      step.outDir,
      step.labels,
      { ...step.imageEnv, ...step.env },
      step.buildArgs,
      step.noCache,
      step.signal,
    );
  }

  private async build(
    prefix: string,
    recipe: string,
    containerfile: string,
    context: string,
    outDir: string,
    labels: Record<string, string>,
    env: Record<string, string>,
    buildArgs: Record<string, string>,
    noCache: boolean,
    signal: AbortSignal,
  ): Promise<string> {
    const image = `localhost/darch-build/${recipe}:${process.pid}-${++this.seq}`;
    const file = `${outDir}.Containerfile`;
    await writeFile(file, containerfile);
    this.images.add(image);
    try {
      const args = [
        'build',
        ...(this.kind === 'podman' ? ['--isolation', 'chroot', '--pull-never', '--layers=false'] : []),
        '-f',
        file,
        '-t',
        image,
        ...Object.entries(labels).flatMap(([k, v]) => ['--label', `${k}=${v}`]),
        ...(this.kind === 'podman' ? Object.entries(env).flatMap(([k, v]) => ['--env', `${k}=${v}`]) : []),
        ...Object.entries(buildArgs).flatMap(([k, v]) => ['--build-arg', `${k}=${v}`]),
        ...(noCache ? ['--no-cache'] : []),
        context,
      ];
      const res = await runStreaming(this.kind, args, { prefix, signal, env: { ...process.env, DOCKER_BUILDKIT: '1' }, report: this.report });
      if (signal.aborted) throw signal.reason;
      if (res.code !== 0) {
        const status = /exit (?:status|code):? (\d+)/.exec(res.tail.join('\n'))?.[1];
        throw new BuildStepError(res.lastStep ?? `${this.kind} build`, status ? Number(status) : (res.signal ?? res.code), res.tail);
      }
      if (this.kind === 'podman') {
        const dest = `oci:${outDir}:${OUTPUT_REF}`;
        await run('podman', ['push', '--quiet', image, dest], { signal });
        return dest;
      }
      const archive = `${outDir}.tar`;
      await run('docker', ['save', '-o', archive, image], { signal });
      return archive;
    } finally {
      await rm(file, { force: true });
    }
  }
}

/** Choosing a builder backend: `--builder`, else the first usable of buildah, podman, docker. */
import path from 'node:path';
import { DarchError } from '../lib/errors.js';
import type { DarchPaths } from '../lib/paths.js';
import { silentReporter, type Reporter } from '../lib/report.js';
import { BUILDER_KINDS, type Builder, type BuilderKind, type Probe } from './builder.js';
import { BuildahBuilder } from './buildah.js';
import { ContainerCliBuilder } from './cli-builder.js';

/** `report` gets the builder's own output lines (buildah's only with -v) and its notes. */
export function makeBuilder(kind: BuilderKind, paths: DarchPaths, report: Reporter = silentReporter): Builder {
  if (kind === 'buildah') return new BuildahBuilder(path.join(paths.cacheDir, 'buildah'), report);
  return new ContainerCliBuilder(kind, report);
}

export async function probeBuilders(paths: DarchPaths): Promise<Probe[]> {
  return Promise.all(BUILDER_KINDS.map((k) => makeBuilder(k, paths).probe()));
}

export async function selectBuilder(paths: DarchPaths, requested?: string, report: Reporter = silentReporter): Promise<Builder> {
  if (requested !== undefined) {
    if (!BUILDER_KINDS.includes(requested as BuilderKind)) {
      throw new DarchError('E_USAGE', `unknown builder ${requested}`, { hint: `choose one of ${BUILDER_KINDS.join(', ')}` });
    }
    const b = makeBuilder(requested as BuilderKind, paths, report);
    const p = await b.probe();
    if (!p.usable) {
      throw new DarchError(p.detail.startsWith('not installed') ? 'E_TOOL_MISSING' : 'E_BUILDER_UNUSABLE', `builder ${requested} cannot be used: ${p.detail}`, {
        hint: requested === 'buildah' ? 'apt-get install buildah' : '`darch doctor` lists the builders this machine can use',
      });
    }
    return b;
  }
  const probes: Probe[] = [];
  for (const k of BUILDER_KINDS) {
    const b = makeBuilder(k, paths, report);
    const p = await b.probe();
    if (p.usable) return b;
    probes.push(p);
  }
  throw new DarchError('E_TOOL_MISSING', `no builder is usable: ${probes.map((p) => `${p.kind} ${p.detail}`).join('; ')}`, {
    hint: 'apt-get install buildah (the default builder)',
  });
}

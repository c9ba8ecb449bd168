/**
 * `darch build`: plan (resolve names, parents and tags; check everything that can be
 * checked) before any work starts, then build in dependency order, skipping recipes whose
 * cache key matches the image already in the store. A result is tagged only after its
 * build and import succeeded, so a failed recipe leaves its old image (if any) in place.
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { DarchError } from '../lib/errors.js';
import { acquireLock, type LockHandle } from '../lib/lock.js';
import type { DarchPaths } from '../lib/paths.js';
import { silentReporter, type Reporter } from '../lib/report.js';
import { importImage } from '../oci/importer.js';
import { parseRef, refString, splitRefName } from '../oci/reference.js';
import type { ImageStore } from '../oci/store.js';
import { rewriteFroms, type FromTarget } from '../recipes/containerfile.js';
import { checkBuildable, parentLabel, type Recipe } from '../recipes/discover.js';
import { RecipeGraph } from '../recipes/graph.js';
import { hashRecipeInputs } from '../recipes/hash.js';
import { adoptParentLayers } from './adopt-layers.js';
import { BuildStepError, type Builder } from './builder.js';
import { externalMissing, pullExternal, type Puller } from './external.js';
import { selectBuilder } from './select.js';

export const LABEL_RECIPE = 'io.darch.recipe';
export const LABEL_KEY = 'io.darch.recipe.key';
const KEY_VERSION = 1;

export interface BuildRequest {
  recipesDir: string;
  recipes: string[];
  noDeps?: boolean;
  /** The first is the build tag (default latest); the rest are extra tags. */
  tags?: string[];
  prefix?: string;
  env?: Record<string, string>;
  buildArgs?: Record<string, string>;
  noCache?: boolean;
  pull?: boolean;
  builder?: string;
}

export interface BuildContext {
  paths: DarchPaths;
  store: ImageStore;
  signal: AbortSignal;
  /** Fetches external bases for `pull: true` (the CLI passes the registry client). */
  pull?: Puller;
  report?: Reporter;
}

export interface BuiltImage {
  recipe: string;
  image: string;
  digest: string;
  status: 'built' | 'cached';
  seconds: number;
  tags: string[];
}

/** A parent image, as the recipe names it and as darch's store names it. */
interface ParentRef {
  /** `darch:<recipe>` / recipe name, or the external reference as written. */
  written: string;
  target: FromTarget;
  storeRef: string;
  /** Built earlier in this run (so it need not exist yet while planning). */
  inPlan: boolean;
}

interface PlanStep {
  recipe: Recipe;
  target: string;
  extraTags: string[];
  parents: ParentRef[];
}

function buildTagOf(req: BuildRequest): string {
  return req.tags?.[0] ?? 'latest';
}

/** Image name for a local recipe: `<prefix><recipe>:<tag>`, as in Darch. */
function recipeImage(prefix: string, recipe: string, tag: string): string {
  const raw = `${prefix}${recipe}:${tag}`;
  try {
    return refString(parseRef(raw));
  } catch (err) {
    throw new DarchError('E_USAGE', `"${raw}" is not a valid image name (from --image-prefix "${prefix}", recipe ${recipe} and tag ${tag})`, {
      hint: 'image names are lowercase; tags are letters, digits, . _ -',
      cause: err,
    });
  }
}

export async function planBuild(ctx: BuildContext, req: BuildRequest): Promise<{ graph: RecipeGraph; steps: PlanStep[]; pulls: string[] }> {
  const graph = await RecipeGraph.load(req.recipesDir);
  if (req.recipes.length === 0) throw new DarchError('E_USAGE', 'name at least one recipe to build', { hint: '`darch recipes list` shows them' });
  const requested = req.recipes.map((n) => graph.get(n).name);
  // --no-deps still builds the named recipes parents-first among themselves.
  const order = req.noDeps ? graph.buildOrder(requested).filter((n) => requested.includes(n)) : graph.buildOrder(requested);
  const tag = buildTagOf(req);
  const prefix = req.prefix ?? '';
  for (const t of req.tags ?? []) {
    if (!/^[\w][\w.-]{0,127}$/.test(t))
      throw new DarchError('E_USAGE', `-t ${t}: not a valid tag`, { hint: 'tags are up to 128 letters, digits, . _ - (not starting with . or -)' });
  }
  const planned = new Set(order);
  const steps: PlanStep[] = [];
  const pulls = new Set<string>();
  for (const name of order) {
    const recipe = graph.get(name);
    await checkBuildable(recipe);
    const target = recipeImage(prefix, name, tag);
    const { repository } = splitRefName(target);
    const extraTags = [...new Set([...(req.tags ?? []).slice(1), ...recipe.settings.tags])].filter((t) => t !== tag).map((t) => `${repository}:${t}`);
    const targets: FromTarget[] =
      recipe.format === 'darch'
        ? [recipe.parent.kind === 'recipe' ? { kind: 'recipe', recipe: recipe.parent.name } : { kind: 'external', ref: (recipe.parent as { ref: string }).ref }]
        : recipe.parsed!.froms.map((f) => f.target);
    const parents: ParentRef[] = [];
    for (const t of targets) {
      if (t.kind === 'recipe') {
        parents.push({ written: `darch:${t.recipe}`, target: t, storeRef: recipeImage(prefix, t.recipe, tag), inPlan: planned.has(t.recipe) });
      } else if (t.kind === 'external') {
        // Darch: an untagged external parent takes the build tag; a Containerfile's FROM keeps Docker's :latest.
        let storeRef: string;
        try {
          storeRef = refString(parseRef(t.ref, recipe.format === 'darch' ? tag : 'latest'));
        } catch (err) {
          throw new DarchError('E_RECIPE_INVALID', `recipe ${name}: ${(err as Error).message}`);
        }
        parents.push({ written: t.ref, target: t, storeRef, inPlan: false });
      }
    }
    for (const p of parents) {
      if (p.inPlan) continue;
      const have = await ctx.store.resolve(p.storeRef).then(
        () => true,
        () => false,
      );
      if (have && !(req.pull && p.target.kind === 'external')) continue;
      if (p.target.kind === 'recipe') {
        throw new DarchError('E_PARENT_NOT_BUILT', `recipe ${name} builds on ${p.storeRef}, which is not in the local store`, {
          hint: `build it first (\`darch build ${p.target.recipe}\`), or drop --no-deps`,
        });
      }
      if (req.pull) pulls.add(p.storeRef);
      else throw externalMissing(p.storeRef, name);
    }
    steps.push({ recipe, target, extraTags, parents });
  }
  return { graph, steps, pulls: [...pulls] };
}

async function cacheKey(ctx: BuildContext, step: PlanStep, req: BuildRequest): Promise<string> {
  const parents: Array<[string, string]> = [];
  for (const p of step.parents) parents.push([p.storeRef, (await ctx.store.resolve(p.storeRef)).descriptor.digest]);
  const doc = {
    v: KEY_VERSION,
    recipe: step.recipe.name,
    format: step.recipe.format,
    files: await hashRecipeInputs(step.recipe.dir, step.recipe.settings.inputs, step.recipe.format === 'darch'),
    parents,
    env: req.env ?? {},
    buildArgs: req.buildArgs ?? {},
    settings: step.recipe.settings,
  };
  return `sha256:${createHash('sha256').update(JSON.stringify(doc)).digest('hex')}`;
}

async function cachedDigest(store: ImageStore, target: string, key: string): Promise<string | undefined> {
  try {
    const img = await store.resolveImage(target);
    return img.config.config?.Labels?.[LABEL_KEY] === key ? img.descriptor.digest : undefined;
  } catch {
    return undefined;
  }
}

export async function buildRecipes(ctx: BuildContext, req: BuildRequest): Promise<{ builder: string; images: BuiltImage[] }> {
  await ctx.store.init();
  const { steps, pulls } = await planBuild(ctx, req);
  const builder = await selectBuilder(ctx.paths, req.builder, ctx.report);
  // Pulls are work: they start only once every check above has passed.
  for (const ref of pulls) await pullExternal(ctx.pull, ctx.store, ref, ctx.signal);
  const lockFile = path.join(ctx.paths.cacheDir, `${builder.kind}-build.lock`);
  // The builder's workspace is locked and swept only once something must really be built,
  // so an all-cached build costs no builder process at all.
  let lock: LockHandle | undefined;
  const ensureBuilder = async () => {
    if (lock) return;
    await mkdir(ctx.paths.cacheDir, { recursive: true });
    lock = await acquireLock(lockFile, `the ${builder.kind} build workspace`, ctx.store.lockTimeoutSec);
    await builder.prepare();
  };
  const images: BuiltImage[] = [];
  try {
    for (const [i, step] of steps.entries()) {
      if (ctx.signal.aborted) throw ctx.signal.reason;
      images.push(await buildStep(ctx, req, builder, step, `${i + 1}/${steps.length}`, ensureBuilder));
    }
  } finally {
    if (lock) {
      await builder.cleanup();
      await lock.release();
    }
  }
  return { builder: builder.kind, images };
}

async function buildStep(
  ctx: BuildContext,
  req: BuildRequest,
  builder: Builder,
  step: PlanStep,
  counter: string,
  ensureBuilder: () => Promise<void>,
): Promise<BuiltImage> {
  const report = ctx.report ?? silentReporter;
  const started = performance.now();
  const { recipe } = step;
  const key = await cacheKey(ctx, step, req);
  const hit = req.noCache ? undefined : await cachedDigest(ctx.store, step.target, key);
  let digest: string;
  let status: BuiltImage['status'];
  if (hit) {
    digest = hit;
    status = 'cached';
    report.success(`[${counter}] ${recipe.name}: up to date (${step.target})`);
  } else {
    report.step(
      `[${counter}] ${recipe.name}: building ${step.target} from ${parentLabel(recipe.parent)} (${recipe.format === 'darch' ? 'Darch recipe' : path.basename((recipe as { file: string }).file)}, ${builder.kind})`,
    );
    await ensureBuilder();
    const outDir = ctx.store.tempPath('build');
    const labels = { ...recipe.settings.labels, [LABEL_RECIPE]: recipe.name, [LABEL_KEY]: key };
    const common = { prefix: recipe.name, signal: ctx.signal, outDir, labels, imageEnv: recipe.settings.env, noCache: Boolean(req.noCache) };
    const sources = new Map<string, string>();
    for (const p of step.parents) sources.set(p.written, await builder.imageSource(ctx.store.dir, p.storeRef, ctx.signal));
    try {
      let source: string;
      try {
        if (recipe.format === 'darch') {
          source = await builder.buildDarch({
            ...common,
            recipe,
            recipesDir: path.dirname(recipe.dir),
            parentSource: [...sources.values()][0]!,
            runEnv: { ...recipe.settings.build_args, ...recipe.settings.env, ...req.buildArgs, ...req.env },
          });
        } else {
          const text = await readFile(recipe.file, 'utf8');
          const containerfile = rewriteFroms(text, recipe.parsed!, (t) =>
            t.kind === 'recipe' ? sources.get(`darch:${t.recipe}`) : t.kind === 'external' ? sources.get(t.ref) : undefined,
          );
          source = await builder.buildContainerfile({
            ...common,
            recipe,
            containerfile,
            buildArgs: { ...recipe.settings.build_args, ...req.buildArgs },
            env: req.env ?? {},
          });
        }
      } catch (err) {
        if (ctx.signal.aborted) throw ctx.signal.reason;
        if (err instanceof BuildStepError) {
          throw new DarchError('E_BUILD_FAILED', `recipe ${recipe.name} failed at ${err.step}: exit status ${err.exitStatus}`, {
            hint: `the [${recipe.name}] lines above show why; nothing was tagged${lastWords(err.tail)}`,
            details: { recipe: recipe.name, step: err.step, exitStatus: err.exitStatus, output: err.tail },
          });
        }
        throw err;
      }
      if (source.startsWith('oci:')) {
        const main = recipe.parent;
        const parent = step.parents.find((p) =>
          main.kind === 'recipe'
            ? p.target.kind === 'recipe' && p.target.recipe === main.name
            : main.kind === 'external' && p.target.kind === 'external' && p.target.ref === main.ref,
        );
        await adoptParentLayers(outDir, ctx.store, parent?.storeRef);
      }
      const res = await importImage(ctx.store, source, step.target, { signal: ctx.signal, report });
      digest = res.digest;
      status = 'built';
    } finally {
      await rm(outDir, { recursive: true, force: true });
      for (const ext of ['.tar', '.hostname', '.Containerfile']) await rm(`${outDir}${ext}`, { force: true });
    }
  }
  if (step.extraTags.length) {
    await ctx.store.withLock(async () => {
      const ref = await ctx.store.resolve(step.target);
      const { annotations: _a, ...desc } = ref.descriptor;
      for (const t of step.extraTags) await ctx.store.setRef(t, desc);
    });
  }
  const seconds = (performance.now() - started) / 1000;
  if (status === 'built') report.success(`[${counter}] ${recipe.name}: built ${step.target} (${digest.slice(7, 19)}) in ${seconds.toFixed(1)} s`);
  return { recipe: recipe.name, image: step.target, digest, status, seconds, tags: [step.target, ...step.extraTags] };
}

/** The last line of a failed step's output that is not the builder's own epilogue. */
function lastWords(tail: string[]): string {
  const noise = /^(subprocess exited|Error: (exit status|building at STEP)|error building at STEP|\[\d\/\d\] STEP)/i;
  const line = [...tail].reverse().find((l) => l.trim() && !noise.test(l.trim()));
  return line ? ` (last output: ${line.trim().slice(0, 160)})` : '';
}

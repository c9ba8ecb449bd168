/** `darch build <recipe…>` (also `darch recipes build`, Darch's spelling). */
import type { Command } from 'commander';
import { Option } from 'commander';
import { buildRecipes } from '../../build/build.js';
import { BUILDER_KINDS } from '../../build/builder.js';
import { usageError } from '../../lib/errors.js';
import { emit, table } from '../output.js';
import { ui } from '../ui.js';
import type { ContextFactory } from '../globals.js';
import { recipesDirOption } from './recipes.js';

interface BuildOpts {
  recipesDir: string;
  deps: boolean;
  tag: string[];
  imagePrefix: string;
  env: string[];
  buildArg: string[];
  cache: boolean;
  pull?: boolean;
  builder?: string;
}

const collect = (v: string, prev: string[]) => [
  ...prev,
  ...v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean),
];
const collectOne = (v: string, prev: string[]) => [...prev, v];

function keyValues(list: string[], flag: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of list) {
    const eq = item.indexOf('=');
    if (eq <= 0) throw usageError(`${flag} ${item}: expected KEY=VALUE`, `for example ${flag} DEBIAN_FRONTEND=noninteractive`);
    out[item.slice(0, eq)] = item.slice(eq + 1);
  }
  return out;
}

function defineBuild(cmd: Command, ctx: ContextFactory, ownDirOption: boolean): void {
  if (ownDirOption) recipesDirOption(cmd);
  cmd
    .description('build recipes into the image store, with every missing or stale ancestor first')
    .argument('<recipe...>', 'recipes to build')
    .option('--no-deps', 'build only the named recipes; their parents must already be in the store')
    .option('-t, --tag <tag>', 'tag for the images (repeatable or comma-separated; the first is the build tag, default latest)', collect, [])
    .option('-p, --image-prefix <prefix>', 'prepended to the image names of built recipes and their local parents', '')
    .option('-e, --env <KEY=VALUE>', 'environment for the build (repeatable)', collectOne, [])
    .option('--build-arg <KEY=VALUE>', 'build argument (repeatable)', collectOne, [])
    .option('--no-cache', 'rebuild even if the recipe and its parents did not change')
    .option('--pull', 'pull external base images from their registry before building')
    .addOption(new Option('--builder <name>', 'builder backend (default: the first usable)').choices(BUILDER_KINDS))
    .action(async (names: string[], opts: BuildOpts, command: Command) => {
      const c = await ctx(command);
      const dir = (command.optsWithGlobals() as BuildOpts).recipesDir ?? '.';
      const res = await buildRecipes(
        { paths: c.paths, store: await c.imageStore(), signal: c.signal, pull: c.puller, report: c.report },
        {
          recipesDir: dir,
          recipes: names,
          noDeps: !opts.deps,
          tags: opts.tag,
          prefix: opts.imagePrefix,
          env: keyValues(opts.env, '-e'),
          buildArgs: keyValues(opts.buildArg, '--build-arg'),
          noCache: !opts.cache,
          pull: Boolean(opts.pull),
          builder: opts.builder,
        },
      );
      const built = res.images.filter((i) => i.status === 'built').length;
      ui.info(`${built} built, ${res.images.length - built} up to date`);
      await emit(res, (r) =>
        table(
          ['RECIPE', 'IMAGE', 'IMAGE ID', 'STATUS', 'SECONDS'],
          r.images.map((i) => [i.recipe, i.image, i.digest.slice(7, 19), i.status, i.seconds.toFixed(1)]),
        ),
      );
    });
}

export function registerBuild(build: Command, ctx: ContextFactory): void {
  defineBuild(build, ctx, true);
}

/** `darch recipes build`: the same command under `recipes`, whose --recipes-dir it uses. */
export function registerRecipesBuild(recipes: Command, ctx: ContextFactory): void {
  defineBuild(recipes.command('build'), ctx, false);
}

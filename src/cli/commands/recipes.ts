/** `darch recipes …`: the recipe tree and its dependency graph. */
import type { Command } from 'commander';
import { emit } from '../output.js';
import { parentLabel } from '../../recipes/discover.js';
import { RecipeGraph, renderTree } from '../../recipes/graph.js';
import { ui } from '../ui.js';
import { KIT_DIR, writeKit } from '../../recipes/kit.js';
import { VERSION, type ContextFactory } from '../globals.js';

interface DirOpts {
  recipesDir: string;
}

export function recipesDirOption(cmd: Command): Command {
  return cmd.option('-d, --recipes-dir <dir>', 'the directory whose subdirectories are recipes', '.');
}

function dirOf(cmd: Command): string {
  return (cmd.optsWithGlobals() as DirOpts).recipesDir ?? '.';
}

export function registerRecipes(cmd: Command, ctx: ContextFactory): void {
  const recipes = recipesDirOption(cmd);

  recipes
    .command('list')
    .alias('ls')
    .description('list the recipes')
    .action(async (_o: unknown, cmd: Command) => {
      await ctx(cmd);
      const g = await RecipeGraph.load(dirOf(cmd));
      const list = g.recipes.map((r) => ({ name: r.name, format: r.format, parent: parentLabel(r.parent), deps: r.deps, externals: r.externals, dir: r.dir }));
      await emit({ recipes: list }, ({ recipes: l }) => l.map((r) => r.name).join('\n') || undefined);
    });

  recipes
    .command('tree')
    .description('show external bases and the recipes built on them')
    .action(async (_o: unknown, cmd: Command) => {
      await ctx(cmd);
      const g = await RecipeGraph.load(dirOf(cmd));
      const tree = g.tree();
      await emit({ tree }, (d) => renderTree(d.tree) || undefined);
    });

  recipes
    .command('kit')
    .description(
      "write darch's in-image files (trial-boot scripts, systemd units, initramfs-tools hook) into a recipe's build context as DIR/darch-kit, with an install script",
    )
    .argument('<dir>', "the recipe's directory (its build context)")
    .action(async (dir: string, _o: unknown, cmd: Command) => {
      await ctx(cmd);
      const res = await writeKit(dir, VERSION);
      ui.success(`wrote ${res.dir} (${res.files.length} files); add to the recipe:`);
      const snippet = ['# Containerfile:', ...res.snippets.containerfile, '# or, in a Darch-format script:', ...res.snippets.script].join('\n');
      await emit({ ...res, kitDir: KIT_DIR }, () => snippet);
    });

  recipes
    .command('parents')
    .description('the ancestors of a recipe, nearest first, ending with its external base')
    .argument('<recipe>')
    .option('--exclude-external', 'leave out the external base')
    .option('--reverse', 'oldest ancestor first')
    .action(async (name: string, opts: { excludeExternal?: boolean; reverse?: boolean }, cmd: Command) => {
      await ctx(cmd);
      const g = await RecipeGraph.load(dirOf(cmd));
      let parents = g.parents(name);
      if (opts.excludeExternal) parents = parents.filter((p) => g.names.includes(p));
      if (opts.reverse) parents.reverse();
      await emit({ recipe: g.get(name).name, parents }, (d) => d.parents.join('\n') || undefined);
    });

  recipes
    .command('children')
    .description('the recipes that build directly on a recipe')
    .argument('<recipe>')
    .option('--reverse', 'reverse the order')
    .action(async (name: string, opts: { reverse?: boolean }, cmd: Command) => {
      await ctx(cmd);
      const g = await RecipeGraph.load(dirOf(cmd));
      const children = g.children(name);
      if (opts.reverse) children.reverse();
      await emit({ recipe: g.get(name).name, children }, (d) => d.children.join('\n') || undefined);
    });

  recipes
    .command('build-dep')
    .description('the recipes and their local ancestors in build order (parents first, ties by name); none named = all')
    .argument('[recipe...]')
    .action(async (names: string[], _o: unknown, cmd: Command) => {
      await ctx(cmd);
      const g = await RecipeGraph.load(dirOf(cmd));
      const order = g.buildOrder(names.length ? names : undefined);
      await emit({ order }, (d) => d.order.join('\n') || undefined);
    });
}

/**
 * Recipe discovery: every non-hidden subdirectory of the recipes directory is a recipe, in
 * one of two formats (freely mixed):
 *  - Darch's own: `config.json` {"inherits": "<recipe>" | "external:<image>"} and an
 *    executable `script`, run inside the parent image;
 *  - a `Containerfile` (or `Dockerfile`) whose FROM is `darch:<recipe>` or an external image.
 * Loading checks the whole tree (unknown parents, cycles) the way Darch did, so every
 * recipe command fails early on a broken tree.
 */
import { constants } from 'node:fs';
import { access, readFile, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { DarchError, isErrno } from '../lib/errors.js';
import { ContainerfileError, parseContainerfile, type FromTarget, type ParsedContainerfile } from './containerfile.js';
import { loadSettings, type RecipeSettings } from './settings.js';

export const EXTERNAL_PREFIX = 'external:';
export const CONTAINERFILE_NAMES = ['Containerfile', 'Dockerfile'] as const;

export type Parent = { kind: 'recipe'; name: string } | { kind: 'external'; ref: string } | { kind: 'scratch' };

interface RecipeBase {
  name: string;
  dir: string;
  /** The image this recipe starts from (for a multi-stage Containerfile: the final stage's base). */
  parent: Parent;
  /** Every recipe this one needs built first (all `darch:` FROMs; the parent for Darch recipes). */
  deps: string[];
  /** Every external image it reads. */
  externals: string[];
  settings: RecipeSettings;
}

export interface DarchRecipe extends RecipeBase {
  format: 'darch';
  script: string;
}

export interface ContainerfileRecipe extends RecipeBase {
  format: 'containerfile';
  /** Absolute path of the Containerfile or Dockerfile. */
  file: string;
  /** Undefined if the file could not be read (reported when building it). */
  parsed?: ParsedContainerfile;
  readError?: string;
}

export type Recipe = DarchRecipe | ContainerfileRecipe;

export function parentLabel(p: Parent): string {
  return p.kind === 'recipe' ? p.name : p.kind === 'external' ? `${EXTERNAL_PREFIX}${p.ref}` : 'scratch';
}

function invalid(message: string, hint?: string): DarchError {
  return new DarchError('E_RECIPE_INVALID', message, { hint });
}

async function exists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return false;
    return true; // present but unreadable: let the reader report it
  }
}

async function loadDarchRecipe(name: string, dir: string, settings: RecipeSettings): Promise<DarchRecipe> {
  const file = path.join(dir, 'config.json');
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(file, 'utf8'));
  } catch (err) {
    if (err instanceof SyntaxError)
      throw invalid(`${file}: not valid JSON (${err.message})`, 'config.json looks like {"inherits": "external:example/busybox"}');
    throw invalid(`cannot read ${file}: ${(err as Error).message}`);
  }
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw invalid(`${file}: expected a JSON object`);
  const obj = raw as Record<string, unknown>;
  for (const key of Object.keys(obj)) {
    if (key !== 'inherits') throw invalid(`${file}: unknown key ${key}`, 'config.json has one key, "inherits"; env, labels and tags go in recipe.toml');
  }
  const inherits = obj.inherits;
  if (typeof inherits !== 'string' || inherits.trim() === '') {
    throw invalid(`${file}: "inherits" is missing`, 'set "inherits" to another recipe or to external:<image>');
  }
  const parent: Parent = inherits.startsWith(EXTERNAL_PREFIX)
    ? { kind: 'external', ref: inherits.slice(EXTERNAL_PREFIX.length) }
    : { kind: 'recipe', name: inherits };
  if (parent.kind === 'external' && !parent.ref) throw invalid(`${file}: "external:" names no image`);
  return {
    format: 'darch',
    name,
    dir,
    parent,
    deps: parent.kind === 'recipe' ? [parent.name] : [],
    externals: parent.kind === 'external' ? [parent.ref] : [],
    settings,
    script: path.join(dir, 'script'),
  };
}

function toParent(t: FromTarget): Parent {
  if (t.kind === 'recipe') return { kind: 'recipe', name: t.recipe };
  if (t.kind === 'external') return { kind: 'external', ref: t.ref };
  return { kind: 'scratch' };
}

async function loadContainerfileRecipe(name: string, dir: string, file: string, settings: RecipeSettings): Promise<ContainerfileRecipe> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    // An unreadable file must not break `recipes list`; building it fails before any work.
    return { format: 'containerfile', name, dir, file, parent: { kind: 'scratch' }, deps: [], externals: [], settings, readError: (err as Error).message };
  }
  let parsed: ParsedContainerfile;
  try {
    parsed = parseContainerfile(text);
  } catch (err) {
    if (err instanceof ContainerfileError) throw invalid(`${file}: ${err.message}`, 'see docs/RECIPES.md: FROM darch:<recipe> or FROM <image in the store>');
    throw err;
  }
  const deps = [...new Set(parsed.froms.flatMap((f) => (f.target.kind === 'recipe' ? [f.target.recipe] : [])))];
  const externals = [...new Set(parsed.froms.flatMap((f) => (f.target.kind === 'external' ? [f.target.ref] : [])))];
  return { format: 'containerfile', name, dir, file, parsed, parent: toParent(parsed.finalBase), deps, externals, settings };
}

export async function loadRecipe(recipesDir: string, name: string): Promise<Recipe> {
  const dir = path.join(recipesDir, name);
  const hasConfig = await exists(path.join(dir, 'config.json'));
  const cfFiles: string[] = [];
  for (const f of CONTAINERFILE_NAMES) if (await exists(path.join(dir, f))) cfFiles.push(f);
  if (hasConfig && cfFiles.length) {
    throw invalid(
      `recipe ${name} has both config.json and a ${cfFiles[0]}`,
      'a recipe is either Darch format (config.json + script) or a Containerfile; remove one',
    );
  }
  if (!hasConfig && !cfFiles.length) {
    throw invalid(
      `${dir} is not a recipe: it has no config.json, Containerfile or Dockerfile`,
      'every non-hidden directory in the recipes directory is a recipe; rename helper directories to start with a dot',
    );
  }
  const settings = await loadSettings(dir);
  if (hasConfig) return loadDarchRecipe(name, dir, settings);
  return loadContainerfileRecipe(name, dir, path.join(dir, cfFiles[0]!), settings);
}

/** Load every recipe of a directory, sorted by name. */
export async function discoverRecipes(recipesDir: string): Promise<Recipe[]> {
  const dir = path.resolve(recipesDir);
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (err) {
    if (isErrno(err, 'ENOENT'))
      throw new DarchError('E_NOT_FOUND', `recipes directory ${dir} does not exist`, { hint: 'pass the directory with -d/--recipes-dir' });
    if (isErrno(err, 'ENOTDIR')) throw new DarchError('E_NOT_FOUND', `${dir} is not a directory`, { hint: 'pass the recipes directory with -d/--recipes-dir' });
    throw new DarchError('E_FS', `cannot read recipes directory ${dir}: ${(err as Error).message}`);
  }
  const names: string[] = [];
  for (const e of entries) {
    if (e.name.startsWith('.')) continue;
    let isDir = e.isDirectory();
    if (e.isSymbolicLink())
      isDir = await stat(path.join(dir, e.name)).then(
        (s) => s.isDirectory(),
        () => false,
      );
    if (isDir) names.push(e.name);
  }
  names.sort();
  return Promise.all(names.map((n) => loadRecipe(dir, n)));
}

/** Checks that need the file system, done for every recipe of a build before any work starts. */
export async function checkBuildable(r: Recipe): Promise<void> {
  if (r.format === 'darch') {
    try {
      await access(r.script, constants.F_OK);
    } catch {
      throw invalid(`recipe ${r.name} has no script (${r.script})`, 'a Darch-format recipe runs its executable `script` inside the parent image');
    }
    const s = await stat(r.script);
    if (!s.isFile()) throw invalid(`${r.script} is not a file`);
    try {
      await access(r.script, constants.X_OK);
      if ((s.mode & 0o111) === 0) throw new Error('no x bit');
    } catch {
      throw invalid(`${r.script} is not executable`, `chmod +x ${r.script}`);
    }
  } else if (r.readError !== undefined) {
    throw invalid(`cannot read ${r.file}: ${r.readError}`, 'make the Containerfile readable');
  }
  if (!/^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/.test(r.name)) {
    throw invalid(`recipe name "${r.name}" cannot be an image name`, 'rename the directory: lowercase letters, digits and . _ - (as in image names)');
  }
}

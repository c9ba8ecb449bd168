/**
 * Optional per-recipe settings in `<recipe>/recipe.toml`: image env, build args, labels and
 * extra tags. Validated strictly: a typo must fail loudly, naming the file and the key,
 * rather than silently building something else.
 */
import path from 'node:path';
import { loadValidated } from '../lib/validated.js';
import * as z from '../lib/zod.js';

export const SETTINGS_FILE = 'recipe.toml';

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const envMap = z.record(
  z.string().check(z.regex(ENV_NAME, 'must be a shell variable name')),
  z.pipe(z.union([z.string(), z.number(), z.boolean()]), z.transform(String)),
);

export const RecipeSettingsSchema = z.strictObject({
  /** Environment set in the image config and visible to the recipe while it builds. */
  env: z._default(envMap, {}),
  /** Build arguments (Containerfile ARG); Darch-format scripts see them as environment. */
  build_args: z._default(envMap, {}),
  /** Labels in the image config. */
  labels: z._default(z.record(z.string().check(z.minLength(1)), z.string()), {}),
  /** Tags given to the built image in addition to the build tag (same repository). */
  tags: z._default(z.array(z.string().check(z.regex(/^[\w][\w.-]{0,127}$/, 'must be a valid tag'))), []),
  /**
   * More paths (relative to the recipe directory) whose content decides whether the recipe
   * must rebuild, e.g. "../common" when a script sources a sibling recipe's files.
   */
  inputs: z._default(z.array(z.string().check(z.minLength(1))), []),
});

export type RecipeSettings = z.infer<typeof RecipeSettingsSchema>;

export function defaultSettings(): RecipeSettings {
  return RecipeSettingsSchema.parse({});
}

export function loadSettings(recipeDir: string): Promise<RecipeSettings> {
  return loadValidated(path.join(recipeDir, SETTINGS_FILE), RecipeSettingsSchema, {
    code: 'E_RECIPE_INVALID',
    missing: defaultSettings,
    readHint: 'make it readable, or remove it',
    schemaHint: 'recipe.toml knows env, build_args, labels, tags and inputs (see docs/RECIPES.md)',
  });
}

/**
 * Darch-compatible stage hooks. A hook is a directory with a `hook` shell file that defines
 * install (runs here at stage time, writes what the image needs into its staged directory),
 * run (runs in the initramfs with DARCH_ROOT_FS and DARCH_HOOK_DIR) and help.
 *
 * Hooks come from <config>/hooks/<name>/hook, and darch's built-ins (fstab, hostname,
 * machine-id, ssh) unless a hook of the same name is there. <config>/hooks/hooks-config.json
 * selects and orders them:
 *   {"_default": {"execution-order": 0, "include-images": ["*"], "exclude-images": []},
 *    "fstab": {"exclude-images": ["*:testing"]}}
 */
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { assetPath } from '../lib/assets.js';
import { DarchError } from '../lib/errors.js';
import { loadValidated } from '../lib/validated.js';
import * as z from '../lib/zod.js';
import { globMatch } from './glob.js';

export const BUILTIN_HOOKS = ['fstab', 'hostname', 'machine-id', 'ssh'];

const EntrySchema = z.strictObject({
  'execution-order': z.optional(z.number().check(z.int())),
  'include-images': z.optional(z.array(z.string())),
  'exclude-images': z.optional(z.array(z.string())),
});
const HooksConfigSchema = z.record(z.string(), EntrySchema);

export type HooksConfig = z.infer<typeof HooksConfigSchema>;

export interface Hook {
  name: string;
  /** The directory holding `hook`. */
  dir: string;
  builtin: boolean;
  executionOrder: number;
  include: string[];
  exclude: string[];
}

export function hooksDir(configDir: string): string {
  return path.join(configDir, 'hooks');
}

export function loadHooksConfig(configDir: string): Promise<HooksConfig> {
  return loadValidated(path.join(hooksDir(configDir), 'hooks-config.json'), HooksConfigSchema, {
    code: 'E_CONFIG',
    missing: () => ({}),
    schemaHint: 'each hook (or _default) takes execution-order, include-images and exclude-images',
  });
}

async function isHookDir(dir: string): Promise<boolean> {
  return stat(path.join(dir, 'hook')).then(
    (s) => s.isFile(),
    () => false,
  );
}

export async function discoverHooks(configDir: string): Promise<Hook[]> {
  const config = await loadHooksConfig(configDir);
  const def = config._default ?? {};
  const found = new Map<string, { dir: string; builtin: boolean }>();
  for (const name of BUILTIN_HOOKS) found.set(name, { dir: assetPath('hooks', name), builtin: true });
  const userDir = hooksDir(configDir);
  for (const ent of await readdir(userDir, { withFileTypes: true }).catch(() => [])) {
    if (!ent.isDirectory() || ent.name.startsWith('.')) continue;
    const dir = path.join(userDir, ent.name);
    if (await isHookDir(dir)) found.set(ent.name, { dir, builtin: false });
  }
  for (const key of Object.keys(config)) {
    if (key !== '_default' && !found.has(key)) {
      throw new DarchError('E_CONFIG', `${path.join(userDir, 'hooks-config.json')} configures hook "${key}", which does not exist`, {
        hint: `hooks: ${[...found.keys()].sort().join(', ')}`,
      });
    }
  }
  const hooks = [...found.entries()].map(([name, h]) => {
    const c = config[name] ?? {};
    return {
      name,
      ...h,
      executionOrder: c['execution-order'] ?? def['execution-order'] ?? 0,
      include: c['include-images'] ?? def['include-images'] ?? ['*'],
      exclude: c['exclude-images'] ?? def['exclude-images'] ?? [],
    };
  });
  return hooks.sort((a, b) => a.executionOrder - b.executionOrder || a.name.localeCompare(b.name));
}

export function hookApplies(hook: Hook, tag: string): boolean {
  return hook.include.some((g) => globMatch(g, tag)) && !hook.exclude.some((g) => globMatch(g, tag));
}

export function findHook(hooks: Hook[], name: string): Hook {
  const h = hooks.find((x) => x.name === name);
  if (!h) throw new DarchError('E_HOOK_UNKNOWN', `no hook named ${name}`, { hint: `hooks: ${hooks.map((x) => x.name).join(', ')}` });
  return h;
}

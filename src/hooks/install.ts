/**
 * The install phase of hooks for one staged tag: each applicable hook runs on the host and
 * writes into live/<id>/hooks/<tag-key>/<order>_<name>/, which the initramfs runs at boot.
 * Output is per tag (the original Darch shared one directory between all tags of an image,
 * so the last tag's glob matches won), and whatever a hook prints on stderr is reported.
 */
import { mkdir, readdir, rm, copyFile, chmod } from 'node:fs/promises';
import path from 'node:path';
import { assetPath } from '../lib/assets.js';
import { DarchError, fsError } from '../lib/errors.js';
import type { DarchPaths } from '../lib/paths.js';
import { run, which } from '../lib/proc.js';
import { makeWorkDir, swapDir, sweepDeadOwners } from '../lib/scratch.js';
import { HOOKS_DIR, tagKey } from '../stage/layout.js';
import type { StagedImage } from '../stage/store.js';
import { discoverHooks, hookApplies, hooksDir, type Hook } from './hooks.js';

export interface HookRun {
  hook: string;
  applied: boolean;
  /** What the hook said on stderr (a glob that matched nothing, a missing file…). */
  messages: string[];
  files: string[];
}

export interface ApplyResult {
  id: string;
  tag: string;
  dir: string;
  hooks: HookRun[];
}

async function shell(): Promise<string> {
  return (await which('bash')) ?? 'sh';
}

export function hookEnv(paths: DarchPaths, hook: Hook, extra: Record<string, string>): NodeJS.ProcessEnv {
  return {
    ...process.env,
    DARCH_HOOKS_DIR: hooksDir(paths.configDir),
    DARCH_HOOK_NAME: hook.name,
    DARCH_HOOK_DIR: hook.dir,
    DARCH_CONFIG_DIR: paths.configDir,
    DARCH_HOST_ROOT: paths.root,
    DARCH_HOOK_LIB: assetPath('hooks', 'lib.sh'),
    ...extra,
  };
}

/** Run `. hook && <fn>` with darch's helper library loaded first. */
export async function callHook(paths: DarchPaths, hook: Hook, fn: 'install' | 'help', extra: Record<string, string>, cwd?: string) {
  const script = `. "$DARCH_HOOK_LIB" && . "$DARCH_HOOK_DIR/hook" && ${fn}`;
  return run(await shell(), ['-c', script], { env: hookEnv(paths, hook, extra), cwd, allowFailure: true });
}

export async function applyHooks(paths: DarchPaths, image: Pick<StagedImage, 'id' | 'dir' | 'tags'>, tag: string): Promise<ApplyResult> {
  if (!image.tags.includes(tag)) throw new DarchError('E_NOT_STAGED', `${tag} is not a tag of staged image ${image.id}`);
  const hooks = await discoverHooks(paths.configDir);
  const base = path.join(image.dir, HOOKS_DIR);
  const key = tagKey(tag);
  // What a killed run left here is its own; the tag's directory itself is never touched.
  await sweepDeadOwners(base).catch(() => 0);
  const tmp = await makeWorkDir(base, 'hooks', 0o755);
  const runs: HookRun[] = [];
  try {
    let n = 0;
    for (const hook of hooks) {
      if (!hookApplies(hook, tag)) {
        runs.push({ hook: hook.name, applied: false, messages: [], files: [] });
        continue;
      }
      const dest = path.join(tmp, `${String(n++).padStart(8, '0')}_${hook.name}`);
      await mkdir(dest, { recursive: true });
      await copyFile(path.join(hook.dir, 'hook'), path.join(dest, 'hook'));
      await chmod(path.join(dest, 'hook'), 0o755);
      const res = await callHook(paths, hook, 'install', { DARCH_HOOK_DEST_DIR: dest, DARCH_IMAGE_NAME: tag }, dest);
      const messages = res.stderr
        .split('\n')
        .map((l) => l.trim())
        .filter(Boolean);
      if (res.code !== 0) {
        throw new DarchError(
          'E_HOOK_FAILED',
          `hook ${hook.name} failed for ${tag} (exit ${res.code})${messages.length ? `: ${messages.slice(-2).join(' | ')}` : ''}`,
          {
            hint: `fix the hook or its configuration in ${hooksDir(paths.configDir)}, or exclude ${tag} in hooks-config.json; then run \`darch hooks apply ${tag}\``,
            details: { hook: hook.name, tag, stderr: res.stderr },
          },
        );
      }
      const files = (await readdir(dest)).filter((f) => f !== 'hook').sort();
      runs.push({ hook: hook.name, applied: true, messages, files });
    }
    // Swap the tag's hook directory whole: the initramfs never sees half of it, or none.
    const final = path.join(base, key);
    await swapDir(tmp, final);
    return { id: image.id, tag, dir: final, hooks: runs };
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw err instanceof DarchError ? err : fsError(err, `cannot install hooks for ${tag}`);
  }
}

/** Drop hook output of tags the image no longer has. */
export async function pruneHookDirs(image: Pick<StagedImage, 'dir' | 'tags'>): Promise<void> {
  const base = path.join(image.dir, HOOKS_DIR);
  const keep = new Set(image.tags.map(tagKey));
  for (const ent of await readdir(base).catch(() => [] as string[])) {
    if (!keep.has(ent)) await rm(path.join(base, ent), { recursive: true, force: true });
  }
}

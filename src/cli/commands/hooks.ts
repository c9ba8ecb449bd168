/** `darch hooks …`: Darch-compatible stage hooks (list, details, help, apply). */
import path from 'node:path';
import type { Command } from 'commander';
import { DarchError } from '../../lib/errors.js';
import { emit, table } from '../output.js';
import { ui } from '../ui.js';
import { listStaged } from '../../boot/shared/staged.js';
import { matchStaged } from '../../stage/store.js';
import { bootsDarchMenu, syncBoot } from '../../boot/reconcile.js';
import { discoverHooks, findHook, hookApplies, hooksDir } from '../../hooks/hooks.js';
import { applyHooks, callHook, pruneHookDirs, type ApplyResult } from '../../hooks/install.js';
import type { ContextFactory } from '../globals.js';
import { lockTimeout } from '../context.js';

export function registerHooks(hooks: Command, ctx: ContextFactory): void {
  hooks
    .command('list')
    .description('list hooks in execution order')
    .action(async (_o: unknown, cmd: Command) => {
      const c = await ctx(cmd);
      const list = await discoverHooks(c.paths.configDir);
      await emit({ hooks: list }, ({ hooks: l }) =>
        table(
          ['NAME', 'ORDER', 'INCLUDE', 'EXCLUDE', 'SOURCE'],
          l.map((h) => [h.name, String(h.executionOrder), h.include.join(','), h.exclude.join(',') || '-', h.builtin ? 'built-in' : h.dir]),
        ),
      );
    });

  hooks
    .command('details')
    .description('show a hook: where it is, its order and globs, and which staged images it applies to')
    .argument('<hook>')
    .action(async (name: string, _o: unknown, cmd: Command) => {
      const c = await ctx(cmd);
      const hook = findHook(await discoverHooks(c.paths.configDir), name);
      const staged = await listStaged(c.paths.stageDir);
      const tags = staged.flatMap((s) => s.tags);
      // A built-in lives wherever darch is installed (a source checkout, /usr/lib/…): not a
      // path to copy from. What a person can do is put a hook of the same name in the config.
      const override = path.join(hooksDir(c.paths.configDir), hook.name, 'hook');
      const data = { ...hook, override, matchedImages: tags.filter((t) => hookApplies(hook, t)), unmatchedImages: tags.filter((t) => !hookApplies(hook, t)) };
      await emit(data, (d) =>
        [
          `name             ${d.name}`,
          d.builtin ? `path             built into darch (\`darch hooks help ${d.name}\`); ${d.override} replaces it` : `path             ${d.dir}`,
          `execution-order  ${d.executionOrder}`,
          `include-images   ${d.include.join(', ')}`,
          `exclude-images   ${d.exclude.join(', ') || '-'}`,
          `applies to       ${d.matchedImages.join(', ') || '-'}`,
          `skips            ${d.unmatchedImages.join(', ') || '-'}`,
        ].join('\n'),
      );
    });

  hooks
    .command('help')
    .description("print a hook's own help")
    .argument('<hook>')
    .action(async (name: string, _o: unknown, cmd: Command) => {
      const c = await ctx(cmd);
      const hook = findHook(await discoverHooks(c.paths.configDir), name);
      const res = await callHook(c.paths, hook, 'help', {});
      if (res.code !== 0)
        throw new DarchError('E_HOOK_FAILED', `hook ${name} has no working help function (exit ${res.code})`, { hint: res.stderr.trim().split('\n').pop() });
      await emit({ hook: name, help: res.stdout }, (d) => d.help);
    });

  hooks
    .command('apply')
    .description("run the hooks' install phase for staged images (all when none are named), then update the boot menu")
    .argument('[staged...]', 'NAME:TAG or id')
    .option('--no-sync', 'do not regenerate the GRUB menu')
    .action(async (which: string[], opts: { sync: boolean }, cmd: Command) => {
      const c = await ctx(cmd);
      const staged = await listStaged(c.paths.stageDir);
      const jobs: { image: (typeof staged)[number]; tag: string }[] = [];
      if (which.length === 0) for (const image of staged) for (const tag of image.tags) jobs.push({ image, tag });
      else {
        for (const w of which) {
          const { image, tag } = matchStaged(staged, w);
          for (const t of tag ? [tag] : image.tags) jobs.push({ image, tag: t });
        }
      }
      const results: ApplyResult[] = [];
      for (const j of jobs) {
        const r = await applyHooks(c.paths, j.image, j.tag);
        results.push(r);
        const applied = r.hooks.filter((h) => h.applied);
        ui.success(`${j.tag}: ${applied.map((h) => `${h.hook}${h.files.length ? '' : ' (nothing)'}`).join(', ') || 'no hooks apply'}`);
        for (const h of r.hooks) for (const m of h.messages) ui.warn(`${j.tag}: hook ${h.hook}: ${m}`);
      }
      for (const image of staged) await pruneHookDirs(image);
      // Like every stage change: only where this machine boots darch's menu.
      if (opts.sync && staged.length > 0 && (await bootsDarchMenu(c.paths, c.config))) {
        try {
          await syncBoot(c.paths, c.config, lockTimeout(c.config), c.report);
        } catch (err) {
          ui.warn(`boot menu not updated: ${(err as Error).message}`);
        }
      }
      await emit({ results }, () => undefined);
    });
}

/**
 * After any change to the staged set (upload, tag, remove, import): give every staged tag
 * its hook output, drop the output of tags that are gone, and rewrite the boot menu. Safe to
 * run any number of times; a failure to write the menu is reported, never fatal to staging
 * (the previous menu still boots the previous images).
 */
import { access } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from '../lib/config.js';
import type { DarchPaths } from '../lib/paths.js';
import { silentReporter, type Reporter } from '../lib/report.js';
import { applyHooks, pruneHookDirs } from '../hooks/install.js';
import { listStaged } from './shared/staged.js';
import { hooksRel } from '../stage/layout.js';
import { localBootloader, syncSdbootLocal, type SdbootSyncResult } from './sdboot/sdboot-sync.js';
import { syncBootConfig, type SyncResult } from './grub/sync.js';

/** The boot loader's side of the staged store: GRUB's menu, or systemd-boot's entries and ESP kernels. */
export async function syncBoot(paths: DarchPaths, config: Config, lockTimeoutSec = config.store.lock_timeout, report: Reporter = silentReporter): Promise<{ grub?: SyncResult; sdboot?: SdbootSyncResult }> {
  if ((await localBootloader(paths, config)) === 'systemd-boot') return { sdboot: await syncSdbootLocal(paths, config, lockTimeoutSec, { report }) };
  return { grub: await syncBootConfig(paths, { config }) };
}

export async function reconcileBoot(paths: DarchPaths, config: Config, lockTimeoutSec = config.store.lock_timeout, report: Reporter = silentReporter): Promise<{ grub?: SyncResult; sdboot?: SdbootSyncResult } | undefined> {
  const staged = await listStaged(paths.stageDir);
  for (const image of staged) {
    for (const tag of image.tags) {
      const have = await access(path.join(image.dir, hooksRel(tag))).then(() => true, () => false);
      if (!have) {
        const r = await applyHooks(paths, image, tag);
        for (const h of r.hooks) for (const m of h.messages) report.warn(`${tag}: hook ${h.hook}: ${m}`);
      }
    }
    await pruneHookDirs(image);
  }
  try {
    return await syncBoot(paths, config, lockTimeoutSec, report);
  } catch (err) {
    report.warn(`the boot menu was not updated: ${(err as Error).message}${(err as { hint?: string }).hint ? ` (${(err as { hint?: string }).hint})` : ''}`);
    return undefined;
  }
}

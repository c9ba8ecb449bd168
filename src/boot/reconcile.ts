/**
 * After any change to the staged set (upload, tag, remove, import): give every staged tag
 * its hook output, drop the output of tags that are gone, and rewrite the boot menu where
 * this machine boots darch's menu (`bootsDarchMenu`). Safe to run any number of times; a
 * failure to write the menu is reported with what to do, never fatal to staging (the
 * previous menu still boots the previous images). A build host that only stages images
 * for disks or other machines hears nothing about menus.
 */
import { access, readdir } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from '../lib/config.js';
import type { DarchPaths } from '../lib/paths.js';
import { silentReporter, type Reporter } from '../lib/report.js';
import { applyHooks, pruneHookDirs } from '../hooks/install.js';
import { bootedId } from '../stage/protect.js';
import { hooksRel } from '../stage/layout.js';
import { ESP_DARCH_DIR, localEspDir } from './shared/esp.js';
import { ENV_BACKUP, ENV_PRIMARY } from './grub/grubenv.js';
import { ENTRIES_DIR, parseEntryName } from './sdboot/sdboot.js';
import { listStaged } from './shared/staged.js';
import { localBootloader, syncSdbootLocal, type SdbootSyncResult } from './sdboot/sdboot-sync.js';
import { syncBootConfig, type SyncResult } from './grub/sync.js';

/** The boot loader's side of the staged store: GRUB's menu, or systemd-boot's entries and ESP kernels. */
export async function syncBoot(
  paths: DarchPaths,
  config: Config,
  lockTimeoutSec = config.store.lock_timeout,
  report: Reporter = silentReporter,
): Promise<{ grub?: SyncResult; sdboot?: SdbootSyncResult }> {
  if ((await localBootloader(paths, config)) === 'systemd-boot') return { sdboot: await syncSdbootLocal(paths, config, lockTimeoutSec, { report }) };
  return { grub: await syncBootConfig(paths, { config }) };
}

const exists = (p: string): Promise<boolean> =>
  access(p).then(
    () => true,
    () => false,
  );

/**
 * Why this machine boots darch's menu, or undefined when nothing says it does: `boot.bootloader`
 * set in config.toml, `/etc/grub.d/60_darch` (`darch boot install`), a running darch image
 * (`darch_stageid=` on the kernel command line), or darch's boot state on the mounted ESP
 * (`EFI/darch/grubenv` or darch's systemd-boot entries).
 */
export async function bootsDarchMenu(paths: DarchPaths, config: Config): Promise<string | undefined> {
  if (config.boot.bootloader !== 'auto') return `boot.bootloader = "${config.boot.bootloader}" in config.toml`;
  const hook = path.join(paths.root, 'etc/grub.d/60_darch');
  if (await exists(hook)) return `${hook} (darch boot install)`;
  if (await bootedId().catch(() => undefined)) return 'this machine runs a darch image';
  let esp: string;
  try {
    esp = await localEspDir(paths, config.boot.esp);
  } catch {
    return undefined;
  }
  for (const f of [ENV_PRIMARY, ENV_BACKUP])
    if (await exists(path.join(esp, ESP_DARCH_DIR, f))) return `darch's boot state in ${path.join(esp, ESP_DARCH_DIR)}`;
  const entries = await readdir(path.join(esp, ENTRIES_DIR)).catch(() => [] as string[]);
  if (entries.some((f) => parseEntryName(f))) return `darch's systemd-boot entries in ${path.join(esp, ENTRIES_DIR)}`;
  return undefined;
}

export async function reconcileBoot(
  paths: DarchPaths,
  config: Config,
  lockTimeoutSec = config.store.lock_timeout,
  report: Reporter = silentReporter,
): Promise<{ grub?: SyncResult; sdboot?: SdbootSyncResult } | undefined> {
  const staged = await listStaged(paths.stageDir);
  for (const image of staged) {
    for (const tag of image.tags) {
      const have = await access(path.join(image.dir, hooksRel(tag))).then(
        () => true,
        () => false,
      );
      if (!have) {
        const r = await applyHooks(paths, image, tag);
        for (const h of r.hooks) for (const m of h.messages) report.warn(`${tag}: hook ${h.hook}: ${m}`);
      }
    }
    await pruneHookDirs(image);
  }
  const why = await bootsDarchMenu(paths, config);
  if (!why) {
    report.debug("boot menu not synced: this machine does not boot darch's menu (no `darch boot install`, no darch state on an ESP)");
    return undefined;
  }
  try {
    return await syncBoot(paths, config, lockTimeoutSec, report);
  } catch (err) {
    const hint = (err as { hint?: string }).hint;
    report.warn(
      `the boot menu was not updated (this machine boots darch's menu: ${why}): ${(err as Error).message}\n` +
        `  ${hint ? `${hint}, then ` : ''}run \`darch boot sync\`; until then the boot menu still lists the images it listed before`,
    );
    return undefined;
  }
}

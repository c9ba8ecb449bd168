/**
 * /etc/darch/config.toml (or the XDG equivalent). Unknown keys are errors that name the
 * file and the key: a typo must not silently fall back to a default.
 */
import { z } from 'zod';
import { loadValidated } from './validated.js';

export const ConfigSchema = z
  .object({
    store: z
      .object({
        /** Compression for layers darch creates itself (imports of plain root file systems). */
        compression: z.enum(['gzip', 'none']).default('gzip'),
        /** Seconds to wait for another darch process to release the store lock. */
        lock_timeout: z.number().int().min(0).default(10),
      })
      .strict()
      .prefault({}),
    registry: z
      .object({
        /** Registries (host[:port]) whose TLS is not verified and that may speak plain HTTP. */
        insecure: z.array(z.string()).default([]),
        /** Retries after a failed request (5xx, 429, connection reset, stall). */
        retries: z.number().int().min(0).max(20).default(5),
        /** Seconds without any progress before a request counts as stalled. */
        timeout: z.number().int().min(1).default(60),
        /** Blobs transferred at the same time. */
        jobs: z.number().int().min(1).max(16).default(4),
        /** Push uploads in chunks of this many MiB; 0 uploads each blob in one request. */
        chunk_size_mib: z.number().int().min(0).default(0),
      })
      .strict()
      .prefault({}),
    stage: z
      .object({
        /** Staged images to keep; the booted, default and trial images are never removed. */
        keep: z.number().int().min(1).default(3),
        /** squashfs compressor for staged root file systems (the kernel must support it). */
        compression: z.enum(['zstd', 'xz', 'gzip', 'lz4', 'lzo']).default('zstd'),
      })
      .strict()
      .prefault({}),
    boot: z
      .object({
        /** Where the EFI system partition is mounted (default: the first of /boot/efi, /efi, /boot holding EFI/). */
        esp: z.string().optional(),
        /** Boots a trial gets before GRUB falls back to the default (`darch boot try --tries`). */
        tries: z.number().int().min(1).max(20).default(3),
        /**
         * Trial boots reboot this many seconds after a kernel panic (`panic=N` on the trial's
         * command line, unless its own arguments set panic=). 0: add nothing.
         */
        trial_panic: z.number().int().min(0).max(3600).default(10),
        /**
         * Trial boots run under a watchdog that resets them unless they commit within this
         * many seconds (`darch.watchdog=S`, unless their own arguments set it). 0: off.
         */
        trial_watchdog: z.number().int().min(0).max(86400).default(300),
        /**
         * UUID of the file system holding the stage directory, for when findmnt/blkid cannot
         * read it (containers, no udev). Empty: detect.
         */
        stage_fs_uuid: z
          .string()
          .regex(/^$|^[0-9A-Fa-f-]+$/, 'a file-system UUID')
          .default(''),
        /** Path of the stage directory inside that file system. Empty: from the mount table. */
        stage_fs_path: z
          .string()
          .regex(/^$|^\//, 'an absolute path')
          .default(''),
        /**
         * Which initramfs staged images boot with: "auto" keeps the image's own when it knows
         * darch (initramfs-tools/mkinitcpio/dracut hook inside), else darch's universal one.
         */
        initramfs: z.enum(['auto', 'darch', 'image']).default('auto'),
        /**
         * Which boot loader `darch boot sync` writes for: "auto" uses systemd-boot when darch's
         * Boot Loader Specification entries are on the ESP, GRUB otherwise.
         */
        bootloader: z.enum(['auto', 'grub', 'systemd-boot']).default('auto'),
        /**
         * Extra kernel arguments of systemd-boot entries (GRUB takes them from GRUB_CMDLINE_LINUX).
         * Unset: the kernel arguments of the darch disk the ESP belongs to (EFI/darch/disk.json).
         */
        kernel_args: z.string().optional(),
      })
      .strict()
      .prefault({}),
  })
  .strict();

export type Config = z.infer<typeof ConfigSchema>;

export function defaultConfig(): Config {
  return ConfigSchema.parse({});
}

export function loadConfig(file: string): Promise<Config> {
  return loadValidated(file, ConfigSchema, {
    code: 'E_CONFIG',
    missing: defaultConfig,
    schemaHint: 'see docs/CONFIG.md for the keys darch knows',
  });
}

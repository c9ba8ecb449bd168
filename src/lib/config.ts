/**
 * /etc/darch/config.toml (or the XDG equivalent). Unknown keys are errors that name the
 * file and the key: a typo must not silently fall back to a default.
 */
import { loadValidated } from './validated.js';
import * as z from './zod.js';

/** A whole number from `min` (to `max`), `def` when absent. */
function whole(def: number, min: number, max?: number) {
  return z._default(z.number().check(z.int(), z.gte(min), ...(max === undefined ? [] : [z.lte(max)])), def);
}

export const ConfigSchema = z.lazySchema(() =>
  z.strictObject({
    store: z.prefault(
      z.strictObject({
        /** Compression for layers darch creates itself (imports of plain root file systems). */
        compression: z._default(z.enum(['gzip', 'none']), 'gzip'),
        /** Seconds to wait for another darch process to release the store lock. */
        lock_timeout: whole(10, 0),
      }),
      {},
    ),
    registry: z.prefault(
      z.strictObject({
        /** Registries (host[:port]) whose TLS is not verified and that may speak plain HTTP. */
        insecure: z._default(z.array(z.string()), []),
        /** Retries after a failed request (5xx, 429, connection reset, stall). */
        retries: whole(5, 0, 20),
        /** Seconds without any progress before a request counts as stalled. */
        timeout: whole(60, 1),
        /** Blobs transferred at the same time. */
        jobs: whole(4, 1, 16),
        /** Push uploads in chunks of this many MiB; 0 uploads each blob in one request. */
        chunk_size_mib: whole(0, 0),
      }),
      {},
    ),
    stage: z.prefault(
      z.strictObject({
        /** Staged images to keep; the booted, default and trial images are never removed. */
        keep: whole(3, 1),
        /** squashfs compressor for staged root file systems (the kernel must support it). */
        compression: z._default(z.enum(['zstd', 'xz', 'gzip', 'lz4', 'lzo']), 'zstd'),
        /** Stage with a dm-verity hash tree and boot through it (`darch stage upload --verity`). */
        verity: z._default(z.boolean(), false),
      }),
      {},
    ),
    boot: z.prefault(
      z.strictObject({
        /** Where the EFI system partition is mounted (default: the first of /boot/efi, /efi, /boot holding EFI/). */
        esp: z.optional(z.string()),
        /** Boots a trial gets before GRUB falls back to the default (`darch boot try --tries`). */
        tries: whole(3, 1, 20),
        /**
         * Trial boots reboot this many seconds after a kernel panic (`panic=N` on the trial's
         * command line, unless its own arguments set panic=). 0: add nothing.
         */
        trial_panic: whole(10, 0, 3600),
        /**
         * Trial boots run under a watchdog that resets them unless they commit within this
         * many seconds (`darch.watchdog=S`, unless their own arguments set it). 0: off.
         */
        trial_watchdog: whole(300, 0, 86400),
        /**
         * UUID of the file system holding the stage directory, for when findmnt/blkid cannot
         * read it (containers, no udev). Empty: detect.
         */
        stage_fs_uuid: z._default(z.string().check(z.regex(/^$|^[0-9A-Fa-f-]+$/, 'a file-system UUID')), ''),
        /** Path of the stage directory inside that file system. Empty: from the mount table. */
        stage_fs_path: z._default(z.string().check(z.regex(/^$|^\//, 'an absolute path')), ''),
        /**
         * Which initramfs staged images boot with: "auto" keeps the image's own when it knows
         * darch (initramfs-tools/mkinitcpio/dracut hook inside), else darch's universal one.
         */
        initramfs: z._default(z.enum(['auto', 'darch', 'image']), 'auto'),
        /**
         * Which boot loader `darch boot sync` writes for: "auto" uses systemd-boot when darch's
         * Boot Loader Specification entries are on the ESP, GRUB otherwise.
         */
        bootloader: z._default(z.enum(['auto', 'grub', 'systemd-boot']), 'auto'),
        /**
         * Extra kernel arguments of systemd-boot entries (GRUB takes them from GRUB_CMDLINE_LINUX).
         * Unset: the kernel arguments of the darch disk the ESP belongs to (EFI/darch/disk.json).
         */
        kernel_args: z.optional(z.string()),
      }),
      {},
    ),
    update: z.prefault(
      z.strictObject({
        /** The image this machine follows, e.g. "registry.example/os/desktop:stable". Empty: none. */
        image: z._default(z.string(), ''),
        /**
         * How far `darch update run` (the timer) goes on its own: none, check, download,
         * stage (staged but not armed), apply (staged and armed as a trial for the next boot).
         */
        policy: z._default(z.enum(['none', 'check', 'download', 'stage', 'apply']), 'apply'),
        /** Boots the update's trial gets; 0: boot.tries. */
        tries: whole(0, 0, 20),
        /**
         * After an update is armed: "never" reboot, "prompt" (only tell the users), or a daily
         * window "HH:MM-HH:MM" (local time) in which the machine reboots when no one is logged in;
         * "00:00-24:00" is any time.
         */
        reboot: z._default(
          z
            .string()
            .check(
              z.regex(
                /^(never|prompt|([01]\d|2[0-3]):[0-5]\d-(([01]\d|2[0-3]):[0-5]\d|24:00))$/,
                'never, prompt or a window like 02:00-05:00 (24:00 ends one at midnight)',
              ),
            ),
          'prompt',
        ),
        /** How often the timer's run looks for an update: hourly, daily, weekly, or a duration like 6h, 30m. */
        schedule: z._default(z.string().check(z.regex(/^(hourly|daily|weekly|\d+[smhd])$/, 'hourly, daily, weekly or a duration like 6h')), 'daily'),
        /** Each machine waits up to this long past its schedule (the same machine always the same share of it). */
        random_delay: z._default(z.string().check(z.regex(/^\d+[smhd]$/, 'a duration like 1h or 30m')), '1h'),
        /** The platform whose image this machine takes (os/arch[/variant]); empty: this machine's. */
        platform: z._default(z.string(), ''),
        /**
         * Stage an update from a delta the registry holds for it (darch delta push), when one
         * starts from an image staged here; false: always the layers.
         */
        deltas: z._default(z.boolean(), true),
      }),
      {},
    ),
  }),
);

export type Config = z.infer<ReturnType<typeof ConfigSchema>>;

// The executable carries the defaults, computed from the schema when it was built
// (scripts/build.mjs): a run without a config file then builds no schema at all.
declare const __DARCH_DEFAULT_CONFIG__: string | undefined;

export function defaultConfig(): Config {
  if (typeof __DARCH_DEFAULT_CONFIG__ === 'string') return JSON.parse(__DARCH_DEFAULT_CONFIG__) as Config;
  return ConfigSchema().parse({});
}

export function loadConfig(file: string): Promise<Config> {
  return loadValidated(file, ConfigSchema, {
    code: 'E_CONFIG',
    missing: defaultConfig,
    schemaHint: 'see docs/CONFIG.md for the keys darch knows',
  });
}

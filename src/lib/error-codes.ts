/**
 * Every error code darch throws, declared once. `DarchError` takes only these, so a new
 * code must be added here (and so appears in docs/ERRORS.md, which
 * `node --import tsx scripts/errors-doc.ts` generates from this table and a unit test
 * compares). Codes are a public interface: scripts match them in `--json` output, so a
 * code is never renamed or reused for another meaning.
 *
 * `hint` here is the general advice for the docs; the error itself carries a hint
 * specific to the case (only the file-system hints below are used at run time, by fsError).
 * `exit` is the process exit status when a throw does not give its own.
 */

/** Process exit statuses. This module has no imports so errors.ts and the CLI can share it. */
export const ExitCode = {
  ok: 0,
  failure: 1,
  usage: 2,
  /**
   * A configuration file (config.toml, hooks-config.json, recipe.toml, a recipe) is
   * unreadable, malformed or invalid: sysexits.h's EX_CONFIG, as systemd and sendmail use.
   */
  config: 78,
  /** `check`-style commands: an update is available (dnf check-update precedent). */
  updateAvailable: 100,
  /** SIGINT, the shell convention 128 + signal number. */
  interrupted: 130,
  /** SIGTERM, 128 + 15. */
  terminated: 143,
} as const;

export interface ErrorCodeInfo {
  /** What happened, in one sentence. */
  meaning: string;
  /** What a person can usually do about it. */
  hint?: string;
  /** Exit status unless the throw gives one; ExitCode.failure when absent. */
  exit?: number;
}

export const ERROR_CODES = {
  E_ABORTED: {
    meaning: 'darch was interrupted (Ctrl-C, SIGTERM) and stopped; a SIGTERM exits 143',
    hint: 'run the command again: interrupted work is cleaned up or resumed',
    exit: ExitCode.interrupted,
  },
  E_ALREADY_STAGED: {
    meaning: 'a tag or image being staged or imported already names another staged image',
    hint: 'add --force to move the tag, or give another tag',
  },
  E_AMBIGUOUS: {
    meaning: 'a short id, digest or archive matches more than one image',
    hint: 'give more characters, a tag, or choose with --source-ref',
  },
  E_ASSETS_MISSING: {
    meaning: 'darch cannot find its assets/ directory (initramfs scripts, hooks, GRUB snippets)',
    hint: 'run darch from its source tree or set DARCH_ASSETS',
  },
  E_AUTH: {
    meaning: "a registry's token service failed or answered something darch cannot use",
    hint: 'try again later; check `darch login`',
  },
  E_AUTH_DENIED: {
    meaning: 'the registry accepted the credentials but denied the pull or push',
    hint: 'check that the account may use that repository: `darch login HOST`',
  },
  E_AUTH_FAILED: {
    meaning: 'the registry rejected the user name or password',
    hint: '`darch login HOST` again',
  },
  E_AUTH_FILE: {
    meaning: 'a registry auth file (auth.json) cannot be read or is not valid JSON',
    hint: 'fix or remove the file, then `darch login` again',
  },
  E_AUTH_REQUIRED: {
    meaning: 'the registry requires credentials and none are stored for it',
    hint: '`darch login HOST`',
  },
  E_BAD_ARCHIVE: {
    meaning: 'an image archive (OCI layout, OCI or docker-save tar) is incomplete or malformed',
    hint: 'copy or export the archive again; nothing was imported',
  },
  E_BAD_DEFAULT: {
    meaning: 'the default boot image cannot be marked bad',
    hint: 'set another default first (`darch boot set-default`)',
  },
  E_BAD_IMAGE: {
    meaning: "an image's boot description (/etc/darch/image.json) or a file read from it is invalid",
    hint: 'fix the image and build it again',
  },
  E_BAD_INPUT: {
    meaning: 'an input path is not what the command reads (a directory where a file is expected, unreadable)',
    hint: 'check the path; OCI layout directories are given as oci:DIR',
  },
  E_BAD_LAYER: {
    meaning: 'an image layer is not a valid tar archive or has entries darch refuses (outside the root, broken hard links)',
    hint: 'rebuild or re-import the image',
  },
  E_BAD_REFERENCE: {
    meaning: 'an image reference is not a valid NAME[:TAG] or NAME@DIGEST',
    hint: 'use lowercase names and tags of letters, digits, . _ -',
    exit: ExitCode.usage,
  },
  E_BLOB_MISSING: {
    meaning: 'an image needs a blob that is not in the image store',
    hint: 'run `darch images verify`; re-import or re-pull the image',
  },
  E_BLOB_TOO_LARGE: {
    meaning: 'a blob read as a manifest or config is larger than the 8 MiB darch reads whole',
  },
  E_BOOT_LOCATION: {
    meaning: 'darch cannot tell, or GRUB cannot read, the file system that holds the stage directory',
    hint: 'install findmnt, keep the stage on ext4/btrfs/xfs, or set boot.stage_fs_uuid and boot.stage_fs_path',
  },
  E_BOOT_MKCONFIG: {
    meaning: 'grub-mkconfig (or update-grub) failed while installing the boot menu',
    hint: 'run it by hand to see the whole error',
  },
  E_BOOT_PATH: {
    meaning: 'the stage directory path has characters GRUB or the kernel command line cannot carry',
    hint: 'use a path of letters, digits and / . _ -',
  },
  E_BUILDER_UNUSABLE: {
    meaning: 'the chosen builder (buildah, podman, docker) is installed but does not work here',
    hint: '`darch doctor` shows why; choose another with --builder',
  },
  E_BUILD_FAILED: {
    meaning: "a recipe's build step exited with a failure",
    hint: "the step's output is printed above",
  },
  E_BUNDLE_CORRUPT: {
    meaning: 'a staged-image bundle is truncated or does not match its checksums',
    hint: 'copy the bundle again (or re-export it); nothing was staged',
  },
  E_COMMAND_FAILED: {
    meaning: 'an external program darch ran failed or could not start',
    hint: 'its last lines of output are in the message; `--debug` shows the command',
  },
  E_CONFIG: {
    meaning: 'a configuration file (config.toml, hooks-config.json) is unreadable, malformed or has an unknown key or bad value',
    hint: 'fix the file and key named in the message; see docs/CONFIG.md',
    exit: ExitCode.config,
  },
  E_CORRUPT_INPUT: {
    meaning: 'a compressed input (zstd, xz, bzip2) could not be decompressed',
    hint: 'the input is truncated or corrupt',
  },
  E_DEMO_FAILED: {
    meaning: '`darch demo` saw a step fail or a boot other than the expected one',
    hint: 'the failing command and its error are printed above',
  },
  E_DIGEST_INVALID: {
    meaning: 'a string is not a valid content digest (sha256:<64 hex>)',
  },
  E_BAD_BOOT_ORDER: {
    meaning: 'a boot order (darch boot trace, stage upload --order) is not one darch can read',
    hint: 'record it again with darch boot trace, or stage without it (--no-order)',
  },
  E_BAD_DELTA: {
    meaning: 'a delta file (darch delta create) is truncated, malformed or not a delta',
    hint: 'copy or download the delta again, or stage the image from its layers; nothing was staged',
  },
  E_DELTA_NO_BASE: {
    meaning: 'the image a delta starts from is not staged on this machine',
    hint: 'stage the image from its layers (darch images pull, darch stage upload), or use a delta from an image that is staged',
  },
  E_DELTA_MISMATCH: {
    meaning: 'a delta did not rebuild the image it promised: the staged base, the rebuilt root or its squashfs hash differently',
    hint: 'stage the image from its layers (darch images pull, darch stage upload); nothing was staged',
  },
  E_DELTA_TOO_LARGE: {
    meaning: 'one zstd patch covers at most 2 GiB: the roots with --segment-size 0, or a segment and its reference',
    hint: 'patch in segments (the default), with a smaller --segment-size; or ship the update as layers or a stage bundle',
  },
  E_DIGEST_MISMATCH: {
    meaning: 'content does not hash to the digest it was promised under',
    hint: 'the source is corrupt or altered; fetch it again',
  },
  E_DIGEST_UNSUPPORTED: {
    meaning: 'a digest uses an algorithm other than sha256',
    hint: 'darch stores sha256 content only',
  },
  E_DISK_BUSY: {
    meaning: 'a partition of the target block device is mounted',
    hint: 'unmount every partition of the device first',
  },
  E_DISK_DEVICE: {
    meaning: 'the target of `darch disk create` is a block device, which would be erased',
    hint: 'add --force if that is what you want',
  },
  E_DISK_EXISTS: {
    meaning: 'the target file of `darch disk create` already exists; replacing it would lose what it holds (a darch disk: its images and boot state)',
    hint: 'add --force to replace it, or choose another file name',
  },
  E_DISK_FORMAT: {
    meaning: 'a disk lacks a part that disks made by `darch disk create` have, or that part is corrupt',
    hint: 'is this a disk made by `darch disk create`? Create it again',
  },
  E_DISK_FULL: {
    meaning: 'the darch partition of a disk has no room for the images being added',
    hint: 'remove an image from the disk first (`darch disk remove`), or make a bigger disk',
  },
  E_DISK_TOO_SMALL: {
    meaning: 'the requested disk size cannot hold the staged images',
    hint: 'give a larger --size, or fewer images',
  },
  E_DISK_WRITE: {
    meaning: 'writing the ESP or the darch partition of a disk image failed',
    hint: 'check free space where the disk image is written',
  },
  E_ESP_FULL: {
    meaning: 'the kernels and initramfs images do not fit on the EFI system partition',
    hint: 'stage fewer images (stage.keep) or use a larger ESP',
  },
  E_ESP_IO: {
    meaning: 'reading or writing a file on the EFI system partition failed',
    hint: 'check the ESP (fsck.vfat) and that mtools is installed',
  },
  E_EXISTS: {
    meaning: 'a staged image with that id already exists',
    hint: 'remove it first with `darch stage remove`',
  },
  E_EXTERNAL_MISSING: {
    meaning: 'a recipe builds on an external image that is not in the local store',
    hint: 'import or pull it, or build with --pull',
  },
  E_FS: {
    meaning: 'a directory darch must read (the recipes directory) cannot be read',
    hint: 'check its permissions',
  },
  E_FS_EACCES: {
    meaning: 'the file system denied access',
    hint: 'permission denied: run as root, or without --root to use your user directories',
  },
  E_FS_ENOENT: {
    meaning: 'a path darch needed does not exist',
    hint: 'the path does not exist',
  },
  E_FS_ENOSPC: {
    meaning: 'the file system is full',
    hint: 'the disk is full: free some space (`darch images prune` removes unreferenced blobs) and retry',
  },
  E_FS_EPERM: {
    meaning: 'the file system refused the operation',
    hint: 'operation not permitted: run as root, or without --root to use your user directories',
  },
  E_FS_EROFS: {
    meaning: 'the file system is mounted read-only',
    hint: 'the file system is read-only',
  },
  E_GRUBENV_CORRUPT: {
    meaning: 'a GRUB environment block (grubenv) is not valid',
    hint: 'darch rewrites both copies on the next `darch boot` change; GRUB boots the default entry meanwhile',
  },
  E_GRUBENV_FULL: {
    meaning: 'the boot state does not fit in the 1024-byte GRUB environment block',
    hint: 'fewer or shorter variables: `darch boot status` shows what is stored',
  },
  E_HOOK_FAILED: {
    meaning: "a stage hook's install (or help) function failed",
    hint: "the hook's last messages are in the error",
  },
  E_HOOK_UNKNOWN: {
    meaning: 'no hook has that name',
    hint: '`darch hooks list` shows them',
  },
  E_IMAGE_IN_USE: {
    meaning: 'the image is the default or the pending trial of a disk: the next boot needs it, so it cannot be removed',
    hint: 'set another default (`darch disk set-default`) or cancel the trial (`darch boot rollback --disk`) first',
  },
  E_IMAGE_NOT_FOUND: {
    meaning: 'the image is not in the local store or the archive',
    hint: '`darch images list` shows the local images',
  },
  E_INCOMPLETE: {
    meaning: 'a multi-platform image lacks some of its platforms in the store, so it cannot be pushed whole',
    hint: 'push a single-platform image instead, or import all of its platforms first',
  },
  E_INTERNAL: {
    meaning: 'an unexpected error inside darch (a bug)',
    hint: 'run again with --debug and report the stack trace',
  },
  E_KERNEL_UNAVAILABLE: {
    meaning: 'apt knows no Debian kernel package for the example images',
    hint: 'check the apt sources and run apt-get update',
  },
  E_KERNEL_UNKNOWN: {
    meaning: 'darch cannot tell which kernel release an image boots, so which modules its initramfs needs',
    hint: 'keep modules for one kernel in the image, or set boot.initramfs = "image"',
  },
  E_KEY: {
    meaning: 'a signing or verification key file cannot be used (not a PEM key, the wrong kind of key, malformed)',
    hint: 'make a key pair with `darch keygen`, or give the key cosign or skopeo made',
  },
  E_KEY_PASSPHRASE: {
    meaning: 'the passphrase does not open the encrypted private key',
    hint: 'give the passphrase the key was made with (--passphrase-file, or type it)',
  },
  E_KIT_EXISTS: {
    meaning: 'the darch-kit directory `darch recipes kit` writes already exists and darch did not write it',
    hint: 'move it away, or give another recipe directory',
  },
  E_LOCKED: {
    meaning: 'another darch process holds the lock on the store',
    hint: 'wait for it to finish, or raise store.lock_timeout (DARCH_LOCK_TIMEOUT)',
  },
  E_MODULES_BROKEN: {
    meaning: "the image's modules.dep names a module it has no entry for",
    hint: 'run depmod in the image and build it again',
  },
  E_MODULES_MISSING: {
    meaning: "the image lacks kernel modules (or modules.dep) darch's initramfs needs",
    hint: 'install the kernel\'s modules in the image, or set boot.initramfs = "image"',
  },
  E_NOTHING_TO_ROLL_BACK: {
    meaning: 'there is no pending trial and no previous default to go back to',
  },
  E_NOT_A_TARBALL: {
    meaning: 'an input to import is empty or not a tar archive',
    hint: 'import a root file system tarball (optionally compressed) or an image archive',
  },
  E_NO_TRACE: {
    meaning: 'this boot recorded no boot-order trace (darch boot trace)',
    hint: 'a boot traces its image while no trace of it is kept, or always with darch.trace=1 on the kernel command line; then run darch boot trace after it',
  },
  E_NOT_BOOTED: {
    meaning: 'this system was not booted from a staged image (no darch_stageid= on the kernel command line)',
  },
  E_NOT_DARCH_DISK: {
    meaning: 'the disk has no darch disk.json on its ESP, or it is corrupt',
    hint: 'is this a disk made by `darch disk create`?',
  },
  E_NOT_FOUND: {
    meaning: 'a file, directory, registry repository or blob does not exist',
    hint: 'check the name or path',
  },
  E_NOT_LOGGED_IN: {
    meaning: '`darch logout` found no stored credentials for the registry',
  },
  E_NOT_STAGED: {
    meaning: 'the image, tag or id is not staged (here or on the disk)',
    hint: '`darch stage list` shows what is staged',
  },
  E_NO_ESP: {
    meaning: 'no EFI system partition was found',
    hint: 'mount it, or set boot.esp in config.toml',
  },
  E_NO_INITRAMFS: {
    meaning: 'boot.initramfs = "image" but the image has no initramfs',
    hint: 'set boot.initramfs to "auto" or "darch", or add an initramfs to the image',
  },
  E_NO_KERNEL: {
    meaning: 'the image has no kernel (or the kernel or initramfs its image.json names)',
    hint: 'install a kernel in the image, or name it in /etc/darch/image.json',
  },
  E_NO_MENU_ENTRY: {
    meaning: 'the staged image has no boot menu entry',
    hint: 'tag it, then `darch boot sync`',
  },
  E_NO_PARTITION_TABLE: {
    meaning: 'the device has no partition table sfdisk can read',
  },
  E_NO_SPACE: {
    meaning: 'the stage file system has, or had, too little free space for the work',
    hint: 'free space (`darch stage remove`, a lower stage.keep) and retry',
  },
  E_NO_TRIAL: {
    meaning: 'no trial is pending and no image was named',
    hint: 'name the image: darch boot mark-bad STAGED',
  },
  E_PARENT_NOT_BUILT: {
    meaning: 'a recipe builds on a parent recipe whose image is not in the local store',
    hint: 'build the parent first, or build both together',
  },
  E_PLATFORM: {
    meaning: 'the image has no variant for the requested platform (OS/architecture)',
    hint: 'choose another with --platform',
  },
  E_POLICY: {
    meaning: 'the signature policy (policy.json, containers-policy.json format) cannot be read or is invalid',
    hint: 'fix the file it names (docs/TRUST.md); an empty requirement list is not allowed',
    exit: ExitCode.config,
  },
  E_PULL_UNAVAILABLE: {
    meaning: 'a build wanted to pull an image but no registry client is installed in this process',
    hint: 'import the base instead: `darch images import`',
  },
  E_RECIPE_CYCLE: {
    meaning: 'recipes inherit from each other in a cycle',
    hint: 'break the cycle in config.json or the FROM lines',
    exit: ExitCode.config,
  },
  E_RECIPE_INVALID: {
    meaning: 'a recipe (config.json, script, Containerfile, recipe.toml) is unreadable, malformed or invalid',
    hint: 'fix the file named in the message; see docs/RECIPES.md',
    exit: ExitCode.config,
  },
  E_RECIPE_NOT_FOUND: {
    meaning: 'no recipe has that name in the recipes directory',
    hint: '`darch recipes list` shows them',
  },
  E_RECIPE_PARENT_MISSING: {
    meaning: 'a recipe inherits from a recipe that is not in the recipes directory',
    hint: 'use external:NAME for images from the store',
    exit: ExitCode.config,
  },
  E_REGISTRIES_CONF: {
    meaning: 'a containers-registries.conf file (registries.conf, registries.conf.d/*.conf) is unreadable, malformed or invalid',
    hint: 'fix the file and key named in the message; see containers-registries.conf(5) and docs/REGISTRY.md',
    exit: ExitCode.config,
  },
  E_REGISTRY: {
    meaning: 'a registry answered with an unexpected status or document',
    hint: 'try again later; check that the host is an OCI registry',
  },
  E_REGISTRY_BLOCKED: {
    meaning: 'registries.conf blocks pulls of this image (`blocked = true` on the [[registry]] its name matches)',
    hint: 'pull from another registry, or change the [[registry]] entry the message names',
  },
  E_REGISTRY_INTERRUPTED: {
    meaning: 'a transfer from a registry ended early (and did not resume within the retries)',
    hint: 'run the command again: downloads resume',
  },
  E_REGISTRY_RETRY: {
    meaning: 'a registry answered 429 or 5xx during a push; darch retries it, and reports it once the retries are used up',
    hint: 'try again later, or raise registry.retries',
  },
  E_REGISTRY_UNREACHABLE: {
    meaning: 'the registry cannot be reached (DNS, refused, timed out)',
    hint: 'check the host name, the network and the proxy settings',
  },
  E_SINGLE_PASS: {
    meaning: 'one pass cannot flatten this image; staging falls back to two passes by itself',
    hint: 'nothing to do: stage catches it and never reports it',
  },
  E_SIZE_MISMATCH: {
    meaning: 'content is not the size it was promised at',
    hint: 'the source, or a proxy, serves the wrong content',
  },
  E_SQUASHFS_READ: {
    meaning: 'a squashfs image cannot be read',
    hint: 'the squashfs may be corrupt: stage the image again',
  },
  E_SERVE_HOOKS: {
    meaning: 'the hooks darch serve would send a network-booted machine are too large to be hooks',
    hint: 'hooks carry small per-machine files: check the machine directories (darch serve --machines)',
  },
  E_SERVE_LISTEN: {
    meaning: 'darch serve cannot listen on the address it was given',
    hint: 'pick another --listen address or port (ports below 1024 need root)',
  },
  E_SERVE_UNREACHABLE: {
    meaning: 'darch vm netboot cannot reach the darch serve it was pointed at, or that is not darch serve',
    hint: 'start darch serve first (darch serve --listen 127.0.0.1:8080) and give its address',
  },
  E_STAGE_CORRUPT: {
    meaning: "the stage directory or a staged image's files are missing, unreadable or do not match their checksums",
    hint: 'stage the image again',
  },
  E_STORE_CORRUPT: {
    meaning: 'the image store (index.json, oci-layout, a blob) is damaged',
    hint: 'run `darch images verify`, then re-import or re-pull the affected images',
  },
  E_TLS: {
    meaning: "the registry's TLS certificate cannot be verified, or the TLS handshake failed",
    hint: "put the registry's CA in /etc/containers/certs.d/HOST/ca.crt (or --cert-dir DIR), or use --tls-verify=false for a test registry",
  },
  E_ROOTLESS_SETUP: {
    meaning: 'building as a normal user needs subordinate ids, newuidmap/newgidmap or user namespaces this machine lacks',
    hint: 'run the commands the message names as root (`darch doctor` lists each check), or build as root',
  },
  E_TOOL_MISSING: {
    meaning: 'an external program darch needs is not installed',
    hint: 'install the Debian package the message names; `darch doctor` lists them all',
  },
  E_TRIAL_BAD: {
    meaning: 'the image failed a trial boot before and is marked bad',
    hint: 'stage a fixed image, or `darch boot try --force`',
  },
  E_TRIAL_IS_DEFAULT: {
    meaning: 'the image to try is already the default: there is nothing to try',
  },
  E_TRUNCATED: {
    meaning: 'an archive or tar stream ends before its end',
    hint: 'the file was cut short; copy or download it again',
  },
  E_UNSUPPORTED: {
    meaning: 'the input uses a feature darch does not support (not an image, GNU sparse files, too many layers, a forbidden compression)',
  },
  E_UNTRUSTED: {
    meaning: 'the signature policy refuses the image: it is unsigned, signed by another key, or its signature is for other content',
    hint: 'sign it with a key the policy names (`darch sign`), or change the policy; nothing of it was kept',
  },
  E_UPDATE_NO_IMAGE: {
    meaning: 'the update agent has no image to follow, or the one named has no registry',
    hint: 'set image = "REGISTRY/NAME:TAG" under [update] in config.toml',
    exit: ExitCode.config,
  },
  E_USAGE: {
    meaning: 'the command line is wrong (an unknown option, a bad value, a missing argument)',
    hint: '`darch COMMAND --help`',
    exit: ExitCode.usage,
  },
  E_VERIFY_FAILED: {
    meaning: '`darch images verify` found problems in the image store',
    hint: 'remove the affected images, run `darch images prune`, and import or pull them again',
  },
  E_VERITY_UNSUPPORTED: {
    meaning: 'the image is to be staged with dm-verity but the initramfs it boots with cannot open it',
    hint: 'boot it with darch\'s initramfs ([boot] initramfs = "darch"), or install darch\'s initramfs-tools hook and dmsetup in the image',
  },
  E_VM_FAILED: {
    meaning: 'qemu exited with a failure; darch exits with the same status',
  },
} as const satisfies Record<`E_${string}`, ErrorCodeInfo>;

/**
 * fsError names a file-system failure after its errno (E_FS_ENOSPC), or after the ERR_*
 * code Node gives some of its own fs failures (E_FS_ERR_FS_FILE_TOO_LARGE). Only the
 * common ones have a row above; the others are valid codes all the same.
 */
export type FsErrorCode = `E_FS_${keyof typeof import('node:os').constants.errno | `ERR_${string}`}`;

export type ErrorCode = keyof typeof ERROR_CODES | FsErrorCode;

/** What docs/ERRORS.md says of the E_FS_* codes without a row of their own. */
export const FS_ERROR_FAMILY = {
  code: 'E_FS_<errno>',
  meaning: 'any other file-system failure, named after its errno (E_FS_EISDIR, E_FS_EIO, …)',
  hint: 'the message names the path and the system error',
} as const;

/** The row of a declared code; undefined for an E_FS_* code without one. */
export function errorCodeInfo(code: ErrorCode): ErrorCodeInfo | undefined {
  return Object.hasOwn(ERROR_CODES, code) ? ERROR_CODES[code as keyof typeof ERROR_CODES] : undefined;
}

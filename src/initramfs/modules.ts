/**
 * Which kernel modules the universal initramfs carries, resolved through the image's own
 * modules.dep so that dependencies come along in a loadable order.
 */
import { DarchError } from '../lib/errors.js';

/** Must be present (as a module or built in) or the image cannot boot through darch. */
export const REQUIRED_MODULES = ['squashfs', 'overlay', 'loop'];
/** Required as well when the image is staged with dm-verity (the kernel checks every block it reads). */
export const VERITY_MODULES = ['dm_mod', 'dm_verity'];

/**
 * Loaded when the kernel has them. crc32c comes before ext4 because ext4's softdep on it
 * goes through a crypto alias that insmod cannot resolve.
 */
export const WANTED_MODULES = [
  'crc32c_intel',
  'crc32c_generic',
  'libcrc32c',
  'ext4',
  'vfat',
  'nls_cp437',
  'nls_iso8859_1',
  'nls_ascii',
  'nls_utf8',
  'btrfs',
  'xfs',
  'virtio_pci',
  'virtio_blk',
  'virtio_scsi',
  'nvme',
  'ahci',
  'ata_piix',
  'sd_mod',
  'sr_mod',
  'xhci_pci',
  'ehci_pci',
  'ohci_pci',
  'usb_storage',
  'uas',
  'sdhci_pci',
  'mmc_block',
  'usbhid',
  'hid_generic',
  'atkbd',
  'i8042',
];

/**
 * Carried but not loaded at boot: darch-lib.sh loads one, with its timeout as a module
 * parameter, only on a trial boot with darch.watchdog= (docs/TRIAL-BOOTS.md), in
 * DARCH_WATCHDOG_DRIVERS' order: qemu's, ACPI's, Intel's (lpc_ich creates the device
 * iTCO_wdt drives), AMD's, then softdog.
 */
export const WATCHDOG_DRIVERS: Record<string, string[]> = {
  i6300esb: ['i6300esb'],
  wdat_wdt: ['wdat_wdt'],
  iTCO_wdt: ['lpc_ich', 'iTCO_wdt'],
  sp5100_tco: ['sp5100_tco'],
  softdog: ['softdog'],
};

/**
 * Network drivers for network boots (docs/NETBOOT.md): carried, and loaded only when
 * darch_rootfs= is a URL (net.list). qemu's and the common wired NICs of PCs and servers
 * (Intel, Realtek, Broadcom), and USB Ethernet adapters; af_packet for udhcpc where it is a module.
 */
export const NET_DRIVERS = [
  'af_packet',
  'virtio_net',
  'e1000',
  'e1000e',
  'igb',
  'igc',
  'ixgbe',
  'r8169',
  'tg3',
  'bnx2',
  'atlantic',
  'r8152',
  'cdc_ether',
  'ax88179_178a',
];

export function moduleName(file: string): string {
  const base = file.slice(file.lastIndexOf('/') + 1);
  return base.replace(/\.ko(\.(xz|zst|gz))?$/, '').replace(/-/g, '_');
}

export interface ModuleDb {
  /** name → path relative to /lib/modules/<release> as modules.dep spells it. */
  paths: Map<string, string>;
  deps: Map<string, string[]>;
  builtin: Set<string>;
}

export function parseModulesDep(depText: string, builtinText = ''): ModuleDb {
  const paths = new Map<string, string>();
  const deps = new Map<string, string[]>();
  for (const line of depText.split('\n')) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const file = line.slice(0, colon).trim();
    const name = moduleName(file);
    paths.set(name, file);
    deps.set(
      name,
      line
        .slice(colon + 1)
        .trim()
        .split(/\s+/)
        .filter(Boolean)
        .map(moduleName),
    );
  }
  const builtin = new Set(builtinText.split('\n').filter(Boolean).map(moduleName));
  return { paths, deps, builtin };
}

export interface Resolution {
  /** Paths (relative to the release directory) in the order they must be loaded. */
  load: string[];
  builtin: string[];
  /** Wanted modules this kernel has neither as a module nor built in. */
  absent: string[];
  /** Wanted modules left out because the image lacks one of their files. */
  skipped: string[];
}

/**
 * Load order for the required and wanted modules. `present` says whether the image really
 * has a module file: a wanted module with a missing file (an image that strips drivers)
 * is skipped, a required one is an error.
 */
export function resolveModules(
  db: ModuleDb,
  release: string,
  wanted = WANTED_MODULES,
  required = REQUIRED_MODULES,
  present: (file: string) => boolean = () => true,
): Resolution {
  const load: string[] = [];
  const seen = new Set<string>();
  const builtin: string[] = [];
  const absent: string[] = [];
  const skipped: string[] = [];
  const closure = (name: string): string[] => {
    const out: string[] = [];
    const walk = (n: string) => {
      const f = db.paths.get(n);
      if (!f || out.includes(f)) return;
      for (const d of db.deps.get(n) ?? []) walk(d);
      out.push(f);
    };
    walk(name);
    return out;
  };
  const visit = (name: string, chain: string[]) => {
    if (seen.has(name)) return;
    if (chain.length === 0 && db.paths.has(name)) {
      const missing = closure(name).filter((f) => !present(f));
      if (missing.length > 0) {
        if (required.includes(name)) {
          throw new DarchError('E_MODULES_MISSING', `modules.dep of ${release} names ${missing[0]} but the image does not have that file`, {
            hint: `run \`depmod ${release}\` in the image so modules.dep matches its files`,
          });
        }
        skipped.push(name);
        return;
      }
    }
    seen.add(name);
    const file = db.paths.get(name);
    if (!file) {
      if (db.builtin.has(name)) builtin.push(name);
      else if (chain.length > 0) {
        throw new DarchError('E_MODULES_BROKEN', `modules.dep of ${release} names ${name} (needed by ${chain.join(' → ')}) but has no entry for it`, {
          hint: 'run depmod for this kernel in the image and stage it again',
        });
      } else absent.push(name);
      return;
    }
    // modules.dep lists every dependency, the ones to load first at the end.
    for (const d of [...(db.deps.get(name) ?? [])].reverse()) visit(d, [...chain, name]);
    load.push(file);
  };
  for (const name of [...required, ...wanted]) visit(name, []);
  const missing = required.filter((r) => absent.includes(r));
  if (missing.length > 0) {
    throw new DarchError('E_MODULES_MISSING', `kernel ${release} has no ${missing.join(', ')} (neither a module nor built in)`, {
      hint: 'darch boots through squashfs + overlay: install a kernel with those enabled (Debian, Ubuntu, Arch and Fedora kernels have them)',
    });
  }
  return { load, builtin, absent, skipped };
}

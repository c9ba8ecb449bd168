/**
 * darch's dracut module (90darch): images whose distribution builds its initramfs with dracut
 * (Fedora, openSUSE, Debian/Ubuntu with dracut) boot with `boot=darch` (or `root=darch`) and
 * the same darch_* parameters as with initramfs-tools. Delivered into a root tree; the image
 * then runs `dracut --force` (or its kernel package's hook does).
 */
import { installAssets, type AssetFile } from '../lib/assets.js';

export const DRACUT_MODULE_DIR = 'usr/lib/dracut/modules.d/90darch';
/**
 * Enables the module (its check() says "only when asked for"). dracut reads its vendor
 * directory too, so a package can ship it; /etc/dracut.conf.d/90-darch.conf overrides it.
 */
export const DRACUT_CONF = 'usr/lib/dracut/dracut.conf.d/90-darch.conf';

export const DRACUT_FILES: AssetFile[] = [
  { asset: ['dracut', '90darch', 'module-setup.sh'], dest: `${DRACUT_MODULE_DIR}/module-setup.sh`, mode: 0o755 },
  { asset: ['dracut', '90darch', 'parse-darch.sh'], dest: `${DRACUT_MODULE_DIR}/parse-darch.sh`, mode: 0o755 },
  { asset: ['dracut', '90darch', 'mount-darch.sh'], dest: `${DRACUT_MODULE_DIR}/mount-darch.sh`, mode: 0o755 },
  { asset: ['dracut', '90darch', 'darch-gpt-auto-generator.sh'], dest: `${DRACUT_MODULE_DIR}/darch-gpt-auto-generator.sh`, mode: 0o755 },
  { asset: ['initramfs', 'darch-lib.sh'], dest: `${DRACUT_MODULE_DIR}/darch-lib.sh`, mode: 0o644 },
  { asset: ['trial', 'darch-record.sh'], dest: `${DRACUT_MODULE_DIR}/darch-record.sh`, mode: 0o644 },
  { asset: ['dracut', '90-darch.conf'], dest: DRACUT_CONF, mode: 0o644 },
];

/** Copy the module into a root tree and enable it; returns the files written (relative to root). */
export function installDracut(root: string): Promise<string[]> {
  return installAssets(root, DRACUT_FILES);
}

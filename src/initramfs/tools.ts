/**
 * darch's hook package for Debian's initramfs-tools: images that need their distribution's
 * initramfs (LUKS, LVM, firmware) boot with `boot=darch` and the same darch_* parameters.
 * Delivered into a root tree (recipes, tests) or as a .deb a recipe can `apt install`.
 */
import { chmod, mkdir, rm, writeFile } from 'node:fs/promises';
import { makeWorkDir } from '../lib/scratch.js';
import path from 'node:path';
import { installAssets, type AssetFile } from '../lib/assets.js';
import { run } from '../lib/proc.js';

export const TOOLS_FILES: AssetFile[] = [
  { asset: ['initramfs-tools', 'hooks', 'darch'], dest: 'usr/share/initramfs-tools/hooks/darch', mode: 0o755 },
  { asset: ['initramfs-tools', 'scripts', 'darch'], dest: 'usr/share/initramfs-tools/scripts/darch', mode: 0o644 },
  { asset: ['initramfs', 'darch-lib.sh'], dest: 'usr/share/initramfs-tools/scripts/darch-lib.sh', mode: 0o644 },
  { asset: ['trial', 'darch-record.sh'], dest: 'usr/share/initramfs-tools/scripts/darch-record.sh', mode: 0o644 },
];

/** Copy the hook package into a root tree; returns the files written (relative to root). */
export function installInitramfsTools(root: string): Promise<string[]> {
  return installAssets(root, TOOLS_FILES);
}

export async function buildInitramfsToolsDeb(out: string, version: string, tmpDir: string): Promise<string> {
  const work = await makeWorkDir(tmpDir, 'deb');
  try {
    const tree = path.join(work, 'pkg');
    await installInitramfsTools(tree);
    await mkdir(path.join(tree, 'DEBIAN'), { recursive: true });
    await writeFile(
      path.join(tree, 'DEBIAN/control'),
      [
        'Package: darch-initramfs-tools',
        `Version: ${version}`,
        'Architecture: all',
        'Maintainer: darch <darch@localhost>',
        'Depends: initramfs-tools, busybox | busybox-static',
        'Section: admin',
        'Priority: optional',
        'Description: boot darch images (squashfs + tmpfs overlay) with initramfs-tools',
        ' Adds boot=darch to initramfs-tools: darch_dir=UUID=<uuid>:<path>, darch_rootfs,',
        ' darch_stageid, darch_ram and the darch-* break points, as the original Darch.',
        '',
      ].join('\n'),
    );
    await writeFile(path.join(tree, 'DEBIAN/postinst'), '#!/bin/sh\nset -e\nif command -v update-initramfs >/dev/null; then update-initramfs -u || true; fi\n');
    await chmod(path.join(tree, 'DEBIAN/postinst'), 0o755);
    await run('dpkg-deb', ['--root-owner-group', '--build', tree, out]);
    return out;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

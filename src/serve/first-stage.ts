/**
 * darch's first-stage network boot program: GRUB for UEFI with the modules to fetch over HTTP
 * and a config built in that loads `darch serve`'s menu from its URL (docs/NETBOOT.md). A
 * DHCP server hands this file to UEFI clients (TFTP or UEFI HTTP boot); GRUB's efinet takes
 * the address the firmware's DHCP got.
 */
import { readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { makeWorkDir } from '../lib/scratch.js';
import { run } from '../lib/proc.js';
import { GRUB_MENU_REL, renderFirstStageConfig } from './boot-scripts.js';

/** Everything the built-in config and the served menu use: none is loaded from the network. */
const NET_GRUB_MODULES = [
  'efinet',
  'net',
  'http',
  'tftp',
  'linux',
  'normal',
  'configfile',
  'echo',
  'sleep',
  'reboot',
  'test',
  'true',
  'gzio',
  'efi_gop',
  'efi_uga',
  'all_video',
];

export async function buildFirstStage(baseUrl: string, tmpDir: string): Promise<Buffer> {
  const work = await makeWorkDir(tmpDir, 'first-stage');
  try {
    const cfg = path.join(work, 'embedded.cfg');
    const out = path.join(work, 'bootx64.efi');
    await writeFile(cfg, renderFirstStageConfig(`${baseUrl}/${GRUB_MENU_REL}`));
    // Standalone: the config is a memdisk grub.cfg that normal mode runs, so it has loops and
    // the menu it loads shows (a -c early config has neither).
    await run('grub-mkstandalone', [
      '-O',
      'x86_64-efi',
      '-o',
      out,
      `--install-modules=${NET_GRUB_MODULES.join(' ')}`,
      `--modules=${NET_GRUB_MODULES.join(' ')}`,
      '--locales=',
      '--fonts=',
      '--themes=',
      `boot/grub/grub.cfg=${cfg}`,
    ]);
    return await readFile(out);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/**
 * The layout of a darch disk, shared by `darch disk create`, `darch vm run` and the boot
 * state of trial boots (issue 7):
 *
 *   GPT
 *   1  ESP (FAT, label DARCHESP)   EFI/BOOT/BOOTX64.EFI  GRUB with an embedded config
 *                                  EFI/darch/grubenv     GRUB environment (darch_default, …)
 *   2  darch (ext4, label darch)   a darch state directory: stage/images.json,
 *                                  stage/live/<id>/…, stage/grub.cfg (the menu)
 *
 * The embedded config finds both partitions by UUID (the ESP by its FAT serial), loads the
 * grubenv and sources stage/grub.cfg, so a booted image that mounts the darch partition at
 * /var/lib/darch updates the menu with a plain `darch boot sync`.
 */
import { GRUBENV_PATH } from '../boot/grub/grubenv.js';

export const SECTOR = 512;
export const MiB = 1024 * 1024;
export const ESP_START = 1 * MiB;
export const ESP_SIZE = 64 * MiB;
export const DARCH_START = ESP_START + ESP_SIZE;
/** GPT keeps a backup table in the last 33 sectors. */
export const GPT_TAIL = 1 * MiB;

export const ESP_TYPE = 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B';
export const LINUX_TYPE = '0FC63DAF-8483-4772-8E79-3D69D8477DE4';

export const ESP_LABEL = 'DARCHESP';
export const DARCH_LABEL = 'darch';
/** Where the stage directory sits inside the darch partition. */
export const STAGE_PATH = '/stage';

export function renderEmbeddedConfig(info: { darchUuid: string; espSerial: string; kernelArgs: string; timeout: number }): string {
  return `# darch disk: built into BOOTX64.EFI by \`darch disk create\`
insmod all_video
serial --unit=0 --speed=115200
terminal_input console serial
terminal_output console serial
search --no-floppy --fs-uuid --set=darch_esp ${info.espSerial}
search --no-floppy --fs-uuid --set=darch_fs ${info.darchUuid}
set darch_cmdline="${info.kernelArgs}"
set timeout=${info.timeout}
if [ -n "\${darch_esp}" ]; then
	if [ -f (\${darch_esp})/${GRUBENV_PATH} ]; then
		load_env --file (\${darch_esp})/${GRUBENV_PATH}
	fi
fi
if [ -z "\${darch_fs}" ]; then
	echo "darch: cannot find the darch partition (file system UUID ${info.darchUuid})"
elif [ -f (\${darch_fs})${STAGE_PATH}/grub.cfg ]; then
	source (\${darch_fs})${STAGE_PATH}/grub.cfg
else
	echo "darch: the darch partition has no ${STAGE_PATH}/grub.cfg"
fi
`;
}

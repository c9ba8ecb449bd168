/**
 * Where things are inside a stage directory (docs/ARCHITECTURE.md, "Staged images"): the
 * one source of these names, for the local stage, a disk's `/stage` and the shell side's
 * expectations alike. Paths are relative to the stage directory, with `/` separators, so
 * they serve every SmallFiles (a directory, debugfs, mtools).
 */
export const LIVE_DIR = 'live';
export const TMP_DIR = 'tmp';
/** Darch's GRUB menu, what GRUB reads (src/boot/sync.ts writes it). */
export const GRUB_CFG = 'grub.cfg';

/** `live/<id>[/<file>]`. */
export function liveRel(id: string, file?: string): string {
  return file ? `${LIVE_DIR}/${id}/${file}` : `${LIVE_DIR}/${id}`;
}

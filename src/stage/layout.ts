/**
 * Where things are inside a stage directory (docs/ARCHITECTURE.md, "Staged images"): the
 * one source of these names, for the local stage, a disk's `/stage` and the shell side's
 * expectations alike. Paths are relative to the stage directory, with `/` separators, so
 * they serve every SmallFiles (a directory, debugfs, mtools).
 */
export const LIVE_DIR = 'live';
export const TMP_DIR = 'tmp';
/** Darch's GRUB menu, what GRUB reads (src/boot/grub/sync.ts writes it). */
export const GRUB_CFG = 'grub.cfg';

/** `live/<id>[/<file>]`. */
export function liveRel(id: string, file?: string): string {
  return file ? `${LIVE_DIR}/${id}/${file}` : `${LIVE_DIR}/${id}`;
}

/** Per-tag hook output inside an image directory (`live/<id>/hooks/<tag-key>/…`, src/hooks writes it). */
export const HOOKS_DIR = 'hooks';

/** The directory name for a tag's hook output: reversible, and safe in paths and on a kernel command line. */
export function tagKey(tag: string): string {
  return tag.replace(/\//g, '+').replace(/:/g, '@');
}

/** `hooks/<tag-key>`, relative to the image directory (what `darch_hooks=` names). */
export function hooksRel(tag: string): string {
  return `${HOOKS_DIR}/${tagKey(tag)}`;
}

/**
 * Why a trial boot failed: `<stage>/failed/<staged id>`, written on the trial boot itself by
 * assets/trial/darch-record.sh (the initramfs, darch-health, the systemd units) and read here
 * for `darch boot status`. `name=value` lines:
 *
 *   stage=<id>  where=<initramfs|health|systemd|…>  reason=<one line>  uptime=<seconds>
 *
 * The record is a hint, never state: a kernel panic, a hang or a reset leaves none, and a
 * damaged one is ignored. `darch boot try` removes the image's record (a new trial starts
 * clean), and removing a staged image removes its record.
 */
import { readFile, unlink } from 'node:fs/promises';
import path from 'node:path';
import { fsError, isErrno } from '../lib/errors.js';
import * as z from '../lib/zod.js';

export const FAILED_DIR = 'failed';
/** Larger than any record the shell writes (its reason is cut at 300 characters). */
const MAX_RECORD = 4096;

const RecordSchema = z.lazySchema(() =>
  z.object({
    stage: z.string().check(z.regex(/^[a-z0-9]{25}$/)),
    where: z.string().check(z.regex(/^[a-z0-9._-]{1,32}$/)),
    reason: z.string().check(z.maxLength(400)),
    uptime: z.optional(z.coerce.number().check(z.int(), z.nonnegative())),
  }),
);

export type TrialFailure = z.infer<ReturnType<typeof RecordSchema>>;

/** The record's path relative to the stage directory. */
export function failureFile(stageId: string): string {
  return `${FAILED_DIR}/${stageId}`;
}

/** The record for `stageId`, or undefined when there is none or it is not one darch wrote. */
export function parseFailure(text: string | undefined, stageId: string): TrialFailure | undefined {
  if (text === undefined || text.length > MAX_RECORD) return undefined;
  const fields: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const i = line.indexOf('=');
    if (i > 0) fields[line.slice(0, i)] = line.slice(i + 1);
  }
  if (fields.uptime === '') delete fields.uptime;
  const res = RecordSchema().safeParse(fields);
  return res.success && res.data.stage === stageId ? res.data : undefined;
}

export async function readFailure(stageDir: string, stageId: string): Promise<TrialFailure | undefined> {
  const text = await readFile(path.join(stageDir, failureFile(stageId)), 'utf8').catch((err: unknown) => {
    if (isErrno(err, 'ENOENT') || isErrno(err, 'ENOTDIR')) return undefined;
    throw fsError(err, `cannot read ${path.join(stageDir, failureFile(stageId))}`);
  });
  return parseFailure(text, stageId);
}

export async function removeFailure(stageDir: string, stageId: string): Promise<void> {
  await unlink(path.join(stageDir, failureFile(stageId))).catch((err: unknown) => {
    if (!isErrno(err, 'ENOENT') && !isErrno(err, 'ENOTDIR')) throw fsError(err, `cannot remove the failure record of ${stageId}`);
  });
}

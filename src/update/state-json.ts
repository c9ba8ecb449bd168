/**
 * `<state>/update/state.json`: what the update agent remembers between runs (the last check
 * and its outcome, which notices it already gave). The only reader and writer. Everything
 * else the agent needs is read where it lives: staged images (meta.json's source digest),
 * the boot state (trial, fallback). A lost or damaged file costs one early check and
 * perhaps a repeated notice, nothing more, so a damaged one is read as empty.
 */
import path from 'node:path';
import { DirFiles, contractText, parseContract, type SmallFiles } from '../lib/smallfs.js';
import * as z from '../lib/zod.js';

export const UPDATE_STATE_FILE = 'update/state.json';

const CheckSchema = z.looseObject({
  at: z.string(),
  image: z.string(),
  outcome: z.string(),
  digest: z.optional(z.string()),
  version: z.optional(z.string()),
  error: z.optional(z.string()),
});

const UpdateStateSchema = z.looseObject({
  schemaVersion: z.literal(1),
  lastCheck: z.optional(CheckSchema),
  lastRun: z.optional(z.looseObject({ at: z.string(), policy: z.string(), outcome: z.string(), error: z.optional(z.string()) })),
  /** Notice key (what it was about) → when it was given, so each is given once. */
  notified: z._default(z.record(z.string(), z.string()), {}),
});

export type UpdateState = z.infer<typeof UpdateStateSchema>;
export type CheckRecord = z.infer<typeof CheckSchema>;

function files(stateDir: string): SmallFiles {
  return new DirFiles(stateDir);
}

export async function readUpdateState(stateDir: string): Promise<UpdateState> {
  const raw = await files(stateDir)
    .read(UPDATE_STATE_FILE)
    .catch(() => undefined);
  if (raw === undefined) return { schemaVersion: 1, notified: {} };
  try {
    return parseContract(UpdateStateSchema, raw.toString('utf8'), path.join(stateDir, UPDATE_STATE_FILE), {
      code: 'E_STAGE_CORRUPT',
      hint: 'the next update run rewrites it',
    });
  } catch {
    return { schemaVersion: 1, notified: {} };
  }
}

export async function writeUpdateState(stateDir: string, s: UpdateState): Promise<void> {
  await files(stateDir).write(UPDATE_STATE_FILE, contractText(s));
}

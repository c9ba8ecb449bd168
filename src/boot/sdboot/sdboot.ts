/**
 * systemd-boot as a second backend for trial boots. The state is not a file: it is the
 * names and `version` lines of darch's Boot Loader Specification entries on the ESP
 * (`loader/entries/darch-<staged id>[+LEFT[-DONE]].conf`), which systemd-boot itself counts
 * down (it renames `+3` → `+2-1` before each attempt and sorts `+0` entries last) and which
 * `systemd-bless-boot` commits (it strips the counter). darch reads the same names into the
 * BootState of trial/state.ts, applies the same transitions, and writes the result back as names:
 *
 *   trial      darch-<id>+LEFT[-DONE].conf, version 30, options … darch.trial=1 [panic=… darch.watchdog=…]
 *   default    darch-<id>.conf, version 20      (loader.conf: default darch-*)
 *   previous   darch-<id>.conf, version 10
 *   others     darch-<id>.conf, version 1
 *   bad        darch-<id>+0[-DONE].conf, version 1
 *
 * systemd-boot boots the highest `version` among entries with tries left, so: the trial
 * while it has tries, then the default. Differences from GRUB: the fallback boot cannot get
 * `darch.fell_back=1` (systemd-boot adds nothing to an entry's options); a `+0` entry is
 * how status knows a trial fell back.
 */
import { rename } from 'node:fs/promises';
import path from 'node:path';
import { DarchError } from '../../lib/errors.js';
import { DirFiles, type SmallFiles } from '../../lib/smallfs.js';
import { emptyState, type BootState, type ImageRef } from '../trial/state.js';
import type { MtoolsFat } from '../shared/esp.js';

export const ENTRIES_DIR = 'loader/entries';
export const VERSION = { trial: 30, default: 20, previous: 10, other: 1 } as const;
const NAME_RE = /^darch-([a-z0-9]{25})(?:\+(\d+)(?:-(\d+))?)?\.conf$/;

export interface BlsEntry {
  /** File name in loader/entries. */
  file: string;
  stage: string;
  /** Tries left; undefined when the name carries no counter (a good entry). */
  left?: number;
  done?: number;
  version: number;
  text: string;
}

export function parseEntryName(file: string): { stage: string; left?: number; done?: number } | undefined {
  const m = NAME_RE.exec(file);
  if (!m) return undefined;
  return { stage: m[1]!, left: m[2] === undefined ? undefined : Number(m[2]), done: m[3] === undefined ? undefined : Number(m[3]) };
}

export function entryName(stage: string, left?: number, done?: number): string {
  return `darch-${stage}${left === undefined ? '' : `+${left}${done ? `-${done}` : ''}`}.conf`;
}

export interface BlsEntryInput {
  stage: string;
  title: string;
  linux: string;
  initrd: string;
  options: string;
}

/** A new entry as `darch boot sync`/`disk create` would write it for systemd-boot. */
export function renderBlsEntry(e: BlsEntryInput, version: number = VERSION.other): string {
  return `title ${e.title}\nsort-key darch\nversion ${version}\nlinux ${e.linux}\ninitrd ${e.initrd}\noptions ${e.options}\n`;
}

const TRIAL_FLAG = 'darch.trial=1';

function optionsOf(text: string): string[] {
  return (/^options (.*)$/m.exec(text)?.[1] ?? '').split(/\s+/).filter(Boolean);
}

/**
 * The trial's own arguments on an entry: darch writes `darch.trial=1` and then them at the
 * end of `options`, so everything after the flag is darch's (the commit drops it all).
 * Undefined when the entry carries no flag.
 */
export function trialArgsOf(text: string): string | undefined {
  const o = optionsOf(text);
  const i = o.indexOf(TRIAL_FLAG);
  return i < 0 ? undefined : o.slice(i + 1).join(' ');
}

/**
 * Only `version` and the trial's part of `options` change when the state changes. `trial`
 * is the trial's arguments (an entry being tried), or undefined (any other entry). Of the
 * trial's arguments only those the entry does not set itself are added: the user's own
 * `panic=` or `darch.watchdog=` wins.
 */
export function retune(text: string, version: number, trial: string | undefined): string {
  let t = /^version .*$/m.test(text) ? text.replace(/^version .*$/m, `version ${version}`) : `${text.trimEnd()}\nversion ${version}\n`;
  t = t.replace(/^options (.*)$/m, (_m, o: string) => {
    const all = o.split(/\s+/).filter(Boolean);
    const i = all.indexOf(TRIAL_FLAG);
    const own = i < 0 ? all : all.slice(0, i);
    if (trial === undefined) return `options ${own.join(' ')}`;
    const keys = new Set(own.map((x) => x.split('=')[0]));
    const add = trial.split(/\s+/).filter((x) => x && !keys.has(x.split('=')[0]));
    return `options ${[...own, TRIAL_FLAG, ...add].join(' ')}`;
  });
  return t;
}

/** Files of the ESP's loader/entries, on a mounted ESP or a disk (mtools). */
export interface EntryFiles {
  readonly where: string;
  list(): Promise<string[]>;
  read(file: string): Promise<string>;
  write(file: string, text: string): Promise<void>;
  remove(file: string): Promise<void>;
}

/** loader/entries over any SmallFiles: the names are the state, so this is their one reader and writer. */
class SmallEntryFiles implements EntryFiles {
  constructor(
    protected readonly files: SmallFiles,
    protected readonly dir: string,
    readonly where: string,
  ) {}
  private at(file: string): string {
    return this.dir ? `${this.dir}/${file}` : file;
  }
  list(): Promise<string[]> {
    return this.files.list(this.dir || '.');
  }
  async read(file: string): Promise<string> {
    const b = await this.files.read(this.at(file), 64 * 1024);
    if (!b) throw new DarchError('E_ESP_IO', `${file} vanished from ${this.where}`);
    return b.toString('utf8');
  }
  write(file: string, text: string): Promise<void> {
    return this.files.write(this.at(file), text);
  }
  remove(file: string): Promise<void> {
    return this.files.remove(this.at(file));
  }
}

/** The entries directory of a mounted ESP. */
export class DirEntryFiles extends SmallEntryFiles {
  constructor(readonly entriesDir: string) {
    super(new DirFiles(entriesDir), '', entriesDir);
  }
  /** Used by tests that play systemd-boot's part. */
  async rename(from: string, to: string): Promise<void> {
    await rename(path.join(this.entriesDir, from), path.join(this.entriesDir, to));
  }
}

/** The entries of a disk's ESP, through mtools. */
export class DiskEntryFiles extends SmallEntryFiles {
  constructor(readonly fat: MtoolsFat) {
    super(fat, ENTRIES_DIR, `${fat.device} (ESP):/${ENTRIES_DIR}`);
  }
  /** Rename in place (used by tests that play systemd-boot's or systemd-bless-boot's part). */
  async rename(from: string, to: string): Promise<void> {
    await this.fat.exec('mren', [`::/${ENTRIES_DIR}/${from}`, `::/${ENTRIES_DIR}/${to}`]);
  }
}

export async function readEntries(files: EntryFiles): Promise<BlsEntry[]> {
  const out: BlsEntry[] = [];
  for (const file of (await files.list()).sort()) {
    const n = parseEntryName(file);
    if (!n) continue;
    const text = await files.read(file);
    const version = Number(/^version\s+(\d+)\s*$/m.exec(text)?.[1] ?? '0');
    out.push({ file, ...n, version, text });
  }
  return out;
}

const ref = (e: BlsEntry): ImageRef => ({ entry: e.file.replace(/(\+\d+(-\d+)?)?\.conf$/, ''), stage: e.stage });

/** The boot state the entry names express. */
export function stateFromEntries(entries: BlsEntry[]): BootState {
  const s = emptyState();
  const good = entries.filter((e) => e.left === undefined).sort((a, b) => b.version - a.version);
  const trial = entries.filter((e) => e.left !== undefined && e.left > 0).sort((a, b) => b.version - a.version)[0];
  s.default = good[0] && ref(good[0]);
  s.previous = good[1] && good[1].version >= VERSION.previous ? ref(good[1]) : undefined;
  if (trial) {
    s.trial = ref(trial);
    s.tries = trial.left ?? 0;
    s.trialArgs = trialArgsOf(trial.text) || undefined;
    s.trialTries = (trial.left ?? 0) + (trial.done ?? 0);
  }
  const bad = entries.filter((e) => e.left === 0);
  s.bad = bad.map((e) => e.stage);
  s.fellBack = s.bad.length > 0 && !s.trial;
  s.fellBackFrom = s.fellBack ? s.bad[s.bad.length - 1] : undefined;
  // systemd-boot counted the attempts in the name: +0-DONE.
  if (s.fellBack) s.trialTries = bad[bad.length - 1]?.done || undefined;
  return s;
}

/**
 * Rename and retune entries so their names say `next`. New files are written before old
 * ones are removed, the default first, so an interruption leaves the old default bootable.
 */
export async function applyState(files: EntryFiles, entries: BlsEntry[], next: BootState): Promise<number> {
  const plan = entries.map((e) => {
    let name: string;
    let version: number;
    let trial: string | undefined;
    if (next.trial?.stage === e.stage) {
      const keep = e.left !== undefined && e.left === next.tries;
      name = keep ? e.file : entryName(e.stage, next.tries);
      version = VERSION.trial;
      trial = next.trialArgs ?? '';
    } else if (next.bad.includes(e.stage)) {
      name = e.left === 0 ? e.file : entryName(e.stage, 0, e.done);
      version = VERSION.other;
    } else {
      name = entryName(e.stage);
      version = next.default?.stage === e.stage ? VERSION.default : next.previous?.stage === e.stage ? VERSION.previous : VERSION.other;
    }
    return { e, name, text: retune(e.text, version, trial), first: next.default?.stage === e.stage };
  });
  plan.sort((a, b) => Number(b.first) - Number(a.first));
  let changed = 0;
  for (const p of plan) {
    if (p.name === p.e.file && p.text === p.e.text) continue;
    await files.write(p.name, p.text);
    if (p.name !== p.e.file) await files.remove(p.e.file);
    changed++;
  }
  return changed;
}

export function requireEntry(entries: BlsEntry[], stage: string): void {
  if (!entries.some((e) => e.stage === stage)) {
    throw new DarchError('E_NO_MENU_ENTRY', `staged image ${stage} has no systemd-boot entry (loader/entries/darch-${stage}.conf)`, {
      hint: 'write its entry first: darch boot sync (on a disk, darch disk create writes one per image)',
    });
  }
}

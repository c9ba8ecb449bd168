/**
 * Telling the people logged in graphically that something happened (an update was staged,
 * a trial boot failed): a desktop notification on each user's own session bus.
 *
 * Who: every uid with a session bus socket at `<root>/run/user/<uid>/bus`. On this machine
 * (root '/') with logind, only the uids with a graphical session (Type x11, wayland or mir)
 * that is not closing; such a user without a bus is reported as not notified. Without
 * loginctl (or when logind does not answer), and under another root, every bus socket counts.
 *
 * How: org.freedesktop.Notifications.Notify through `busctl call` on that socket, run as the
 * socket's owner (`setpriv` when darch is root). busctl rather than an npm D-Bus library: a
 * session bus admits only its own user (dbus-daemon checks the uid the socket reports for
 * the connecting process), so each call has to come from a process running as that user,
 * which an in-process client in darch (root) cannot be without forking a helper anyway;
 * busctl ships with systemd, so it is on every machine that has logind and per-user buses,
 * and it costs the executable nothing. The npm clients (dbus-next, dbus-native) are wire
 * protocol reimplementations that several projects now maintain as forks.
 *
 * One user's failure (no bus, a dead or hung bus, no notification server) is that user's
 * result, never a throw; only a missing tool or an abort throws.
 */
import type { Stats } from 'node:fs';
import { lstat, readdir } from 'node:fs/promises';
import path from 'node:path';
import { DarchError, fsError, isErrno } from '../lib/errors.js';
import { missingTool, type RunOptions, type RunResult, run, which } from '../lib/proc.js';
import { type Reporter, silentReporter } from '../lib/report.js';

export interface Notice {
  summary: string;
  /** Plain text: the server may read markup (`<b>`, `&amp;`) in it, so leave `<` and `&` out. */
  body: string;
  urgency?: 'low' | 'normal' | 'critical';
  /** An icon name of the desktop's theme or a file:// URI; none by default. */
  icon?: string;
}

export interface NotifyResult {
  uid: number;
  /** The account's name, when the host knows the uid. */
  user?: string;
  /** The session bus socket (under root). */
  bus: string;
  ok: boolean;
  /** The notification's id, from the notification server. */
  id?: number;
  /** Why the notification was not delivered. */
  error?: string;
}

export interface NotifyOptions {
  /** darch's --root prefix: '/' on a running system. */
  root: string;
  report?: Reporter;
  signal?: AbortSignal;
}

/** How long one bus may take to answer: a hung session must not hold up an update. */
export const NOTIFY_TIMEOUT_S = 10;

const URGENCY = { low: 0, normal: 1, critical: 2 } as const;
const GRAPHICAL_TYPES = new Set(['x11', 'wayland', 'mir']);

/** Sends `notice` to every logged-in graphical user; one result per user, sorted by uid. */
export async function notifyUsers(notice: Notice, opts: NotifyOptions): Promise<NotifyResult[]> {
  opts.signal?.throwIfAborted();
  const report = opts.report ?? silentReporter;
  const root = path.resolve(opts.root);
  const userDir = path.join(root, 'run', 'user');
  const buses = await sessionBuses(userDir, report);
  const graphical = root === '/' ? await graphicalUids(report, opts.signal) : undefined;

  const uids = [...new Set([...buses.keys(), ...(graphical ?? [])])].sort((a, b) => a - b);
  const settled = await Promise.allSettled(
    uids.map(async (uid): Promise<NotifyResult | undefined> => {
      const bus = path.join(userDir, String(uid), 'bus');
      if (graphical && !graphical.has(uid)) {
        report.debug(`notify: uid ${uid} has a session bus but no graphical session: not notified`);
        return undefined;
      }
      const account = await accountOf(uid, opts.signal);
      const socket = buses.get(uid);
      const result = socket
        ? await notifyOne(notice, uid, bus, socket, account, opts.signal)
        : { uid, ...(account ? { user: account.name } : {}), bus, ok: false, error: `no session bus at ${bus}` };
      const who = account ? `${account.name} (uid ${uid})` : `uid ${uid}`;
      if (result.ok) report.verbose(`notified ${who}${result.id === undefined ? '' : ` (notification ${result.id})`}`);
      else report.info(`could not notify ${who}: ${result.error}`);
      return result;
    }),
  );
  const failed = settled.find((s) => s.status === 'rejected');
  if (failed) throw failed.reason;
  return settled.flatMap((s) => (s.status === 'fulfilled' && s.value ? [s.value] : []));
}

/** The uids under `<root>/run/user` whose `bus` is a socket, with the socket's owner. */
async function sessionBuses(userDir: string, report: Reporter): Promise<Map<number, Stats>> {
  let names: string[];
  try {
    names = await readdir(userDir);
  } catch (err) {
    if (isErrno(err, 'ENOENT') || isErrno(err, 'ENOTDIR')) return new Map();
    throw fsError(err, `cannot list ${userDir}`);
  }
  const buses = new Map<number, Stats>();
  for (const name of names) {
    if (!/^\d{1,10}$/.test(name)) continue;
    const bus = path.join(userDir, name, 'bus');
    const st = await lstat(bus).catch(() => undefined);
    if (st?.isSocket()) buses.set(Number(name), st);
    else report.debug(`notify: ${bus} is not a socket`);
  }
  return buses;
}

/**
 * The uids with a graphical session according to logind, or undefined when it cannot say
 * (no loginctl, or logind not running) and every session bus counts.
 */
async function graphicalUids(report: Reporter, signal: AbortSignal | undefined): Promise<Set<number> | undefined> {
  if (!(await which('loginctl'))) {
    report.debug('notify: loginctl is not installed: every session bus counts');
    return undefined;
  }
  const list = await runQuiet('loginctl', ['list-sessions', '--no-legend', '--no-pager'], signal);
  if (list.code !== 0) {
    report.debug(`notify: loginctl list-sessions failed (${lastLine(list.stderr)}): every session bus counts`);
    return undefined;
  }
  const ids = list.stdout
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0] ?? '')
    .filter(Boolean);
  const shows = await Promise.all(
    ids.map((id) => runQuiet('loginctl', ['show-session', id, '-p', 'Type', '-p', 'Name', '-p', 'User', '-p', 'State', '--no-pager'], signal)),
  );
  const uids = new Set<number>();
  for (const show of shows) {
    // A session that ended between the two calls is simply gone.
    if (show.code !== 0) continue;
    const s = parseSession(show.stdout);
    report.debug(`notify: session of ${s.name ?? `uid ${s.uid}`}: type ${s.type ?? '?'}, ${s.state ?? '?'}`);
    if (isGraphicalSession(s) && s.uid !== undefined) uids.add(s.uid);
  }
  return uids;
}

export interface SessionInfo {
  type?: string;
  name?: string;
  uid?: number;
  state?: string;
}

/** `loginctl show-session ID -p Type -p Name -p User -p State` output (KEY=value lines). */
export function parseSession(text: string): SessionInfo {
  const s: SessionInfo = {};
  for (const line of text.split('\n')) {
    const eq = line.indexOf('=');
    if (eq < 0) continue;
    const key = line.slice(0, eq);
    const value = line.slice(eq + 1).trim();
    if (key === 'Type') s.type = value;
    else if (key === 'Name') s.name = value;
    else if (key === 'State') s.state = value;
    else if (key === 'User' && /^\d+$/.test(value)) s.uid = Number(value);
  }
  return s;
}

/** A session on a display (X11, Wayland, Mir) whose user has not logged out. */
export function isGraphicalSession(s: SessionInfo): boolean {
  return GRAPHICAL_TYPES.has(s.type ?? '') && s.state !== 'closing';
}

interface Account {
  name: string;
  gid: number;
}

/** The host's account for `uid` (through NSS, as setpriv sees it), if there is one. */
async function accountOf(uid: number, signal: AbortSignal | undefined): Promise<Account | undefined> {
  let res: RunResult;
  try {
    res = await runQuiet('getent', ['passwd', String(uid)], signal);
  } catch (err) {
    if (err instanceof DarchError && err.code === 'E_TOOL_MISSING') return undefined;
    throw err;
  }
  const fields = res.code === 0 ? (res.stdout.split('\n')[0] ?? '').split(':') : [];
  const gid = Number(fields[3]);
  return fields[0] && fields.length >= 4 && Number.isInteger(gid) ? { name: fields[0], gid } : undefined;
}

async function notifyOne(
  notice: Notice,
  uid: number,
  bus: string,
  socket: Stats,
  account: Account | undefined,
  signal: AbortSignal | undefined,
): Promise<NotifyResult> {
  const result: NotifyResult = { uid, ...(account ? { user: account.name } : {}), bus, ok: false };
  // The bus admits the uid that owns it; that is whoever owns the socket it made.
  const owner = socket.uid;
  const self = process.getuid?.();
  const busctl = ['busctl', `--address=${dbusAddress(bus)}`, `--timeout=${NOTIFY_TIMEOUT_S}`, '--no-pager', '--', 'call', ...notifyArgs(notice)];
  let argv = busctl;
  if (self === 0 && owner !== 0) {
    const gid = account?.gid ?? socket.gid;
    argv = ['setpriv', `--reuid=${owner}`, `--regid=${gid}`, account ? '--init-groups' : '--clear-groups', '--', ...busctl];
  } else if (self !== owner) {
    return { ...result, error: `darch runs as uid ${self}, and a session bus admits only its owner (uid ${owner})` };
  }
  const [cmd, ...args] = argv as [string, ...string[]];
  const res = await runQuiet(cmd, args, signal, { timeout: (NOTIFY_TIMEOUT_S + 2) * 1000, killSignal: 'SIGKILL', cwd: '/' });
  // setpriv found no busctl to run.
  if (cmd === 'setpriv' && res.code === 127 && /busctl/.test(res.stderr)) throw missingTool('busctl');
  if (res.signal === 'SIGKILL') return { ...result, error: `the session bus did not answer within ${NOTIFY_TIMEOUT_S} s` };
  if (res.code !== 0) return { ...result, error: lastLine(res.stderr) || `busctl exited with status ${res.code}` };
  const id = /^u (\d+)\s*$/m.exec(res.stdout)?.[1];
  return { ...result, ok: true, ...(id === undefined ? {} : { id: Number(id) }) };
}

/** busctl's arguments after `call`: Notify(app_name, replaces_id, icon, summary, body, actions, hints, expire_timeout). */
export function notifyArgs(n: Notice): string[] {
  // argv cannot carry NUL, and D-Bus strings may not contain it.
  const text = (s: string): string => s.replaceAll('\0', '');
  return [
    'org.freedesktop.Notifications',
    '/org/freedesktop/Notifications',
    'org.freedesktop.Notifications',
    'Notify',
    'susssasa{sv}i',
    'darch',
    '0',
    text(n.icon ?? ''),
    text(n.summary),
    text(n.body),
    // no actions
    '0',
    // one hint: urgency, a byte
    '1',
    'urgency',
    'y',
    String(URGENCY[n.urgency ?? 'normal']),
    // the server's default expiry
    '-1',
  ];
}

/** A D-Bus address for a socket path: bytes outside the spec's safe set are %-escaped. */
export function dbusAddress(socket: string): string {
  let out = '';
  for (const b of Buffer.from(socket, 'utf8')) {
    const c = String.fromCharCode(b);
    out += /^[-0-9A-Za-z_/.\\*]$/.test(c) ? c : `%${b.toString(16).padStart(2, '0')}`;
  }
  return `unix:path=${out}`;
}

/** `run` that returns failures, and throws the abort's reason when the signal stopped it. */
async function runQuiet(cmd: string, args: string[], signal: AbortSignal | undefined, opts: RunOptions = {}): Promise<RunResult> {
  try {
    return await run(cmd, args, { ...opts, allowFailure: true, ...(signal ? { signal } : {}) });
  } catch (err) {
    signal?.throwIfAborted();
    throw err;
  }
}

function lastLine(text: string): string {
  return text.trim().split('\n').at(-1)?.trim() ?? '';
}

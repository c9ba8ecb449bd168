/**
 * notifyUsers against real session buses: a dbus-daemon run as nobody at
 * <root>/run/user/65534/bus with a small notification server on it (python3-gi; the real
 * desktop daemons need a display), watched by dbus-monitor, so the test sees the Notify call
 * as it crossed the bus. Beside it, a user whose daemon is gone and one whose bus never
 * answers: both fail on their own, and nobody is still notified.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chmod, chown, mkdir, mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { dbusAddress, NOTIFY_TIMEOUT_S, notifyUsers } from '../../src/update/notify.js';

const NOBODY = 65534;
const AS_NOBODY = ['--reuid=65534', '--regid=65534', '--init-groups', '--'];

/**
 * A notification server that answers Notify with 42, 43, … Debian's python3 (the one with
 * python3-gi), whatever python3 comes first on PATH.
 */
const FAKE_SERVER = `
import sys
from gi.repository import Gio, GLib
XML = '''<node><interface name="org.freedesktop.Notifications"><method name="Notify">
<arg type="s" direction="in"/><arg type="u" direction="in"/><arg type="s" direction="in"/>
<arg type="s" direction="in"/><arg type="s" direction="in"/><arg type="as" direction="in"/>
<arg type="a{sv}" direction="in"/><arg type="i" direction="in"/><arg type="u" direction="out"/>
</method></interface></node>'''
conn = Gio.DBusConnection.new_for_address_sync(sys.argv[1],
    Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT | Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION, None, None)
ids = iter(range(42, 1000))
def call(conn, sender, path, iface, method, params, invocation):
    invocation.return_value(GLib.Variant('(u)', (next(ids),)))
conn.register_object('/org/freedesktop/Notifications', Gio.DBusNodeInfo.new_for_xml(XML).interfaces[0], call, None, None)
loop = GLib.MainLoop()
Gio.bus_own_name_on_connection(conn, 'org.freedesktop.Notifications', Gio.BusNameOwnerFlags.NONE,
    lambda *a: print('ready', flush=True), lambda *a: loop.quit())
loop.run()
`;

/** A child whose stdout is collected; `waitFor` resolves once the output matches. */
class Proc {
  out = '';
  err = '';
  readonly child: ChildProcess;
  constructor(cmd: string, args: string[]) {
    this.child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.stdout!.on('data', (b: Buffer) => (this.out += b.toString('utf8')));
    this.child.stderr!.on('data', (b: Buffer) => (this.err += b.toString('utf8')));
  }
  async waitFor(what: string | RegExp, timeoutMs = 10_000): Promise<void> {
    const end = Date.now() + timeoutMs;
    while (!(typeof what === 'string' ? this.out.includes(what) : what.test(this.out))) {
      if (this.child.exitCode !== null || Date.now() > end) {
        assert.fail(`${this.child.spawnargs.join(' ')}: no ${what} in its output (exit ${this.child.exitCode})\n${this.out}\n${this.err}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return Promise.resolve();
    return new Promise((resolve) => {
      this.child.once('exit', () => resolve());
      this.child.kill('SIGKILL');
    });
  }
}

/** <root>/run/user/<uid> owned by uid, mode 0700 as logind makes it. */
async function runtimeDir(root: string, uid: number): Promise<string> {
  const dir = path.join(root, 'run', 'user', String(uid));
  await mkdir(dir, { recursive: true });
  await chown(dir, uid, NOBODY);
  await chmod(dir, 0o700);
  return dir;
}

describe('notify: desktop notifications on the users’ own session buses', { skip: process.getuid?.() !== 0 && 'needs root to run buses as nobody' }, () => {
  let work: string;
  let root: string;
  let bus: string;
  let daemon: Proc;
  let server: Proc;
  let monitor: Proc;
  const hung: net.Server[] = [];

  before(async () => {
    // A space in the path: the D-Bus address must escape it for libdbus and sd-bus alike.
    work = await mkdtemp(path.join(os.tmpdir(), 'darch notify-'));
    root = path.join(work, 'root');
    await mkdir(path.join(root, 'run', 'user'), { recursive: true });
    // nobody walks down to its runtime directory.
    for (const d of [work, root, path.join(root, 'run'), path.join(root, 'run', 'user')]) await chmod(d, 0o755);
    bus = path.join(await runtimeDir(root, NOBODY), 'bus');
    daemon = new Proc('setpriv', [...AS_NOBODY, 'dbus-daemon', '--session', '--nofork', `--address=${dbusAddress(bus)}`, '--print-address']);
    await daemon.waitFor('\n');
    const address = daemon.out.trim();
    assert.match(address, /^unix:path=/);
    server = new Proc('setpriv', [...AS_NOBODY, '/usr/bin/python3', '-c', FAKE_SERVER, address]);
    await server
      .waitFor('ready\n')
      .catch((e: Error) => assert.fail(`the fake notification server needs python3-gi (apt-get install python3-gi): ${e.message}`));
    monitor = new Proc('setpriv', [...AS_NOBODY, 'dbus-monitor', '--address', address, "interface='org.freedesktop.Notifications'"]);
    // A monitor first sees its own name come and go (BecomeMonitor).
    await monitor.waitFor('member=NameLost');
  });

  after(async () => {
    for (const h of hung) if (h.listening) h.close();
    await Promise.all([monitor?.stop(), server?.stop(), daemon?.stop()]);
    await rm(work, { recursive: true, force: true });
  });

  it('calls Notify as the bus owner with the exact text and returns the server’s id', async () => {
    const summary = `-darch: "base:latest" ist bereit ü`;
    const body = 'A new image was staged.\nRestart to use it.';
    const results = await notifyUsers({ summary, body, urgency: 'critical' }, { root });
    assert.deepEqual(results, [{ uid: NOBODY, user: execFileSync('id', ['-nu', String(NOBODY)], { encoding: 'utf8' }).trim(), bus, ok: true, id: 42 }]);
    await monitor.waitFor(`string "${summary}"\n   string "${body}"\n`);
    const call = monitor.out.slice(monitor.out.indexOf('member=Notify'));
    assert.match(call, /^member=Notify\n {3}string "darch"\n {3}uint32 0\n {3}string ""\n/);
    assert.match(call, /string "urgency"\n\s+variant\s+byte 2\n/);
    assert.match(call, /int32 -1\n/);
  });

  it('a bus whose daemon is gone and one that never answers fail on their own; nobody is still notified', async () => {
    // A socket left behind by a daemon that died: nothing listens on it.
    const gone = path.join(await runtimeDir(root, 65533), 'bus');
    execFileSync('/usr/bin/python3', ['-c', 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])', gone]);
    await chown(gone, 65533, NOBODY);
    // root's bus that accepts the connection and then says nothing (sd-bus would wait 90 s).
    const silent = path.join(await runtimeDir(root, 0), 'bus');
    const server0 = net.createServer(() => undefined);
    hung.push(server0);
    await new Promise<void>((resolve) => server0.listen(silent, resolve));
    // A directory without a bus is no one to notify.
    await runtimeDir(root, 65532);

    const summary = 'second notice';
    const started = Date.now();
    const results = await notifyUsers({ summary, body: 'still delivered' }, { root });
    assert.ok(Date.now() - started < (NOTIFY_TIMEOUT_S + 5) * 1000, 'a hung bus is given up on');
    assert.deepEqual(
      results.map((r) => r.uid),
      [0, 65533, NOBODY],
    );
    const [r0, r1, r2] = results as [(typeof results)[0], (typeof results)[0], (typeof results)[0]];
    assert.equal(r0.ok, false);
    assert.equal(r0.error, `the session bus did not answer within ${NOTIFY_TIMEOUT_S} s`);
    assert.equal(r1.ok, false);
    assert.equal(r1.bus, gone);
    assert.equal(r1.user, undefined, 'uid 65533 has no account');
    assert.match(r1.error ?? '', /Connection refused/);
    assert.equal(r2.ok, true);
    assert.equal(r2.id, 43);
    await monitor.waitFor(`string "${summary}"\n   string "still delivered"\n`);
    server0.close();
    for (const uid of [0, 65533, 65532]) await rm(path.join(root, 'run', 'user', String(uid)), { recursive: true });
  });

  it('without a notification server the call fails with the bus’s error', async () => {
    await server.stop();
    const results = await notifyUsers({ summary: 'nobody listens', body: '' }, { root });
    const r = results.find((x) => x.uid === NOBODY);
    assert.equal(r?.ok, false);
    assert.match(r?.error ?? '', /org\.freedesktop\.Notifications was not provided by any \.service files/);
  });

  it('another root without run/user: nobody to notify', async () => {
    assert.deepEqual(await notifyUsers({ summary: 's', body: 'b' }, { root: path.join(work, 'empty') }), []);
  });
});

/** The pure parts of src/update/notify.ts: logind's session properties, the bus address, busctl's arguments. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { dbusAddress, isGraphicalSession, notifyArgs, parseSession } from '../../src/update/notify.js';

test('graphical sessions are x11, wayland and mir ones whose user has not logged out', () => {
  const s = parseSession('Type=wayland\nName=alice\nUser=1000\nState=active\n');
  assert.deepEqual(s, { type: 'wayland', name: 'alice', uid: 1000, state: 'active' });
  assert.equal(isGraphicalSession(s), true);
  assert.equal(isGraphicalSession(parseSession('Type=x11\nUser=1001\nState=online\n')), true);
  assert.equal(isGraphicalSession(parseSession('Type=mir\nUser=1001\nState=active\n')), true);
  assert.equal(isGraphicalSession(parseSession('Type=tty\nUser=1000\nState=active\n')), false);
  assert.equal(isGraphicalSession(parseSession('Type=unspecified\nUser=0\nState=online\n')), false);
  assert.equal(isGraphicalSession(parseSession('Type=x11\nUser=1000\nState=closing\n')), false);
  assert.equal(parseSession('User=\n').uid, undefined);
});

test('a socket path becomes a D-Bus address with unsafe bytes escaped', () => {
  assert.equal(dbusAddress('/run/user/1000/bus'), 'unix:path=/run/user/1000/bus');
  assert.equal(dbusAddress('/tmp/a b,c=d;ü/bus'), 'unix:path=/tmp/a%20b%2cc%3dd%3b%c3%bc/bus');
});

test("Notify's arguments in busctl's notation: no actions, the urgency hint as a byte, the server's expiry", () => {
  const args = notifyArgs({ summary: 'S', body: 'B\0!', urgency: 'low', icon: 'system-software-update' });
  assert.deepEqual(args.slice(4), ['susssasa{sv}i', 'darch', '0', 'system-software-update', 'S', 'B!', '0', '1', 'urgency', 'y', '0', '-1']);
  assert.equal(notifyArgs({ summary: '', body: '' })[14], '1', 'normal by default');
  assert.equal(notifyArgs({ summary: '', body: '', urgency: 'critical' })[14], '2');
});

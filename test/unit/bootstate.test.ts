/** src/boot/bootstate.ts: one API over both back ends; reads never write; changes follow the default in the menu. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { changeState, readState } from '../../src/boot/bootstate.js';
import type { EnvStorage } from '../../src/boot/grub/grubenv.js';
import { entryName, renderBlsEntry, VERSION, type EntryFiles } from '../../src/boot/sdboot/sdboot.js';
import { armTrial, setDefault } from '../../src/boot/trial/state.js';
import { resolveImage, type BootTarget, type KnownImage } from '../../src/boot/target.js';

const A = 'a'.repeat(25);
const B = 'b'.repeat(25);
const images: KnownImage[] = [
  { id: A, tags: ['os:a'] },
  { id: B, tags: ['os:b'] },
];

function fakeTarget(opts: { entries?: Map<string, string>; menuFails?: boolean } = {}) {
  const env = new Map<string, Buffer>();
  const entries = opts.entries ?? new Map<string, string>();
  const writes: string[] = [];
  const followed: string[] = [];
  const storage: EnvStorage = {
    where: 'mem:/EFI/darch',
    read: async (n) => env.get(n),
    write: async (n, d) => {
      writes.push(n);
      env.set(n, Buffer.from(d));
    },
  };
  const files: EntryFiles = {
    where: 'mem:/loader/entries',
    list: async () => [...entries.keys()],
    read: async (f) => entries.get(f) ?? '',
    write: async (f, t) => {
      writes.push(f);
      entries.set(f, t);
    },
    remove: async (f) => {
      writes.push(`-${f}`);
      entries.delete(f);
    },
  };
  const t: BootTarget = {
    kind: 'disk',
    label: 'mem',
    storage,
    entries: files,
    images: async () => images,
    firstEntry: async () => ({ entry: 'darch-os@a', stage: A }),
    booted: async () => undefined,
    watchdog: async () => undefined,
    withLock: (fn) => fn(),
    declaredBootloader: async () => undefined,
    failure: async () => undefined,
    clearFailure: async () => undefined,
    followDefault: async (e) => {
      followed.push(e);
    },
    ensureInMenu: async (e) => {
      if (opts.menuFails) throw new Error('read-only file system');
      writes.push(`menu:${e}`);
    },
  };
  return { t, writes, followed, entries };
}

test('GRUB: reading writes nothing; set-default saves both copies and moves the menu', async () => {
  const f = fakeTarget();
  const r = await readState(f.t);
  assert.equal(r.backend, 'grub');
  assert.deepEqual(f.writes, []);
  const res = await changeState(f.t, (s, imgs) => setDefault(s, resolveImage(imgs, 'os:b')));
  assert.equal(res.transition.changed, true);
  assert.deepEqual(f.writes, ['grubenv', 'grubenv.bak']);
  assert.deepEqual(f.followed, ['darch-os@b']);
  assert.equal((await readState(f.t)).state.default?.stage, B);
});

test('GRUB: arming a trial makes sure the menu has its entry before the state names it; if it cannot, nothing is armed', async () => {
  const f = fakeTarget();
  await changeState(f.t, (s, imgs) => armTrial(s, resolveImage(imgs, 'os:b'), 2));
  assert.equal(f.writes[0], 'menu:darch-os@b', `the menu first, then the state: ${f.writes.join(' ')}`);
  assert.ok(f.writes.length > 1);
  const g = fakeTarget({ menuFails: true });
  await assert.rejects(
    changeState(g.t, (s, imgs) => armTrial(s, resolveImage(imgs, 'os:b'), 2)),
    (err: Error & { code?: string }) => err.code === 'E_NO_MENU_ENTRY' && /has no entry darch-os@b .*read-only file system/.test(err.message),
  );
  assert.deepEqual(g.writes, [], 'no state written');
});

test('systemd-boot: the same call renames entries, and normalises even when nothing changed', async () => {
  const entry = (id: string, version: number, extra = '') =>
    renderBlsEntry({ stage: id, title: id, linux: '/k', initrd: '/i', options: `darch_stageid=${id}${extra}` }, version);
  const entries = new Map([
    [entryName(A), entry(A, VERSION.default)],
    // Committed by systemd-bless-boot (counter stripped), still carrying the trial flag.
    [entryName(B), entry(B, VERSION.other, ' darch.trial=1')],
  ]);
  const f = fakeTarget({ entries });
  assert.equal((await readState(f.t)).backend, 'systemd-boot');
  assert.deepEqual(f.writes, []);
  const same = await changeState(f.t, (s, imgs) => setDefault(s, resolveImage(imgs, 'os:a')));
  assert.equal(same.transition.state.default?.stage, A);
  assert.ok(!entries.get(entryName(B))?.includes('darch.trial=1'), 'a stale trial flag is dropped');
  const tried = await changeState(f.t, (s, imgs) => armTrial(s, resolveImage(imgs, 'os:b'), 2));
  assert.equal(tried.backend, 'systemd-boot');
  assert.ok(entries.has(entryName(B, 2)));
  assert.deepEqual(f.followed, [], 'no GRUB menu to follow');
});

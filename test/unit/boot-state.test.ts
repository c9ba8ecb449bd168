import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  armTrial,
  bootedFrom,
  emptyState,
  markBad,
  markGood,
  rollback,
  setDefault,
  trialKernelArgs,
  type BootState,
  type ImageRef,
  MAX_TRIES,
} from '../../src/boot/trial/state.js';
import { stateFromVars, stateToVars, MAX_BAD } from '../../src/boot/grub/envstate.js';
import { renderTrialScript } from '../../src/boot/grub/grubscript.js';
import { serializeGrubEnv, parseGrubEnv } from '../../src/boot/grub/grubenv.js';
import { resolveImage } from '../../src/boot/target.js';
import { entryId } from '../../src/boot/grub/grubcfg.js';
import { DarchError } from '../../src/lib/errors.js';

const A: ImageRef = { entry: 'darch-os@a', stage: 'a'.repeat(25) };
const B: ImageRef = { entry: 'darch-os@b', stage: 'b'.repeat(25) };
const C: ImageRef = { entry: 'darch-os@c', stage: 'c'.repeat(25) };
const withDefault = (): BootState => ({ ...emptyState(), default: A });
const code = (c: string) => (e: unknown) => e instanceof DarchError && e.code === c;

test('try arms a trial; a good trial boot commits it and remembers the previous default', () => {
  let s = armTrial(withDefault(), B, 3).state;
  assert.deepEqual([s.trial, s.tries], [B, 3]);
  // Another boot (the default, or B without the trial flag) commits nothing.
  for (const booted of [
    { stage: A.stage, trial: false, fellBack: false },
    { stage: B.stage, trial: false, fellBack: false },
    { stage: A.stage, trial: true, fellBack: false },
  ]) {
    const t = markGood(s, booted);
    assert.equal(t.changed, false);
    assert.equal(t.state, s);
  }
  const t = markGood(s, { stage: B.stage, trial: true, fellBack: false });
  assert.equal(t.changed, true);
  s = t.state;
  assert.deepEqual([s.default, s.previous, s.trial, s.tries], [B, A, undefined, 0]);
  // rollback with no trial goes back to A, and again forth to B.
  s = rollback(s).state;
  assert.deepEqual([s.default, s.previous], [A, B]);
  assert.equal(markGood(withDefault(), { stage: A.stage, trial: false, fellBack: false }).changed, false);
});

test('bad images are refused unless forced; the default cannot be tried or marked bad', () => {
  const s = markBad(armTrial(withDefault(), B, 2).state).state;
  assert.equal(s.trial, undefined);
  assert.deepEqual(s.bad, [B.stage]);
  assert.throws(() => armTrial(s, B, 3), code('E_TRIAL_BAD'));
  assert.deepEqual(armTrial(s, B, 3, { force: true }).state.bad, []);
  assert.throws(() => armTrial(s, A, 3), code('E_TRIAL_IS_DEFAULT'));
  assert.throws(() => markBad(s, A.stage), code('E_BAD_DEFAULT'));
  assert.throws(() => markBad(withDefault()), code('E_NO_TRIAL'));
  for (const n of [0, MAX_TRIES + 1, 1.5]) assert.throws(() => armTrial(withDefault(), B, n), code('E_USAGE'));
  assert.throws(() => rollback(withDefault()), code('E_NOTHING_TO_ROLL_BACK'));
});

test('set-default ends a trial of the same image; rollback cancels a pending trial first', () => {
  let s = armTrial(withDefault(), B, 3).state;
  assert.equal(rollback(s).state.trial, undefined);
  assert.deepEqual(rollback(s).state.default, A);
  s = setDefault(s, B).state;
  assert.deepEqual([s.default, s.previous, s.trial], [B, A, undefined]);
  s = armTrial(s, C, 1).state;
  s = setDefault(s, A).state;
  assert.deepEqual([s.default, s.trial], [A, C]);
});

test('state round-trips through grubenv variables, and the worst case fits the 1 KiB block', () => {
  const s: BootState = {
    default: A,
    previous: C,
    trial: B,
    tries: 3,
    trialArgs: 'panic=10 darch.watchdog=300',
    trialTries: 3,
    fellBack: true,
    fellBackFrom: C.stage,
    bad: Array.from({ length: 9 }, (_, i) => `${i}`.repeat(25)),
  };
  const vars = stateToVars(s);
  const back = stateFromVars(parseGrubEnv(serializeGrubEnv(vars)));
  assert.deepEqual(back, { ...s, bad: s.bad.slice(-MAX_BAD) });
  // The worst case (long registry tags, a full bad list, a seal GRUB lengthened 21 times) fits the 1 KiB block.
  const long = (c: string): ImageRef => ({ entry: `darch-registry.example.com:5000+team+desktop@2026-11-26-${c}`, stage: c.repeat(25) });
  const worst = stateToVars({
    default: long('a'),
    previous: long('p'),
    trial: long('t'),
    tries: 20,
    trialArgs: 'panic=3600 darch.watchdog=86400',
    trialTries: 20,
    fellBack: true,
    fellBackFrom: 'f'.repeat(25),
    bad: s.bad,
  });
  const seal = `99999${'g'.repeat(MAX_TRIES + 1)}`;
  assert.equal(serializeGrubEnv([['darch_seq', seal], ...worst, ['darch_seal', seal]]).length, 1024);
  // A counter GRUB left at 0 (or garbage) means no trial.
  assert.equal(stateFromVars(new Map([['darch_tries', 'x']])).tries, 0);
});

test('the kernel command line says which boot this is', () => {
  assert.deepEqual(bootedFrom(`BOOT_IMAGE=/v quiet darch_stageid=${B.stage} darch.trial=1\n`), { stage: B.stage, trial: true, fellBack: false });
  assert.deepEqual(bootedFrom('root=/dev/sda1 darch.fell_back=1'), { stage: undefined, trial: false, fellBack: true });
});

test('the GRUB script counts down every value with a comparison and never does arithmetic', () => {
  const script = renderTrialScript({ maxTries: 4 });
  for (let n = 1; n <= 4; n++) assert.match(script, new RegExp(`\\[ "\\$\\{darch_tries\\}" = "${n}" \\]; then\\n\\t\\tset darch_tries=${n - 1}\\n`));
  assert.doesNotMatch(script, /darch_tries\}" = "5"/);
  assert.match(script, /save_env --file "\(\$\{darch_esp\}\)\/EFI\/darch\/grubenv"/);
  assert.match(script, /save_env --file "\(\$\{darch_esp\}\)\/EFI\/darch\/grubenv.bak"/);
  assert.match(script, /darch\.trial=1/);
  assert.match(script, /darch\.fell_back=1/);
});

test('the console counts the tries left in English: "1 more try", "2 more tries", "0 more tries"', () => {
  const script = renderTrialScript({ maxTries: 3 });
  // GRUB has no arithmetic: each comparison sets the wording of its own value.
  assert.match(script, /= "2" \]; then\n\t\tset darch_tries=1\n\t\tset darch_left="1 more try"\n/);
  assert.match(script, /= "3" \]; then\n\t\tset darch_tries=2\n\t\tset darch_left="2 more tries"\n/);
  assert.match(script, /= "1" \]; then\n\t\tset darch_tries=0\n\t\tset darch_left="0 more tries"\n/);
  assert.match(script, /echo "darch: trial boot of \$\{darch_trial_stage\}, \$\{darch_left\} after this one"/);
  assert.doesNotMatch(script, /1 more tries/);
});

test('STAGED names resolve to the menu entry of that tag', () => {
  const images = [
    { id: A.stage, tags: ['os:a', 'os:latest'] },
    { id: B.stage, tags: ['example/busybox:b'] },
  ];
  assert.deepEqual(resolveImage(images, 'os'), { entry: 'darch-os@latest', stage: A.stage, tag: 'os:latest' });
  assert.deepEqual(resolveImage(images, 'bbbb'), { entry: 'darch-example+busybox@b', stage: B.stage, tag: 'example/busybox:b' });
  assert.equal(entryId('a/b:c'), 'darch-a+b@c');
  assert.throws(() => resolveImage(images, 'nope'), code('E_NOT_STAGED'));
});

test('assets/grub-ab/ab.cfg is the generated standalone A/B script', async () => {
  const { readFile } = await import('node:fs/promises');
  const { renderAbScript } = await import('../../src/boot/grub/grubab.js');
  const { REPO } = await import('../helpers/darch.js');
  const shipped = await readFile(`${REPO}/assets/grub-ab/ab.cfg`, 'utf8');
  assert.equal(shipped, renderAbScript(), 'regenerate assets/grub-ab/ab.cfg from renderAbScript()');
  for (let n = 1; n <= 9; n++) assert.match(shipped, new RegExp(`"\\$\\{ab_tries\\}" = "${n}" \\]; then\\n\\t\\tset ab_tries=${n - 1}\\n`));
});

test('systemd-boot: a trial entry gets the flag and the trial arguments its own options lack; the commit drops both', async () => {
  const { retune, trialArgsOf } = await import('../../src/boot/sdboot/sdboot.js');
  const entry = (options: string) => `title t\nversion 1\nlinux /k\noptions ${options}\n`;
  const armed = retune(entry('root=x console=ttyS0'), 30, 'panic=10 darch.watchdog=300');
  assert.match(armed, /^options root=x console=ttyS0 darch\.trial=1 panic=10 darch\.watchdog=300$/m);
  assert.equal(trialArgsOf(armed), 'panic=10 darch.watchdog=300');
  // The user's own panic= (and darch.watchdog=0, "off") win: only what they lack is added.
  assert.match(retune(entry('panic=0 darch.watchdog=0'), 30, 'panic=10 darch.watchdog=300'), /^options panic=0 darch\.watchdog=0 darch\.trial=1$/m);
  // Re-arming does not pile arguments up, and the commit leaves the entry as it was.
  assert.equal(retune(armed, 30, 'panic=10 darch.watchdog=300'), armed.replace('version 1', 'version 30'));
  assert.match(retune(armed, 20, undefined), /^options root=x console=ttyS0$/m);
  assert.equal(trialArgsOf(entry('root=x')), undefined);
});

test('trial kernel arguments come from [boot] trial_panic and trial_watchdog; 0 leaves one out', () => {
  assert.equal(trialKernelArgs({ trial_panic: 10, trial_watchdog: 300 }), 'panic=10 darch.watchdog=300');
  assert.equal(trialKernelArgs({ trial_panic: 0, trial_watchdog: 45 }), 'darch.watchdog=45');
  assert.equal(trialKernelArgs({ trial_panic: 0, trial_watchdog: 0 }), '');
  const s = armTrial(emptyState(), B, 2, { args: 'panic=10' }).state;
  assert.deepEqual([s.trialArgs, s.trialTries], ['panic=10', 2]);
  const committed = markGood(s, 'outside').state;
  assert.deepEqual([committed.trialArgs, committed.trialTries], [undefined, undefined]);
});

test('a failure record is read only when it is whole and names the image asked for', async () => {
  const { parseFailure } = await import('../../src/stage/failures.js');
  const id = 'b'.repeat(25);
  const text = `stage=${id}\nwhere=initramfs\nreason=the image has no /sbin/init\nuptime=3\n`;
  assert.deepEqual(parseFailure(text, id), { stage: id, where: 'initramfs', reason: 'the image has no /sbin/init', uptime: 3 });
  assert.deepEqual(parseFailure(text.replace('uptime=3', 'uptime='), id), { stage: id, where: 'initramfs', reason: 'the image has no /sbin/init' });
  assert.equal(parseFailure(text, 'a'.repeat(25)), undefined, 'another image');
  assert.equal(parseFailure(text.slice(0, 20), id), undefined, 'cut short');
  assert.equal(parseFailure(undefined, id), undefined);
  assert.equal(parseFailure(`${text}${'x'.repeat(5000)}`, id), undefined, 'oversized');
});

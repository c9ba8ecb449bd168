/**
 * Network boot in qemu, the way the README tells a user to try it: `darch serve` on this
 * host's loopback, `darch vm netboot` starting a machine with no disk at all on qemu's user
 * network with restrict=on (no way out), OVMF's PXE fetching darch's bootx64.efi from qemu's
 * TFTP, GRUB fetching the menu, kernel and initramfs over HTTP through one guestfwd rule, the
 * initramfs downloading the squashfs into RAM. A fault-injecting proxy sits between the guest
 * and the server: the first download of the squashfs is cut half way (a server that dies
 * mid-download). One machine, three boots: v1 (resumed download, per-machine hooks), v2 (a
 * new version tagged on the server while it runs), and a squashfs that no longer matches its
 * sha256 (refused before it is mounted).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, open, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { darchOk, tempDir } from '../helpers/darch.js';
import { startServe } from '../helpers/serve.js';
import { debianKernel } from '../helpers/bootimage.js';
import { BOOTED, testImageTree } from '../helpers/bootfixture.js';
import { FaultyProxy } from '../helpers/faulty-proxy.js';
import { Vm } from '../helpers/qemu.js';
import { stageTree } from '../helpers/staged.js';
import { DirFiles } from '../../src/lib/smallfs.js';
import { readMetaIn, writeMetaIn } from '../../src/stage/meta-json.js';

const TAG = 'lab/os:latest';
const MAC = '52-54-00-12-34-56'; // qemu's default for the first NIC

/** meta.json's sha256 of every file, as `darch stage upload` writes it (the test helper stages by hand). */
async function recordSums(root: string, id: string): Promise<string> {
  const dir = new DirFiles(path.join(root, 'var/lib/darch/stage/live', id));
  const meta = await readMetaIn(dir);
  const sha256: Record<string, string> = {};
  for (const f of ['rootfs.squash', 'vmlinuz', 'initrd.img'])
    sha256[f] = createHash('sha256')
      .update(await readFile(path.join(root, 'var/lib/darch/stage/live', id, f)))
      .digest('hex');
  await writeMetaIn(dir, { ...meta, sha256 });
  return sha256['rootfs.squash']!;
}

describe('network boot: darch serve → UEFI PXE → GRUB over HTTP → squashfs in RAM (no disk)', () => {
  let root: string;
  let work: string;
  let proxy: FaultyProxy;
  let port: number;
  let idA: string;
  let sumA: string;
  const cleanups: (() => Promise<void>)[] = [];

  before(async () => {
    work = await tempDir({ after: (fn) => void cleanups.push(async () => fn()) }, 'darch-netboot-');
    root = path.join(work, 'root');
    const kernel = await debianKernel();
    idA = await stageTree(root, await testImageTree(path.join(work, 'a'), kernel, 'A', 'image-a'), [TAG]);
    sumA = await recordSums(root, idA);
    const conf = path.join(root, 'etc/darch');
    await mkdir(path.join(conf, 'hooks'), { recursive: true });
    await writeFile(path.join(conf, 'hooks/hostname.config'), '*=hooked-host\n');
    await darchOk(['hooks', 'apply', '--no-sync'], { root });
    // This machine's own hostname, by its MAC (the default machines directory).
    await mkdir(path.join(conf, 'machines', MAC, 'hostname'), { recursive: true });
    await writeFile(path.join(conf, 'machines', MAC, 'hostname/hostname'), 'lab-pc-07\n');

    // As the README says, with its defaults (the console on tty0 and ttyS0); :0 only so tests run side by side.
    const serve = await startServe(root);
    cleanups.push(async () => void (await serve.stop()));
    port = serve.port;
    assert.equal(serve.index.url, `http://10.0.2.100:${port}`, 'on loopback, the URL is the one qemu guests are forwarded to');
    proxy = await new FaultyProxy({ host: '127.0.0.1', port }).start();
    cleanups.push(() => proxy.stop());
  });
  after(async () => {
    for (const c of cleanups.reverse()) await c();
  });

  it('boots v1 with a resumed download and its machine hooks, then the next tagged version, and refuses a squashfs that does not match', async () => {
    const size = (await stat(path.join(root, 'var/lib/darch/stage/live', idA, 'rootfs.squash'))).size;
    // The server dies half way; then the next attempt hangs a quarter further on (the
    // initramfs gives up on it after darch_net_stall seconds and resumes).
    proxy.addRule({ url: /rootfs\.squash$/, fault: { kind: 'cut', afterBytes: Math.floor(size / 2) } });
    proxy.addRule({ url: /rootfs\.squash$/, fault: { kind: 'stall', afterBytes: Math.floor(size / 4) } });
    const vm = Vm.netboot({ name: 'netboot', server: `http://127.0.0.1:${proxy.port}`, root, failOn: null });
    try {
      await vm.waitFor(`${BOOTED} version=A`, 240_000);
      // The download was cut, and resumed where it stopped (HTTP Range), then checked.
      const gets = proxy.requests(/rootfs\.squash$/);
      assert.deepEqual(
        gets.map((g) => g.fault),
        ['cut', 'stall', undefined],
      );
      const from = (i: number) => Number(/^bytes=(\d+)-$/.exec(gets[i]!.range ?? '')?.[1]);
      assert.equal(gets[0]!.range, undefined);
      assert.equal(from(1), Math.floor(size / 2), 'the second attempt resumes where the first was cut');
      assert.equal(from(2), Math.floor(size / 2) + Math.floor(size / 4), 'the third resumes where the stalled one stopped');
      assert.match(vm.log, /darch: download attempt 2 of 5/);
      assert.match(vm.log, /darch: nothing received for 20s: starting the download again/);
      assert.match(vm.log, /darch: download attempt 3 of 5/);
      assert.match(vm.log, new RegExp(`darch: sha256 checked: ${sumA}`));

      const cmdline = await vm.ok('cat /proc/cmdline');
      assert.match(cmdline, new RegExp(`darch_rootfs=http://10\\.0\\.2\\.100:${port}/live/${idA}/rootfs\\.squash`));
      assert.match(cmdline, new RegExp(`darch_rootfs_sha256=${sumA}`));
      // No disk at all; / an overlay over a squashfs held in RAM.
      assert.equal((await vm.ok('ls /sys/block | grep -v -e "^loop" -e "^ram" | wc -l')).trim(), '0');
      assert.match(await vm.ok(`awk '$2=="/"' /proc/mounts`), /^overlay \/ overlay .*upperdir=\/run\/darch\/rw\/upper/m);
      assert.equal((await vm.ok(`awk '$2=="/run/darch/lower"{print $3}' /proc/mounts`)).trim(), 'squashfs');
      assert.equal((await vm.ok(`awk '$2=="/run/darch/ram"{print $3}' /proc/mounts`)).trim(), 'tmpfs');
      assert.equal((await vm.ok('cat /sys/block/loop0/loop/backing_file')).trim(), '/run/darch/ram/rootfs.squash');
      // The machine's own hostname (its MAC directory) over the image's hook for everyone.
      assert.equal((await vm.ok('hostname')).trim(), 'lab-pc-07');
      assert.match(vm.log, new RegExp(`darch: hooks from lab\\+os@latest\\.${MAC}\\.tar`));

      // v2 tagged on the server while it runs: the next boot runs it.
      const idB = await stageTree(root, await testImageTree(path.join(work, 'b'), await debianKernel(), 'B', 'image-b'), [TAG]);
      const sumB = await recordSums(root, idB);
      await darchOk(['hooks', 'apply', '--no-sync'], { root });
      let mark = vm.log.length;
      vm.send('reboot -f\n');
      await vm.waitFor(`${BOOTED} version=B`, 240_000, mark);
      const cmdlineB = await vm.ok('cat /proc/cmdline');
      assert.match(cmdlineB, new RegExp(`darch_stageid=${idB}\\b`));
      assert.match(cmdlineB, new RegExp(`darch_rootfs_sha256=${sumB}`));
      assert.equal((await vm.ok('hostname')).trim(), 'lab-pc-07');

      // The served squashfs damaged on the server: downloaded twice, refused, never mounted.
      const file = path.join(root, 'var/lib/darch/stage/live', idB, 'rootfs.squash');
      const fh = await open(file, 'r+');
      try {
        const b = Buffer.alloc(1);
        await fh.read(b, 0, 1, 4096);
        b[0] = b[0]! ^ 0xff;
        await fh.write(b, 0, 1, 4096);
      } finally {
        await fh.close();
      }
      mark = vm.log.length;
      vm.send('reboot -f\n');
      await vm.waitFor('does not match darch_rootfs_sha256', 240_000, mark);
      await vm.waitFor('starting a rescue shell', 60_000, mark);
      const tail = vm.log.slice(mark);
      assert.match(tail, /sha256 mismatch \([0-9a-f]{64}\): downloading again/);
      assert.match(tail, /refused, not mounted/);
      assert.doesNotMatch(tail, new RegExp(`${BOOTED}`));
      assert.equal((await vm.ok('awk \'$2=="/run/darch/lower"\' /proc/mounts | wc -l')).trim(), '0', 'nothing is mounted from the refused file');
    } finally {
      await vm.stop();
    }
  });
});

/**
 * SLOW (about 5 minutes, two systemd boots under TCG; the first run also debootstraps into /var/cache/darch-test): a
 * Debian bookworm image with systemd and its own initramfs-tools initramfs, made bootable
 * by darch's Debian package (its initramfs-tools hook, boot=darch), staged, put on a darch
 * disk and booted through OVMF and GRUB until systemd says the system is running; staged
 * with dm-verity, so the hook's dmsetup opens the root through its hash tree. The second
 * boot is a trial of the same image on darch's universal initramfs, where the packaged
 * `darch status` and `darch doctor` run inside the image and must tell what booted.
 * The third boots the image's initramfs-tools initramfs over the network (darch serve,
 * darch vm netboot): its udev loads the NIC driver darch's hook added, the image's busybox
 * brings up DHCP and downloads the squashfs (a small busybox root, so the check costs
 * seconds, not a 300 MB download under TCG). The fourth is docs/BOOT.md's encrypted stage
 * partition: systemd-boot with the kernels on the ESP, the darch partition inside LUKS2,
 * cryptsetup-initramfs's cryptroot (run by darch's script as a local-top script) told by
 * cryptopts= what to unlock; the test types the passphrase at its prompt on the serial console.
 */
import assert from 'node:assert/strict';
import { copyFile, link, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { run } from '../../src/lib/proc.js';
import { darchOk, REPO, tempDir } from '../helpers/darch.js';
import { startServe } from '../helpers/serve.js';
import { addTestConsole, debianKernel, debianSystemdTree } from '../helpers/bootimage.js';
import { BOOTED, testImageTree } from '../helpers/bootfixture.js';
import { putStaged } from '../helpers/fakestage.js';
import { Vm } from '../helpers/qemu.js';
import { stageTree } from '../helpers/staged.js';
import { encryptDarchPartition, LUKS_PASSPHRASE } from '../helpers/luks.js';

const LUKS_UUID = '7c0f3a1e-2b4d-4e6f-8a9b-0c1d2e3f4a5b';

describe("a Debian image with systemd boots through initramfs-tools and darch's hook", () => {
  let root: string;
  let disk: string;
  let id: string;
  let universalId: string;
  const cleanups: (() => Promise<void>)[] = [];

  before(async () => {
    const work = await tempDir({ after: (fn) => void cleanups.push(async () => fn()) }, 'darch-debian-');
    root = path.join(work, 'root');
    const cached = await debianSystemdTree();
    const tree = path.join(work, 'tree');
    await run('cp', ['-a', cached, tree]);
    // What a recipe for such an image does: install darch's package (the executable, its
    // initramfs-tools hook), rebuild the initramfs. Its Depends must hold in a plain root.
    const deb = (await run('bash', [path.join(REPO, 'scripts/package.sh'), work])).stdout.trim();
    await copyFile(deb, path.join(tree, 'tmp/darch.deb'));
    await run('chroot', [tree, 'dpkg', '-i', '/tmp/darch.deb']);
    await rm(path.join(tree, 'tmp/darch.deb'));
    await run('chroot', [tree, 'update-initramfs', '-u', '-k', 'all']);
    await writeFile(path.join(tree, 'etc/hostname'), 'debian-image\n');
    // A root shell on the serial console, and one line telling the test what systemd thinks.
    await addTestConsole(tree);
    const hooks = path.join(root, 'etc/darch/hooks');
    await mkdir(hooks, { recursive: true });
    await writeFile(path.join(hooks, 'hostname.config'), 'debian/*=debian-hooked\n');
    id = await stageTree(root, tree, ['debian/systemd:1'], {
      initramfs: 'image',
      kernelparams: 'boot=darch',
      exclude: ['var/cache/apt/archives'],
      verity: true,
    });
    // The same image again, booting with darch's universal initramfs instead (what staging
    // does for images without a darch-aware initramfs). Hard links: no second squashfs.
    const stage = path.join(root, 'var/lib/darch/stage');
    universalId = 'u' + id.slice(1);
    const src = path.join(stage, 'live', id);
    const dst = path.join(stage, 'live', universalId);
    await mkdir(dst);
    for (const f of ['rootfs.squash', 'vmlinuz']) await link(path.join(src, f), path.join(dst, f));
    await darchOk(['initramfs', 'build', path.join(dst, 'rootfs.squash'), '--kernel', path.join(dst, 'vmlinuz'), '-o', path.join(dst, 'initrd.img')], { root });
    await writeFile(path.join(dst, 'image.json'), JSON.stringify({ kernel: 'vmlinuz', initramfs: 'initrd.img', rootfs: 'rootfs.squash' }));
    await writeFile(path.join(dst, 'meta.json'), JSON.stringify({ id: universalId, created: new Date(Date.now() - 60_000).toISOString() }));
    const imagesJson = JSON.parse(await readFile(path.join(stage, 'images.json'), 'utf8'));
    imagesJson.images[universalId] = { tags: ['debian/systemd:universal'] };
    await writeFile(path.join(stage, 'images.json'), JSON.stringify(imagesJson));
    await darchOk(['hooks', 'apply', '--no-sync'], { root });
    disk = path.join(work, 'disk.img');
    await darchOk(['disk', 'create', disk, 'debian/systemd:1', 'debian/systemd:universal', '--kernel-args', 'console=ttyS0,115200', '--timeout', '1'], {
      root,
    });
  });
  after(async () => {
    for (const c of cleanups) await c();
  });

  it('reaches a running (or degraded) system, on an overlay root through dm-verity, with the hooks applied', async () => {
    const vm = Vm.disk({ name: 'boot-debian-systemd', disk, root, memoryMiB: 1024 });
    try {
      // systemd's own "Reached target" lines stop once getty owns the console, so a unit
      // in the image reports `systemctl is-system-running --wait` instead.
      const state = await vm.waitFor(/DARCH-SYSTEM-STATE: (\w+)/, 420_000);
      assert.match(state.match[1]!, /^(running|degraded)$/);
      await vm.waitFor(/debian-hooked login: root \(automatic login\)|root@debian-hooked/, 60_000);
      await new Promise((r) => setTimeout(r, 2000));
      assert.match(await vm.ok('cat /proc/cmdline'), new RegExp(`boot=darch .*darch_stageid=${id}\\b`));
      assert.match(await vm.ok(`awk '$2=="/"{print $1, $3}' /proc/mounts`), /^overlay overlay$/m);
      // The initramfs-tools hook carried the image's dmsetup: the squashfs is read through dm-verity.
      assert.match(vm.text, /darch: dm-verity: rootfs\.squash is checked against root hash [0-9a-f]{64}/);
      assert.match(await vm.ok(`awk '$2=="/run/darch/lower"{print $1, $3}' /proc/mounts`), /^\/dev\/mapper\/darch-root squashfs$/m);
      assert.equal((await vm.ok('hostname')).trim(), 'debian-hooked');
      assert.match(await vm.ok('systemctl is-system-running'), /running|degraded/);
    } finally {
      await vm.stop();
    }
  });

  it("boots a trial on darch's universal initramfs, where the packaged darch status and doctor tell what booted", async () => {
    await darchOk(['boot', 'try', 'debian/systemd:universal', '--disk', disk], { root });
    const vm = Vm.disk({ name: 'boot-debian-systemd-universal', disk, root, memoryMiB: 1024 });
    try {
      await vm.waitFor('darch: darch initramfs', 180_000);
      const state = await vm.waitFor(/DARCH-SYSTEM-STATE: (\w+)/, 300_000);
      assert.match(state.match[1]!, /^(running|degraded)$/);
      await vm.waitFor(/debian-hooked login: root \(automatic login\)|root@debian-hooked/, 60_000);
      await new Promise((r) => setTimeout(r, 2000));
      const cmdline = await vm.ok('cat /proc/cmdline');
      assert.match(cmdline, new RegExp(`darch_stageid=${universalId}\\b`));
      assert.match(cmdline, /darch\.trial=1/);
      assert.doesNotMatch(cmdline, /boot=darch/);
      assert.equal((await vm.ok('hostname')).trim(), 'debian-hooked');

      // The package's executable, inside the image, with nothing but glibc under it.
      assert.match(await vm.ok('darch --version'), /^\d+\.\d+\.\d+ \([0-9a-f]{12}/m);
      // The darch partition and the ESP where BOOT.md says a machine mounts them.
      await vm.ok('mkdir -p /boot/efi /var/lib/darch && mount /dev/vda1 /boot/efi && mount /dev/vda2 /var/lib/darch');
      const status = JSON.parse(await vm.ok('darch status --json', 60_000)) as {
        schemaVersion: number;
        booted: { stage: string; trial: boolean; tags: string[] } | null;
        boot: { trial: { stage: string } | null; default: { stage: string } | null } | null;
        staged: { id: string; roles: string[] }[];
      };
      assert.equal(status.schemaVersion, 1);
      assert.equal(status.booted?.stage, universalId, 'status names the staged image the kernel booted');
      assert.equal(status.booted?.trial, true, 'and says it booted as a trial');
      assert.deepEqual(status.booted?.tags, ['debian/systemd:universal']);
      // The package's units committed the trial once boot-complete.target was reached, with
      // nothing in the image's fstab: the booted image is the default now, no trial pending.
      assert.equal(status.boot?.default?.stage, universalId, JSON.stringify(status.boot));
      assert.equal(status.boot?.trial, null);
      assert.match(await vm.ok('systemctl is-active darch-mark-good.service'), /^active$/m);
      assert.ok(status.staged.find((s) => s.id === universalId)?.roles.includes('booted'));
      const screen = await vm.ok('darch status');
      assert.match(screen, new RegExp(`booted +debian/systemd:universal \\(${universalId}\\) as a trial`));
      assert.match(screen, new RegExp(`default +debian/systemd:universal \\(${universalId}\\)`));
      const doctor = JSON.parse(await vm.ok('darch doctor --json', 60_000)) as { checks: { name: string; ok: boolean }[] };
      const check = (n: string) => doctor.checks.find((c) => c.name === n)?.ok;
      assert.equal(check('kernel: squashfs'), true, 'doctor sees the squashfs the root runs on');
      assert.equal(check('kernel: overlay'), true);
    } finally {
      await vm.stop();
    }
  });

  it("network-boots through the image's own initramfs-tools initramfs (boot=darch, darch_rootfs=http://…)", async () => {
    // The Debian image's kernel and initramfs-tools initramfs with a small root: the network
    // path of darch's initramfs-tools script is what is under test, not a large download.
    const small = await testImageTree(path.join(root, '..', 'small'), await debianKernel(), 'NET', 'net-image');
    await run('mksquashfs', [small, path.join(root, '..', 'small.squash'), '-comp', 'zstd', '-noappend', '-quiet', '-no-progress']);
    const stage = path.join(root, 'var/lib/darch/stage');
    const netId = await putStaged(
      root,
      ['debian/systemd:net'],
      { kernel: 'vmlinuz', initramfs: 'initrd.img', rootfs: 'rootfs.squash', kernelparams: 'boot=darch' },
      async (dir) => {
        for (const f of ['vmlinuz', 'initrd.img']) await link(path.join(stage, 'live', id, f), path.join(dir, f));
        await copyFile(path.join(root, '..', 'small.squash'), path.join(dir, 'rootfs.squash'));
      },
    );
    const serve = await startServe(root, ['debian/systemd:net']);
    try {
      const vm = Vm.netboot({ name: 'boot-debian-systemd-netboot', server: `http://${serve.listen}`, root });
      try {
        await vm.waitFor(`${BOOTED} version=NET`, 300_000);
        assert.match(vm.text, /Loading, please wait/, "initramfs-tools' own init ran");
        assert.match(vm.text, /darch: network: \S+ \(52:54:00:12:34:56\) has 10\.0\.2\.15/);
        assert.match(vm.text, /darch: sha256 checked: [0-9a-f]{64}/);
        const cmdline = await vm.ok('cat /proc/cmdline');
        assert.match(cmdline, new RegExp(`boot=darch darch_rootfs=http://10\\.0\\.2\\.100:\\d+/live/${netId}/rootfs\\.squash`));
        assert.equal((await vm.ok(`awk '$2=="/run/darch/lower"{print $3}' /proc/mounts`)).trim(), 'squashfs');
        assert.equal((await vm.ok('cat /sys/block/loop0/loop/backing_file')).trim(), '/run/darch/ram/rootfs.squash');
      } finally {
        await vm.stop();
      }
    } finally {
      await serve.stop();
    }
  });

  it('unlocks a LUKS stage partition through cryptsetup-initramfs (cryptopts=) and boots from it, on systemd-boot', async () => {
    const luksDisk = path.join(root, '..', 'luks.img');
    await darchOk(
      [
        'disk',
        'create',
        luksDisk,
        'debian/systemd:1',
        '--bootloader',
        'systemd-boot',
        '--kernel-args',
        `console=ttyS0,115200 cryptopts=target=darchstage,source=UUID=${LUKS_UUID},luks`,
        '--timeout',
        '0',
      ],
      { root },
    );
    await encryptDarchPartition(luksDisk, { uuid: LUKS_UUID, passphrase: LUKS_PASSPHRASE, work: path.join(root, '..') });
    const vm = Vm.disk({ name: 'boot-debian-systemd-luks', disk: luksDisk, root, memoryMiB: 1024 });
    try {
      const prompt = await vm.waitFor(/Please unlock disk darchstage:/, 300_000);
      assert.doesNotMatch(vm.log.slice(0, prompt.end), /darch: ERROR/, 'darch waited for the local-top scripts');
      await new Promise((r) => setTimeout(r, 1000));
      vm.send(`${LUKS_PASSPHRASE}\n`);
      await vm.waitFor(/darchstage.* set up successfully/, 120_000, prompt.end);
      const state = await vm.waitFor(/DARCH-SYSTEM-STATE: (\w+)/, 420_000, prompt.end);
      assert.match(state.match[1]!, /^(running|degraded)$/);
      await vm.waitFor(/debian-hooked login: root \(automatic login\)|root@debian-hooked/, 60_000, prompt.end);
      await new Promise((r) => setTimeout(r, 2000));
      assert.match(await vm.ok('cat /proc/cmdline'), new RegExp(`darch_stageid=${id}\\b`));
      assert.match(await vm.ok(`awk '$2=="/"{print $1, $3}' /proc/mounts`), /^overlay overlay$/m);
      // The stage file system darch mounted is the unlocked mapping, and the root still goes through dm-verity.
      assert.match(await vm.ok('cat /run/darch/boot.env'), /^device=\/dev\/(mapper\/darchstage|dm-\d+)$/m);
      assert.match(await vm.ok('dmsetup table darchstage'), / crypt /);
      assert.match(await vm.ok(`awk '$2=="/run/darch/lower"{print $1}' /proc/mounts`), /^\/dev\/mapper\/darch-root$/m);
      assert.equal((await vm.ok('hostname')).trim(), 'debian-hooked');
    } finally {
      await vm.stop();
    }
  });
});

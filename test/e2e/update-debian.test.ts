/**
 * SLOW (four systemd boots under TCG, about 15 minutes): updates that happen by themselves,
 * end to end. A Debian bookworm image with systemd and darch installed from its .deb follows
 * `10.0.2.100:5000/os/debian:stable`, which qemu's user network (restrict=on: no other
 * network) forwards to a docker-registry on the host's 127.0.0.1.
 *
 *   boot 1  v1 runs; v2 is pushed; the test starts darch-update.service (what the timer
 *           starts): it downloads only v2's new layer, stages v2, arms a trial; the motd says so
 *   boot 2  v2's trial commits itself; v3 (its health check fails) is pushed and armed
 *   boot 3  v3's trial fails and reboots; GRUB falls back
 *   boot 4  v2 again: the motd and `darch status` say the update to 3 failed; then v4 comes
 *           on a second disk as a stage bundle and `darch update apply --from` arms it offline
 */
import assert from 'node:assert/strict';
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { diskStageFs } from '../../src/disk/menu.js';
import { run } from '../../src/lib/proc.js';
import { addTestConsole, debianSystemdTree, installDarchPackage } from '../helpers/bootimage.js';
import { darchOk, tempDir } from '../helpers/darch.js';
import { writeOciLayout } from '../helpers/oci-layout.js';
import { Vm } from '../helpers/qemu.js';
import { startRegistry, type RegistryServer } from '../helpers/registry.js';

/** Where the guest reaches the registry (qemu's guestfwd). */
const GUEST_REGISTRY = '10.0.2.100:5000';
/** Kernel module trees the guest never loads: left out so each staging inside the VM is quicker. */
const UNNEEDED_MODULES = [
  'drivers/gpu',
  'drivers/media',
  'drivers/net/wireless',
  'drivers/net/ethernet',
  'drivers/infiniband',
  'drivers/staging',
  'sound',
  'drivers/bluetooth',
  'net/bluetooth',
  'drivers/isdn',
  'drivers/scsi',
  'drivers/usb',
  'drivers/hwmon',
  'drivers/iio',
  'fs/btrfs',
  'fs/xfs',
  'fs/ocfs2',
  'fs/nfs',
  'fs/ceph',
  'fs/smb',
  'net/wireless',
  'net/mac80211',
];

describe('updates by themselves: a Debian image follows a registry through the timer, tries, commits, falls back', () => {
  let work: string;
  let host: string;
  let reg: RegistryServer;
  let disk: string;
  let usb: string;
  let vm: Vm;
  const ids: Record<string, string> = {};
  const cleanups: (() => Promise<void>)[] = [];
  const hostImage = () => `${reg.host}/os/debian:stable`;

  /** Version n's layers: the base, then v2's; v3 adds a failing health check, v4 its own marker instead. */
  async function publish(n: number): Promise<void> {
    const layer = async (i: number) => {
      const dir = path.join(work, `v${i}`);
      await mkdir(path.join(dir, 'etc/darch/health.d'), { recursive: true });
      await writeFile(path.join(dir, 'etc/darch-test-version'), `${i}\n`);
      if (i === 3) await writeFile(path.join(dir, 'etc/darch/health.d/50-broken'), '#!/bin/sh\necho "v3 is broken"\nexit 1\n', { mode: 0o755 });
      const tar = path.join(work, `v${i}.tar`);
      await run('tar', ['-C', dir, '--owner=0', '--group=0', '-cf', tar, '.']);
      return { tar, compression: 'gzip' as const };
    };
    const layers = [{ tar: path.join(work, 'base.tar'), compression: 'gzip' as const }];
    if (n >= 2) layers.push(await layer(2));
    if (n >= 3) layers.push(await layer(n));
    const layout = path.join(work, `layout-${n}`);
    await writeOciLayout(layout, `os/debian:${n}`, layers, { 'org.opencontainers.image.version': String(n) });
    await darchOk(['images', 'import', `oci:${layout}:os/debian:${n}`, `os/debian:${n}`], { root: host });
    await darchOk(['images', 'push', '--tls-verify=false', `os/debian:${n}`, hostImage()], { root: host });
  }

  before(async () => {
    work = await tempDir({ after: (fn) => void cleanups.push(async () => fn()) }, 'darch-update-e2e-');
    host = path.join(work, 'host');
    reg = await startRegistry();
    cleanups.push(() => reg.stop());

    // The image: Debian + systemd, darch from its package, the ESP and the darch partition in
    // fstab, DHCP with systemd-networkd, a root shell on the serial console.
    const tree = path.join(work, 'tree');
    await run('cp', ['-a', await debianSystemdTree(), tree]);
    for (const release of await readdir(path.join(tree, 'usr/lib/modules'))) {
      for (const m of UNNEEDED_MODULES) await rm(path.join(tree, 'usr/lib/modules', release, 'kernel', m), { recursive: true, force: true });
      await run('chroot', [tree, 'depmod', '-a', release]);
    }
    await installDarchPackage(tree, work);
    await writeFile(path.join(tree, 'etc/hostname'), 'updating\n');
    await writeFile(path.join(tree, 'etc/fstab'), '/dev/vda1 /boot/efi vfat umask=0077 0 0\n/dev/vda2 /var/lib/darch ext4 defaults 0 0\n');
    await mkdir(path.join(tree, 'boot/efi'), { recursive: true });
    await mkdir(path.join(tree, 'var/lib/darch'), { recursive: true });
    await mkdir(path.join(tree, 'etc/systemd/network'), { recursive: true });
    await writeFile(path.join(tree, 'etc/systemd/network/20-wired.network'), '[Match]\nName=en* eth*\n[Network]\nDHCP=ipv4\n');
    await run('chroot', [tree, 'systemctl', 'enable', 'systemd-networkd.service']);
    await mkdir(path.join(tree, 'etc/darch'), { recursive: true });
    await writeFile(
      path.join(tree, 'etc/darch/config.toml'),
      `[registry]\ninsecure = ["${GUEST_REGISTRY}"]\n[stage]\ncompression = "lz4"\n[update]\nimage = "${GUEST_REGISTRY}/os/debian:stable"\ntries = 1\n# The default is daily: each version is checked for within a minute of the last check here.\nschedule = "1m"\nrandom_delay = "0s"\n`,
    );
    await addTestConsole(tree, ' v$(cat /etc/darch-test-version 2>/dev/null || echo 1)');
    await run('tar', ['-C', tree, '--owner=0', '--group=0', '-cf', path.join(work, 'base.tar'), '.']);
    await rm(tree, { recursive: true, force: true });

    // The host: v1 in the registry, staged from it, on a disk whose image store already holds
    // v1's blobs (as a machine installed from that image has them).
    await mkdir(path.join(host, 'etc/darch'), { recursive: true });
    await writeFile(path.join(host, 'etc/darch/config.toml'), `[registry]\ninsecure = ["${reg.host}"]\n[update]\nimage = "${hostImage()}"\n`);
    await publish(1);
    const v1 = (await darchOk(['--json', 'update', 'stage'], { root: host })).json();
    ids.v1 = v1.id;
    disk = path.join(work, 'disk.img');
    await darchOk(['disk', 'create', disk, v1.tag, '--size', '3G', '--kernel-args', 'console=ttyS0,115200', '--timeout', '1'], { root: host });
    await (await diskStageFs(disk)).putTree(path.join(host, 'var/lib/darch/images'), '/images');

    // v4 as a stage bundle on a second disk (an ext4 "USB stick").
    await publish(4);
    const bundles = path.join(work, 'usb');
    await mkdir(bundles);
    const v4 = (await darchOk(['--json', 'update', 'stage'], { root: host })).json();
    ids.v4 = v4.id;
    await darchOk(['stage', 'export', v4.tag, '-o', path.join(bundles, 'debian-4.bundle')], { root: host });
    usb = path.join(work, 'usb.img');
    await run('mkfs.ext4', ['-q', '-d', bundles, usb, '1G']);
    // The registry serves v1 again until the test pushes v2.
    await darchOk(['images', 'push', '--tls-verify=false', 'os/debian:1', hostImage()], { root: host });

    vm = await Vm.qemu({
      name: 'update-debian',
      disk,
      memoryMiB: 1536,
      nic: `user,model=virtio-net-pci,restrict=on,guestfwd=tcp:${GUEST_REGISTRY}-cmd:nc -N 127.0.0.1 ${reg.port}`,
      extraArgs: ['-drive', `file=${usb},format=raw,if=virtio,readonly=on`],
    });
    cleanups.push(() => vm.stop());
  });
  after(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
  });

  let cursor = 0;
  async function booted(version: number): Promise<void> {
    const m = await vm.waitFor(new RegExp(`DARCH-SYSTEM-STATE: (\\w+) v${version}\\b`), 600_000, cursor);
    assert.match(m.match[1]!, /^(running|degraded)$/, vm.tail());
    // The autologin prompt may come before or after the report line: ask for a fresh one.
    vm.send('\n');
    const login = await vm.waitFor(/root@updating:~# /, 120_000, m.end);
    cursor = login.end;
    await new Promise((r) => setTimeout(r, 1500));
  }
  const status = async () => JSON.parse(await vm.ok('darch status --json', 120_000));
  /** What the timer starts, started by hand; its journal in the failure message. */
  async function updateService(): Promise<string> {
    const r = await vm.sh('systemctl start darch-update.service', 900_000);
    const journal = await vm.ok('journalctl -u darch-update.service -o cat --no-pager | tail -40');
    assert.equal(r.code, 0, `darch-update.service failed:\n${journal}`);
    return journal;
  }

  it('v1 boots; the timer service downloads only v2’s new layer, stages and arms it, the motd tells', async () => {
    await booted(1);
    assert.match(await vm.ok('systemctl is-enabled darch-update.timer'), /^enabled$/m);
    // v1's first boot traced the order it read the image's files; darch-boot-trace.service kept it.
    assert.match(
      await vm.ok('journalctl -u darch-boot-trace.service -o cat --no-pager'),
      new RegExp(`first read \\d+ files of its image .*: kept in /var/lib/darch/stage/traces/${ids.v1}\\.json`),
    );
    assert.match(
      await vm.ok(`grep -c -F -e '"usr/lib/systemd/systemd",' -e '"usr/bin/darch",' /var/lib/darch/stage/traces/${ids.v1}.json`),
      /^2$/m,
      'systemd and darch were read',
    );
    assert.equal((await status()).booted.stage, ids.v1);
    await publish(2);
    const journal = await updateService();
    assert.match(journal, /downloaded 2 blobs \(\d+ already here\)/, 'the new layer and config only: the base layer was not downloaded again');
    const s = await status();
    assert.ok(s.boot.trial, JSON.stringify(s.boot));
    ids.v2 = s.boot.trial.stage;
    // Staged by the agent with no option: in the order v1's boot read its files.
    assert.match(await vm.ok(`cat /var/lib/darch/stage/live/${ids.v2}/meta.json`), new RegExp(`"source": "trace of ${ids.v1}"`));
    assert.match(await vm.ok('run-parts /etc/update-motd.d'), /darch: Restart to use debian 2\./);
    vm.send('systemctl reboot\n');
  });

  it('v2’s trial commits by itself; a broken v3 is armed and falls back to v2, and the motd and status say so', async () => {
    // Staged in v1's boot order, v2's boot run and the squashfs tables are read ahead.
    const ra = await vm.waitFor(/darch: read ahead (\d+) MiB of rootfs\.squash/, 600_000, cursor);
    assert.ok(Number(ra.match[1]) > 0, ra.match[0]);
    await booted(2);
    const s = await status();
    assert.equal(s.booted.stage, ids.v2);
    assert.equal(s.boot.default.stage, ids.v2, 'committed');
    assert.equal(s.boot.trial, null);
    await publish(3);
    await updateService();
    const armed = await status();
    ids.v3 = armed.boot.trial.stage;
    vm.send('systemctl reboot\n');
    // v3's trial: the health check fails and it reboots; its one try used, GRUB boots v2.
    await vm.waitFor(new RegExp(`darch: trial boot of ${ids.v3}`), 600_000, cursor);
    await booted(2);
    const fell = await status();
    assert.equal(fell.booted.stage, ids.v2);
    assert.equal(fell.booted.fellBack, true);
    assert.equal(fell.boot.fellBackFrom, ids.v3);
    assert.match(await vm.ok('run-parts /etc/update-motd.d'), /darch: The update to debian 3 failed to start; you are back on debian 2\./);
    assert.match(await vm.ok('darch status'), /^update +The update to debian 3 failed to start; you are back on debian 2\.$/m);
    // The next run does not arm v3 again.
    assert.match(await updateService(), /failed-trial: debian 3 failed to start before/);
    assert.equal((await status()).boot.trial, null);
  });

  it('offline: v4 from a stage bundle on a second disk is verified and armed without the registry', async () => {
    await vm.ok('mkdir -p /mnt/usb && mount -o ro /dev/vdb /mnt/usb');
    const res = JSON.parse(await vm.ok('darch --json update apply --from /mnt/usb/debian-4.bundle 2>/dev/null', 600_000));
    assert.equal(res.kind, 'bundle');
    assert.equal(res.staged.id, ids.v4);
    assert.equal(res.applied.changed, true);
    assert.equal((await status()).boot.trial.stage, ids.v4);
  });
});

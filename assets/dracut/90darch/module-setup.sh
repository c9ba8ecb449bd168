#!/bin/bash
# darch for dracut: a module (90darch) with the contract of darch's initramfs-tools hook.
# Selected on the kernel command line by boot=darch (what darch's staging adds; root=darch
# only without systemd in the initramfs: parse-darch.sh);
# the same darch_* parameters, break= points, trial and watchdog behaviour (docs/BOOT.md).
# Installed into an image as /usr/lib/dracut/modules.d/90darch with a copy of darch-lib.sh
# and darch-record.sh beside this file (`darch initramfs dracut-install`); enabled with
# add_dracutmodules+=" darch " (/usr/lib/dracut/dracut.conf.d/90-darch.conf), then `dracut --force`.

# Only when asked for (add_dracutmodules / -a darch): a host-only initramfs never needs it
# by itself, and a generic one should not carry it unasked.
check() {
	return 255
}

# base: dracut-lib.sh (getarg, ismounted, emergency_shell) and the hook points. Not dm:
# darch opens dm-verity with dmsetup alone (--noudevsync), carried below when the image has it.
depends() {
	echo base
	return 0
}

installkernel() {
	# Not only what the build host uses: the stage file system may be any of these.
	hostonly='' instmods squashfs overlay loop ext4 vfat nls_cp437 nls_iso8859_1 crc32c_generic
	hostonly='' instmods -o dm-mod dm-verity
}

install() {
	inst_simple "$moddir/darch-lib.sh" /lib/darch/darch-lib.sh
	inst_simple "$moddir/darch-record.sh" /lib/darch/darch-record.sh
	# What darch-lib.sh calls beyond dracut's base (mount, sed, sleep, readlink, setsid, …);
	# -o: optional ones (dm-verity, network boot, the trace, readahead) are missed only by those features.
	inst_multiple findfs blkid losetup modprobe sync cat tr cut ls basename
	inst_multiple -o dmsetup sha256sum df date awk tar wget udhcpc ip reboot dd
	inst_hook cmdline 90 "$moddir/parse-darch.sh"
	inst_hook mount 90 "$moddir/mount-darch.sh"
	# systemd in the initramfs: under systemd-boot its gpt-auto generator would make a root
	# mount of its own for a boot=darch entry (darch-gpt-auto-generator.sh says why).
	if [ -e "$initdir$systemdutildir/system-generators/systemd-gpt-auto-generator" ]; then
		inst_simple "$moddir/darch-gpt-auto-generator.sh" /etc/systemd/system-generators/systemd-gpt-auto-generator
	fi
}

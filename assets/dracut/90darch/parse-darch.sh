#!/bin/sh
# darch (dracut cmdline hook): boot=darch selects darch's root. dracut may not look for a
# root device of its own: rootok=1, root=darch. Without root= on the command line neither
# systemd's fstab generator nor dracut's rootfs generator makes a sysroot.mount.
# root=darch selects it too, but only in an initramfs without systemd: systemd's fstab
# generator (252) turns every root= it does not know (it skips gpt-auto, /dev/nfs, cifs://,
# iscsi:, live:) into a sysroot.mount of that name, which fails, and the boot ends in
# emergency mode before dracut's mount hooks run.

if [ "$root" = darch ] || [ "$(getarg boot=)" = darch ]; then
	if [ -n "$DRACUT_SYSTEMD" ] && [ "$(getarg root=)" = darch ]; then
		warn "darch: root=darch does not work with systemd in the initramfs (systemd-fstab-generator mounts it as a device): use boot=darch"
	fi
	root=darch
	rootok=1
	# A trial boot has nobody at its console: a failure dracut itself meets (a missing
	# driver, a broken hook of another module) must reboot too, so the boot loader counts
	# the attempt. dracut reads /etc/cmdline.d as part of the command line.
	if getargbool 0 darch.trial && [ -z "$(getarg break=)" ] && ! getarg rd.break >/dev/null; then
		mkdir -p /etc/cmdline.d
		echo "rd.shell=0 rd.emergency=reboot" >/etc/cmdline.d/90darch-trial.conf
	fi
fi

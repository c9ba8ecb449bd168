#!/bin/sh
# darch (dracut mount hook): the staged image's squashfs with a tmpfs overlay on $NEWROOT,
# the stage hooks run on it (darch_mount_root), before dracut's pre-pivot and switch-root.
# Sourced by dracut (dracut-mount.service, or init's mount loop without systemd), which
# calls the mount hooks again while $NEWROOT is not mounted: a failure shows its rescue shell
# and exiting it tries again, as with initramfs-tools.

if [ "$root" = darch ] && ! ismounted "$NEWROOT"; then
	. /lib/darch/darch-lib.sh
	. /lib/darch/darch-record.sh
	# darch's rescue shell is dracut's: under systemd, dracut-emergency.service owns the
	# console; rd.shell=0 turns it into rd.emergency= (halt by default) as for dracut's own.
	darch_shell() {
		emergency_shell -n darch "darch: a shell (the darch: lines above say why); exit it to go on"
	}
	darch_parse_cmdline
	for _m in squashfs overlay loop; do modprobe -q "$_m" 2>/dev/null || true; done
	if darch_mount_root "$NEWROOT"; then
		if [ ! -x "$NEWROOT$darch_init" ] && [ ! -L "$NEWROOT$darch_init" ]; then
			darch_fail "the image has no $darch_init" "the image needs an init system (or pass init=/path)"
		fi
	fi
fi

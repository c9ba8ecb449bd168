#!/bin/sh
# darch (dracut cmdline hook): boot=darch or root=darch selects darch's root. dracut may not
# look for a root device of its own: rootok=1, root=darch (systemd's fstab generator skips
# a root= that is not a path, dracut's rootfs generator one it does not know).

if [ "$root" = darch ] || [ "$(getarg boot=)" = darch ]; then
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

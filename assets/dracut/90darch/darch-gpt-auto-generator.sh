#!/bin/sh
# darch (dracut): installed in the initramfs as /etc/systemd/system-generators/
# systemd-gpt-auto-generator, where it stands in for systemd's generator of that name.
# With boot=darch the root is darch's (the mount hook), and there is no root= on the
# command line; booted by systemd-boot, which sets LoaderDevicePartUUID, systemd's generator
# then looks for a discoverable root partition on the boot disk, finds none on a darch disk,
# and the boot waits for /dev/gpt-auto-root until it ends in emergency mode. Other boots of
# the same initramfs run systemd's generator as before.
for _w in $(cat /proc/cmdline); do
	[ "$_w" = boot=darch ] && exit 0
done
for _g in /usr/lib/systemd/system-generators/systemd-gpt-auto-generator /lib/systemd/system-generators/systemd-gpt-auto-generator; do
	[ -x "$_g" ] && exec "$_g" "$@"
done
exit 0

#!/bin/sh
# Makes the external base images the example recipes inherit, without any registry:
#   example/busybox:latest    from the host's busybox-static (`darch demo`)
#   debian/bookworm:minbase   debootstrap --variant=minbase from Debian's archive (~120 MB, a few minutes)
# Run as root (debootstrap needs it). Pass `busybox` to make only the first.
set -eu
darch demo
[ "${1:-all}" = busybox ] && exit 0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
debootstrap --variant=minbase bookworm "$work/rootfs" http://deb.debian.org/debian
tar -C "$work/rootfs" --numeric-owner -c . | zstd -T0 > "$work/bookworm.tar.zst"
darch images import "$work/bookworm.tar.zst" debian/bookworm:minbase

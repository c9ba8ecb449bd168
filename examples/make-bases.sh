#!/bin/sh
# Makes the external base images the example recipes inherit, without any registry:
#   example/busybox:latest    from the host's busybox-static (`darch demo`)
#   debian/bookworm:minbase   debootstrap --variant=minbase from Debian's archive (~120 MB, a few minutes)
# Run as root (debootstrap needs it). Pass `busybox` to make only the first.
set -eu
darch demo --image-only
[ "${1:-all}" = busybox ] && exit 0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The mirror apt already uses on this machine (debootstrap's default when there is none).
mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
debootstrap --variant=minbase bookworm "$work/rootfs" $mirror
tar -C "$work/rootfs" --numeric-owner -c . | zstd -T0 > "$work/bookworm.tar.zst"
darch images import "$work/bookworm.tar.zst" debian/bookworm:minbase

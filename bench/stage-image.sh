#!/usr/bin/env bash
# Builds (once) the Debian image the staging bench uses: debootstrap minbase bookworm, then
# packages added in further layers, committed with umoci (real OCI layers with whiteouts).
# Cached in /var/cache/darch-bench (override with BENCH_CACHE); reruns reuse it.
# Needs root (debootstrap, chroot apt-get) and Debian's archive.
set -euo pipefail
CACHE="${BENCH_CACHE:-/var/cache/darch-bench}"
MIRROR="${BENCH_MIRROR:-$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null)}"
OCI="$CACHE/oci"
mkdir -p "$CACHE"
if [ -f "$OCI/.complete" ]; then echo "bench image cached in $OCI" >&2; exit 0; fi
rm -rf "$OCI" "$CACHE/bundle"
if [ ! -f "$CACHE/base/.complete" ]; then
  rm -rf "$CACHE/base"
  debootstrap --variant=minbase bookworm "$CACHE/base" ${MIRROR:+"$MIRROR"} >&2
  touch "$CACHE/base/.complete"
fi
umoci init --layout "$OCI"
umoci new --image "$OCI:bench"
umoci unpack --image "$OCI:bench" "$CACHE/bundle" >/dev/null
cp -a "$CACHE/base/." "$CACHE/bundle/rootfs/"
rm -f "$CACHE/bundle/rootfs/.complete"
umoci repack --refresh-bundle --image "$OCI:bench" "$CACHE/bundle"          # layer 1: minbase
R="$CACHE/bundle/rootfs"
apt_in() {
  mount -t proc proc "$R/proc"
  trap 'umount "$R/proc" || true' RETURN
  cp /etc/resolv.conf "$R/etc/resolv.conf"
  chroot "$R" env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
  chroot "$R" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >&2
  chroot "$R" apt-get clean
  rm -rf "$R/var/lib/apt/lists/"*
}
apt_in python3 perl git >&2
umoci repack --refresh-bundle --image "$OCI:bench" "$CACHE/bundle"          # layer 2: interpreters
apt_in gcc g++ make libc6-dev >&2
umoci repack --refresh-bundle --image "$OCI:bench" "$CACHE/bundle"          # layer 3: toolchain
# layer 4: a typical cleanup layer (whiteouts) plus a kernel-like file for discovery
rm -rf "$R/usr/share/doc/"* "$R/usr/share/man/"*
mkdir -p "$R/boot" && head -c 8M /dev/urandom > "$R/boot/vmlinuz-6.1.0-bench" && head -c 4M /dev/urandom > "$R/boot/initrd.img-6.1.0-bench"
umoci repack --refresh-bundle --image "$OCI:bench" "$CACHE/bundle"
umoci gc --layout "$OCI"
rm -rf "$CACHE/bundle"
touch "$OCI/.complete"
du -sh "$OCI" >&2

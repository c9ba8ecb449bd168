#!/usr/bin/env bash
# Builds darch's Debian package from this checkout: OUTDIR/darch_<version>_amd64.deb
# (OUTDIR: the first argument, default dist/). stdout is only the path of the .deb, so
# `deb=$(bash scripts/package.sh DIR)` works; progress goes to stderr. What goes where and
# why: docs/PACKAGE.md.
#   DARCH_EXE          the executable to ship (default dist/darch, made by `npm run -s build`)
#   VERSION            the Debian version (default: package.json's version, revision -1)
#   SOURCE_DATE_EPOCH  every timestamp in the package (default: the last commit's time)
set -euo pipefail
# OUTDIR and DARCH_EXE are taken from where the command runs, the rest from the checkout.
repo=$(cd "$(dirname "$0")/.." && pwd)
abspath() { case $1 in /*) printf '%s' "$1" ;; *) printf '%s/%s' "$PWD" "$1" ;; esac; }
outdir=$(abspath "${1:-$repo/dist}")
exe=$(abspath "${DARCH_EXE:-$repo/dist/darch}")
cd "$repo"
log() { printf 'package: %s\n' "$*" >&2; }
die() {
  printf 'package: error: %s\n' "$*" >&2
  exit 1
}

[ -f "$exe" ] && [ -x "$exe" ] || die "$exe does not exist or is not executable: build it first with \`npm run -s build\` (or point DARCH_EXE at a darch executable)"
for tool in dpkg-deb dpkg-shlibdeps dpkg-parsechangelog gzip; do
  command -v "$tool" >/dev/null || die "$tool is missing: apt-get install dpkg-dev (or run bash scripts/setup.sh)"
done

upstream=$(sed -n 's/^  "version": "\([^"]*\)",$/\1/p' package.json)
[ -n "$upstream" ] || die 'no "version" in package.json'
version=${VERSION:-$upstream}
# A Debian revision, so the changelog is changelog.Debian (a native version would want changelog.gz).
[[ $version == *-* ]] || version="$version-1"
[[ $version =~ ^[0-9][A-Za-z0-9.+~]*-[A-Za-z0-9.+~]+$ ]] || die "VERSION $version is not a Debian version (like 0.1.0-1)"
# Reproducible: the same commit gives the same .deb, byte for byte.
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || stat -c %Y package.json)}
export TZ=UTC LC_ALL=C.UTF-8
umask 022

work=$(mktemp -d "${TMPDIR:-/tmp}/darch-package.XXXXXX")
trap 'rm -rf "$work"' EXIT
# Under debian/darch/ because dpkg-shlibdeps wants the binaries where a source package has them.
pkg=$work/debian/darch
mkdir -p "$pkg/DEBIAN"
darch() { DARCH_ASSETS="$repo/assets" "$exe" --quiet "$@"; }

log "darch $version from $exe"
install -D -m 0755 "$exe" "$pkg/usr/bin/darch"

# assets/ as in the checkout (the executable finds it at ../share/darch/assets); modes
# normalised so a checkout made under another umask gives the same package.
mkdir -p "$pkg/usr/share/darch"
cp -R assets "$pkg/usr/share/darch/assets"
find "$pkg/usr/share/darch/assets" -type d -exec chmod 0755 {} +
find "$pkg/usr/share/darch/assets" -type f -perm /111 -exec chmod 0755 {} +
find "$pkg/usr/share/darch/assets" -type f ! -perm /111 -exec chmod 0644 {} +

# The in-image files, exactly the kit's (KIT_FILES in src/recipes/kit.ts), written by the
# executable being packaged. Units go to the vendor directory, not /etc where the kit puts them.
darch recipes kit "$work" >/dev/null
kit=$work/darch-kit
(cd "$kit/root" && find . -type f ! -path './etc/*' -printf '%P\n') | while read -r f; do
  install -D -m "$(stat -c %a "$kit/root/$f")" "$kit/root/$f" "$pkg/$f"
done
for unit in "$kit"/root/etc/systemd/system/*; do
  install -D -m 0644 "$unit" "$pkg/lib/systemd/system/${unit##*/}"
done
install -D -m 0644 "$kit/root/etc/darch/health.d/README" "$pkg/usr/share/doc/darch/README.health.d"
# The update agent (docs/UPDATES.md): not in the kit, it needs this executable in the image.
install -D -m 0644 assets/update/darch-update.service "$pkg/lib/systemd/system/darch-update.service"
install -D -m 0644 assets/update/darch-update.timer "$pkg/lib/systemd/system/darch-update.timer"
install -D -m 0755 assets/update/50-darch "$pkg/etc/update-motd.d/50-darch"
# Boot-order traces (docs/BOOT-ORDER.md): also runs this executable.
install -D -m 0644 assets/trace/darch-boot-trace.service "$pkg/lib/systemd/system/darch-boot-trace.service"
# The links `systemctl enable` would make for the units the kit enables: "LINK UNIT-FILE"
# pairs for the maintainer scripts (an instance links to its template, %i is the instance).
units=$(sed -n 's/^\tsystemctl enable //p' "$kit/install")
[ -n "$units" ] || die "cannot find the units to enable in the kit's install script"
# The update timer too: on a machine whose config.toml follows no image its run does nothing.
# The boot-trace unit: it runs only on a boot the initramfs traced.
units="$units darch-update.timer darch-boot-trace.service"
links=()
for unit in $units; do
  file=$unit instance=
  if [[ $unit =~ ^(.+@)([^.]+)(\.[a-z]+)$ ]]; then
    file=${BASH_REMATCH[1]}${BASH_REMATCH[3]} instance=${BASH_REMATCH[2]}
  fi
  [ -f "$pkg/lib/systemd/system/$file" ] || die "the kit enables $unit but ships no $file"
  while IFS='=' read -r key targets; do
    for target in $targets; do
      target=${target//%i/$instance}
      case $key in WantedBy) links+=("$target.wants/$unit" "$file") ;; RequiredBy) links+=("$target.requires/$unit" "$file") ;; esac
    done
  done < <(sed -n '/^\[Install\]/,/^\[/{/^\(WantedBy\|RequiredBy\)=/p}' "$pkg/lib/systemd/system/$file")
done

# Completions and man pages, from the executable's own command definitions.
darch completion bash >"$work/darch.bash"
darch completion zsh >"$work/_darch"
darch completion fish >"$work/darch.fish"
install -D -m 0644 "$work/darch.bash" "$pkg/usr/share/bash-completion/completions/darch"
install -D -m 0644 "$work/_darch" "$pkg/usr/share/zsh/vendor-completions/_darch"
install -D -m 0644 "$work/darch.fish" "$pkg/usr/share/fish/vendor_completions.d/darch.fish"
darch man --output "$work/man"
mkdir -p "$pkg/usr/share/man/man1"
for page in "$work"/man/*.1; do
  gzip -9nc "$page" >"$pkg/usr/share/man/man1/${page##*/}.gz"
done

# Documentation; a VERSION the changelog does not have yet gets an entry of its own, so
# the package never claims another version's changelog.
changelog=$work/changelog
top=$(dpkg-parsechangelog -l packaging/debian/changelog -S Version)
if [ "$top" != "$version" ]; then
  maint=$(dpkg-parsechangelog -l packaging/debian/changelog -S Maintainer)
  printf 'darch (%s) unstable; urgency=medium\n\n  * Built from %s.\n\n -- %s  %s\n\n' \
    "$version" "$(git describe --always --dirty 2>/dev/null || echo 'a source tree')" "$maint" "$(date -R -d "@$SOURCE_DATE_EPOCH")" >"$changelog"
fi
cat packaging/debian/changelog >>"$changelog"
install -d -m 0755 "$pkg/usr/share/doc/darch"
gzip -9nc "$changelog" >"$pkg/usr/share/doc/darch/changelog.Debian.gz"
install -m 0644 packaging/debian/copyright "$pkg/usr/share/doc/darch/copyright"
install -D -m 0644 packaging/debian/lintian-overrides "$pkg/usr/share/lintian/overrides/darch"

# Control files.
for script in postinst postrm; do
  sed "s|@UNIT_LINKS@|${links[*]}|" "packaging/debian/$script" >"$pkg/DEBIAN/$script"
  chmod 0755 "$pkg/DEBIAN/$script"
done
find "$pkg" -path "$pkg/DEBIAN" -prune -o -path "$pkg/etc/*" -type f -printf '/%P\n' | sort >"$pkg/DEBIAN/conffiles"
[ -s "$pkg/DEBIAN/conffiles" ] || rm "$pkg/DEBIAN/conffiles"
printf 'Source: darch\n\nPackage: darch\nArchitecture: amd64\n' >"$work/debian/control"
depends=$(cd "$work" && dpkg-shlibdeps -O -e debian/darch/usr/bin/darch 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
[ -n "$depends" ] || die "dpkg-shlibdeps found no dependencies of $exe"
size=$(du -sk --apparent-size --exclude=DEBIAN "$pkg" | cut -f1)
sed -e "s|@VERSION@|$version|g" -e "s|@DEPENDS@|$depends|" -e "s|@INSTALLED_SIZE@|$size|" packaging/debian/control >"$pkg/DEBIAN/control"
(cd "$pkg" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) >"$pkg/DEBIAN/md5sums"
chmod 0644 "$pkg"/DEBIAN/{control,md5sums}

find "$pkg" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
mkdir -p "$outdir"
deb=$outdir/darch_${version}_amd64.deb
partial=$outdir/.${deb##*/}.$$
trap 'rm -rf "$work" "$partial"' EXIT
log "dpkg-deb --build (Depends: $depends)"
# Written under a temporary name beside it and renamed, so a failure leaves no partial .deb.
# xz, as Debian's tools expect (lintian calls a zstd .deb malformed), at level 0: 12 s for
# the 130 MB executable where the default -6 takes 150 s for a package 20 % smaller.
dpkg-deb --root-owner-group -Zxz -z0 --build "$pkg" "$partial" >&2
mv -f "$partial" "$deb"
realpath "$deb"

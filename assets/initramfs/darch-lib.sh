# darch boot library: shared by darch's universal /init and the initramfs-tools script.
# POSIX sh (busybox ash, klibc sh). Kernel parameters, compatible with the original Darch:
#   darch_dir=UUID=<fs-uuid>:<path>   where the staged image lives (also LABEL=, /dev/…)
#   darch_rootfs=<file>               squashfs inside that directory (rootfs.squash)
#   darch_stageid=<id>                the staged id (informational; read back by darch)
#   darch_hooks=<subdir>              hook directory inside darch_dir (default: hooks)
#   darch_ram=1                       copy the squashfs to RAM first (source unmounted)
#   darch_verity=<root hash>          map the squashfs through dm-verity with the hash tree
#   darch_verity_salt=<hex>           <rootfs>.verity beside it (sha256, 4 KiB blocks, no
#   darch_verity_blocks=<n>           superblock): every block read is checked (src/stage/verity.ts)
#   darch_timeout=<s>                 seconds to wait for the stage device (default 30)
#   break=darch-prelocal|darch-premove|darch-preoverlay|darch-prehooks|darch-preunmount|darch-done
#   panic=<s>                         on failure reboot after <s> seconds instead of a shell
#                                     (a trial boot always reboots: nobody is at its console)
#   darch.watchdog=<s>                on a trial boot (darch.trial=1), arm a watchdog that
#                                     only a commit stops: a trial that hangs is reset
#   darch.readahead=0                 do not read ahead the ranges of the squashfs its boot
#                                     reads (live/<id>/readahead, images staged in a boot order)
#   darch.trace=0|1                   record the order this boot reads the image's files
#                                     (darch boot trace): by default while no trace of the
#                                     staged image is kept; 0 never, 1 always
# Network boot (docs/NETBOOT.md; `darch serve` writes these):
#   darch_rootfs=http(s)://…/<file>   no darch_dir: DHCP, then the squashfs is downloaded into RAM
#   darch_rootfs_sha256=<hex>         and checked against this before it is mounted
#   darch_hooks=<path>                hooks: <url dir>/<path>.<mac>.tar, else <url dir>/<path>.tar
#   darch_net_retries=<n>             download attempts before giving up (default 5)
#   darch_net_stall=<s>               a download that receives nothing for <s>s starts again (default 20)

DARCH_RUN=/run/darch

darch_log() { echo "darch: $*" >/dev/console 2>/dev/null || echo "darch: $*"; }

darch_parse_cmdline() {
	darch_dir=; darch_rootfs=; darch_stageid=; darch_hooks=hooks; darch_ram=; darch_timeout=30
	darch_break=; darch_panic=; darch_init=/sbin/init; darch_watchdog=; darch_trial=
	darch_verity=; darch_verity_salt=-; darch_verity_blocks=; darch_trace=; darch_readahead=
	darch_rootfs_sha256=; darch_net_retries=5; darch_net_stall=20; darch_net=; darch_hooks_dir=
	for arg in $(cat /proc/cmdline); do
		case "$arg" in
		darch_dir=*) darch_dir="${arg#darch_dir=}" ;;
		darch_rootfs=*) darch_rootfs="${arg#darch_rootfs=}" ;;
		darch_stageid=*) darch_stageid="${arg#darch_stageid=}" ;;
		darch_hooks=*) darch_hooks="${arg#darch_hooks=}" ;;
		darch_ram=*) darch_ram="${arg#darch_ram=}" ;;
		darch_timeout=*) darch_timeout="${arg#darch_timeout=}" ;;
		darch_verity=*) darch_verity="${arg#darch_verity=}" ;;
		darch_verity_salt=*) darch_verity_salt="${arg#darch_verity_salt=}" ;;
		darch_verity_blocks=*) darch_verity_blocks="${arg#darch_verity_blocks=}" ;;
		break=*) darch_break="$darch_break,${arg#break=}" ;;
		panic=*) darch_panic="${arg#panic=}" ;;
		init=*) darch_init="${arg#init=}" ;;
		darch.watchdog=*) darch_watchdog="${arg#darch.watchdog=}" ;;
		darch.trial=1) darch_trial=1 ;;
		darch.trace=*) darch_trace="${arg#darch.trace=}" ;;
		darch.readahead=*) darch_readahead="${arg#darch.readahead=}" ;;
		darch_rootfs_sha256=*) darch_rootfs_sha256="${arg#darch_rootfs_sha256=}" ;;
		darch_net_retries=*) darch_net_retries="${arg#darch_net_retries=}" ;;
		darch_net_stall=*) darch_net_stall="${arg#darch_net_stall=}" ;;
		esac
	done
	case "$darch_ram" in 1 | y | yes | true) darch_ram=1 ;; *) darch_ram= ;; esac
	case "$darch_rootfs" in http://* | https://*) darch_net=1 ;; esac
	case "$darch_net_retries" in '' | 0 | *[!0-9]*) darch_net_retries=5 ;; esac
	case "$darch_net_stall" in '' | 0 | *[!0-9]*) darch_net_stall=20 ;; esac
	# UUID=<uuid>:<path>: the device part is everything before the first ':' after the
	# first '=', so /dev/sda2:/path and LABEL=x:/path work too.
	darch_dev="${darch_dir%%:*}"
	darch_path="${darch_dir#*:}"
	[ "$darch_path" = "$darch_dir" ] && darch_path=/
}

# A Darch break point: drop to a shell, continue when it exits.
darch_break() {
	case ",$darch_break," in
	*",$1,"*)
		# Someone asked to stop here: a trial's watchdog would reset the machine under them.
		darch_disarm_watchdog
		darch_log "break point $1: exit the shell to continue booting"
		darch_shell
		;;
	esac
}

darch_shell() {
	if command -v setsid >/dev/null 2>&1 && command -v cttyhack >/dev/null 2>&1; then
		setsid cttyhack sh
	else
		sh </dev/console >/dev/console 2>&1
	fi
}

# Seconds a trial waits before it reboots after a failure: panic= when it asks for a
# reboot, else 10 (panic=0 means "never" to the kernel, but a trial must not wait for ever).
darch_trial_delay() {
	case "$darch_panic" in '' | 0 | *[!0-9]*) echo 10 ;; *) echo "$darch_panic" ;; esac
}

darch_reboot() {
	sync
	echo b >/proc/sysrq-trigger 2>/dev/null
	reboot -f
}

# Failure: a clear message, then a rescue shell, or a reboot when panic= asks for one. A
# trial boot always reboots (unless a break= point says someone is at the console): a
# machine that updates itself has nobody at its console, and only a reboot lets the boot
# loader count the attempt and fall back to the last good image.
darch_fail() {
	darch_log "ERROR: $1"
	[ -n "$2" ] && darch_log "hint: $2"
	if [ "$darch_trial" = 1 ] && [ -z "$darch_break" ]; then
		command -v darch_record_failure >/dev/null 2>&1 && darch_record_failure initramfs "$1"
		_delay=$(darch_trial_delay)
		darch_log "trial boot failed: rebooting in ${_delay}s so the boot loader counts the attempt"
		sleep "$_delay" 2>/dev/null
		darch_reboot
	fi
	if [ -n "$darch_panic" ]; then
		darch_log "rebooting in ${darch_panic}s (panic=$darch_panic)"
		sleep "$darch_panic" 2>/dev/null
		darch_reboot
	fi
	darch_log "starting a rescue shell; fix the problem and exit to retry, or reboot"
	darch_shell
	return 1
}

darch_resolve_device() {
	case "$1" in
	UUID=*)
		_u="${1#UUID=}"
		[ -e "/dev/disk/by-uuid/$_u" ] && { readlink -f "/dev/disk/by-uuid/$_u"; return 0; }
		;;
	LABEL=*)
		_l="${1#LABEL=}"
		[ -e "/dev/disk/by-label/$_l" ] && { readlink -f "/dev/disk/by-label/$_l"; return 0; }
		;;
	/dev/*)
		[ -b "$1" ] && { echo "$1"; return 0; }
		return 1
		;;
	esac
	_d=$(findfs "$1" 2>/dev/null) && [ -n "$_d" ] && { echo "$_d"; return 0; }
	_d=$(blkid -l -o device -t "$1" 2>/dev/null) && [ -n "$_d" ] && { echo "$_d"; return 0; }
	return 1
}

darch_wait_device() {
	_waited=0
	while :; do
		darch_devnode=$(darch_resolve_device "$darch_dev") && return 0
		[ "$_waited" -ge "$((darch_timeout * 10))" ] && return 1
		[ "$_waited" = 30 ] && darch_log "waiting up to ${darch_timeout}s for $darch_dev"
		sleep 0.1 2>/dev/null || sleep 1
		_waited=$((_waited + 1))
	done
}

# Watchdog drivers tried in this order: qemu's i6300esb first (a VM has one only when its
# owner added it, and then it is the one meant), then ACPI's, Intel's and AMD's; softdog
# (which catches hung user space, not a hung kernel) only when none of them gives a device.
DARCH_WATCHDOG_DRIVERS="i6300esb wdat_wdt iTCO_wdt sp5100_tco"

# Load watchdog driver $1 with the timeout $2: from darch's initramfs (watchdog.list: lines
# "<driver> <module file>", its dependencies first), else with modprobe, from the mounted
# image $3 when given (initramfs-tools leaves watchdog drivers out of its initramfs).
darch_load_watchdog() {
	case "$1" in wdat_wdt) _p=timeout ;; softdog) _p=soft_margin ;; *) _p=heartbeat ;; esac
	if [ -f /lib/modules/watchdog.list ]; then
		_kver=$(uname -r)
		while read -r _d _f; do
			[ "$_d" = "$1" ] || continue
			case "${_f##*/}" in
			"$1".ko*) insmod "/lib/modules/$_kver/$_f" "$_p=$2" 2>/dev/null ;;
			*) insmod "/lib/modules/$_kver/$_f" 2>/dev/null ;;
			esac
		done </lib/modules/watchdog.list
	elif [ -n "$3" ]; then
		modprobe -q -d "$3" "$1" "$_p=$2" 2>/dev/null
	else
		return 1
	fi
	command -v mdev >/dev/null 2>&1 && mdev -s 2>/dev/null
	[ -e /sys/class/watchdog/watchdog0 ]
}

# On a trial boot with darch.watchdog=<s>: start a watchdog and leave it running. Closing
# the device without the magic 'V' keeps it counting, so unless a commit (darch boot
# mark-good, darch-commit) stops it, the machine is reset after <s> seconds wherever it
# hangs, and the boot loader's counter runs down. Called before the root is mounted (darch's
# initramfs has the drivers) and after, with the root ($1) to load them from. Never fails
# the boot.
darch_arm_watchdog() {
	[ "$darch_trial" = 1 ] || return 0
	case "$darch_watchdog" in '' | 0 | *[!0-9]*) return 0 ;; esac
	[ -f "$DARCH_RUN/watchdog" ] && return 0
	_drv=
	if [ -e /sys/class/watchdog/watchdog0 ]; then
		_drv=$(cat /sys/class/watchdog/watchdog0/identity 2>/dev/null)
		_drv=${_drv:-watchdog0}
	else
		for _w in $DARCH_WATCHDOG_DRIVERS softdog; do
			darch_load_watchdog "$_w" "$darch_watchdog" "${1:-}" && { _drv=$_w; break; }
		done
	fi
	if [ -z "$_drv" ]; then
		# Before the root is mounted initramfs-tools has no drivers yet: try again after.
		[ -z "${1:-}" ] && [ ! -f /lib/modules/watchdog.list ] && return 0
		darch_log "darch.watchdog=$darch_watchdog: no watchdog driver loaded; this trial boot is not guarded against hangs"
		return 0
	fi
	_dev=/dev/watchdog0
	_i=0
	while [ ! -c "$_dev" ] && [ "$_i" -lt 20 ]; do sleep 0.1 2>/dev/null || sleep 1; _i=$((_i + 1)); done
	if ! printf '1' >"$_dev" 2>/dev/null; then
		darch_log "darch.watchdog=$darch_watchdog: cannot open $_dev; this trial boot is not guarded against hangs"
		return 0
	fi
	_t=$(cat /sys/class/watchdog/watchdog0/timeout 2>/dev/null)
	mkdir -p "$DARCH_RUN"
	printf 'device=%s\nseconds=%s\ndriver=%s\n' "$_dev" "${_t:-$darch_watchdog}" "$_drv" >"$DARCH_RUN/watchdog"
	darch_log "trial boot: watchdog armed ($_drv, ${_t:-$darch_watchdog}s): only a commit stops it"
}

# Stop the watchdog darch_arm_watchdog started (writing 'V' before closing stops it).
darch_disarm_watchdog() {
	[ -f "$DARCH_RUN/watchdog" ] || return 0
	_dev=$(sed -n 's/^device=//p' "$DARCH_RUN/watchdog")
	if printf 'V' >"$_dev" 2>/dev/null; then
		rm -f "$DARCH_RUN/watchdog"
		darch_log "watchdog $_dev stopped"
	fi
}

# Mount the staged image as an overlay on $1 (an existing empty directory).
darch_mount_root() {
	_root="$1"
	darch_arm_watchdog
	if [ "$darch_net" = 1 ]; then
		darch_net_root "$_root"
		return $?
	fi
	[ -n "$darch_dir" ] || { darch_fail "darch_dir= is missing from the kernel command line" "boot a darch menu entry (see /etc/darch/grub.cfg)"; return 1; }
	[ -n "$darch_rootfs" ] || darch_rootfs=rootfs.squash
	mkdir -p "$DARCH_RUN/source" "$DARCH_RUN/lower" "$DARCH_RUN/rw"
	darch_break darch-prelocal
	darch_wait_device || { darch_fail "stage device $darch_dev did not appear within ${darch_timeout}s" "check darch_dir= (blkid lists file system UUIDs), or the disk driver is missing from the initramfs"; return 1; }
	# Name the type: busybox mount only tries file systems already registered, and in an
	# initramfs-tools initramfs the driver (ext4, …) is a module nobody has loaded yet.
	_fstype=$(blkid -o value -s TYPE "$darch_devnode" 2>/dev/null)
	[ -n "$_fstype" ] || _fstype=$(blkid "$darch_devnode" 2>/dev/null | sed -n 's/.* TYPE="\([^"]*\)".*/\1/p')
	if [ -n "$_fstype" ]; then
		command -v modprobe >/dev/null 2>&1 && modprobe -q "$_fstype" 2>/dev/null
		_mopts="-t $_fstype -o ro"
	else
		_mopts="-o ro"
	fi
	# shellcheck disable=SC2086
	mount $_mopts "$darch_devnode" "$DARCH_RUN/source" ||
		{ darch_fail "cannot mount $darch_devnode ($darch_dev) read-only" "the stage file system's driver may be missing from the initramfs"; return 1; }
	_sq="$DARCH_RUN/source${darch_path%/}/$darch_rootfs"
	[ -f "$_sq" ] || { darch_fail "$darch_rootfs not found in $darch_dir" "the staged image was removed or darch_dir points to the wrong place"; return 1; }
	darch_break darch-premove
	if [ "$darch_ram" = 1 ]; then
		darch_log "copying $darch_rootfs to RAM"
		mkdir -p "$DARCH_RUN/ram"
		mount -t tmpfs -o mode=0700 tmpfs "$DARCH_RUN/ram" &&
			cp "$_sq" "$DARCH_RUN/ram/rootfs.squash" ||
			{ darch_fail "cannot copy $darch_rootfs to RAM" "not enough memory: boot without darch_ram=1"; return 1; }
		_sq="$DARCH_RUN/ram/rootfs.squash"
	fi
	darch_break darch-preoverlay
	[ "$darch_ram" = 1 ] || darch_readahead "$_sq"
	if [ -n "$darch_verity" ]; then
		if [ "$darch_ram" = 1 ] && [ -f "$DARCH_RUN/source${darch_path%/}/$darch_rootfs.verity" ]; then
			cp "$DARCH_RUN/source${darch_path%/}/$darch_rootfs.verity" "$_sq.verity" ||
				{ darch_fail "cannot copy $darch_rootfs.verity to RAM" "not enough memory: boot without darch_ram=1"; return 1; }
		fi
		darch_open_verity "$_sq" || return 1
		if ! mount -t squashfs -o ro /dev/mapper/darch-root "$DARCH_RUN/lower"; then
			if dmsetup status darch-root 2>/dev/null | grep -q ' verity C'; then
				darch_fail "$darch_rootfs failed its dm-verity check: the file on disk is not the image that was staged" "the disk corrupted it or someone changed it: stage the image again (darch stage upload --verity)"
			else
				darch_fail "cannot mount $darch_rootfs through dm-verity" "the squashfs or its hash tree may be corrupt (re-stage the image), or the squashfs module is missing"
			fi
			return 1
		fi
	else
		mount -t squashfs -o ro,loop "$_sq" "$DARCH_RUN/lower" ||
			{ darch_fail "cannot mount $darch_rootfs" "the squashfs may be corrupt (re-stage the image) or the squashfs/loop modules are missing"; return 1; }
	fi
	darch_start_trace
	darch_overlay_root "$_root" || return 1
	darch_break darch-preunmount
	if [ "$darch_ram" = 1 ]; then
		umount "$DARCH_RUN/source" 2>/dev/null
	fi
	{
		echo "stageid=$darch_stageid"
		echo "device=$darch_devnode"
		echo "dir=$darch_dir"
		echo "ram=${darch_ram:-0}"
		echo "verity=${darch_verity:+1}"
	} >"$DARCH_RUN/boot.env"
	darch_break darch-done
	return 0
}

# The writable overlay over $DARCH_RUN/lower on $1, the watchdog's second chance, the hooks.
darch_overlay_root() {
	mount -t tmpfs -o mode=0755 tmpfs "$DARCH_RUN/rw" && mkdir -p "$DARCH_RUN/rw/upper" "$DARCH_RUN/rw/work" ||
		{ darch_fail "cannot mount the tmpfs for the writable layer"; return 1; }
	mount -t overlay overlay -o "lowerdir=$DARCH_RUN/lower,upperdir=$DARCH_RUN/rw/upper,workdir=$DARCH_RUN/rw/work" "$1" ||
		{ darch_fail "cannot mount the overlay root" "the overlay module is missing from the initramfs"; return 1; }
	darch_arm_watchdog "$1"
	darch_break darch-prehooks
	darch_run_hooks "$1"
}

# Network boot: no stage device. The network comes up by DHCP, the squashfs named by the URL
# in darch_rootfs= is downloaded into RAM and checked against darch_rootfs_sha256= before it
# is mounted; the hooks come as a tar from beside it (per machine when the server has one for
# this MAC). Then the same overlay as from a disk.
darch_net_root() {
	_root="$1"
	mkdir -p "$DARCH_RUN/lower" "$DARCH_RUN/rw" "$DARCH_RUN/ram"
	darch_break darch-prelocal
	command -v wget >/dev/null 2>&1 || { darch_fail "this initramfs has no wget: it cannot boot darch_rootfs=$darch_rootfs" "use darch's initramfs, or install busybox in the image and rebuild its initramfs"; return 1; }
	darch_net_up || return 1
	_name=${darch_rootfs##*/}
	mount -t tmpfs -o mode=0700 tmpfs "$DARCH_RUN/ram" ||
		{ darch_fail "cannot mount a tmpfs for $_name"; return 1; }
	_sq="$DARCH_RUN/ram/$_name"
	darch_net_fetch_root "$_sq" || return 1
	darch_break darch-premove
	darch_net_hooks
	darch_break darch-preoverlay
	mount -t squashfs -o ro,loop "$_sq" "$DARCH_RUN/lower" ||
		{ darch_fail "cannot mount $_name" "the squashfs may be corrupt (stage it again on the server) or the squashfs/loop modules are missing"; return 1; }
	darch_overlay_root "$_root" || return 1
	darch_break darch-preunmount
	{
		echo "stageid=$darch_stageid"
		echo "device=network"
		echo "dir=$darch_rootfs"
		echo "ram=1"
		echo "verity="
		echo "interface=$darch_net_if"
		echo "mac=$darch_net_mac"
	} >"$DARCH_RUN/boot.env"
	darch_break darch-done
	return 0
}

# udhcpc's event script: configures the interface it was started for. On the initramfs's own
# root file system: initramfs-tools mounts /run noexec.
DARCH_UDHCPC_SCRIPT=/tmp/darch-udhcpc.sh
darch_udhcpc_script() {
	mkdir -p "${DARCH_UDHCPC_SCRIPT%/*}"
	cat >"$DARCH_UDHCPC_SCRIPT" <<'UDHCPC'
#!/bin/sh
case "$1" in
deconfig) ip addr flush dev "$interface" 2>/dev/null; ip link set "$interface" up ;;
bound | renew)
	ip addr flush dev "$interface" 2>/dev/null
	ip addr add "$ip/${mask:-24}" ${broadcast:+broadcast "$broadcast"} dev "$interface"
	for r in $router; do ip route add default via "$r" dev "$interface" 2>/dev/null && break; done
	: >/etc/resolv.conf
	for d in $dns; do echo "nameserver $d" >>/etc/resolv.conf; done
	echo "$ip" >"${DARCH_RUN:-/run/darch}/net.ip"
	;;
esac
exit 0
UDHCPC
	chmod 755 "$DARCH_UDHCPC_SCRIPT"
}

# DHCP on the first interface that answers: darch's initramfs loads the NIC drivers it carries
# (net.list), initramfs-tools' udev loads them itself. Waits up to darch_timeout for a lease.
darch_net_up() {
	mkdir -p "$DARCH_RUN" /etc
	if [ -f /lib/modules/net.list ]; then
		_kver=$(uname -r)
		while read -r _f; do insmod "/lib/modules/$_kver/$_f" 2>/dev/null; done </lib/modules/net.list
	fi
	command -v mdev >/dev/null 2>&1 && mdev -s 2>/dev/null
	ip link set lo up 2>/dev/null
	if ! command -v udhcpc >/dev/null 2>&1; then
		# initramfs-tools without busybox's udhcpc: its own klibc ipconfig.
		if command -v configure_networking >/dev/null 2>&1; then
			IP=dhcp configure_networking
			for _i in /run/net-*.conf; do
				[ -f "$_i" ] || continue
				darch_net_if=${_i#/run/net-}; darch_net_if=${darch_net_if%.conf}
				darch_net_mac=$(cat "/sys/class/net/$darch_net_if/address" 2>/dev/null)
				darch_log "network: $darch_net_if up ($darch_net_mac)"
				return 0
			done
		fi
		darch_fail "no DHCP client in this initramfs (udhcpc)" "use darch's initramfs, or install busybox in the image"
		return 1
	fi
	darch_udhcpc_script
	_start=$(date +%s)
	_said=
	while :; do
		for _i in /sys/class/net/*; do
			darch_net_if=${_i##*/}
			case "$darch_net_if" in lo | sit* | tunl* | ip6tnl* | dummy* | bond* | '*') continue ;; esac
			ip link set "$darch_net_if" up 2>/dev/null
			rm -f "$DARCH_RUN/net.ip"
			if DARCH_RUN=$DARCH_RUN udhcpc -i "$darch_net_if" -n -q -t 3 -T 2 -s "$DARCH_UDHCPC_SCRIPT" >/dev/null 2>&1; then
				darch_net_mac=$(cat "/sys/class/net/$darch_net_if/address" 2>/dev/null)
				if [ -s "$DARCH_RUN/net.ip" ]; then
					darch_log "network: $darch_net_if ($darch_net_mac) has $(cat "$DARCH_RUN/net.ip")"
					return 0
				fi
				darch_log "network: $darch_net_if got a lease but could not be configured (udhcpc's script failed)"
			fi
		done
		_now=$(date +%s)
		if [ $((_now - _start)) -ge "$darch_timeout" ]; then
			_ifs=$(ls /sys/class/net 2>/dev/null | grep -v '^lo$' | tr '\n' ' ')
			if [ -z "$_ifs" ]; then
				darch_fail "no network interface appeared within ${darch_timeout}s" "the machine's network driver is not in the initramfs (darch initramfs carries common ones: docs/NETBOOT.md)"
			else
				darch_fail "no DHCP answer on ${_ifs% } within ${darch_timeout}s" "check the cable and the DHCP server; darch_timeout= waits longer"
			fi
			return 1
		fi
		[ -z "$_said" ] && { darch_log "waiting up to ${darch_timeout}s for a DHCP answer"; _said=1; }
		sleep 1
	done
}

# busybox wget has no certificate store in an initramfs and refuses https without this:
# what is downloaded is checked against darch_rootfs_sha256= instead (docs/NETBOOT.md).
darch_wget_tls() {
	case "$1" in https://*) echo --no-check-certificate ;; esac
}

# Size of file $1 in bytes (0 when absent), without stat (initramfs-tools may not have it).
darch_size() {
	# shellcheck disable=SC2046
	[ -f "$1" ] && set -- $(ls -ln "$1") && echo "$5" || echo 0
}

# Download $1 into $2 with wget, resuming what earlier attempts got (HTTP Range) and starting
# again when nothing arrives for darch_net_stall seconds; progress on the console.
# darch_net_retries attempts in all.
darch_fetch() {
	_try=0
	while [ "$_try" -lt "$darch_net_retries" ]; do
		_try=$((_try + 1))
		[ "$_try" -gt 1 ] && darch_log "download attempt $_try of $darch_net_retries (resuming at $(darch_size "$2") bytes)"
		# shellcheck disable=SC2046
		wget $(darch_wget_tls "$1") -c -O "$2" "$1" </dev/null 2>/dev/console &
		_pid=$!
		_last=-1; _idle=0
		while kill -0 "$_pid" 2>/dev/null; do
			sleep 1
			_got=$(darch_size "$2")
			if [ "$_got" = "$_last" ]; then
				_idle=$((_idle + 1))
				if [ "$_idle" -ge "$darch_net_stall" ]; then
					darch_log "nothing received for ${darch_net_stall}s: starting the download again"
					kill "$_pid" 2>/dev/null
					break
				fi
			else
				_idle=0; _last=$_got
			fi
		done
		wait "$_pid" && return 0
		# A full RAM disk will not get better by trying again.
		_free=$(df -k "${2%/*}" 2>/dev/null | awk 'NR==2 {print $4}')
		[ "${_free:-1}" = 0 ] && return 2
		sleep 2
	done
	return 1
}

darch_net_fetch_root() {
	_file="$1"
	[ -n "$darch_rootfs_sha256" ] || darch_log "WARNING: no darch_rootfs_sha256= on the command line: $darch_rootfs is not checked"
	_round=0
	while :; do
		_round=$((_round + 1))
		darch_log "downloading $darch_rootfs into RAM"
		_t0=$(date +%s)
		darch_fetch "$darch_rootfs" "$_file"
		case $? in
		0) ;;
		2)
			darch_fail "not enough RAM for $darch_rootfs (the RAM disk filled at $(darch_size "$_file") bytes)" "give the machine more memory, or serve a smaller image"
			return 1
			;;
		*)
			darch_fail "cannot download $darch_rootfs (${darch_net_retries} attempts)" "is darch serve running and reachable from this network? (darch_net_retries= tries more)"
			return 1
			;;
		esac
		_size=$(darch_size "$_file")
		darch_log "downloaded $_size bytes in $(($(date +%s) - _t0))s"
		[ -n "$darch_rootfs_sha256" ] || return 0
		_sum=$(sha256sum "$_file" | cut -d' ' -f1)
		[ "$_sum" = "$darch_rootfs_sha256" ] && { darch_log "sha256 checked: $_sum"; return 0; }
		rm -f "$_file"
		# One more download from scratch: a file damaged on the way; twice is the server's file.
		if [ "$_round" -ge 2 ]; then
			darch_fail "$darch_rootfs does not match darch_rootfs_sha256=$darch_rootfs_sha256 (got $_sum): refused, not mounted" "the served file is not the staged image: stage it again on the server (darch stage verify)"
			return 1
		fi
		darch_log "sha256 mismatch ($_sum): downloading again"
	done
}

# Hooks for a network boot: <dir of darch_rootfs>/<darch_hooks>.<mac>.tar (this machine's),
# else <darch_hooks>.tar (the image's); none is fine, a broken one is reported and skipped.
darch_net_hooks() {
	case "$darch_hooks" in '' | /* | *..*) return 0 ;; esac
	_base="${darch_rootfs%/*}/$darch_hooks"
	_mac=$(echo "$darch_net_mac" | tr ':' '-' | tr 'A-F' 'a-f')
	_tar="$DARCH_RUN/ram/hooks.tar"
	for _u in "$_base.$_mac.tar" "$_base.tar"; do
		[ "$_u" = "$_base..tar" ] && continue
		# shellcheck disable=SC2046
		if _err=$(wget $(darch_wget_tls "$_u") -q -O "$_tar" "$_u" </dev/null 2>&1); then
			mkdir -p "$DARCH_RUN/hooks"
			if tar -x -f "$_tar" -C "$DARCH_RUN/hooks"; then
				darch_hooks_dir="$DARCH_RUN/hooks"
				darch_log "hooks from ${_u##*/}"
			else
				darch_log "hooks ${_u##*/} are not a readable tar: booting without them"
			fi
			rm -f "$_tar"
			return 0
		fi
		rm -f "$_tar"
		case "$_err" in *404*) continue ;; esac
		darch_log "cannot download hooks $_u ($_err): booting without them"
		return 0
	done
	return 0
}

# Boot readahead (docs/BOOT-ORDER.md): an image staged in a boot order has its boot's files
# in one run at the front of its squashfs, and live/<id>/readahead lists that run and the
# squashfs's tables. Read them in long requests before the squashfs is mounted: the boot's
# scattered reads then come from the page cache (the loop device reads the file through it),
# not one seek each. Capped at a quarter of the free memory, so that what is read ahead is
# still there when the boot asks for it. Nothing to read, or a read that fails: the boot
# reads as it would have, never a failed boot.
darch_readahead() {
	_ra="$DARCH_RUN/source${darch_path%/}/readahead"
	[ "$darch_readahead" != 0 ] && [ -f "$_ra" ] || return 0
	_budget=$(sed -n 's/^MemAvailable: *\([0-9]*\) kB$/\1/p' /proc/meminfo 2>/dev/null)
	_budget=$((${_budget:-0} * 256))
	read -r _t0 _rest </proc/uptime
	_done=0
	while read -r _off _len _rest; do
		case "$_off$_len" in '' | *[!0-9]*) continue ;; esac
		[ "$_len" -gt $((_budget - _done)) ] && _len=$((_budget - _done))
		[ "$_len" -gt 0 ] || break
		# Whole MiB: busybox's and klibc's dd both take skip/count in blocks.
		_skip=$((_off / 1048576))
		dd if="$1" of=/dev/null bs=1048576 skip=$_skip count=$(((_off + _len + 1048575) / 1048576 - _skip)) 2>/dev/null || break
		_done=$((_done + _len))
	done <"$_ra"
	read -r _t1 _rest </proc/uptime
	[ "$_done" -gt 0 ] && darch_log "read ahead $(((_done + 524288) / 1048576)) MiB of $darch_rootfs for its boot (uptime $_t0 s to $_t1 s)"
	return 0
}

# Boot-order trace (docs/BOOT-ORDER.md): from here on, the kernel's filemap trace event
# records each page of the squashfs as it first enters the page cache, in a tracing instance
# of its own (its buffer, its options; nothing else that traces is disturbed). After the boot,
# `darch boot trace` (darch-boot-trace.service) turns the events into the files' order, keeps
# it beside the staged image and removes the instance. By default a boot traces while no
# trace of its image is kept (its first boot, usually), darch.trace=0 never, =1 always.
# Each "return 0": no trace, never a failed boot.
# Anything missing (tracefs, the event) means no trace, never a failed boot.
darch_start_trace() {
	case "$darch_trace" in
	0) return 0 ;;
	1) ;;
	*)
		# The trace is kept in <stage>/traces; only darch's layout (<stage>/live/<id>) says
		# where the stage directory is, so another layout is traced only when asked.
		_st="${darch_path%/}"
		case "$_st" in */live/"$darch_stageid" | /live/"$darch_stageid") _st="${_st%/live/*}" ;; *) return 0 ;; esac
		[ -e "$DARCH_RUN/source$_st/traces/$darch_stageid.json" ] && return 0
		;;
	esac
	[ -n "$darch_stageid" ] || return 0
	_tr=${DARCH_TRACEFS:-/sys/kernel/tracing}
	[ -d "$_tr/instances" ] || mount -t tracefs nodev "$_tr" 2>/dev/null || return 0
	# The squashfs's device, as the event reports it: MAJOR << 20 | MINOR.
	_mm=
	while read -r _a _b _dev _d _mp _rest; do
		[ "$_mp" = "$DARCH_RUN/lower" ] && _mm=$_dev
	done </proc/self/mountinfo
	[ -n "$_mm" ] || return 0
	_in="$_tr/instances/darch"
	[ -d "$_in" ] || mkdir "$_in" 2>/dev/null || return 0
	_ev="$_in/events/filemap/mm_filemap_add_to_page_cache"
	[ -d "$_ev" ] || { rmdir "$_in" 2>/dev/null; return 0; }
	# A full buffer keeps the first reads (the order's head) and drops the later ones.
	echo 0 >"$_in/options/overwrite" 2>/dev/null
	echo 4096 >"$_in/buffer_size_kb" 2>/dev/null
	if echo "s_dev == $(( (${_mm%%:*} << 20) | ${_mm#*:} ))" >"$_ev/filter" && echo 1 >"$_ev/enable"; then
		echo 1 >"$_in/tracing_on"
		echo "dev=$_mm" >"$DARCH_RUN/trace"
		darch_log "recording the order this boot reads the files of $darch_stageid (darch boot trace)"
	else
		rmdir "$_in" 2>/dev/null
	fi
	return 0
}

# Map the squashfs $1 through dm-verity as /dev/mapper/darch-root, its hash tree from $1.verity.
# Fails closed: an entry that names a root hash never boots its image unchecked.
darch_open_verity() {
	_vh="$1.verity"
	case "$darch_verity_blocks" in '' | *[!0-9]*) darch_fail "darch_verity_blocks= is missing or not a number" "boot a darch menu entry: darch writes all three darch_verity parameters"; return 1 ;; esac
	[ -f "$_vh" ] || { darch_fail "$darch_rootfs.verity not found in $darch_dir, and the entry asks for dm-verity" "the staged image is incomplete: stage it again"; return 1; }
	command -v dmsetup >/dev/null 2>&1 || { darch_fail "this initramfs has no dmsetup, and the entry asks for dm-verity" "stage the image again with darch's initramfs, or install dmsetup in the image and rebuild its initramfs"; return 1; }
	command -v modprobe >/dev/null 2>&1 && { modprobe -q dm_mod 2>/dev/null; modprobe -q dm_verity 2>/dev/null; }
	_dl=$(losetup -f) && losetup -r "$_dl" "$1" ||
		{ darch_fail "cannot attach $darch_rootfs to a loop device" "the loop module may be missing"; return 1; }
	# One block has no tree: the root hash is that block's own; the kernel reads no hash device.
	if [ -s "$_vh" ]; then
		_hl=$(losetup -f) && losetup -r "$_hl" "$_vh" ||
			{ darch_fail "cannot attach $darch_rootfs.verity to a loop device" "the loop module may be missing"; return 1; }
	else
		_hl=$_dl
	fi
	DM_DISABLE_UDEV=1 dmsetup create --noudevsync --readonly darch-root --table \
		"0 $((darch_verity_blocks * 8)) verity 1 $_dl $_hl 4096 4096 $darch_verity_blocks 0 sha256 $darch_verity $darch_verity_salt" ||
		{ darch_fail "cannot set up dm-verity for $darch_rootfs" "the dm-verity module may be missing from the initramfs, or darch_verity= is malformed"; return 1; }
	[ -b /dev/mapper/darch-root ] || DM_DISABLE_UDEV=1 dmsetup mknodes darch-root 2>/dev/null
	darch_log "dm-verity: $darch_rootfs is checked against root hash $darch_verity"
}

# Darch hooks: each <dir>/<order>_<name>/hook defines run(); a failing hook is reported
# and the boot goes on (an identity hook must not make a machine unbootable).
darch_run_hooks() {
	_hooks="${darch_hooks_dir:-$DARCH_RUN/source${darch_path%/}/$darch_hooks}"
	[ -d "$_hooks" ] || return 0
	for _h in "$_hooks"/*/; do
		[ -f "${_h}hook" ] || continue
		_name=$(basename "$_h")
		if DARCH_ROOT_FS="$1" DARCH_HOOK_DIR="${_h%/}" sh -c '. "$DARCH_HOOK_DIR/hook" && run'; then
			darch_log "hook ${_name#*_}: ok"
		else
			darch_log "hook ${_name#*_}: FAILED (exit $?), continuing"
		fi
	done
}

# darch: keep why a trial boot failed, for `darch boot status` after the fallback.
# POSIX sh (busybox, klibc sh), sourced by darch's initramfs, its initramfs-tools script and
# the in-image scripts (darch-health, darch-trial-failed). Self-contained: it reads
# /proc/cmdline itself.
#
#   darch_record_failure WHERE REASON
#
# writes <stage dir>/failed/<staged id> on the stage file system (the one darch_dir= names):
#   stage=<id>  where=<initramfs|health|systemd|…>  reason=<one line>  uptime=<seconds>
# Only on a trial boot (darch.trial=1). Why there and not on the ESP: the ESP holds the boot
# loader and its state, and a FAT write cut short by a reset can damage the table they share;
# the stage file system is journaled, already known, and a record lost there costs nothing
# but the reason. One small file, written under a temporary name, synced, renamed, synced;
# the file system goes back to read-only. Every failure here is ignored: recording must never
# change what the boot does next.

darch_record_failure() {
	_rec_where=$1
	_rec_reason=$(printf '%s' "$2" | tr '\n\r\t' '   ' 2>/dev/null) || _rec_reason=$2
	_rec_trial=; _rec_id=; _rec_dir=
	for _rec_a in $(cat /proc/cmdline 2>/dev/null); do
		case "$_rec_a" in
		darch.trial=1) _rec_trial=1 ;;
		darch_stageid=*) _rec_id="${_rec_a#darch_stageid=}" ;;
		darch_dir=*) _rec_dir="${_rec_a#darch_dir=}" ;;
		esac
	done
	[ "$_rec_trial" = 1 ] || return 0
	case "$_rec_id" in '' | *[!a-z0-9]*) return 0 ;; esac
	_rec_dev="${_rec_dir%%:*}"
	_rec_path="${_rec_dir#*:}"
	# Only darch's layout (<stage>/live/<id>) says where the stage directory is.
	case "$_rec_path" in /*/live/"$_rec_id" | /live/"$_rec_id") ;; *) return 0 ;; esac
	_rec_stage="${_rec_path%/live/*}"
	# The initramfs keeps the stage file system mounted read-only here (also after
	# switch_root: /run moves along). With darch_ram=1 it was unmounted, and an image that
	# mounts its own /run hides it (/proc/mounts still lists it): then mount it again.
	_rec_mnt=/run/darch/source
	_rec_own=
	if [ ! -d "$_rec_mnt$_rec_path" ]; then
		case "$_rec_dev" in
		UUID=*) _rec_node="/dev/disk/by-uuid/${_rec_dev#UUID=}" ;;
		LABEL=*) _rec_node="/dev/disk/by-label/${_rec_dev#LABEL=}" ;;
		*) _rec_node=$_rec_dev ;;
		esac
		[ -e "$_rec_node" ] || _rec_node=$(findfs "$_rec_dev" 2>/dev/null) || _rec_node=$(blkid -l -o device -t "$_rec_dev" 2>/dev/null) || return 0
		[ -n "$_rec_node" ] || return 0
		_rec_mnt=/run/darch/record
		mkdir -p "$_rec_mnt" 2>/dev/null && mount -o ro "$_rec_node" "$_rec_mnt" 2>/dev/null || return 0
		_rec_own=1
	fi
	if mount -o remount,rw "$_rec_mnt" 2>/dev/null; then
		_rec_out="$_rec_mnt${_rec_stage}/failed"
		read -r _rec_up _rec_rest </proc/uptime 2>/dev/null || _rec_up=
		if mkdir -p "$_rec_out" 2>/dev/null &&
			printf 'stage=%s\nwhere=%s\nreason=%.300s\nuptime=%s\n' "$_rec_id" "$_rec_where" "$_rec_reason" "${_rec_up%%.*}" >"$_rec_out/.$_rec_id.new" 2>/dev/null; then
			sync
			mv -f "$_rec_out/.$_rec_id.new" "$_rec_out/$_rec_id" 2>/dev/null
			sync
			echo "darch: recorded why this trial failed ($_rec_where) in ${_rec_stage}/failed/$_rec_id" >/dev/console 2>/dev/null
		fi
		mount -o remount,ro "$_rec_mnt" 2>/dev/null
	fi
	[ -n "$_rec_own" ] && umount "$_rec_mnt" 2>/dev/null
	return 0
}

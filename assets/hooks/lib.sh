# Helpers darch provides to hooks during install (sourced before the hook).

# darch_glob_config_first_match FILE VALUE: print the value of the first "glob=value" line
# of FILE whose glob matches VALUE (split at the last '='). Exit 1 when no line matches,
# 2 when FILE is missing. Blank lines and lines starting with # are ignored.
darch_glob_config_first_match() {
	[ -f "$1" ] || return 2
	while IFS= read -r line || [ -n "$line" ]; do
		case "$line" in '' | '#'*) continue ;; esac
		glob="${line%=*}"
		value="${line##*=}"
		# shellcheck disable=SC2254
		case "$2" in $glob) printf '%s\n' "$value"; return 0 ;; esac
	done <"$1"
	return 1
}

# The host's files, under --root in tests.
darch_host() { printf '%s%s\n' "${DARCH_HOST_ROOT%/}" "$1"; }

#!/usr/bin/env bash
# The two commands of the README:
#   ./run.sh demo   set up, then run darch's main job on its built-in defaults
#   ./run.sh test   set up, then run the whole test suite (what .ci/run runs)
#   ./run.sh package [OUTDIR]   set up, then build the Debian package (prints its path)
set -euo pipefail
cd "$(dirname "$0")"
case "${1:-}" in
  demo) bash scripts/setup.sh; shift; exec ./dist/darch demo "$@" ;;
  test) bash scripts/setup.sh; shift; exec bash scripts/test.sh "$@" ;;
  package) bash scripts/setup.sh; shift; exec bash scripts/package.sh "$@" ;;
  *) echo "usage: ./run.sh demo | ./run.sh test [test files…] | ./run.sh package [OUTDIR]" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# Runs the README's "First steps" word for word: every line of the sh blocks between
# <!-- newcomer:begin --> and <!-- newcomer:end -->, in order, from the checkout, stopping
# at the first that fails. test/e2e/newcomer.test.ts runs it (and so does CI).
set -euo pipefail
cd "$(dirname "$0")/.."
steps=$(awk '
  /<!-- newcomer:begin -->/ { on = 1; next }
  /<!-- newcomer:end -->/   { on = 0 }
  on && /^```sh$/           { block = 1; next }
  on && /^```$/             { block = 0; next }
  on && block               { print }
' README.md)
[ -n "$steps" ] || { echo "newcomer: no steps found in README.md" >&2; exit 1; }
mapfile -t lines <<<"$steps"
for line in "${lines[@]}"; do
  [ -n "$line" ] || continue
  echo "newcomer\$ $line" >&2
  # No terminal to type into: `darch vm run` puts the serial console on stdin, and it must
  # not read the remaining steps as keystrokes.
  bash -euo pipefail -c "$line" </dev/null
done
echo "newcomer: all steps passed" >&2

#!/usr/bin/env bash
# Runs the whole suite: type check, build, the layering and contract checks, then every
# test file with node:test.
set -euo pipefail
cd "$(dirname "$0")/.."
# The pinned Node 24 (package-lock), not the machine's: tests, tsx and tools all run on it.
export PATH="$PWD/node_modules/.bin:$PATH"
npx tsc --noEmit
# Formatting and lint (biome.json): `npm run format` fixes what it can.
npx --no-install biome ci --reporter=summary .
npm run -s build
# The layering of docs/ARCHITECTURE.md: no import cycles, no folder importing one above it.
npx --no-install depcruise src --config .dependency-cruiser.cjs --output-type err
# JSON.parse and the contracts' file names only in their owner modules.
node scripts/check-contracts.mjs
mkdir -p test-artifacts
if (($#)); then files=("$@"); else
  # The longest files first (minutes each in CI: qemu under TCG, a debootstrap), then the
  # rest in name order: with two running side by side, the two lanes then end close together.
  longest=(e2e/update-debian e2e/trial-linux e2e/powercut e2e/trial-systemd e2e/boot-debian-systemd e2e/boot-dracut e2e/trial-sdboot-disk e2e/netboot integration/trust-skopeo)
  files=()
  for f in "${longest[@]}"; do [[ -f test/$f.test.ts ]] && files+=("test/$f.test.ts"); done
  mapfile -t -O "${#files[@]}" files < <(find test -name '*.test.ts' | sort | grep -vxF -f <(printf '%s\n' "${files[@]}"))
fi
# The shipped executable, not the sources.
export DARCH_BIN="$PWD/dist/darch"
# Not `node --test FILE…`: it runs files in name order whatever the order given.
exec node --import tsx scripts/run-tests.mjs "${files[@]}"

#!/usr/bin/env bash
# Runs the whole suite: type check, build, the layering and contract checks, then every
# test file with node:test.
# Node 20 neither finds *.ts test files nor expands globs itself, so we list them here.
set -euo pipefail
cd "$(dirname "$0")/.."
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
  mapfile -t files < <(find test -name '*.test.ts' | sort)
fi
export DARCH_BIN="$PWD/dist/darch.mjs"
exec node --import tsx --test --test-concurrency="${TEST_CONCURRENCY:-2}" --test-reporter=spec "${files[@]}"

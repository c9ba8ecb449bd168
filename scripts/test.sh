#!/usr/bin/env bash
# Runs the whole suite: type check, then every test file with node:test.
# Node 20 neither finds *.ts test files nor expands globs itself, so we list them here.
set -euo pipefail
cd "$(dirname "$0")/.."
npx tsc --noEmit
npm run -s build
mkdir -p test-artifacts
if (($#)); then files=("$@"); else
  mapfile -t files < <(find test -name '*.test.ts' | sort)
fi
export DARCH_BIN="$PWD/dist/darch.mjs"
exec node --import tsx --test --test-concurrency="${TEST_CONCURRENCY:-2}" --test-reporter=spec "${files[@]}"

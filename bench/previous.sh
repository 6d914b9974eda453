#!/usr/bin/env bash
# The module the last full `make bench` measured, built from that run's own commit (the last one
# that changed bench/results.json) with that commit's own `make wasm`, into
# target/bench/previous/<commit>/. `make bench` runs it beside this build, row next to row in the
# same rounds, for the no-regression target: a ratio from one interleaved run, where comparing
# with the last run's figures would count how much the machine drifted between the two runs.
# Prints the module's path, or nothing when there is no such commit (no history, no results yet).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
rev=$(git log -1 --format=%H -- bench/results.json 2>/dev/null || true)
[ -n "$rev" ] || exit 0
dir=target/bench/previous/$rev
module=$dir/x402_access_pass.wasm
if [ ! -f "$module" ]; then
  rm -rf target/bench/previous
  mkdir -p "$dir/src"
  git archive --format=tar "$rev" | tar -x -C "$dir/src"
  # Binaryen as that commit pinned it: this checkout's install when the lockfiles agree.
  if [ -f "$dir/src/tools/binaryen/package-lock.json" ] && [ -d tools/binaryen/node_modules ] &&
     cmp -s tools/binaryen/package-lock.json "$dir/src/tools/binaryen/package-lock.json"; then
    ln -s "$PWD/tools/binaryen/node_modules" "$dir/src/tools/binaryen/node_modules"
  fi
  echo "bench/previous.sh: building the module of $rev (the last full run's) in $dir" >&2
  make -C "$dir/src" wasm >&2
  cp "$dir/src/target/wasm32-wasip1/release/x402_access_pass.wasm" "$module"
  rm -rf "$dir/src"
fi
echo "$module"

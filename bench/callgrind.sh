#!/usr/bin/env bash
# Instructions per hot-path request (a valid, cached pass), counted by callgrind:
# repeatable for the same binary, whatever else the machine does.
#   bench/callgrind.sh            print the figure
#   bench/callgrind.sh --check    also fail when it exceeds bench/callgrind-limit
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ITERATIONS=${ITERATIONS:-1000}
OUT=target/callgrind
mkdir -p "$OUT"
if ! command -v valgrind >/dev/null 2>&1; then
  echo "valgrind is missing: installing Debian's package"
  apt-get update -qq && apt-get install -y -qq valgrind >/dev/null
fi
# Symbols are needed to find the measured function (the release profile strips them).
CARGO_PROFILE_RELEASE_STRIP=false cargo build -q --release --example hot_path
valgrind --tool=callgrind --callgrind-out-file="$OUT/hot_path.out" \
  --toggle-collect='*request_with_valid_pass*' \
  target/release/examples/hot_path "$ITERATIONS" > "$OUT/hot_path.log" 2>&1 \
  || { cat "$OUT/hot_path.log"; exit 1; }
total=$(sed -n 's/^summary: //p' "$OUT/hot_path.out")
# +1: the first (uncached) request is measured too; it is amortised over the rest.
per_request=$(( total / (ITERATIONS + 1) ))
echo "hot path (valid cached pass, native): $per_request instructions per request ($total over $((ITERATIONS + 1)) requests)"
if [ "${1:-}" = "--check" ]; then
  limit=$(grep -v '^#' bench/callgrind-limit | tr -d '[:space:]')
  if [ "$per_request" -gt "$limit" ]; then
    echo "FAILED: $per_request instructions per request is above the limit of $limit (bench/callgrind-limit)"
    exit 1
  fi
  echo "ok: under the limit of $limit instructions per request"
fi

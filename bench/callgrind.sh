#!/usr/bin/env bash
# Instructions per hot-path request, counted by callgrind: repeatable for the same binary,
# whatever else the machine does. Two paths (examples/hot_path.rs, examples/hot_path_siwx.rs):
#   valid pass  a valid, cached pass                              limit: bench/callgrind-limit
#   sign-in     a SIGN-IN-WITH-X header parsed, checked, its Ed25519 signature verified, the
#               payer's entitlement looked up in a local store    limit: bench/callgrind-limit-siwx
#   bench/callgrind.sh            print the figures
#   bench/callgrind.sh --check    also fail when one exceeds its limit
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ITERATIONS=${ITERATIONS:-1000}
SIWX_ITERATIONS=${SIWX_ITERATIONS:-50}
OUT=target/callgrind
mkdir -p "$OUT"
if ! command -v valgrind >/dev/null 2>&1; then
  echo "valgrind is missing: installing Debian's package"
  apt-get update -qq && apt-get install -y -qq valgrind >/dev/null
fi
# Symbols are needed to find the measured function (the release profile strips them).
CARGO_PROFILE_RELEASE_STRIP=false cargo build -q --release --example hot_path --example hot_path_siwx

failed=0
# measure <example> <function> <iterations> <limit file> <label>
measure() {
  local name=$1 function=$2 iterations=$3 limit_file=$4 label=$5
  valgrind --tool=callgrind --callgrind-out-file="$OUT/$name.out" \
    --toggle-collect="*$function*" \
    "target/release/examples/$name" "$iterations" > "$OUT/$name.log" 2>&1 \
    || { cat "$OUT/$name.log"; exit 1; }
  local total per_request limit
  total=$(sed -n 's/^summary: //p' "$OUT/$name.out")
  # +1: the first request is measured too (for a pass, the uncached one, amortised over the rest).
  per_request=$(( total / (iterations + 1) ))
  echo "$label: $per_request instructions per request ($total over $((iterations + 1)) requests)"
  if [ "$CHECK" = 1 ]; then
    limit=$(grep -v '^#' "$limit_file" | tr -d '[:space:]')
    if [ "$per_request" -gt "$limit" ]; then
      echo "FAILED: $per_request instructions per request is above the limit of $limit ($limit_file)"
      failed=1
    else
      echo "ok: under the limit of $limit instructions per request"
    fi
  fi
}
CHECK=0
[ "${1:-}" = "--check" ] && CHECK=1
measure hot_path request_with_valid_pass "$ITERATIONS" bench/callgrind-limit \
  "hot path (valid cached pass, native)"
measure hot_path_siwx request_with_sign_in "$SIWX_ITERATIONS" bench/callgrind-limit-siwx \
  "sign-in path (SIGN-IN-WITH-X verified, entitlement looked up, native)"
exit $failed

#!/usr/bin/env bash
# Binaryen's wasm-opt over the module rustc links, in place (`make wasm`, mk/bench.mk):
#   tools/wasm-opt.sh MODULE.wasm [wasm-opt options, e.g. -g to keep the name section]
# -Oz: wasm-opt drops what LLVM's wasm backend leaves behind (duplicate functions, dead code,
# locals, redundant loads and branches) and inlines only where that makes the module smaller.
# Measured on 2026-12-07 (rustc's output 753,481 bytes): -O3 653,723, -Oz 638,801. The price,
# counted in V8 (TurboFan, as Envoy runs the module; instructions per request of the native
# examples built for wasm32 under callgrind): the valid-pass core 7,722 -> 7,834 instructions
# (~0.04 µs, a tenth of one host call), a sign-in +0.7 %. Only the features rustc's wasm32-wasip1 target
# itself uses are enabled (`rustc --print cfg --target wasm32-wasip1`), so the module needs
# nothing more of the host's VM than before.
# cargo hard-links its output here again at every build, so the result is cached by the input's
# SHA-256 next to it: an unchanged module is not optimised twice, and never optimised on top of
# an optimised one.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
module=$1
shift
WASM_OPT=tools/binaryen/node_modules/.bin/wasm-opt
if [ ! -x "$WASM_OPT" ]; then
  command -v npm >/dev/null 2>&1 || { echo "tools/wasm-opt.sh: npm is needed to install wasm-opt (Binaryen, tools/binaryen)" >&2; exit 1; }
  (cd tools/binaryen && npm ci --no-audit --no-fund --loglevel=error --ignore-scripts)
fi
cache="$module.wasm-opt"
mkdir -p "$cache"
for done in "$cache"/*.wasm; do
  if [ -f "$done" ] && cmp -s "$module" "$done"; then
    echo "wasm-opt -Oz: $module is $(wc -c < "$module") bytes (already optimised)"
    exit 0
  fi
done
sum=$(sha256sum "$module" | cut -c1-64)
if [ ! -f "$cache/$sum.wasm" ]; then
  rm -f "$cache"/*.wasm
  "$WASM_OPT" -Oz "$@" \
    --enable-bulk-memory --enable-multivalue --enable-mutable-globals --enable-nontrapping-float-to-int \
    --enable-reference-types --enable-sign-ext \
    "$module" -o "$cache/$sum.tmp"
  mv "$cache/$sum.tmp" "$cache/$sum.wasm"
fi
if ! cmp -s "$module" "$cache/$sum.wasm"; then
  # A new file, not a write through cargo's hard link (its deps/ copy stays rustc's output).
  cp "$cache/$sum.wasm" "$module.tmp"
  mv "$module.tmp" "$module"
fi
echo "wasm-opt -Oz: $module is $(wc -c < "$module") bytes"

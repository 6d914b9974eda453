# Benchmarks: line rate against the alternatives, and the core's micro-benchmarks (bench/run.py).
# Not part of `make test`: timings need a quiet machine.
#
#   make bench         the full run (~45 minutes once built), written to bench/results.md and .json:
#                      waits up to BENCH_QUIET_WAIT seconds for a quiet machine, then Envoy without
#                      filter / with a minimal wasm filter / with jwt_authn / with this filter, and the
#                      Express reference, each driven by wrk (10 s x 3 interleaved rounds); 1,000,000
#                      distinct passes for memory; cargo bench; the hot path under callgrind; the wasm's size.
#                      Then the no-regression target: the build the last full run measured
#                      (bench/previous.sh: the last commit that changed bench/results.json, built once into
#                      target/bench/previous/) and this one, row by row, 10 pairs of 5 s runs back to back
#                      (~20 minutes more), and each compared row's Envoy instructions per request with
#                      both builds under callgrind (bench/envoy_callgrind.py, ~3 minutes), which the
#                      machine's noise does not move; BENCH_PREVIOUS=no leaves both out.
#   make bench-quick   the same in short (under 2 minutes once built), to target/bench/quick/results.*:
#                      2 s x 2 rounds, 60,000 passes. bench/results.* are left alone.
#   make bench-micro   only the native micro-benchmarks (cargo bench --bench micro)
#   make envoy-instructions  Envoy's own instructions per request, row by row, under callgrind: the
#                      repeatable measure of a configuration or a build (bench/envoy_instructions.py;
#                      ~10 s a row; EI_ARGS='--rows floor,fast_eddsa --compare before=/tmp/b.wasm')
#   make etcd-calls    one etcd call's time at the client against etcd's own gRPC handling of it:
#                      what the etcd ledger pays its JSON gateway (bench/etcd_calls.py, docs/fleet.md; ~1 min)
#   make bench-build   everything `make bench` runs, built before any timing
#   make bench-build-quick  the same for `make bench-quick` (no unstripped wasm, no callgrind example)
#   make bench-node    the Express row's Node packages (npm ci in tests/interop), when npm is there
#   make wrk           Debian's wrk, installed when absent (needs root or sudo)
#
# BENCH_ARGS='--rows floor,ours_hs256 --duration 5' make bench   passes options to bench/run.py (--help).
# Everything else it writes goes to target/bench/.

BENCH_QUIET_WAIT   ?= 300
BENCH_ARGS         ?=
BENCH_PREVIOUS     ?= yes
BENCH_FLOOR_DIR    := bench/floor-filter
BENCH_TARGET       := target/bench
# The test suite's Node packages (the pinned @dexterai/x402 2.0.0 and express), for the Express row.
BENCH_NODE_STAMP   := tests/interop/node_modules/.x402-ci

.PHONY: bench bench-quick bench-micro bench-build bench-build-quick bench-node wrk etcd-calls envoy-instructions

# Debian's wrk, installed when absent (root, or passwordless sudo).
wrk:
	@if command -v wrk >/dev/null 2>&1; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then SUDO=; \
	elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; \
	else echo "wrk is missing and installing it needs root: apt-get install -y wrk" >&2; exit 1; fi; \
	echo "installing Debian's wrk"; \
	export DEBIAN_FRONTEND=noninteractive; \
	$$SUDO apt-get install -y -q wrk >/dev/null 2>&1 || \
		{ $$SUDO apt-get update -q >/dev/null && $$SUDO apt-get install -y -q wrk >/dev/null; }; \
	command -v wrk >/dev/null

# npm ci in tests/interop (its lockfile) when node is there; without it the Express row is skipped.
bench-node:
	@if command -v npm >/dev/null 2>&1; then $(MAKE) $(BENCH_NODE_STAMP); \
	else echo "npm is missing: the Express row will be skipped"; fi

# The floor filter (its own workspace and lockfile), the micro-benchmarks, all built before any timing.
bench-build-quick: wasm-target
	cargo build --locked --release --target wasm32-wasip1 --manifest-path $(BENCH_FLOOR_DIR)/Cargo.toml \
		--target-dir $(BENCH_TARGET)/floor-filter
	cargo bench --bench micro --no-run

# ... plus an unstripped build of the filter (for the size breakdown) and the callgrind example.
bench-build: bench-build-quick
	CARGO_PROFILE_RELEASE_STRIP=false cargo build -p x402-access-pass --lib --release --target wasm32-wasip1 \
		--target-dir $(BENCH_TARGET)/wasm-symbols
	CARGO_PROFILE_RELEASE_STRIP=false cargo build -q --release --example hot_path

bench: wasm venv wrk bench-node bench-build facilitator
	@previous=; if [ "$(BENCH_PREVIOUS)" = yes ]; then previous=$$(bench/previous.sh); fi; \
	set -x; $(VENV)/bin/python bench/run.py --quiet-wait $(BENCH_QUIET_WAIT) $${previous:+--previous $$previous} $(BENCH_ARGS)

bench-quick: wasm venv wrk bench-node bench-build-quick facilitator
	$(VENV)/bin/python bench/run.py --quick $(BENCH_ARGS)

bench-micro:
	cargo bench --bench micro

EI_ARGS ?=
envoy-instructions: wasm venv bench-build-quick
	@command -v valgrind >/dev/null 2>&1 || { echo "installing Debian's valgrind"; apt-get install -y -qq valgrind >/dev/null; }
	$(VENV)/bin/python bench/envoy_instructions.py $(EI_ARGS)

etcd-calls: venv etcd
	$(VENV)/bin/python bench/etcd_calls.py

# Regression checks of issue 5's measurements that need no quiet machine:
#   make hot-path-check   instructions of one hot-path request under callgrind: a valid pass
#                         (bench/callgrind-limit) and a SIGN-IN-WITH-X sign-in (bench/callgrind-limit-siwx) [make test]
#   make envoy-instructions-smoke  bench/envoy_instructions.py end to end on two rows, few requests:
#                         the tool `make bench` and `make envoy-instructions` rely on still runs [make test]
#   make wasm-size-check  the release module against WASM_SIZE_LIMIT bytes [make test]
#                         (every Envoy worker compiles and keeps it). 586,914 bytes on 2026-11-24 under
#                         issue 5's 600 KB; round 2 budgets 640 KB for what it adds to the module (the
#                         checkout step machine, the published-key guard, Sign-In-With-X: issue 12).
#                         682,792 bytes out of rustc on 2026-12-07, 598,761 after wasm-opt -O3 (make wasm).
#                         Base (issue 15, docs/behaviour.md §21) budgets 700 KB: after wasm-opt (make wasm),
#                         612,189 bytes before; EVM exact payments and the networks configuration +49,304
#                         (secp256k1 recovery on k256 and keccak are ~28 KB of it); EIP-191 SIWX +8,459;
#                         670,928 in all on 2026-12-07. The etcd ledger (issue 13) wired in: +64 KB at
#                         opt-level 3 (734,289 with Base), so the filter's own crate is built at opt-level
#                         "s" (Cargo.toml): 677,749 bytes with both, for ~390 more native instructions on
#                         the valid-pass path (1,966 -> 2,359, make hot-path-check at each level).
#                         wasm-opt -Oz instead of -O3 (tools/wasm-opt.sh): 647,983 bytes on 2026-12-07 with
#                         the etcd settlement transaction; 655,338 with verification's table of basepoint
#                         multiples (Cargo.toml, src/ed25519.rs); 618,443 with the filter's crate at
#                         opt-level "z" (issue 12's 640 KB): the valid-pass core 2,329 -> 2,634 native
#                         instructions (+889 in V8, under 1 % of a request), a sign-in +3 % in V8.
WASM_SIZE_LIMIT ?= 700000

.PHONY: hot-path-check wasm-size-check envoy-instructions-smoke
hot-path-check:
	bench/callgrind.sh --check

# Envoy under callgrind with no filter and with this one (a valid pass): each count must come
# back, and the filter's must be the larger (the figures themselves are `make envoy-instructions`').
envoy-instructions-smoke: wasm venv
	@command -v valgrind >/dev/null 2>&1 || { echo "installing Debian's valgrind"; apt-get install -y -qq valgrind >/dev/null; }
	@mkdir -p $(OUT)
	$(VENV)/bin/python bench/envoy_instructions.py --rows no_filter,ours_hs256 --warmup 20 --requests 30 \
		| tee $(OUT)/envoy-instructions-smoke.txt
	@awk '$$1 == "no_filter" { gsub(",", "", $$2); none = $$2 + 0 } $$1 == "ours_hs256" { gsub(",", "", $$2); ours = $$2 + 0 } \
		END { if (!(none > 0 && ours > none)) { print "envoy-instructions-smoke: expected 0 < no_filter < ours_hs256"; exit 1 } }' \
		$(OUT)/envoy-instructions-smoke.txt

wasm-size-check: wasm
	@size=$$(wc -c < $(WASM)); \
	if [ $$size -gt $(WASM_SIZE_LIMIT) ]; then \
		echo "wasm-size-check: $(WASM) is $$size bytes, over the $(WASM_SIZE_LIMIT)-byte limit (python3 bench/wasm_size.py shows where the bytes go, tools/wasm-opt.sh shrinks it)" >&2; exit 1; \
	else echo "wasm-size-check: $$size bytes (limit $(WASM_SIZE_LIMIT))"; fi

EXTRA_TESTS += hot-path-check wasm-size-check envoy-instructions-smoke

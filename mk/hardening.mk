# Hardening: fuzzing (cargo-fuzz, native), the soak, and their smoke versions in `make test`.
# The adversarial and fault suites are ordinary integration tests (tests/integration/test_adversarial.py,
# test_faults.py) and run with `make integration`. See docs/security.md.
#
#   make fuzz          each fuzz target for FUZZ_SECONDS (default 60)
#   make fuzz-smoke    each fuzz target for FUZZ_SMOKE_SECONDS (default 10)       [make test]
#   make fuzz-test     the fuzz crate's unit tests (replays seeds and regressions)   [make test]
#   make soak          mixed load against Envoy for SOAK_SECONDS (default 600)
#                      (2 workers), after filling the filter's pass caches (report: tests/integration/out/soak/);
#                      SOAK_MODE=fleet: the fleet soak instead (three replicas, etcd: make fleet-soak, mk/fleet.mk)
#   make soak-smoke    the same for SOAK_SMOKE_SECONDS (default 30)                [make test]
#   make cargo-fuzz    cargo-fuzz, installed once (pinned) into .tools/
#   make fuzz-seeds    the derived seeds, into fuzz/corpus/<target>/
#   make fuzz-build    every fuzz target, built (AddressSanitizer, debug assertions)
#   make hardening-clean  remove .tools, and fuzz/'s target, corpus, artifacts and logs
#
# cargo-fuzz needs nightly rustc flags (-Zsanitizer, sancov passes): it runs on the stable
# toolchain with RUSTC_BOOTSTRAP=1. It is installed once, pinned, into .tools/ (self-ignored).
# FUZZ_TARGETS='token query' make fuzz   runs some targets only.

CARGO_FUZZ_VERSION := 0.13.2
TOOLS              := .tools
CARGO_FUZZ         := $(TOOLS)/bin/cargo-fuzz
FUZZ_DIR           := fuzz
FUZZ_TARGETS       ?= config payment solana_tx token query siwx evm_payment siwe x_payment request
FUZZ_SECONDS       ?= 60
FUZZ_SMOKE_SECONDS ?= 10
# Release optimizations, debug assertions and overflow checks, AddressSanitizer (cargo-fuzz's defaults).
FUZZ_BUILD_FLAGS   := --fuzz-dir $(FUZZ_DIR) -O -a
FUZZ_ENV           := RUSTC_BOOTSTRAP=1 PATH="$(abspath $(TOOLS))/bin:$$PATH"

SOAK_SECONDS       ?= 600
SOAK_SMOKE_SECONDS ?= 30
SOAK_MODE          ?= single

.PHONY: cargo-fuzz fuzz-seeds fuzz-build fuzz fuzz-smoke fuzz-test soak soak-smoke hardening-clean

$(CARGO_FUZZ):
	cargo install cargo-fuzz --version $(CARGO_FUZZ_VERSION) --locked --root $(TOOLS) --quiet
	@echo '*' > $(TOOLS)/.gitignore

cargo-fuzz: $(CARGO_FUZZ)

# Derived seeds (golden vectors, the integration config, signed tokens) into fuzz/corpus/<target>/.
fuzz-seeds:
	$(PYTHON) $(FUZZ_DIR)/gen_seeds.py

fuzz-build: $(CARGO_FUZZ)
	$(FUZZ_ENV) cargo fuzz build $(FUZZ_BUILD_FLAGS)

# Every target in turn, one summary line each (fuzz/run.sh; logs in fuzz/logs/).
fuzz: fuzz-build fuzz-seeds
	$(FUZZ_ENV) $(FUZZ_DIR)/run.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)

# The smoke run also replays seeds and regressions under `cargo test`.
fuzz-smoke: fuzz-test fuzz-build fuzz-seeds
	$(FUZZ_ENV) $(FUZZ_DIR)/run.sh $(FUZZ_SMOKE_SECONDS) $(FUZZ_TARGETS)

fuzz-test:
	cargo test --manifest-path $(FUZZ_DIR)/Cargo.toml --lib --quiet

soak: build venv
ifeq ($(SOAK_MODE),fleet)
	$(MAKE) fleet-soak SOAK_SECONDS=$(SOAK_SECONDS)
else
	SOAK_SECONDS=$(SOAK_SECONDS) $(VENV)/bin/python -m pytest tests/integration/test_soak.py -p no:cacheprovider -v -rfEs -s \
		--timeout $$(( $(SOAK_SECONDS) + 300 ))
endif

soak-smoke: build venv
	SOAK_SECONDS=$(SOAK_SMOKE_SECONDS) $(VENV)/bin/python -m pytest tests/integration/test_soak.py -p no:cacheprovider -v -rfEs -s \
		--timeout $$(( $(SOAK_SMOKE_SECONDS) + 300 ))

hardening-clean:
	rm -rf $(TOOLS) $(FUZZ_DIR)/target $(FUZZ_DIR)/corpus $(FUZZ_DIR)/artifacts $(FUZZ_DIR)/logs

EXTRA_TESTS += fuzz-smoke soak-smoke

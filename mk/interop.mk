# Real buyers: the published @dexterai/x402 client, React hook and Express middleware against
# Envoy + the filter, and the dashboard example in a real browser (tests/interop/README.md).
#
#   make interop            npm ci (lockfiles), the dashboard build, Chromium if absent, then the suite
#   make interop-serve      the same topology, left running for the dashboard demo (Ctrl-C stops it)
#   make dashboard          examples/dashboard/dist (React + Vite)
#   make chromium           Debian's chromium, when `chromium` is not on the PATH (needs root or sudo)
#   make node-deps          npm ci in tests/interop and examples/dashboard (again only when a lockfile changed)
#   make interop-clean      remove their node_modules, tests/interop/out and the dashboard build
#
# INTEROP_FILES='client.test.mjs' make interop   runs some of the test files.

INTEROP_DIR    := tests/interop
DASHBOARD_DIR  := examples/dashboard
INTEROP_FILES  ?=
NPM_CI         := npm ci --no-audit --no-fund --loglevel=error
# Chromium's packages on Debian; the fonts keep screenshots readable on a bare machine.
CHROMIUM_PKGS  := chromium fonts-dejavu-core

.PHONY: interop interop-serve node-deps dashboard chromium interop-clean

# npm ci again only when a lockfile changed (a fresh clone always runs it).
$(INTEROP_DIR)/node_modules/.x402-ci: $(INTEROP_DIR)/package.json $(INTEROP_DIR)/package-lock.json
	cd $(INTEROP_DIR) && $(NPM_CI)
	touch $@

$(DASHBOARD_DIR)/node_modules/.x402-ci: $(DASHBOARD_DIR)/package.json $(DASHBOARD_DIR)/package-lock.json
	cd $(DASHBOARD_DIR) && $(NPM_CI)
	touch $@

node-deps: $(INTEROP_DIR)/node_modules/.x402-ci $(DASHBOARD_DIR)/node_modules/.x402-ci

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

interop: build venv node-deps dashboard chromium
	$(VENV)/bin/python $(INTEROP_DIR)/run.py $(INTEROP_FILES)

interop-serve: build venv node-deps dashboard
	$(VENV)/bin/python $(INTEROP_DIR)/run.py --serve

interop-clean:
	rm -rf $(INTEROP_DIR)/node_modules $(INTEROP_DIR)/out $(DASHBOARD_DIR)/node_modules $(DASHBOARD_DIR)/dist

EXTRA_TESTS += interop

# Observability: the Prometheus scrape config and Grafana dashboard a seller uses
# (envoy/observability/, docs/observability.md), checked against a real Prometheus.
#
#   make prometheus          Debian's prometheus (prometheus + promtool), when `prometheus` is not
#                            on the PATH (needs root or passwordless sudo)
#   make observability-deps  the above, and tests/observability's npm packages (@grafana/schema and
#                            typescript, exactly as its package-lock.json pins them)
#   make observability-test  tests/integration/test_prometheus.py alone: a real Prometheus scrapes a
#                            real Envoy's /stats/prometheus with the shipped prometheus.yml during
#                            purchases and must read back the values they moved; promtool checks the
#                            shipped file; every PromQL expression of the shipped dashboard must
#                            return data for metrics Prometheus scraped; the dashboard type-checks
#                            against @grafana/schema (tests/observability/check_dashboard.mjs)
#
# test_prometheus.py is part of the integration suite, so `make integration` (and so `make test`)
# runs it and depends on observability-deps here: without prometheus or the npm packages those
# tests fail with the command to run, they are not skipped. It is not in EXTRA_TESTS, which would
# run it a second time. Debian has no Grafana package: the dashboard is type-checked, not rendered.

OBSERVABILITY_DIR        := tests/observability
OBSERVABILITY_NODE_STAMP := $(OBSERVABILITY_DIR)/node_modules/.x402-ci
# --no-install-recommends: not prometheus-node-exporter, which the tests do not use.
PROMETHEUS_PKGS          := prometheus

.PHONY: prometheus observability-deps observability-test

prometheus:
	@if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then SUDO=; \
	elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; \
	else echo "prometheus is missing and installing it needs root: apt-get install -y --no-install-recommends $(PROMETHEUS_PKGS)" >&2; exit 1; fi; \
	echo "installing Debian's prometheus ($(PROMETHEUS_PKGS))"; \
	export DEBIAN_FRONTEND=noninteractive; \
	$$SUDO apt-get update -q >/dev/null && \
	$$SUDO apt-get install -y -q --no-install-recommends $(PROMETHEUS_PKGS) >/dev/null && \
	dpkg-query -W prometheus

$(OBSERVABILITY_NODE_STAMP): $(OBSERVABILITY_DIR)/package.json $(OBSERVABILITY_DIR)/package-lock.json
	cd $(OBSERVABILITY_DIR) && npm ci --no-audit --no-fund --loglevel=error --ignore-scripts
	touch $@

observability-deps: prometheus $(OBSERVABILITY_NODE_STAMP)

# The integration suite holds test_prometheus.py; deploy-test runs that suite again in external
# mode, where its static checks (promtool, the dashboard's schema) still run.
integration deploy-test: observability-deps

observability-test: build venv observability-deps
	$(VENV)/bin/python -m pytest tests/integration/test_prometheus.py -p no:cacheprovider -v -rfEs --timeout 120 \
		--durations 5

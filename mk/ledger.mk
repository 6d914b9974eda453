# The shared ledger over etcd (docs/fleet.md): the core's etcd operations
# (src/etcd) against a real 3-member etcd cluster on loopback, run by the test executor
# (examples/etcd_ledger.rs) over HTTP with exactly the bodies the filter will send.
#
#   make etcd          Debian's etcd-server, when etcd is not on the PATH (root or passwordless sudo)
#   make ledger-test   the core's etcd operations against a real 3-member cluster (~20 s) [make test]
#                      and the filter in one Envoy on that cluster (tests/ledger/test_filter_on_etcd.py)
#                      tests/ledger (pytest): concurrent claims, states and leases, expiry, entitlements
#                      under concurrent sales, payment ids, a member down, quorum lost and back
#
# LEDGER_PYTEST_ARGS='-k quorum' make ledger-test   runs a subset.

ETCD_PKGS          := etcd-server
LEDGER_DIR         := tests/ledger
LEDGER_PYTEST_ARGS ?=

.PHONY: etcd ledger-test

etcd:
	@if command -v etcd >/dev/null 2>&1; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then SUDO=; \
	elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; \
	else echo "etcd is missing and installing it needs root: apt-get install -y --no-install-recommends $(ETCD_PKGS)" >&2; exit 1; fi; \
	echo "installing Debian's etcd ($(ETCD_PKGS))"; \
	export DEBIAN_FRONTEND=noninteractive; \
	$$SUDO apt-get update -q >/dev/null && \
	$$SUDO apt-get install -y -q --no-install-recommends $(ETCD_PKGS) >/dev/null && \
	dpkg-query -W etcd-server

ledger-test: venv etcd build
	cargo build --example etcd_ledger
	$(VENV)/bin/python -m pytest $(LEDGER_DIR) -p no:cacheprovider -v -rfEs --timeout 120 --durations 5 \
		$(LEDGER_PYTEST_ARGS)

EXTRA_TESTS += ledger-test

# Many Envoys, one ledger (docs/fleet.md, tests/fleet/README.md): three Envoy replicas with the
# filter and `ledger.kind = etcd`, a 3-member etcd cluster, one test facilitator, on loopback.
#
#   make fleet-test    three Envoys on one etcd ledger: the fleet scenarios and a 30 s fleet soak (~2 min) [make test]
#                      (FLEET_SOAK_SMOKE_SECONDS): a settle timed out on one replica and re-sent to the
#                      others, one payment on three replicas at once, a lost 200, replicas SIGKILLed and
#                      restarted, Sign-In-With-X across replicas, payment ids, etcd members killed, quorum lost and back
#   make fleet-soak    the fleet soak for SOAK_SECONDS (default 600; also make soak SOAK_MODE=fleet)
#                      mixed load on the three replicas, facilitator faults, the etcd leader and a
#                      replica restarted mid-run; the books checked against the facilitator's ledger
#
# FLEET_PYTEST_ARGS='-k quorum' make fleet-test   runs a subset.

FLEET_DIR                := tests/fleet
FLEET_PYTEST_ARGS        ?=
FLEET_SOAK_SMOKE_SECONDS ?= 30

.PHONY: fleet-test fleet-soak

fleet-test: build venv etcd
	FLEET_SOAK_SECONDS=$(FLEET_SOAK_SMOKE_SECONDS) $(VENV)/bin/python -m pytest $(FLEET_DIR) -p no:cacheprovider \
		-v -rfEs --timeout 240 --durations 10 $(FLEET_PYTEST_ARGS)

fleet-soak: build venv etcd
	FLEET_SOAK_SECONDS=$(SOAK_SECONDS) $(VENV)/bin/python -m pytest $(FLEET_DIR)/test_fleet_soak.py -p no:cacheprovider \
		-v -rfEs -s --timeout $$(( $(SOAK_SECONDS) + 300 ))

EXTRA_TESTS += fleet-test

#!/bin/sh
# Entry point of the runner image (envoy/docker/runner.Dockerfile), in the compose network:
# 1. the integration suite (tests/integration) in external mode: X402_EXTERNAL=1 and the
#    X402_*_URL variables of docker-compose.yaml make it attach to the compose Envoy, facilitator
#    and upstream instead of starting its own; the tests that need an Envoy with another
#    configuration skip ("external mode: the compose Envoy has one fixed configuration").
# 2. the compose checks (tests/deploy/test_compose_live.py): a pass bought through envoy:10000
#    from facilitator:8080, used on upstream:18080.
set -eu
cd /work/main
status=0
python -m pytest tests/integration -p no:cacheprovider -v -rfEs --timeout 180 --durations 10 ${PYTEST_ARGS:-} || status=$?
X402_COMPOSE_LIVE=1 python -m pytest tests/deploy/test_compose_live.py -p no:cacheprovider -v -rfEs --timeout 120 || status=$?
exit $status

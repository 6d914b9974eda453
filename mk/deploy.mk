# Deployment: the OCI image for Istio, the Istio manifests, delivery through ECDS, and the
# docker compose topology (docs/istio.md, tests/deploy/).
#
#   make oci                 the plugin as an OCI image for Istio: target/oci/x402-access-pass.tar
#                            (a one-layer image layout, Wasm image spec "compat" variant), built
#                            without a container engine, byte-reproducible (tools/oci-image.py)
#   make deploy-test         the deployment checks of tests/deploy (pytest) [make test]
#                            envoy/istio (Istio CRD schemas), envoy/docker-compose.yaml (Compose spec
#                            schema) and the Dockerfiles, the OCI image, ECDS delivery to the real Envoy, and the
#                            integration suite in external mode against the compose topology on loopback
#   make deploy-deps         the deployment tests' Python (into .venv) and Node packages
#   make integration-docker  the integration suite in external mode against the compose services
#                            (needs a Docker engine with the compose plugin, docker compose v2)
#
# DEPLOY_PYTEST_ARGS='-k ecds' make deploy-test   runs a subset.

DEPLOY_DIR          := tests/deploy
DEPLOY_REQS         := $(DEPLOY_DIR)/requirements.txt
DEPLOY_VENV_STAMP   := $(VENV)/.deploy-installed
DEPLOY_NODE_STAMP   := $(DEPLOY_DIR)/node_modules/.x402-ci
DEPLOY_PYTEST_ARGS  ?=
OCI_TARBALL         := target/oci/x402-access-pass.tar
COMPOSE_FILE        := envoy/docker-compose.yaml
# The wallet the compose Envoy sells for: the tests' devnet merchant (tests/integration/harness.py).
COMPOSE_PAY_TO      := GyGKxMyg1p9SsHfm15MkNUu1u9TN2JtTspcdmrtGUdse
COMPOSE             := X402_PAY_TO=$(COMPOSE_PAY_TO) docker compose -f $(COMPOSE_FILE) --profile test

.PHONY: oci deploy-deps deploy-test integration-docker

oci: wasm
	$(PYTHON) tools/oci-image.py --wasm $(WASM) --output $(OCI_TARBALL)

# The deployment tests' Python packages go into the project's .venv (after its own requirements:
# a change there recreates .venv, and so re-runs this).
$(DEPLOY_VENV_STAMP): $(DEPLOY_REQS) $(VENV_STAMP)
	$(VENV)/bin/pip install --disable-pip-version-check --no-input -q -r $(DEPLOY_REQS)
	touch $@

# @kubernetes-models/istio and typescript, exactly as package-lock.json pins them.
$(DEPLOY_NODE_STAMP): $(DEPLOY_DIR)/package.json $(DEPLOY_DIR)/package-lock.json
	cd $(DEPLOY_DIR) && npm ci --no-audit --no-fund --loglevel=error --ignore-scripts
	touch $@

deploy-deps: venv $(DEPLOY_VENV_STAMP) $(DEPLOY_NODE_STAMP)

deploy-test: build deploy-deps
	$(VENV)/bin/python -m pytest $(DEPLOY_DIR) -p no:cacheprovider -v -rfEs --timeout 180 --durations 10 $(DEPLOY_PYTEST_ARGS)

integration-docker: wasm
	@docker compose version >/dev/null 2>&1 || { echo "integration-docker needs a Docker engine with the compose plugin (docker compose v2)" >&2; exit 1; }
	mkdir -p target/docker-out
	status=0; \
	$(COMPOSE) up --build --abort-on-container-exit --exit-code-from runner || status=$$?; \
	$(COMPOSE) down --volumes --remove-orphans || true; \
	exit $$status

EXTRA_TESTS += deploy-test

"""No shipped configuration can pay a wallet whose key is public (issue 10; docs/security.md).

The reference configurations (envoy/envoy.yaml, envoy/istio/wasmplugin.yaml, envoy/docker/envoy.yaml,
envoy/docker/envoy-fleet.yaml) name no wallet: their payTo is a placeholder, and `envoy --mode validate` (which runs the plugin's
on_configure) fails with ONE log line saying what to set. Once a seller sets a wallet of their own
they validate; set to one of the repository's test keys on mainnet, the filter refuses them too.
"""

from __future__ import annotations

import json
import re

import pytest
import yaml

from deploylib import OUT, REPO, WASM, envoy_validate, harness
from test_istio import render_like_istio

SHIPPED_WASM_PATH = "/etc/envoy/x402_access_pass.wasm"
PLUGIN_LOG = re.compile(r"wasm log[^:]*: (.*)$")
SECRET_ENV = {"X402_PASS_SECRET": "reference-config-check-secret-0123456789"}


def _envoy_yaml(name: str) -> str:
    text = (REPO / "envoy" / name).read_text()
    assert text.count(SHIPPED_WASM_PATH) == 1, name
    return text.replace(SHIPPED_WASM_PATH, str(WASM))


def _istio_yaml() -> str:
    docs = [d for d in yaml.safe_load_all((REPO / "envoy/istio/wasmplugin.yaml").read_text()) if d]
    (plugin,) = [d for d in docs if d.get("kind") == "WasmPlugin"]
    return render_like_istio(plugin, WASM)


REFERENCES = {
    "envoy/envoy.yaml": lambda: _envoy_yaml("envoy.yaml"),
    "envoy/docker/envoy.yaml": lambda: _envoy_yaml("docker/envoy.yaml"),
    "envoy/docker/envoy-fleet.yaml": lambda: _envoy_yaml("docker/envoy-fleet.yaml"),
    "envoy/istio/wasmplugin.yaml": _istio_yaml,
}


def _validate(name: str, text: str):
    path = OUT / "reference" / (re.sub(r"[^a-z0-9]+", "-", name.lower()) + ".yaml")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    proc = envoy_validate(path, SECRET_ENV)
    log = proc.stdout + proc.stderr
    path.with_suffix(".log").write_text(log)
    plugin_lines = [m.group(1) for line in log.splitlines() if (m := PLUGIN_LOG.search(line))]
    return proc.returncode, plugin_lines, log


def _plugin_network(text: str) -> str:
    match = re.search(r'network\W+(solana:[A-Za-z0-9]+)', text)
    assert match, "no network in the plugin configuration"
    return match.group(1)


@pytest.mark.parametrize("name", list(REFERENCES))
def test_a_shipped_reference_config_fails_validation_until_payto_is_set(name):
    text = REFERENCES[name]()
    assert text.count(harness.PAY_TO_PLACEHOLDER) == 1, f"{name} has no payTo placeholder"
    returncode, lines, log = _validate(name, text)
    assert returncode != 0, log[-3000:]
    assert lines == [f"invalid x402-access-pass configuration: payTo: is the reference configuration's placeholder: "
                     f"set it to your own wallet address (it receives the payments)"], lines

    returncode, lines, log = _validate(name + "-seller", text.replace(harness.PAY_TO_PLACEHOLDER, harness.SELLER_WALLET))
    assert returncode == 0, log[-3000:]
    assert re.search(r"configuration '.*' OK", log), log[-3000:]
    assert not [line for line in log.splitlines() if "[warning]" in line or "[error]" in line], log[-3000:]


@pytest.mark.parametrize("name", [n for n in REFERENCES if not n.startswith("envoy/docker/")])
def test_the_demo_merchant_is_refused_on_mainnet(name):
    """The mainnet references with payTo set to the tests' merchant (seed 0x03, public)."""
    text = REFERENCES[name]()
    assert _plugin_network(text) == "solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp", name
    returncode, lines, log = _validate(name + "-test-key", text.replace(harness.PAY_TO_PLACEHOLDER, harness.MERCHANT))
    assert returncode != 0, log[-3000:]
    assert len(lines) == 1 and lines[0].startswith("invalid x402-access-pass configuration: payTo: is a well-known test key"), lines


def test_the_compose_config_is_devnet_where_the_test_merchant_is_allowed():
    text = REFERENCES["envoy/docker/envoy.yaml"]()
    assert _plugin_network(text) == harness.NETWORK
    returncode, _, log = _validate("compose-test-merchant", text.replace(harness.PAY_TO_PLACEHOLDER, harness.MERCHANT))
    assert returncode == 0, log[-3000:]


def test_a_published_secret_is_refused_on_mainnet():
    """envoy/envoy.yaml with a seller's payTo but the demo's HS256 secret in its environment."""
    text = REFERENCES["envoy/envoy.yaml"]().replace(harness.PAY_TO_PLACEHOLDER, harness.SELLER_WALLET)
    path = OUT / "reference" / "envoy-demo-secret.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    proc = envoy_validate(path, {"X402_PASS_SECRET": "demo-secret-do-not-use-in-production-0123"})
    log = proc.stdout + proc.stderr
    assert proc.returncode != 0, log[-3000:]
    assert "invalid x402-access-pass configuration: secretEnv: is a well-known test key" in log, log[-3000:]

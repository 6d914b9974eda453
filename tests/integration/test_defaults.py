"""Configuration defaults (docs/behaviour.md §2, every one a MUST) and exact pricing (§4, §5), on minimal configs.

The fee payer is pinned (`feePayer`) so these configs need no /supported answer for their network."""

import pytest

import x402pay as xp
from harness import FEE_PAYER, SELLER_WALLET, query
from helpers import assert_challenge

# Mainnet (the default network) refuses the tests' published keys: a seller's own wallet and secret.
MERCHANT = SELLER_WALLET
SECRET = "defaults-test-secret-0123456789abcdef0123"


def minimal(**extra):
    return {"payTo": MERCHANT, "secret": SECRET, "feePayer": FEE_PAYER, **extra}


@pytest.fixture(scope="module")
def mainnet_envoy(module_envoys):
    # No network, no asset, no protect/bypass, no issuer, no description: all defaults. The tiers
    # are listed longest first and one price has a cent that floats get wrong.
    return module_envoys.start("defaults", plugin_config=minimal(tiers={"1d": "2.01", "1h": "0.50"}))


def test_defaults_are_mainnet_usdc_and_the_shortest_tier(mainnet_envoy):
    required, info = assert_challenge(mainnet_envoy.get("/api/data"))
    assert required["accepts"] == [{
        "scheme": "exact", "network": xp.MAINNET, "amount": "500000", "maxAmountRequired": "500000",
        "asset": xp.MAINNET_USDC, "payTo": MERCHANT, "maxTimeoutSeconds": 60,
        "extra": {"feePayer": FEE_PAYER, "decimals": 6}}]
    assert required["resource"]["description"] == "Access pass: 1 hour"
    # Sorted by seconds, prices as written, no ratePerHour key when unset.
    assert info == {"tiers": [
        {"id": "1h", "label": "1 hour", "seconds": 3600, "price": "0.50", "priceAtomic": "500000"},
        {"id": "1d", "label": "1 day", "seconds": 86400, "price": "2.01", "priceAtomic": "2010000"},
    ], "issuer": "x402-access-pass"}


def test_prices_are_exact_decimals(mainnet_envoy):
    required, _ = assert_challenge(mainnet_envoy.get("/api/data?tier=1d"))
    assert required["accepts"][0]["amount"] == "2010000"  # float math would say 2009999


def test_everything_is_protected_by_default(mainnet_envoy, upstream):
    before = upstream.count()
    for path in ("/", "/health", "/anything/else"):
        assert_challenge(mainnet_envoy.get(path))
    assert upstream.count() == before


def test_without_rate_per_hour_a_duration_is_not_a_candidate(mainnet_envoy):
    required, _ = assert_challenge(mainnet_envoy.get("/api/data?duration=7200"))
    assert required["accepts"][0]["amount"] == "500000"


def test_with_only_a_rate_the_default_pass_is_one_hour(envoys):
    envoy = envoys.start("rate-only", plugin_config=minimal(ratePerHour="0.50", network=xp.DEVNET))
    required, info = assert_challenge(envoy.get("/x"))
    assert required["accepts"][0]["amount"] == "500000"
    assert required["resource"]["description"] == "Access pass: 1 hour"
    assert info == {"ratePerHour": "0.50", "issuer": "x402-access-pass"}
    required, _ = assert_challenge(envoy.get(query("/x", duration=2592000)))  # maxDurationSeconds default
    assert required["accepts"][0]["amount"] == "360000000"
    assert required["resource"]["description"] == "Access pass: 30 days"
    required, _ = assert_challenge(envoy.get(query("/x", duration=60)))  # minDurationSeconds default
    assert required["accepts"][0]["amount"] == "8300"  # 8333.3 rounded to a multiple of 100
    assert required["resource"]["description"] == "Access pass: 1 minute"
    required, _ = assert_challenge(envoy.get(query("/x", duration=59)))
    assert required["accepts"][0]["amount"] == "500000"


def test_an_explicit_asset_and_description_are_used(envoys):
    envoy = envoys.start("asset", plugin_config=minimal(
        tiers={"1w": "10"}, network=xp.DEVNET, asset={"address": xp.DEVNET_USDC, "decimals": 6},
        description="Weather API"))
    required, info = assert_challenge(envoy.get("/x"))
    assert required["accepts"][0]["amount"] == "10000000"
    assert required["accepts"][0]["asset"] == xp.DEVNET_USDC
    assert required["resource"]["description"] == "Weather API"
    assert info["tiers"] == [{"id": "1w", "label": "1 week", "seconds": 604800, "price": "10",
                              "priceAtomic": "10000000"}]

"""The compose topology serves the paywall end to end: a challenge, a real signed payment
settled by the test facilitator, the pass used on the demo upstream, the counters.

In the compose runner (X402_COMPOSE_LIVE=1, run by envoy/docker/run-suite.sh) these target the
compose services; elsewhere (make deploy-test) the same pieces run on loopback with the compose
Envoy configuration (compose_live.loopback)."""

from __future__ import annotations

import os

import pytest

import compose_live
from deploylib import OUT, harness
from helpers import Buyer, assert_challenge, decode_jwt

LIVE = os.environ.get("X402_COMPOSE_LIVE") == "1"


@pytest.fixture(scope="module")
def topology():
    if LIVE:
        topo = compose_live.from_env()
        harness.wait_until(lambda: topo.admin.get("/ready").text.strip() == "LIVE", 60, 0.5, "the compose Envoy")
        yield topo
    else:
        with compose_live.loopback(OUT / "compose-loopback") as topo:
            yield topo


def test_challenge_and_untouched_paths(topology):
    required, tiers = assert_challenge(topology.envoy.get("/api/data"))
    offer = required["accepts"][0]
    assert offer["payTo"] == harness.MERCHANT and offer["network"] == harness.NETWORK
    assert offer["extra"]["feePayer"] == harness.FEE_PAYER        # learnt from facilitator:8080/supported
    assert [t["id"] for t in tiers["tiers"]] == ["5m", "1h", "24h"]
    health = topology.envoy.get("/health")
    assert health.status == 200 and health.json() == {"status": "ok"}


def test_buy_a_pass_and_use_it_on_the_upstream(topology, request):
    buyer = Buyer(f"compose:{request.node.nodeid}:{os.getpid()}")
    required, _ = assert_challenge(topology.envoy.get("/api/data?tier=1h"))
    header, tx = buyer.pay(required)
    settled_before = topology.stats().get("wasmcustom.x402_access_pass.purchases_succeeded", 0)
    resp = topology.envoy.post("/api/data?tier=1h", [("PAYMENT-SIGNATURE", header)])
    assert resp.status == 200, resp
    token = resp.headers["access-pass"]
    _, claims, _ = decode_jwt(token)
    assert claims["tier"] == "1h" and claims["payer"] == buyer.address

    used = topology.envoy.get("/api/data/items", {"Authorization": f"Bearer {token}"})
    assert used.status == 200, used
    echoed = dict(used.json()["headers"])
    assert echoed["x-access-pass-tier"] == "1h" and echoed["x-access-pass-payer"] == buyer.address
    assert "authorization" not in echoed

    seen = [r for r in topology.upstream_requests() if r["path"] == "/api/data/items"]
    assert seen and dict(seen[-1]["headers"])["x-access-pass-payer"] == buyer.address
    assert not [r for r in topology.upstream_requests() if r["path"] == "/api/data?tier=1h"], \
        "a purchase must be answered by the filter, never forwarded"
    settlements = [s for s in topology.facilitator_state()["settlements"] if s["payer"] == buyer.address]
    assert len(settlements) == 1 and settlements[0]["amount"] == "500000", settlements
    assert topology.stats()["wasmcustom.x402_access_pass.purchases_succeeded"] == settled_before + 1


@pytest.mark.skipif(LIVE, reason="runs the compose health checks against loopback services")
def test_compose_healthchecks_pass_against_the_services(topology):
    """The exact health check commands of docker-compose.yaml, run here against the same
    programs (only the fixed ports replaced by the loopback ones): they must succeed, since
    the runner waits for `service_healthy`; and, since Docker keeps running them while the suite
    counts the requests that reached the upstream, they must not show in its request log."""
    import subprocess

    services = compose_live.compose_services()
    assert set(compose_live.HEALTHCHECK_PORTS) == {name for name, svc in services.items() if "healthcheck" in svc}
    logged = len(topology.upstream_requests())
    for name in compose_live.HEALTHCHECK_PORTS:
        argv = compose_live.healthcheck_argv(topology, name, services)
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        assert proc.returncode == 0, (name, argv, proc.stderr)
    assert len(topology.upstream_requests()) == logged, topology.upstream_requests()[logged:]

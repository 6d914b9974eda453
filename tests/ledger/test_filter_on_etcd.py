"""The filter on the shared ledger (docs/behaviour.md §19, docs/fleet.md): one Envoy with
`ledger.kind = etcd` in front of the 3-member cluster, the test facilitator and the demo upstream.
Purchases, replays, payment ids and sign-ins go through etcd; with etcd gone, purchases and
sign-ins answer 503 `ledger_unavailable` before any money moves and valid passes still work.
Every money test checks the facilitator's own ledger. (Many Envoys on one ledger: tests/fleet.)"""

from __future__ import annotations

import pathlib
import secrets
import shutil
import sys
import tempfile
import threading

import pytest

INTEGRATION = pathlib.Path(__file__).resolve().parents[1] / "integration"
sys.path.insert(0, str(INTEGRATION))

import siwx  # noqa: E402
from harness import Envoy, Facilitator, default_plugin_config, ledger_cluster, wait_until  # noqa: E402
from helpers import Buyer, assert_purchase_ok, get_challenge, purchase  # noqa: E402
from upstream import DemoUpstream  # noqa: E402

ORIGIN = "https://api.ledger.test"
HERE = [("Host", "api.ledger.test"), ("X-Forwarded-Proto", "https")]


@pytest.fixture(scope="module")
def shop(cluster):
    out = pathlib.Path(tempfile.mkdtemp(prefix="x402-filter-etcd-"))
    facilitator = Facilitator(out).start()
    upstream = DemoUpstream()
    upstream.start()
    ports = [m.client for m in cluster.members]
    plugin = default_plugin_config(
        f"127.0.0.1:{facilitator.port}", siwx={"origins": [ORIGIN]},
        ledger={"kind": "etcd", "cluster": "x402_ledger", "authority": "etcd",
                "prefix": "/x402-access-pass/", "timeoutMs": 1000})
    envoy = Envoy("etcd-ledger", plugin, facilitator.port, upstream.port, out, extra_clusters=ledger_cluster(ports))
    try:
        envoy.start()
        yield envoy, facilitator
    finally:
        envoy.stop()
        upstream.stop()
        facilitator.stop()
        shutil.rmtree(out, ignore_errors=True)


def settled_for(facilitator, payer: str) -> list[dict]:
    return [s for s in facilitator.state()["settlements"] if s.get("payer") == payer]


def stat(envoy, name: str) -> int:
    return envoy.stats().get(f"wasmcustom.x402_access_pass.{name}", 0)


def test_a_purchase_and_its_replay_go_through_etcd(shop, cluster):
    envoy, facilitator = shop
    buyer = Buyer(f"etcd-{secrets.token_hex(4)}")
    required = get_challenge(envoy, "/api/data?tier=1h", HERE)
    payment, tx = buyer.pay(required)
    first = purchase(envoy, "/api/data?tier=1h", payment, HERE)
    token, _ = assert_purchase_ok(first, buyer, "1h", 3600, "1 hour")
    again = purchase(envoy, "/api/data?tier=1h", payment, HERE)
    assert again.status == 200 and again.headers["access-pass"] == token, again
    assert len(settled_for(facilitator, buyer.address)) == 1, facilitator.state()
    held = cluster.ledger("record", tx.message_hash)
    assert "settled" in held["result"], held
    assert envoy.get("/api/data", [("Authorization", f"Bearer {token}")]).status == 200


def test_a_buyer_who_paid_signs_in_through_etcd(shop, cluster):
    envoy, facilitator = shop
    buyer = Buyer(f"etcd-{secrets.token_hex(4)}")
    required = get_challenge(envoy, "/api/data?tier=1h", HERE)
    payment, _ = buyer.pay(required)
    assert_purchase_ok(purchase(envoy, "/api/data?tier=1h", payment, HERE), buyer, "1h", 3600, "1 hour")
    assert cluster.ledger("entitlement", buyer.address)["result"]["tier"] == "1h"
    for _ in range(3):
        required = get_challenge(envoy, "/api/data", HERE)
        header = siwx.sign_in(required, buyer.keypair)
        resp = envoy.get("/api/data", HERE + [("SIGN-IN-WITH-X", header)])
        assert resp.status == 200, resp
        seen = dict((k, v) for k, v in resp.json()["headers"])
        assert seen["x-access-pass-payer"] == buyer.address and "sign-in-with-x" not in seen
    assert len(settled_for(facilitator, buyer.address)) == 1, "signing in never charges"
    stranger = Buyer(f"etcd-{secrets.token_hex(4)}")
    required = get_challenge(envoy, "/api/data", HERE)
    resp = envoy.get("/api/data", HERE + [("SIGN-IN-WITH-X", siwx.sign_in(required, stranger.keypair))])
    assert resp.status == 402, resp
    assert settled_for(facilitator, stranger.address) == []


def test_without_etcd_nothing_is_charged_and_passes_still_work(shop, cluster):
    envoy, facilitator = shop
    buyer = Buyer(f"etcd-{secrets.token_hex(4)}")
    required = get_challenge(envoy, "/api/data?tier=1h", HERE)
    payment, _ = buyer.pay(required)
    token, _ = assert_purchase_ok(purchase(envoy, "/api/data?tier=1h", payment, HERE), buyer, "1h", 3600, "1 hour")
    late = Buyer(f"etcd-{secrets.token_hex(4)}")
    late_payment, _ = late.pay(get_challenge(envoy, "/api/data?tier=1h", HERE))
    errors_before = stat(envoy, "ledger_errors")
    for member in cluster.members:
        member.stop()
    try:
        before = facilitator.counts()
        resp = purchase(envoy, "/api/data?tier=1h", late_payment, HERE)
        assert resp.status == 503 and resp.json()["reason"] == "ledger_unavailable", resp
        assert resp.headers.get("retry-after"), resp
        assert facilitator.counts()["verify"] == before["verify"], "refused before any /verify"
        required = get_challenge(envoy, "/api/data", HERE)
        signed = envoy.get("/api/data", HERE + [("SIGN-IN-WITH-X", siwx.sign_in(required, late.keypair))])
        assert signed.status == 503 and signed.json()["reason"] == "ledger_unavailable", signed
        assert envoy.get("/api/data", [("Authorization", f"Bearer {token}")]).status == 200
        assert stat(envoy, "ledger_errors") > errors_before
    finally:
        for member in cluster.members:
            member.start()
        cluster.wait_healthy(cluster.members)
    # Back: the same payment buys its pass, charged once.
    resp = wait_until(lambda: (r := purchase(envoy, "/api/data?tier=1h", late_payment, HERE)).status == 200 and r,
                      timeout=20, interval=0.5, what="a purchase once etcd is back")
    assert_purchase_ok(resp, late, "1h", 3600, "1 hour")
    assert len(settled_for(facilitator, late.address)) == 1, facilitator.state()


def test_etcd_lost_while_settling_loses_nothing(shop, cluster):
    """§19, lose nothing: the money moved but etcd is gone when the settlement is recorded. The
    buyer still gets the pass; the record is kept in this Envoy and written to etcd once it is
    back, so the same payment on any replica replays and is never settled twice."""
    envoy, facilitator = shop
    buyer = Buyer(f"etcd-{secrets.token_hex(4)}")
    payment, tx = buyer.pay(get_challenge(envoy, "/api/data?tier=1h", HERE))
    facilitator.fault("settle", "slow", delay_ms=1500, count=1)
    errors_before, settles_before = stat(envoy, "ledger_errors"), facilitator.counts()["settle"]
    done: dict = {}
    buying = threading.Thread(target=lambda: done.setdefault("resp", purchase(envoy, "/api/data?tier=1h", payment, HERE)))
    try:
        buying.start()
        wait_until(lambda: facilitator.counts()["settle"] > settles_before or None, timeout=10, what="the /settle call")
        for member in cluster.members:
            member.stop()
        buying.join(timeout=20)
    finally:
        facilitator.clear_faults()
        for member in cluster.members:
            if member.proc is None:
                member.start()
        cluster.wait_healthy(cluster.members)
    token, _ = assert_purchase_ok(done["resp"], buyer, "1h", 3600, "1 hour")
    assert stat(envoy, "ledger_errors") > errors_before
    assert len(settled_for(facilitator, buyer.address)) == 1
    # Written again by the tick once etcd answers: the settlement, and the entitlement.
    wait_until(lambda: "settled" in (cluster.ledger("record", tx.message_hash).get("result") or {}),
               timeout=20, interval=0.3, what="the kept settlement written to etcd")
    wait_until(lambda: cluster.ledger("entitlement", buyer.address).get("result"),
               timeout=20, interval=0.3, what="the kept entitlement written to etcd")
    again = purchase(envoy, "/api/data?tier=1h", payment, HERE)
    assert again.status == 200 and again.headers["access-pass"] == token, again
    assert len(settled_for(facilitator, buyer.address)) == 1, "replayed, never settled twice"

"""Paid requests (docs/behaviour.md §15): a payment on a request that names no pass buys the default
pass and the request itself goes upstream, as the official x402 v2 clients expect. Against the real
Envoy, the test facilitator and the demo upstream. Every test checks money from the facilitator's
own ledger: one settlement per payment, and the data delivered for it."""

import json
import time

import pytest

from attacks import Counters, Ledger, json_reason
from harness import EXTERNAL, EXTERNAL_SKIP, NETWORK
from helpers import (PRICES, assert_challenge, assert_cors, assert_purchase_ok, decode_jwt, decode_std_b64_json,
                     get_challenge, purchase)

pytestmark = pytest.mark.skipif(EXTERNAL, reason=EXTERNAL_SKIP)

DEFAULT = "5m"  # the shortest tier: what a request naming no pass buys


def pay(envoy, buyer, path):
    """The buyer's payment for `path`'s challenge, as an official client builds it."""
    return buyer.pay(get_challenge(envoy, path))


def upstream_saw(upstream, path):
    """The requests the upstream got for `path`."""
    return [r for r in upstream.requests if r["path"] == path]


def header_values(record, name):
    return [v for k, v in record["headers"] if k == name]


def assert_forwarded_with_pass(resp, upstream, path, buyer, tx, facilitator):
    """The upstream's own answer, with the pass and the settlement added (docs/behaviour.md §15);
    the upstream got the request once, without the payment and with the claim headers. Returns the
    pass and its claims."""
    token = resp.headers["access-pass"]
    _, claims, _ = decode_jwt(token)
    assert claims["tier"] == DEFAULT and claims["duration"] == 300 and claims["payer"] == buyer.address, claims
    assert abs(claims["iat"] - time.time()) < 30, claims
    settle, _ = decode_std_b64_json(resp.headers["payment-response"])
    settled = facilitator.settlements_for(tx.message_hash)
    assert len(settled) == 1, settled
    assert settle == {"success": True, "transaction": settled[0]["transaction"], "network": NETWORK,
                      "payer": buyer.address}, settle
    assert_cors(resp)
    assert "private" in [d.strip() for d in resp.headers.get("cache-control", "").split(",")], resp
    seen = upstream_saw(upstream, path)
    assert seen, f"the upstream never got {path}"
    record = seen[-1]
    names = [k for k, _ in record["headers"]]
    assert "payment-signature" not in names and "authorization" not in names, record
    assert header_values(record, "x-access-pass-tier") == [DEFAULT], record
    assert header_values(record, "x-access-pass-payer") == [buyer.address], record
    assert header_values(record, "x-access-pass-expires") == [str(claims["exp"])], record
    assert header_values(record, "x-access-pass-network") == [NETWORK], record
    return token, claims


def test_a_paid_get_reaches_the_upstream_and_the_buyer_leaves_with_data_and_pass(
        envoy, facilitator, upstream, buyer):
    path = "/api/data?city=Lisbon&units=metric"
    header, tx = pay(envoy, buyer, path)
    ledger = Ledger(facilitator)
    counters = Counters(envoy)
    # A forged claim header and a stale token ride along: neither reaches the upstream.
    resp = envoy.get(path, [("PAYMENT-SIGNATURE", header), ("X-Access-Pass-Tier", "24h"),
                            ("Authorization", "Bearer not.a.pass")])
    assert resp.status == 200, resp
    echo = resp.json()
    assert echo["upstream"] == "demo" and echo["method"] == "GET" and echo["path"] == path, echo
    token, claims = assert_forwarded_with_pass(resp, upstream, path, buyer, tx, facilitator)
    ledger.assert_charged({tx.message_hash: PRICES[DEFAULT]})
    assert counters.delta("paid_requests_forwarded") == 1
    assert counters.delta("purchases_succeeded") == 1
    assert counters.delta("settled_atomic") == PRICES[DEFAULT]
    assert f"paid request settled payer={buyer.address} tier={DEFAULT}" in envoy.log_text()
    # The pass it got works as a Bearer pass afterwards, with no callout and no charge.
    again = envoy.get("/api/other", {"Authorization": f"Bearer {token}"})
    assert again.status == 200 and again.json()["path"] == "/api/other", again
    ledger.assert_charged({tx.message_hash: PRICES[DEFAULT]})


def test_a_paid_post_keeps_its_json_body_through_the_pause(envoy, facilitator, upstream, buyer):
    path = "/api/orders?dry_run=1"
    body = json.dumps({"item": "weather-report", "quantity": 3, "notes": "ünïcode ✓", "pad": "x" * 4000})
    header, tx = pay(envoy, buyer, path)
    ledger = Ledger(facilitator)
    resp = envoy.post(path, [("PAYMENT-SIGNATURE", header), ("Content-Type", "application/json")], body)
    assert resp.status == 200 and resp.json()["method"] == "POST", resp
    assert_forwarded_with_pass(resp, upstream, path, buyer, tx, facilitator)
    record = upstream_saw(upstream, path)[-1]
    assert record["body"] == body, record["body"][:200]
    assert header_values(record, "content-type") == ["application/json"], record
    ledger.assert_charged({tx.message_hash: PRICES[DEFAULT]})


def test_a_large_body_waits_in_envoy_and_arrives_whole(envoy, facilitator, upstream, buyer):
    """A body bigger than one read (256 KiB, under Envoy's 1 MiB buffer) is held while the
    callouts run and reaches the upstream byte for byte."""
    path = "/api/upload"
    body = "".join(f"{i:08d}\n" for i in range(256 * 1024 // 9))
    header, tx = pay(envoy, buyer, path)
    ledger = Ledger(facilitator)
    resp = envoy.request("PUT", path, [("PAYMENT-SIGNATURE", header), ("Content-Type", "text/plain")], body)
    assert resp.status == 200, resp
    assert upstream_saw(upstream, path)[-1]["body"] == body
    ledger.assert_charged({tx.message_hash: PRICES[DEFAULT]})


def test_an_upstream_that_fails_still_leaves_the_buyer_the_pass_and_one_settlement(
        envoy, facilitator, upstream, buyer):
    path = "/api/flaky"
    header, tx = pay(envoy, buyer, path)
    ledger = Ledger(facilitator)
    resp = envoy.get(path, [("PAYMENT-SIGNATURE", header), ("X-Upstream-Status", "500")])
    assert resp.status == 500, resp
    assert resp.json()["upstream"] == "demo", resp  # the upstream's own body, untouched
    token, _ = assert_forwarded_with_pass(resp, upstream, path, buyer, tx, facilitator)
    ledger.assert_charged({tx.message_hash: PRICES[DEFAULT]})
    # Retrying costs nothing more: the pass is enough.
    retry = envoy.get(path, {"Authorization": f"Bearer {token}"})
    assert retry.status == 200, retry
    ledger.assert_charged({tx.message_hash: PRICES[DEFAULT]})


def test_the_same_payment_twice_is_forwarded_twice_and_settled_once(envoy, facilitator, upstream, buyer):
    path = "/api/data?page=2"
    header, tx = pay(envoy, buyer, path)
    ledger = Ledger(facilitator)
    counters = Counters(envoy)
    first = envoy.get(path, [("PAYMENT-SIGNATURE", header)])
    second = envoy.get(path, [("PAYMENT-SIGNATURE", header)])
    assert first.status == 200 and second.status == 200, (first, second)
    assert second.headers["access-pass"] == first.headers["access-pass"]
    assert second.headers["payment-response"] == first.headers["payment-response"]
    assert len(upstream_saw(upstream, path)) == 2
    assert_forwarded_with_pass(second, upstream, path, buyer, tx, facilitator)
    ledger.assert_charged({tx.message_hash: PRICES[DEFAULT]})
    assert counters.delta("paid_requests_forwarded") == 2
    assert counters.delta("replays_served") == 1
    assert counters.delta("purchases_succeeded") == 1


@pytest.mark.parametrize("path, tier, seconds, label", [
    ("/api/data?tier=1h", "1h", 3600, "1 hour"),
    ("/api/data?duration=5400", "custom", 5400, "90 minutes"),
])
def test_a_payment_naming_its_pass_is_still_a_purchase_answered_by_the_filter(
        envoy, facilitator, upstream, buyer, path, tier, seconds, label):
    header, tx = pay(envoy, buyer, path)
    ledger = Ledger(facilitator)
    resp = purchase(envoy, path, header)
    assert_purchase_ok(resp, buyer, tier, seconds, label)
    assert upstream_saw(upstream, path) == []
    amount = PRICES.get(tier, 750000)
    ledger.assert_charged({tx.message_hash: amount})


def test_a_refused_paid_request_is_402_and_never_reaches_the_upstream(envoy, facilitator, upstream, buyer):
    path = "/api/refused"
    header, tx = pay(envoy, buyer, path)
    ledger = Ledger(facilitator)
    facilitator.fault("settle", "refused_400", count=1)
    try:
        resp = envoy.get(path, [("PAYMENT-SIGNATURE", header)])
    finally:
        facilitator.clear_faults()
    assert resp.status == 402 and json_reason(resp) == "insufficient_funds", resp
    assert_challenge(resp)
    assert upstream_saw(upstream, path) == []
    ledger.assert_nothing_charged()


def test_a_paid_request_left_unknown_is_503_and_the_same_payment_is_then_forwarded(
        envoys, facilitator, upstream, buyer):
    envoy = envoys.start("pay-and-serve-unknown", settleDeadlineMs=0)
    path = "/api/unknown"
    header, tx = pay(envoy, buyer, path)
    ledger = Ledger(facilitator)
    facilitator.fault("settle", "status", status=503, count=1)
    try:
        first = envoy.get(path, [("PAYMENT-SIGNATURE", header)])
    finally:
        facilitator.clear_faults()
    assert first.status == 503 and json_reason(first) == "settlement_unknown", first
    assert first.headers.get("retry-after"), first
    assert upstream_saw(upstream, path) == []
    ledger.assert_nothing_charged()
    again = envoy.get(path, [("PAYMENT-SIGNATURE", header)])
    assert again.status == 200, again
    assert_forwarded_with_pass(again, upstream, path, buyer, tx, facilitator)
    ledger.assert_charged({tx.message_hash: PRICES[DEFAULT]})


def test_a_seller_without_pay_and_serve_answers_every_payment_itself(envoys, facilitator, upstream, buyer):
    envoy = envoys.start("no-pay-and-serve", payAndServe=False)
    path = "/api/data?city=Porto"
    header, tx = pay(envoy, buyer, path)
    ledger = Ledger(facilitator)
    resp = envoy.get(path, [("PAYMENT-SIGNATURE", header)])
    assert_purchase_ok(resp, buyer, DEFAULT, 300, "5 minutes")
    assert upstream_saw(upstream, path) == []
    ledger.assert_charged({tx.message_hash: PRICES[DEFAULT]})


@pytest.mark.parametrize("mode", ["settle_pending", "status"])
def test_a_paid_request_whose_settlement_is_worked_out_after_a_wait_is_forwarded_from_the_tick(
        envoys, facilitator, upstream, buyer, mode):
    """The second /settle leaves from the worker's tick (docs/behaviour.md §17.1): the request is
    then forwarded from the root context, on behalf of the buyer's request."""
    envoy = envoys.start(f"pay-and-serve-retry-{mode}", settleDeadlineMs=5000)
    path = f"/api/retried?mode={mode}"
    header, tx = pay(envoy, buyer, path)
    ledger = Ledger(facilitator)
    counters = Counters(envoy)
    facilitator.fault("settle", mode, count=1, **({"status": 502} if mode == "status" else {}))
    try:
        resp = envoy.post(path, [("PAYMENT-SIGNATURE", header), ("Content-Type", "application/json")],
                          '{"after":"a wait"}')
    finally:
        facilitator.clear_faults()
    assert resp.status == 200 and resp.json()["upstream"] == "demo", resp
    assert_forwarded_with_pass(resp, upstream, path, buyer, tx, facilitator)
    assert upstream_saw(upstream, path)[-1]["body"] == '{"after":"a wait"}'
    ledger.assert_charged({tx.message_hash: PRICES[DEFAULT]})
    assert counters.delta("settle_retries") >= 1
    assert counters.delta("paid_requests_forwarded") == 1


def test_a_paid_body_larger_than_the_buffer_is_413_before_anything_is_charged(envoys, facilitator, upstream, buyer):
    """maxPaidBodyBytes is the buffer a paid request's body waits in (default: Envoy's 1 MiB
    per-connection buffer); a declared body over it is refused before any callout."""
    envoy = envoys.start("pay-and-serve-small-buffer", maxPaidBodyBytes=65536)
    path = "/api/upload-large"
    header, tx = pay(envoy, buyer, path)
    ledger = Ledger(facilitator)
    resp = envoy.request("PUT", path, [("PAYMENT-SIGNATURE", header)], "z" * (65536 + 1))
    assert resp.status == 413 and json_reason(resp) == "payload_too_large", resp
    assert_cors(resp)
    assert upstream_saw(upstream, path) == []
    ledger.assert_nothing_charged(no_callout=True)
    # At the limit it is held, paid for and forwarded whole.
    body = "z" * 65536
    resp = envoy.request("PUT", path, [("PAYMENT-SIGNATURE", header)], body)
    assert resp.status == 200, resp
    assert upstream_saw(upstream, path)[-1]["body"] == body
    ledger.assert_charged({tx.message_hash: PRICES[DEFAULT]})

"""Facilitator faults (SPEC §6.4) and the fee payer from /supported (§9.1), injected through the
test facilitator's control API. After each fault the same Envoy must serve a fresh purchase."""

import time

import pytest

from harness import FEE_PAYER, wait_until
from helpers import (assert_challenge, assert_cors, assert_purchase_ok, buy, get_challenge,
                     purchase)

TIMEOUT_MS = 2000  # facilitatorTimeoutMs of the default test config
# A purchase answered by the filter (docs/behaviour.md §6): the request names its pass. The
# default pass, so the price is the one an unqualified challenge asks.
PURCHASE = "/api/data?tier=5m"


def assert_unavailable(resp, reasons):
    assert resp.status == 502, resp
    assert resp.headers.get("retry-after"), resp
    body = resp.json()
    assert body["error"] == "Facilitator unavailable" and body["reason"] in reasons, body
    assert set(body) == {"error", "reason"}, body
    assert_cors(resp)


def assert_recovered(envoy, new_buyer):
    fresh = new_buyer()
    resp, _, _ = buy(envoy, fresh, PURCHASE)
    assert_purchase_ok(resp, fresh, "5m", 300, "5 minutes")


def prepared_payment(envoy, buyer, path=PURCHASE):
    required = get_challenge(envoy, path)
    return buyer.pay(required)


@pytest.mark.parametrize("mode, options, reasons", [
    ("status", {"status": 500}, {"facilitator_error_500"}),
    ("status", {"status": 503}, {"facilitator_error_503"}),
    ("status", {"status": 404}, {"facilitator_error_404"}),
    ("garbage", {}, {"facilitator_bad_response"}),
    # A cut answer is a reset stream for Envoy's async client, which reports it as a 503.
    ("truncated", {}, {"facilitator_bad_response", "facilitator_timeout", "facilitator_error_503"}),
])
def test_a_failing_verify_gets_502_with_retry_after(envoy, facilitator, buyer, new_buyer, mode, options, reasons):
    header, tx = prepared_payment(envoy, buyer)
    facilitator.fault("verify", mode, **options)
    resp = purchase(envoy, PURCHASE, header)
    assert_unavailable(resp, reasons)
    assert facilitator.settlements_for(tx.message_hash) == []
    facilitator.clear_faults()
    # Nothing was charged: the same payment can be sent again and goes through.
    assert_purchase_ok(purchase(envoy, PURCHASE, header), buyer, "5m", 300, "5 minutes")
    assert_recovered(envoy, new_buyer)


def test_a_slow_verify_times_out_with_502_within_the_configured_timeout(envoy, facilitator, buyer, new_buyer):
    header, tx = prepared_payment(envoy, buyer)
    facilitator.fault("verify", "slow", delay_ms=TIMEOUT_MS + 2500)
    resp = purchase(envoy, PURCHASE, header, )
    assert_unavailable(resp, {"facilitator_timeout"})
    assert resp.elapsed < TIMEOUT_MS / 1000 + 1.5, resp.elapsed
    facilitator.clear_faults()
    time.sleep(0.5)  # let the slow verify finish on the facilitator side
    assert_recovered(envoy, new_buyer)


def test_a_verify_connection_reset_gets_502(envoy, facilitator, buyer, new_buyer):
    header, _ = prepared_payment(envoy, buyer)
    facilitator.fault("verify", "reset")
    resp = purchase(envoy, PURCHASE, header)
    assert_unavailable(resp, {"facilitator_bad_response", "facilitator_timeout", "facilitator_error_503"})
    facilitator.clear_faults()
    assert_recovered(envoy, new_buyer)


def test_a_refused_facilitator_connection_gets_502(envoy, facilitator, buyer, new_buyer):
    header, _ = prepared_payment(envoy, buyer)
    facilitator.fault("all", "refuse")
    try:
        resp = purchase(envoy, PURCHASE, header)
        assert_unavailable(resp, {"facilitator_timeout", "facilitator_bad_response", "facilitator_error_503"})
    finally:
        facilitator.clear_faults()
    assert_recovered(envoy, new_buyer)


def test_a_settle_failure_gets_402_payment_settlement_failed(envoy, facilitator, buyer, new_buyer):
    header, tx = prepared_payment(envoy, buyer)
    facilitator.fault("settle", "settle_failure")
    resp = purchase(envoy, PURCHASE, header)
    assert resp.status == 402, resp
    assert_challenge(resp)
    body = resp.json()
    assert body["error"] == "Payment settlement failed" and isinstance(body["reason"], str) and body["reason"], body
    assert set(body) == {"error", "reason"}, body
    assert facilitator.settlements_for(tx.message_hash) == []
    facilitator.clear_faults()
    assert_recovered(envoy, new_buyer)


@pytest.mark.parametrize("mode, options", [
    ("status", {"status": 500}),
    ("status", {"status": 502}),
    ("garbage", {}),
    ("truncated", {}),   # the facilitator settled, the answer was cut
    ("reset", {}),       # nothing settled, no answer
    ("slow", {"delay_ms": TIMEOUT_MS + 1500}),  # settled after the filter gave up
])
def test_an_unknown_settle_outcome_gets_503_and_the_same_payment_later_gets_its_pass_once(
        envoy, facilitator, buyer, new_buyer, mode, options):
    header, tx = prepared_payment(envoy, buyer, "/api/data?tier=1h")
    facilitator.fault("settle", mode, **options)
    started = time.monotonic()
    resp = purchase(envoy, "/api/data?tier=1h", header)
    assert resp.status == 503, resp
    assert resp.headers.get("retry-after"), resp
    body = resp.json()
    assert body.get("reason") == "settlement_unknown", body
    assert_cors(resp)
    if mode == "slow":
        assert time.monotonic() - started < TIMEOUT_MS / 1000 + 1.5
    facilitator.clear_faults()
    if mode == "slow":  # wait for the late settlement to land on the facilitator
        wait_until(lambda: facilitator.settlements_for(tx.message_hash), 10, what="the late settlement")
    again = purchase(envoy, "/api/data?tier=1h", header)
    # truncated/slow: the first settle went through, so this one gets duplicate_settlement, which
    # carries no transaction id.
    token, claims = assert_purchase_ok(again, buyer, "1h", 3600, "1 hour",
                                       transaction_known=mode not in ("truncated", "slow"))
    assert len(facilitator.settlements_for(tx.message_hash)) == 1, facilitator.state()
    # and once more: the settled pass, no new settlement
    third = purchase(envoy, "/api/data?tier=1h", header)
    assert third.status == 200 and third.headers["access-pass"] == token, third
    assert len(facilitator.settlements_for(tx.message_hash)) == 1
    assert_recovered(envoy, new_buyer)


# --------------------------------------------------------------------------- /supported (§9.1)


def test_without_a_fee_payer_requests_get_503_then_the_challenge_once_the_facilitator_is_back(
        envoys, facilitator, new_buyer):
    facilitator.fault("all", "refuse")
    try:
        envoy = envoys.start("no-supported")
        for _ in range(3):
            resp = envoy.get("/api/data")
            assert resp.status == 503, resp
            assert resp.headers.get("retry-after"), resp
            assert "payment-required" not in resp.headers, resp
            assert_cors(resp)
            assert resp.elapsed < 2.0 + 1.5, resp.elapsed  # bounded by facilitatorTimeoutMs
    finally:
        facilitator.clear_faults()

    def challenge_ok():
        r = envoy.get("/api/data")
        assert r.status in (402, 503), r
        return r if r.status == 402 else None

    resp = wait_until(challenge_ok, 45, interval=0.5, what="a challenge once /supported answers again")
    required, _ = assert_challenge(resp)
    assert required["accepts"][0]["extra"]["feePayer"] == FEE_PAYER
    fresh = new_buyer()
    bought, _, _ = buy(envoy, fresh, PURCHASE)
    assert_purchase_ok(bought, fresh, "5m", 300, "5 minutes")


def test_a_broken_supported_answer_is_never_a_402_without_fee_payer(envoys, facilitator):
    facilitator.fault("supported", "garbage")
    try:
        envoy = envoys.start("garbage-supported")
        resp = envoy.get("/api/data")
        assert resp.status == 503 and resp.headers.get("retry-after"), resp
    finally:
        facilitator.clear_faults()
    resp = wait_until(lambda: (lambda r: r if r.status == 402 else None)(envoy.get("/api/data")), 45, interval=0.5,
                      what="a challenge once /supported answers again")
    assert_challenge(resp)


def test_a_pinned_fee_payer_needs_no_supported_call(envoys, facilitator, new_buyer):
    facilitator.fault("supported", "status", status=500)
    try:
        envoy = envoys.start("pinned-fee-payer", feePayer=FEE_PAYER)
        required, _ = assert_challenge(envoy.get("/api/data"))
        assert required["accepts"][0]["extra"]["feePayer"] == FEE_PAYER
        fresh = new_buyer()
        bought, _, _ = buy(envoy, fresh, PURCHASE)
        assert_purchase_ok(bought, fresh, "5m", 300, "5 minutes")
    finally:
        facilitator.clear_faults()

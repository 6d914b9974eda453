"""payment-identifier (docs/behaviour.md §17.5) against the real Envoy and the test facilitator:
every 402 declares it; payments carrying the same id for the same request are answered once and
settled once. The payloads are built by hand as the official client leaves them
(`appendPaymentIdentifierToExtensions` of `@x402/extensions` 2.27.0: the id at
`extensions["payment-identifier"].info.id`). Every test checks the facilitator's own ledger."""

import hashlib
import threading
import time

import pytest

import x402pay as xp
from attacks import Ledger, json_reason
from harness import EXTERNAL, EXTERNAL_SKIP
from helpers import (PAYMENT_IDENTIFIER_DECLARATION as DECLARATION, PRICES, assert_challenge, assert_payment_error,
                     assert_purchase_ok, get_challenge, purchase)

pytestmark = pytest.mark.skipif(EXTERNAL, reason=EXTERNAL_SKIP)


def payment_id(buyer, n=0):
    """An id as generatePaymentId() makes them (`pay_` and 32 hex), unique per test."""
    return "pay_" + hashlib.sha256(f"{buyer.label}#{n}".encode()).hexdigest()[:32]


def pay_with_id(envoy, buyer, path, pid):
    """A fresh payment (its own transaction) for `path`'s challenge, carrying `pid`."""
    required = get_challenge(envoy, path)
    payload, tx = buyer.pay_payload(required)
    extensions = dict(required["extensions"])
    extensions["payment-identifier"] = {**extensions["payment-identifier"],
                                        "info": {"required": False, "id": pid}}
    payload["extensions"] = extensions
    return xp.b64_json(payload), tx


def test_every_402_declares_payment_identifier_as_the_official_server_does(envoy):
    for path in ("/api/data", "/api/data?tier=1h"):
        required = get_challenge(envoy, path)
        assert required["extensions"]["payment-identifier"] == DECLARATION, required
    # A refusal carries the same challenge headers.
    refused = purchase(envoy, "/api/data", "bm90IGpzb24=")
    required, _ = assert_challenge(refused)
    assert required["extensions"]["payment-identifier"] == DECLARATION


def test_two_payments_with_one_id_for_one_paid_request_are_forwarded_with_one_pass_and_settled_once(
        envoy, facilitator, upstream, buyer):
    path = "/api/data?report=daily"
    pid = payment_id(buyer)
    first_header, first_tx = pay_with_id(envoy, buyer, path, pid)
    second_header, second_tx = pay_with_id(envoy, buyer, path, pid)
    assert first_tx.message_hash != second_tx.message_hash
    ledger = Ledger(facilitator)
    first = envoy.get(path, [("PAYMENT-SIGNATURE", first_header)])
    second = envoy.get(path, [("PAYMENT-SIGNATURE", second_header)])
    assert first.status == 200 and second.status == 200, (first, second)
    assert second.headers["access-pass"] == first.headers["access-pass"]
    assert second.headers["payment-response"] == first.headers["payment-response"]
    assert len([r for r in upstream.requests if r["path"] == path]) == 2
    ledger.assert_charged({first_tx.message_hash: PRICES["5m"]})
    assert facilitator.settlements_for(second_tx.message_hash) == []


def test_two_payments_with_one_id_for_one_purchase_get_one_pass(envoy, facilitator, buyer):
    path = "/api/data?tier=1h"
    pid = payment_id(buyer)
    first_header, first_tx = pay_with_id(envoy, buyer, path, pid)
    second_header, second_tx = pay_with_id(envoy, buyer, path, pid)
    ledger = Ledger(facilitator)
    first = purchase(envoy, path, first_header)
    token, _ = assert_purchase_ok(first, buyer, "1h", 3600, "1 hour")
    second = purchase(envoy, path, second_header)
    assert second.status == 200 and second.body == first.body and second.headers["access-pass"] == token, second
    ledger.assert_charged({first_tx.message_hash: PRICES["1h"]})


def test_one_id_for_another_request_is_409_payment_identifier_conflict(envoy, facilitator, buyer):
    pid = payment_id(buyer)
    first_header, first_tx = pay_with_id(envoy, buyer, "/api/data?tier=1h", pid)
    ledger = Ledger(facilitator)
    assert_purchase_ok(purchase(envoy, "/api/data?tier=1h", first_header), buyer, "1h", 3600, "1 hour")
    for path in ("/api/other?tier=1h", "/api/data?tier=1h&x=1"):
        header, _ = pay_with_id(envoy, buyer, path, pid)
        resp = purchase(envoy, path, header)
        assert resp.status == 409 and json_reason(resp) == "payment_identifier_conflict", resp
    # Another method is another request too (the payment sent first was a POST).
    header, _ = pay_with_id(envoy, buyer, "/api/data?tier=1h", pid)
    resp = purchase(envoy, "/api/data?tier=1h", header, method="PUT")
    assert resp.status == 409 and json_reason(resp) == "payment_identifier_conflict", resp
    ledger.assert_charged({first_tx.message_hash: PRICES["1h"]})


def test_while_the_first_payment_of_an_id_is_in_flight_another_gets_409_then_its_outcome(
        envoy, facilitator, buyer):
    path = "/api/data?tier=5m"
    pid = payment_id(buyer)
    first_header, first_tx = pay_with_id(envoy, buyer, path, pid)
    second_header, second_tx = pay_with_id(envoy, buyer, path, pid)
    ledger = Ledger(facilitator)
    facilitator.fault("verify", "slow", delay_ms=1500, count=1)
    results = {}
    slow = threading.Thread(target=lambda: results.setdefault("first", purchase(envoy, path, first_header)))
    try:
        slow.start()
        time.sleep(0.5)
        busy = purchase(envoy, path, second_header)
        slow.join(timeout=10)
    finally:
        facilitator.clear_faults()
    assert busy.status == 409 and json_reason(busy) == "payment_in_progress", busy
    assert busy.headers.get("retry-after"), busy
    token, _ = assert_purchase_ok(results["first"], buyer, "5m", 300, "5 minutes")
    after = purchase(envoy, path, second_header)
    assert after.status == 200 and after.headers["access-pass"] == token, after
    ledger.assert_charged({first_tx.message_hash: PRICES["5m"]})


def test_a_refused_first_payment_lets_its_id_go_and_the_next_payment_settles(envoy, facilitator, buyer):
    path = "/api/data?tier=5m"
    pid = payment_id(buyer)
    first_header, first_tx = pay_with_id(envoy, buyer, path, pid)
    second_header, second_tx = pay_with_id(envoy, buyer, path, pid)
    ledger = Ledger(facilitator)
    facilitator.fault("settle", "refused_400", count=1)
    try:
        refused = purchase(envoy, path, first_header)
    finally:
        facilitator.clear_faults()
    assert refused.status == 402 and json_reason(refused) == "insufficient_funds", refused
    ledger.assert_nothing_charged()
    assert_purchase_ok(purchase(envoy, path, second_header), buyer, "5m", 300, "5 minutes")
    ledger.assert_charged({second_tx.message_hash: PRICES["5m"]})


def test_a_malformed_id_is_refused_before_any_callout(envoy, facilitator, buyer):
    for bad in ("too-short", "pay_not allowed!chars", "x" * 129):
        header, _ = pay_with_id(envoy, buyer, "/api/data?tier=5m", bad)
        ledger = Ledger(facilitator)
        assert_payment_error(purchase(envoy, "/api/data?tier=5m", header), "invalid_payment_identifier")
        ledger.assert_nothing_charged(no_callout=True)

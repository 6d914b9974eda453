"""Legacy x402 v1 buyers (docs/behaviour.md §20): the 402 body is a v1 PaymentRequired, a v1 payment
comes in `X-PAYMENT`, is verified and settled with `x402Version: 1` bodies, and the answer carries
`X-PAYMENT-RESPONSE` and `ACCESS-PASS`. Against the real Envoy, the test facilitator and the demo
upstream; money is checked from the facilitator's own ledger (`/state`), which records the x402
version each settlement was made in. The refusals (a v1 payload in `PAYMENT-SIGNATURE`, a v2 payload
in `X-PAYMENT`, a v1 network name for another network) are in test_adversarial.py."""

import time

import pytest

from attacks import Counters, Ledger, upstream_header_values
from harness import EXTERNAL, EXTERNAL_SKIP, NETWORK
from helpers import (PRICES, V1_NETWORK, assert_cors, decode_jwt, decode_std_b64_json, expose_set, v1_payment)

pytestmark = pytest.mark.skipif(EXTERNAL, reason=EXTERNAL_SKIP)


def challenge_body(envoy, path):
    """The JSON body of `path`'s 402, as a v1 client reads it."""
    resp = envoy.get(path)
    assert resp.status == 402, resp
    body = resp.json()
    assert body["x402Version"] == 1 and body["error"], body
    return body


def assert_v1_settlement(resp, buyer, facilitator, tx):
    """`X-PAYMENT-RESPONSE` is the v1 settle answer (network by its v1 name), `PAYMENT-RESPONSE` is
    absent, and the facilitator settled this transaction once, in v1. Returns the pass's claims."""
    assert "payment-response" not in resp.headers, resp
    settle, _ = decode_std_b64_json(resp.headers["x-payment-response"])
    settled = facilitator.settlements_for(tx.message_hash)
    assert len(settled) == 1 and settled[0]["x402Version"] == 1, settled
    assert settle == {"success": True, "transaction": settled[0]["transaction"], "network": V1_NETWORK,
                      "payer": buyer.address}, settle
    assert_cors(resp)
    assert "x-payment-response" in expose_set(resp), resp
    _, claims, _ = decode_jwt(resp.headers["access-pass"])
    assert claims["payer"] == buyer.address and claims["network"] == NETWORK, claims
    assert abs(claims["iat"] - time.time()) < 30, claims
    return claims


def test_the_402_body_is_a_v1_payment_required_beside_the_part_one_members(envoy):
    resp = envoy.get("/api/data?city=Porto", {"Host": "api.example.com"})
    header, _ = decode_std_b64_json(resp.headers["payment-required"])
    body = resp.json()
    assert header["x402Version"] == 2 and header["accepts"][0]["network"] == NETWORK, header
    assert body["x402Version"] == 1 and body["error"] == "Access pass required", body
    [offer] = body["accepts"]
    assert offer["network"] == V1_NETWORK and offer["resource"] == "http://api.example.com/api/data?city=Porto"
    for member in ("scheme", "maxAmountRequired", "payTo", "maxTimeoutSeconds", "asset", "extra"):
        assert offer[member] == header["accepts"][0][member], member
    assert offer["description"] == header["resource"]["description"], offer
    assert offer["mimeType"] == "application/json", offer
    assert body["message"] and body["accessPass"]["tiers"] and body["resource"] == header["resource"], body


def test_a_v1_buyer_pays_with_x_payment_and_gets_the_data_charged_once(envoy, facilitator, upstream, buyer):
    path = "/api/data?city=Lisbon"
    header, tx = v1_payment(buyer, challenge_body(envoy, path))
    ledger = Ledger(facilitator)
    counters = Counters(envoy)
    resp = envoy.get(path, [("X-PAYMENT", header)])
    assert resp.status == 200, resp
    echo = resp.json()
    assert echo["upstream"] == "demo" and echo["path"] == path, echo
    claims = assert_v1_settlement(resp, buyer, facilitator, tx)
    assert claims["tier"] == "5m" and claims["duration"] == 300, claims
    assert upstream_header_values(echo, "x-payment") == [], "the upstream saw the payment"
    assert upstream_header_values(echo, "x-access-pass-payer") == [buyer.address], echo
    ledger.assert_charged({tx.message_hash: PRICES["5m"]})
    assert counters.delta("paid_requests_forwarded") == 1
    # The pass works afterwards: no callout, no charge.
    ledger = Ledger(facilitator)
    again = envoy.get(path, {"Authorization": "Bearer " + resp.headers["access-pass"]})
    assert again.status == 200, again
    ledger.assert_nothing_charged(no_callout=True)


def test_the_same_x_payment_again_is_forwarded_again_with_the_same_pass_and_never_settled_twice(
        envoy, facilitator, buyer):
    path = "/api/data?v1=replay"
    header, tx = v1_payment(buyer, challenge_body(envoy, path))
    ledger = Ledger(facilitator)
    first = envoy.get(path, [("X-PAYMENT", header)])
    assert first.status == 200, first
    for _ in range(3):  # over both workers
        again = envoy.get(path, [("X-PAYMENT", header)])
        assert again.status == 200, again
        assert again.headers["access-pass"] == first.headers["access-pass"]
        assert again.headers["x-payment-response"] == first.headers["x-payment-response"]
    ledger.assert_charged({tx.message_hash: PRICES["5m"]})


def test_a_v1_payment_naming_its_pass_is_a_purchase_answered_by_the_filter(envoy, facilitator, upstream, buyer):
    path = "/api/data?tier=1h"
    body = challenge_body(envoy, path)
    assert body["accepts"][0]["maxAmountRequired"] == str(PRICES["1h"]), body
    header, tx = v1_payment(buyer, body)
    ledger = Ledger(facilitator)
    before = upstream.count()
    resp = envoy.post(path, [("X-PAYMENT", header)])
    assert resp.status == 200, resp
    assert resp.json()["accessPass"]["tier"] == "1h", resp
    claims = assert_v1_settlement(resp, buyer, facilitator, tx)
    assert claims["tier"] == "1h" and claims["duration"] == 3600, claims
    assert upstream.count() == before, "a purchase never reaches the upstream"
    ledger.assert_charged({tx.message_hash: PRICES["1h"]})


def test_both_payment_headers_settle_only_payment_signature_and_the_upstream_sees_neither(
        envoy, facilitator, buyer):
    """docs/behaviour.md §20: `PAYMENT-SIGNATURE` (v2) wins; the v1 payment beside it is never charged."""
    path = "/api/data?v1=both"
    resp = envoy.get(path)
    required, _ = decode_std_b64_json(resp.headers["payment-required"])
    v2_header, v2_tx = buyer.pay(required)
    v1_header, _ = v1_payment(buyer, resp.json())
    ledger = Ledger(facilitator)
    paid = envoy.get(path, [("X-PAYMENT", v1_header), ("PAYMENT-SIGNATURE", v2_header)])
    assert paid.status == 200, paid
    assert "payment-response" in paid.headers and "x-payment-response" not in paid.headers, paid
    echo = paid.json()
    assert upstream_header_values(echo, "x-payment") == [] and upstream_header_values(echo, "payment-signature") == []
    ledger.assert_charged({v2_tx.message_hash: PRICES["5m"]})


def test_a_browser_may_send_x_payment_after_its_preflight(envoy):
    resp = envoy.request("OPTIONS", "/api/data", {"Origin": "https://app.example", "Access-Control-Request-Method": "GET",
                                                  "Access-Control-Request-Headers": "x-payment"})
    assert resp.status == 204, resp
    allowed = {h.strip().lower() for h in resp.headers.get("access-control-allow-headers", "").split(",")}
    assert {"x-payment", "payment-signature", "access-control-expose-headers"} <= allowed, resp

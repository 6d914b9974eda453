"""Buying a pass (SPEC §6), using it (§8), binding the pass to the amount paid (§6.2) and the local
checks that keep garbage away from the facilitator (§6.1, §6.3)."""

import base64
import json
import time

import pytest

import x402pay as xp
from harness import ASSET, MERCHANT, NETWORK, SECRET, query
from helpers import (assert_challenge, assert_cors, assert_payment_error, assert_purchase_ok, buy, get_challenge,
                     hs256, pass_claims, purchase)


def upstream_saw_payment(upstream, since: int) -> bool:
    return any(k == "payment-signature" for r in upstream.requests[since:] for k, _ in r["headers"])


def test_buying_a_1h_pass_is_answered_by_the_filter_and_never_reaches_the_upstream(envoy, facilitator, upstream, buyer):
    before_up, before = upstream.count(), facilitator.counts()
    resp, tx, _ = buy(envoy, buyer, "/api/data?tier=1h")
    token, claims = assert_purchase_ok(resp, buyer, "1h", 3600, "1 hour")
    assert claims["exp"] - claims["iat"] == 3600
    # Neither the challenge GET nor the purchase POST reaches the upstream.
    assert upstream.count() == before_up, upstream.requests[before_up:]
    assert not upstream_saw_payment(upstream, before_up)
    after = facilitator.counts()
    assert after["verify"] == before["verify"] + 1 and after["settle"] == before["settle"] + 1, after
    settled = facilitator.settlements_for(tx.message_hash)
    assert len(settled) == 1, facilitator.state()
    assert settled[0]["amount"] == "500000" and settled[0]["payTo"] == MERCHANT and settled[0]["asset"] == ASSET
    assert settled[0]["payer"] == buyer.address
    receipt = json.loads(base64.b64decode(resp.headers["payment-response"]))
    assert receipt["transaction"] == settled[0]["transaction"]


def test_a_pass_unlocks_the_api_with_claim_headers_and_without_authorization(envoy, facilitator, upstream, buyer):
    resp, _, _ = buy(envoy, buyer, "/api/data?tier=1h")
    token, claims = assert_purchase_ok(resp, buyer, "1h", 3600, "1 hour")
    before = facilitator.counts()
    used = envoy.get("/api/data?x=1", {"Authorization": f"Bearer {token}", "x-access-pass-tier": "24h",
                                       "X-Access-Pass-Payer": "someone-else"})
    assert used.status == 200, used
    echo = used.json()
    assert echo["upstream"] == "demo" and echo["path"] == "/api/data?x=1"
    headers = echo["headers"]
    names = [k for k, _ in headers]
    assert "authorization" not in names, headers
    assert [v for k, v in headers if k == "x-access-pass-tier"] == ["1h"], headers
    assert [v for k, v in headers if k == "x-access-pass-payer"] == [buyer.address], headers
    assert [v for k, v in headers if k == "x-access-pass-expires"] == [str(claims["exp"])], headers
    assert [v for k, v in headers if k == "x-access-pass-network"] == [NETWORK], headers
    assert_cors(used)
    # Checked locally: no callout.
    assert facilitator.counts()["verify"] == before["verify"] and facilitator.counts()["settle"] == before["settle"]


def test_bearer_scheme_is_case_insensitive_and_tolerates_several_spaces(envoy, buyer):
    resp, _, _ = buy(envoy, buyer, "/api/data?tier=5m")
    token, _ = assert_purchase_ok(resp, buyer, "5m", 300, "5 minutes")
    for value in (f"bearer {token}", f"BEARER   {token}", f"Bearer {token}"):
        used = envoy.get("/api/x", {"Authorization": value})
        assert used.status == 200, (value, used)


def test_a_valid_pass_wins_over_a_payment_so_nobody_pays_twice(envoy, facilitator, upstream, buyer):
    resp, _, _ = buy(envoy, buyer, "/api/data?tier=5m")
    token, _ = assert_purchase_ok(resp, buyer, "5m", 300, "5 minutes")
    required = get_challenge(envoy, "/api/data?tier=24h")
    header, _ = buyer.pay(required)
    before = facilitator.counts()
    used = envoy.post("/api/data?tier=24h", {"Authorization": f"Bearer {token}", "PAYMENT-SIGNATURE": header})
    assert used.status == 200 and used.json()["upstream"] == "demo", used
    after = facilitator.counts()
    assert (after["verify"], after["settle"]) == (before["verify"], before["settle"])


@pytest.mark.parametrize("params, price, tier, seconds, label", [
    # The default pass, named (without tier or duration a payment is a paid request: test_pay_and_serve.py).
    ({"tier": "5m"}, 50000, "5m", 300, "5 minutes"),
    ({"tier": "24h"}, 2000000, "24h", 86400, "1 day"),
    ({"duration": "7200"}, 1000000, "custom", 7200, "2 hours"),
    ({"duration": "5400"}, 750000, "custom", 5400, "90 minutes"),
], ids=["5m", "24h", "duration-7200", "duration-5400"])
def test_each_kind_of_pass_can_be_bought(envoy, buyer, params, price, tier, seconds, label):
    path = query("/api/data", **params)
    required = get_challenge(envoy, path)
    assert required["accepts"][0]["amount"] == str(price)
    header, _ = buyer.pay(required)
    token, claims = assert_purchase_ok(purchase(envoy, path, header), buyer, tier, seconds, label)
    assert envoy.get("/api/data", {"Authorization": f"Bearer {token}"}).status == 200


def test_a_payment_on_a_get_request_also_buys_the_pass(envoy, upstream, buyer):
    required = get_challenge(envoy, "/api/data?tier=1h")
    header, _ = buyer.pay(required)
    before = upstream.count()
    resp = purchase(envoy, "/api/data?tier=1h", header, method="GET")
    assert_purchase_ok(resp, buyer, "1h", 3600, "1 hour")
    assert upstream.count() == before


def test_an_expired_pass_sent_with_a_payment_does_not_block_the_purchase(envoy, buyer):
    expired = hs256(pass_claims(buyer.address, iat=int(time.time()) - 7200), SECRET)
    required = get_challenge(envoy, "/api/data?tier=5m")
    header, _ = buyer.pay(required)
    resp = purchase(envoy, "/api/data?tier=5m", header, [("Authorization", f"Bearer {expired}")])
    assert_purchase_ok(resp, buyer, "5m", 300, "5 minutes")


# --------------------------------------------------------------------------- binding (§6.2)


def test_paying_the_5m_price_for_the_24h_tier_never_yields_a_24h_pass(envoy, facilitator, buyer):
    # The default pass is the last candidate of every request (§5.1): a 5m payment posted to
    # ?tier=24h buys exactly the 5m pass it paid for, and is settled at the 5m price.
    cheap = get_challenge(envoy, "/api/data")
    header, tx = buyer.pay(cheap)
    resp = purchase(envoy, "/api/data?tier=24h", header)
    _, claims = assert_purchase_ok(resp, buyer, "5m", 300, "5 minutes")
    assert claims["exp"] - claims["iat"] == 300
    assert [s["amount"] for s in facilitator.settlements_for(tx.message_hash)] == ["50000"]


def test_paying_a_price_no_candidate_has_is_refused_without_calling_the_facilitator(envoy, facilitator, buyer):
    one_hour = get_challenge(envoy, "/api/data?tier=1h")  # 500000
    header, _ = buyer.pay(one_hour)
    before = facilitator.counts()
    resp = purchase(envoy, "/api/data?tier=24h", header)  # candidates: 24h (2000000), default (50000)
    assert_payment_error(resp, "amount_mismatch")
    after = facilitator.counts()
    assert (after["verify"], after["settle"]) == (before["verify"], before["settle"])


def test_a_cheap_payment_for_a_ten_year_duration_never_buys_more_than_was_paid(envoy, buyer):
    cheap = get_challenge(envoy, "/api/data")
    header, _ = buyer.pay(cheap)
    resp = purchase(envoy, "/api/data?duration=315360000", header)
    # 315360000 s is above maxDurationSeconds: no candidate; the default pass is what was paid.
    _, claims = assert_purchase_ok(resp, buyer, "5m", 300, "5 minutes")
    assert claims["exp"] - claims["iat"] == 300


def test_react_double_tier_paying_the_24h_price_gets_the_24h_pass(envoy, buyer):
    required = get_challenge(envoy, "/api/data?tier=24h")
    header, _ = buyer.pay(required)
    resp = purchase(envoy, "/api/data?tier=24h&tier=5m", header)
    assert_purchase_ok(resp, buyer, "24h", 86400, "1 day")


def test_react_double_tier_paying_the_5m_price_gets_the_5m_pass(envoy, buyer):
    required = get_challenge(envoy, "/api/data?tier=5m")
    header, _ = buyer.pay(required)
    resp = purchase(envoy, "/api/data?tier=24h&tier=5m", header)
    assert_purchase_ok(resp, buyer, "5m", 300, "5 minutes")


def test_the_node_client_flow_pays_the_default_price_and_posts_its_tier(envoy, buyer):
    # wrapFetch pays the unqualified 402 and then POSTs ?tier=<preferTier>: with the default
    # tier preferred, that is a plain purchase of the default pass.
    required = get_challenge(envoy, "/api/data")
    header, _ = buyer.pay(required)
    assert_purchase_ok(purchase(envoy, "/api/data?tier=5m", header), buyer, "5m", 300, "5 minutes")


def test_the_facilitator_gets_the_servers_requirements_not_the_clients_echo(envoy, facilitator, buyer):
    required = get_challenge(envoy, "/api/data?tier=1h")
    accepted = json.loads(json.dumps(required["accepts"][0]))
    accepted["maxTimeoutSeconds"] = 999999
    accepted["extra"]["memo"] = "client-says-so"
    header, tx = buyer.pay(required, accepted=accepted)
    resp = purchase(envoy, "/api/data?tier=1h", header)
    # The echo's extras are not the server's terms: the facilitator is asked with the server's
    # requirements (no memo to match, so the test facilitator accepts), settling the 1h price.
    assert_purchase_ok(resp, buyer, "1h", 3600, "1 hour")
    assert [s["amount"] for s in facilitator.settlements_for(tx.message_hash)] == ["500000"]


# --------------------------------------------------------------------------- local checks (§6.1-6.3)


@pytest.mark.parametrize("field, value", [
    ("payTo", "AKnL4NNf3DGWZJS6cPknBuEGnVsV4A4m5tgebLHaRSZ9"),
    ("asset", xp.MAINNET_USDC),
    ("network", xp.MAINNET),
    ("scheme", "upto"),
])
def test_a_payment_for_other_terms_is_refused_without_calling_the_facilitator(envoy, facilitator, buyer, field, value):
    required = get_challenge(envoy, "/api/data")
    accepted = dict(required["accepts"][0], **{field: value})
    header, _ = buyer.pay(required, accepted=accepted)
    before = facilitator.counts()
    resp = purchase(envoy, "/api/data", header)
    assert_challenge(resp)
    body = resp.json()
    assert body["error"] == "Payment verification failed" and isinstance(body["reason"], str) and body["reason"], body
    after = facilitator.counts()
    assert (after["verify"], after["settle"]) == (before["verify"], before["settle"])


def _valid_payload(envoy, buyer):
    required = get_challenge(envoy, "/api/data")
    payload, _ = buyer.pay_payload(required)
    return payload


@pytest.mark.parametrize("make_header", [
    pytest.param(lambda p: "!!!not base64!!!", id="not-base64"),
    pytest.param(lambda p: "garbage", id="garbage"),
    pytest.param(lambda p: base64.b64encode(b"hello, not json").decode(), id="not-json"),
    pytest.param(lambda p: base64.b64encode(b"[1,2,3]").decode(), id="json-array"),
    pytest.param(lambda p: base64.b64encode(b'{"x402Version":2}').decode(), id="wrong-shape"),
    pytest.param(lambda p: xp.b64_json(dict(p, x402Version=1)), id="x402Version-1"),
    pytest.param(lambda p: xp.b64_json(dict(p, payload={})), id="no-transaction"),
    pytest.param(lambda p: xp.b64_json(dict(p, resource=dict(p["resource"], description="A" * 17000))),
                 id="over-16KiB"),
])
def test_a_malformed_payment_header_is_refused_as_invalid_payment_header(envoy, facilitator, buyer, make_header):
    header = make_header(_valid_payload(envoy, buyer))
    before = facilitator.counts()
    resp = purchase(envoy, "/api/data", header)
    assert_payment_error(resp, "invalid_payment_header")
    after = facilitator.counts()
    assert (after["verify"], after["settle"]) == (before["verify"], before["settle"])


@pytest.mark.parametrize("options", [
    pytest.param({"corrupt_signature": True}, id="bad-buyer-signature"),
    pytest.param({"lookup_tables": [(b"\x09" * 32, [0], [])]}, id="address-lookup-table"),
    pytest.param({"amount": 49999}, id="tx-amount-below-price"),
    pytest.param({"amount": 50001}, id="tx-amount-above-price"),
    pytest.param({"transfer_mint": xp.MAINNET_USDC}, id="wrong-mint"),
    pytest.param({"instructions": [xp.set_compute_unit_limit(20000)]}, id="no-transfer"),
])
def test_a_bad_transaction_is_refused_as_invalid_transaction_without_calling_the_facilitator(
        envoy, facilitator, buyer, options):
    required = get_challenge(envoy, "/api/data")
    header, _ = buyer.pay(required, **options)
    before = facilitator.counts()
    resp = purchase(envoy, "/api/data", header)
    assert_payment_error(resp, "invalid_transaction")
    after = facilitator.counts()
    assert (after["verify"], after["settle"]) == (before["verify"], before["settle"])


def test_an_undecodable_transaction_is_refused_as_invalid_transaction(envoy, facilitator, buyer):
    payload = _valid_payload(envoy, buyer)
    payload["payload"]["transaction"] = "AAAA"
    before = facilitator.counts()
    resp = purchase(envoy, "/api/data", xp.b64_json(payload))
    assert_payment_error(resp, "invalid_transaction")
    assert facilitator.counts()["verify"] == before["verify"]


def test_a_payment_the_facilitator_rejects_gets_its_reason(envoy, facilitator, buyer):
    # Locally fine (amount, mint, signature), but the destination is not the merchant's token
    # account: only the facilitator can tell.
    required = get_challenge(envoy, "/api/data")
    stranger = xp.derived_keypair("stranger").address
    header, tx = buyer.pay(required, dest_owner=stranger)
    before = facilitator.counts()
    resp = purchase(envoy, "/api/data", header)
    assert_payment_error(resp, "invalid_exact_svm_payload_recipient_mismatch")
    after = facilitator.counts()
    assert after["verify"] == before["verify"] + 1 and after["settle"] == before["settle"], after
    assert facilitator.settlements_for(tx.message_hash) == []


def test_a_purchase_with_a_body_never_reaches_the_upstream_while_the_facilitator_answers(
        envoy, facilitator, upstream, buyer):
    # The filter pauses the request while /verify and /settle are in flight; a request body
    # arriving meanwhile must not resume it (Envoy would then send the headers upstream).
    required = get_challenge(envoy, "/api/data?tier=1h")
    header, tx = buyer.pay(required)
    facilitator.fault("verify", "slow", delay_ms=400, count=1)
    before_up = upstream.count()
    resp = envoy.post("/api/data?tier=1h", {"PAYMENT-SIGNATURE": header, "Content-Type": "application/json"},
                      body=b'{"query": "' + b"x" * 4096 + b'"}')
    assert_purchase_ok(resp, buyer, "1h", 3600, "1 hour")
    assert upstream.count() == before_up, upstream.requests[before_up:]
    assert len(facilitator.settlements_for(tx.message_hash)) == 1

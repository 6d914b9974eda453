"""Coming back with Sign-In-With-X (docs/behaviour.md §16): a buyer who paid once signs a CAIP-122
message with the paying wallet and is served without paying again, on the seller's configured
origins only. Every test that involves money checks the test facilitator's own ledger."""

from __future__ import annotations

import json
import re
import time

import pytest

import siwx
import x402pay as xp
from attacks import Counters
from harness import NETWORK
from helpers import assert_challenge, assert_purchase_ok, decode_std_b64_json, get_challenge, purchase

ORIGIN = "https://api.siwx.test"
SECOND_ORIGIN = "http://shop.siwx.test:8080"
HERE = {"Host": "api.siwx.test", "X-Forwarded-Proto": "https"}
STATEMENT = "Sign in with the wallet that bought your pass"
MAX_AGE = 60


@pytest.fixture(scope="module")
def siwx_envoy(module_envoys):
    """Sells on the default test configuration, with SIWX for two origins; passes as short as 2 s."""
    return module_envoys.start(
        "siwx", minDurationSeconds=1,
        siwx={"origins": [ORIGIN, SECOND_ORIGIN], "maxAgeSeconds": MAX_AGE, "statement": STATEMENT})


def settled_by(facilitator, payer: str) -> list[dict]:
    return [s for s in facilitator.state()["settlements"] if s.get("payer") == payer]


def challenge_here(envoy, path: str = "/api/data", headers=HERE) -> dict:
    return get_challenge(envoy, path, list(headers.items()))


def buy_here(envoy, buyer, path: str = "/api/data?tier=1h", tier: str = "1h", seconds: int = 3600,
             label: str = "1 hour") -> dict:
    required = challenge_here(envoy, path)
    payment, _ = buyer.pay(required)
    resp = purchase(envoy, path, payment, list(HERE.items()))
    _, claims = assert_purchase_ok(resp, buyer, tier, seconds, label)
    return claims


def test_the_402_declares_sign_in_with_x_as_the_package_does_on_configured_origins(siwx_envoy):
    before = time.time()
    required = challenge_here(siwx_envoy, "/api/data?tier=1h")
    declared = siwx.declaration(required)
    info = declared["info"]
    assert list(info) == ["domain", "uri", "version", "nonce", "issuedAt", "resources", "statement"], info
    assert info["domain"] == "api.siwx.test"
    assert info["uri"] == "https://api.siwx.test/api/data?tier=1h"
    assert info["resources"] == [info["uri"]] and info["version"] == "1" and info["statement"] == STATEMENT
    assert re.fullmatch(r"[0-9a-f]{32,}", info["nonce"]), info
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", info["issuedAt"]), info
    assert before - 10 <= siwx.parse_iso(info["issuedAt"]) <= time.time() + 1, info
    assert declared["supportedChains"] == [{"chainId": NETWORK, "type": "ed25519"}]
    # The package's schema, member for member (tests/vectors/siwx/siwx.json).
    package = json.loads(siwx.VECTORS["declarations"][0]["json"])
    assert declared["schema"] == package["schema"] and list(declared) == list(package)
    # The second origin too, with its port.
    other = challenge_here(siwx_envoy, "/api/x", {"Host": "shop.siwx.test:8080"})
    assert siwx.declaration(other)["info"]["domain"] == "shop.siwx.test:8080"
    assert siwx.declaration(other)["info"]["uri"] == "http://shop.siwx.test:8080/api/x"


@pytest.mark.parametrize("headers", [
    {"Host": "evil.example", "X-Forwarded-Proto": "https"},
    {"Host": "api.siwx.test"},  # plain http: another origin
    {"Host": "api.siwx.test:8443", "X-Forwarded-Proto": "https"},
    {"Host": "shop.siwx.test", "X-Forwarded-Proto": "http"},  # the configured one has port 8080
])
def test_no_declaration_for_a_host_that_is_not_a_configured_origin(siwx_envoy, headers):
    required = challenge_here(siwx_envoy, "/api/data", headers)
    extensions = required.get("extensions", {})
    assert "sign-in-with-x" not in extensions, required
    assert "payment-identifier" in extensions, "declared in every 402 (docs/behaviour.md §17.5)"


def test_a_remembered_402_keeps_issued_at_within_ten_seconds(siwx_envoy):
    first = siwx.declaration(challenge_here(siwx_envoy, "/api/memo"))["info"]
    time.sleep(6)
    later = siwx.declaration(challenge_here(siwx_envoy, "/api/memo"))["info"]
    assert time.time() - siwx.parse_iso(later["issuedAt"]) <= 10, later
    assert later["nonce"] != first["nonce"], "a 402 older than the memo's few seconds is built afresh"


def test_a_refusal_402_declares_it_too(siwx_envoy):
    resp = siwx_envoy.post("/api/data", list(HERE.items()) + [("PAYMENT-SIGNATURE", "not base64 at all!")])
    required, _ = assert_challenge(resp)
    assert resp.json()["reason"], resp
    assert siwx.declaration(required)["info"]["domain"] == "api.siwx.test", required


def test_a_buyer_who_paid_comes_back_with_fresh_signatures_and_never_pays_again(siwx_envoy, facilitator, upstream,
                                                                                buyer):
    claims = buy_here(siwx_envoy, buyer)
    assert len(settled_by(facilitator, buyer.address)) == 1
    counters = Counters(siwx_envoy)
    seen = set()
    for i in range(3):
        required = challenge_here(siwx_envoy, f"/api/data?page={i}")
        header = siwx.sign_in(required, buyer.keypair)
        seen.add(header)
        resp = siwx_envoy.get(f"/api/data?page={i}", list(HERE.items()) + [("SIGN-IN-WITH-X", header),
                                                                           ("X-Access-Pass-Payer", "someone-else")])
        assert resp.status == 200, resp
        echo = resp.json()
        assert echo["upstream"] == "demo" and echo["path"] == f"/api/data?page={i}"
        headers = echo["headers"]
        assert "sign-in-with-x" not in [k for k, _ in headers], headers
        assert [v for k, v in headers if k == "x-access-pass-payer"] == [buyer.address], headers
        assert [v for k, v in headers if k == "x-access-pass-tier"] == ["1h"], headers
        assert [v for k, v in headers if k == "x-access-pass-expires"] == [str(claims["exp"])], headers
        assert resp.headers.get("access-control-allow-origin") == "*", resp
    assert len(seen) == 3, "each request signed afresh"
    assert counters.delta("siwx_accepted") == 3
    # The facilitator's own ledger: still the one settlement, for what the buyer bought.
    settled = settled_by(facilitator, buyer.address)
    assert len(settled) == 1 and settled[0]["amount"] == "500000", settled


def test_a_signed_in_buyer_who_also_sends_a_payment_is_not_charged(siwx_envoy, facilitator, buyer):
    buy_here(siwx_envoy, buyer)
    required = challenge_here(siwx_envoy, "/api/data?tier=24h")
    payment, _ = buyer.pay(required)
    header = siwx.sign_in(required, buyer.keypair)
    resp = siwx_envoy.get("/api/data?tier=24h", list(HERE.items()) + [("SIGN-IN-WITH-X", header),
                                                                      ("PAYMENT-SIGNATURE", payment)])
    assert resp.status == 200 and resp.json()["upstream"] == "demo", resp
    assert len(settled_by(facilitator, buyer.address)) == 1


def test_a_wallet_that_never_paid_gets_the_challenge_and_may_then_pay(siwx_envoy, facilitator, buyer):
    counters = Counters(siwx_envoy)
    required = challenge_here(siwx_envoy)
    resp = siwx_envoy.get("/api/data", list(HERE.items()) + [("SIGN-IN-WITH-X", siwx.sign_in(required, buyer.keypair))])
    required, _ = assert_challenge(resp)
    assert siwx.declaration(required), required
    assert counters.delta("siwx_rejected.no_entitlement") == 1
    assert settled_by(facilitator, buyer.address) == []
    # Paying with the signature still attached (what the official client does after a refused
    # sign-in): a paid request, settled once, forwarded with the pass and without either header.
    payment, _ = buyer.pay(required)
    header = siwx.sign_in(required, buyer.keypair)
    resp = purchase(siwx_envoy, "/api/data", payment, list(HERE.items()) + [("SIGN-IN-WITH-X", header)])
    assert resp.status == 200 and resp.headers.get("access-pass"), resp
    seen = [name for name, _ in json.loads(resp.body)["headers"]]
    assert "sign-in-with-x" not in seen and "payment-signature" not in seen, seen
    assert len(settled_by(facilitator, buyer.address)) == 1
    # Now entitled: a fresh sign-in wins over another payment sent with it, which is never charged.
    required = challenge_here(siwx_envoy, "/api/data?tier=5m")
    payment, _ = buyer.pay(required)
    header = siwx.sign_in(required, buyer.keypair)
    resp = purchase(siwx_envoy, "/api/data?tier=5m", payment, list(HERE.items()) + [("SIGN-IN-WITH-X", header)])
    assert resp.status == 200 and json.loads(resp.body)["upstream"] == "demo", resp
    assert counters.delta("siwx_accepted") == 1
    assert len(settled_by(facilitator, buyer.address)) == 1


def test_a_message_signed_for_another_site_replayed_here_with_that_sites_host_is_refused(siwx_envoy, facilitator,
                                                                                         buyer):
    """The buyer paid here, and signed in at shop.other.test: that signature, replayed to this
    Envoy with shop.other.test's own Host, must buy nothing here."""
    buy_here(siwx_envoy, buyer)
    counters = Counters(siwx_envoy)
    elsewhere = "https://shop.other.test"
    info = siwx.info_for(elsewhere, "/api/data", STATEMENT)
    header = siwx.encode(siwx.payload(info, NETWORK, buyer.keypair))
    for headers in ({"Host": "shop.other.test", "X-Forwarded-Proto": "https"}, HERE):
        resp = siwx_envoy.get("/api/data", list(headers.items()) + [("SIGN-IN-WITH-X", header)])
        assert_challenge(resp)
    assert counters.delta("siwx_rejected.domain") == 2
    assert counters.delta("siwx_accepted") == 0
    # Our domain with the other site's uri is refused too.
    info = siwx.info_for(ORIGIN, "/api/data", STATEMENT, uri=f"{elsewhere}/api/data")
    resp = siwx_envoy.get("/api/data", list(HERE.items()) + [("SIGN-IN-WITH-X", siwx.encode(siwx.payload(info, NETWORK, buyer.keypair)))])
    assert_challenge(resp)
    assert counters.delta("siwx_rejected.uri") == 1
    assert len(settled_by(facilitator, buyer.address)) == 1


def test_an_old_or_expired_message_gets_the_challenge(siwx_envoy, buyer):
    buy_here(siwx_envoy, buyer)
    counters = Counters(siwx_envoy)
    required = challenge_here(siwx_envoy)
    for changes, reason in [
        ({"issuedAt": siwx.iso_now(-MAX_AGE - 5)}, "issued_at"),
        ({"issuedAt": siwx.iso_now(+30)}, "issued_at"),
        ({"expirationTime": siwx.iso_now(-1)}, "expired"),
        ({"notBefore": siwx.iso_now(+30)}, "not_before"),
    ]:
        resp = siwx_envoy.get("/api/data", list(HERE.items()) + [("SIGN-IN-WITH-X", siwx.sign_in(required, buyer.keypair, **changes))])
        assert_challenge(resp)
        assert counters.delta(f"siwx_rejected.{reason}") >= 1, (changes, reason)
    # The same buyer, fresh: served.
    resp = siwx_envoy.get("/api/data", list(HERE.items()) + [("SIGN-IN-WITH-X", siwx.sign_in(required, buyer.keypair))])
    assert resp.status == 200, resp


def test_after_the_pass_expires_signing_in_gets_the_challenge(siwx_envoy, facilitator, buyer):
    claims = buy_here(siwx_envoy, buyer, "/api/data?duration=2", "custom", 2, "2 seconds")
    required = challenge_here(siwx_envoy)
    resp = siwx_envoy.get("/api/data", list(HERE.items()) + [("SIGN-IN-WITH-X", siwx.sign_in(required, buyer.keypair))])
    assert resp.status == 200, resp
    while time.time() <= claims["exp"] + 1:
        time.sleep(0.2)
    counters = Counters(siwx_envoy)
    required = challenge_here(siwx_envoy)
    resp = siwx_envoy.get("/api/data", list(HERE.items()) + [("SIGN-IN-WITH-X", siwx.sign_in(required, buyer.keypair))])
    assert_challenge(resp)
    assert counters.delta("siwx_rejected.no_entitlement") == 1
    assert len(settled_by(facilitator, buyer.address)) == 1


def test_the_entitlements_gauge_and_the_preflight(siwx_envoy, new_buyer):
    before = siwx_envoy.stats().get("wasmcustom.x402_access_pass.entitlements", 0)
    for _ in range(2):
        buy_here(siwx_envoy, new_buyer())
    assert siwx_envoy.stats()["wasmcustom.x402_access_pass.entitlements"] == before + 2
    resp = siwx_envoy.request("OPTIONS", "/api/data", {"Origin": "https://app.example",
                                                       "Access-Control-Request-Method": "GET",
                                                       "Access-Control-Request-Headers": "sign-in-with-x"})
    assert resp.status == 204, resp
    allowed = {h.strip().lower() for h in resp.headers.get("access-control-allow-headers", "").split(",")}
    assert "sign-in-with-x" in allowed, resp


def test_the_python_client_matches_the_package_vectors():
    """This file's client builds the package's message text and payload for the same info."""
    for case in siwx.VECTORS["cases"]:
        if case["expect"] != "ok":
            continue
        payload = case["payload"]
        info = {k: v for k, v in payload.items() if k not in ("address", "signature", "chainId", "type")}
        assert siwx.format_siws_message({**info, "chainId": payload["chainId"]}, payload["address"]) == case["message"]
    for m in siwx.VECTORS["messages"]:
        assert siwx.format_siws_message(m["info"], m["address"]) == m["message"], m["name"]
    decoded, _ = decode_std_b64_json(siwx.VECTORS["cases"][0]["header"])
    assert decoded == siwx.VECTORS["cases"][0]["payload"]
    # encodeSIWxHeader, byte for byte; and the payload this client signs for the same info and key.
    owner = xp.keypair_from_seed(bytes([siwx.VECTORS["keys"]["buyer"]["seed"]]) * 32)
    for case in siwx.VECTORS["cases"]:
        assert siwx.encode(case["payload"]) == case["header"], case["name"]
        if case["name"] in ("valid", "all-optional-fields"):
            payload = case["payload"]
            info = {k: v for k, v in payload.items() if k not in ("address", "signature", "chainId", "type")}
            assert siwx.payload(info, payload["chainId"], owner) == payload, case["name"]

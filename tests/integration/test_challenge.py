"""The 402 challenge (SPEC §4), pricing of what a request asks for (§5), and which requests the
filter touches at all (§3): bypass, unprotected paths, CORS preflight."""

import pytest

from harness import ASSET, FEE_PAYER, MERCHANT, NETWORK, query
from helpers import (EXPOSE, PAYMENT_IDENTIFIER_DECLARATION, TIERS_INFO, assert_challenge, decode_std_b64_json,
                     expected_offer, expose_set)


def test_a_request_without_pass_gets_the_challenge_decoded_field_by_field(envoy):
    resp = envoy.get("/api/data", {"Host": "api.example.com", "X-Forwarded-Proto": "https"})
    assert resp.status == 402, resp
    assert resp.headers.get("content-type", "").startswith("application/json"), resp
    assert resp.headers.get("cache-control") == "no-store", resp
    assert resp.headers.get("access-control-allow-origin") == "*", resp
    assert EXPOSE <= expose_set(resp), resp

    required, raw = decode_std_b64_json(resp.headers["payment-required"])
    assert required == {
        "x402Version": 2,
        "resource": {"url": "https://api.example.com/api/data", "description": "Access pass: 5 minutes",
                     "mimeType": "application/json"},
        "accepts": [expected_offer(50000)],
        "error": "Payment required",
        "extensions": {"payment-identifier": PAYMENT_IDENTIFIER_DECLARATION},
    }, raw
    offer = required["accepts"][0]
    assert offer["extra"]["feePayer"] == FEE_PAYER  # the facilitator's fee payer, from /supported
    assert offer["maxTimeoutSeconds"] == 60
    assert offer["payTo"] == MERCHANT and offer["asset"] == ASSET and offer["network"] == NETWORK

    tiers, _ = decode_std_b64_json(resp.headers["x-access-pass-tiers"])
    assert tiers == TIERS_INFO

    body = resp.json()
    assert body == {
        "error": "Access pass required",
        "message": "Purchase an access pass to unlock unlimited API access for a time window.",
        "accepts": required["accepts"],
        "resource": required["resource"],
        "accessPass": {
            "tiers": TIERS_INFO["tiers"],
            "ratePerHour": "0.50",
            "usage": "Add ?tier=<id> or ?duration=<seconds> to your payment request to choose a pass duration.",
        },
    }, body


def test_resource_url_uses_scheme_authority_and_full_path(envoy):
    resp = envoy.get("/api/v2/items?tier=1h&x=1", {"Host": "shop.test:8443"})
    required, _ = assert_challenge(resp)
    # No X-Forwarded-Proto from the client: Envoy's own scheme (plain HTTP here).
    assert required["resource"]["url"] == "http://shop.test:8443/api/v2/items?tier=1h&x=1"
    resp = envoy.get("/api/v2/items", {"Host": "shop.test", "X-Forwarded-Proto": "https"})
    required, _ = assert_challenge(resp)
    assert required["resource"]["url"] == "https://shop.test/api/v2/items"


def test_head_gets_the_challenge_headers_and_no_body(envoy):
    get = envoy.get("/api/data")
    head = envoy.request("HEAD", "/api/data")
    assert head.status == 402, head
    assert head.body == b""
    assert head.headers["payment-required"] == get.headers["payment-required"]
    assert head.headers["x-access-pass-tiers"] == get.headers["x-access-pass-tiers"]
    assert head.headers.get("cache-control") == "no-store"
    assert EXPOSE <= expose_set(head)


def test_a_remembered_challenge_is_the_same_and_never_another_requests(envoy):
    """Each worker remembers finished challenges by URL, flavour and fee payer
    (src/challenge_cache.rs): repeats are byte-identical, and a request differing in any
    of those gets its own."""
    first = envoy.get("/api/data?tier=1h", {"Host": "memo.test"})
    for _ in range(6):  # over both workers
        again = envoy.get("/api/data?tier=1h", {"Host": "memo.test"})
        assert (again.status, again.body) == (first.status, first.body), again
        assert again.headers["payment-required"] == first.headers["payment-required"]
    # A HEAD in between drops the body of its own answer only.
    assert envoy.request("HEAD", "/api/data?tier=1h", {"Host": "memo.test"}).body == b""
    assert envoy.get("/api/data?tier=1h", {"Host": "memo.test"}).body == first.body
    other_tier, _ = assert_challenge(envoy.get("/api/data?tier=24h", {"Host": "memo.test"}))
    assert other_tier["accepts"][0]["amount"] != decode_std_b64_json(first.headers["payment-required"])[0]["accepts"][0]["amount"]
    other_host, _ = assert_challenge(envoy.get("/api/data?tier=1h", {"Host": "other.test"}))
    assert other_host["resource"]["url"] == "http://other.test/api/data?tier=1h"
    html = envoy.get("/api/data?tier=1h", {"Host": "memo.test", "Accept": "text/html"})
    assert html.headers["content-type"].startswith("text/html") and html.body != first.body


def test_a_browser_gets_an_html_paywall_with_the_same_headers(envoy):
    json_resp = envoy.get("/api/data")
    html = envoy.get("/api/data", {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert html.status == 402, html
    assert html.headers["payment-required"] == json_resp.headers["payment-required"]
    assert html.headers["x-access-pass-tiers"] == json_resp.headers["x-access-pass-tiers"]
    assert html.headers.get("cache-control") == "no-store"
    assert EXPOSE <= expose_set(html)
    assert b"<html" in html.body.lower() or b"<!doctype html" in html.body.lower(), html


@pytest.mark.parametrize("params, amount, description", [
    ({}, 50000, "Access pass: 5 minutes"),
    ({"tier": "5m"}, 50000, "Access pass: 5 minutes"),
    ({"tier": "1h"}, 500000, "Access pass: 1 hour"),
    ({"tier": "24h"}, 2000000, "Access pass: 1 day"),
    ({"duration": "7200"}, 1000000, "Access pass: 2 hours"),
    ({"duration": "5400"}, 750000, "Access pass: 90 minutes"),
    ({"duration": "61"}, 8500, "Access pass: 61 seconds"),
    ({"duration": "86400"}, 12000000, "Access pass: 1 day"),
    ({"tier": "7d"}, 50000, "Access pass: 5 minutes"),             # unknown tier: not a candidate
    ({"tier": ["nope", "1h"]}, 500000, "Access pass: 1 hour"),     # next candidate
    ({"tier": "nope", "duration": "7200"}, 1000000, "Access pass: 2 hours"),
    ({"duration": "30"}, 50000, "Access pass: 5 minutes"),         # below minDurationSeconds
    ({"duration": "2592001"}, 50000, "Access pass: 5 minutes"),    # above maxDurationSeconds
    ({"duration": "1e3"}, 50000, "Access pass: 5 minutes"),        # not a plain integer
    ({"duration": "-3600"}, 50000, "Access pass: 5 minutes"),
    ({"tier": ["24h", "5m"]}, 2000000, "Access pass: 1 day"),   # the React hook's double tier
    ({"tier": "1h", "duration": "7200"}, 500000, "Access pass: 1 hour"),  # tiers before duration
], ids=lambda v: str(v))
def test_the_challenge_is_priced_for_the_pass_the_request_asks_for(envoy, params, amount, description):
    required, _ = assert_challenge(envoy.get(query("/api/data", **params)))
    assert required["accepts"] == [expected_offer(amount)]
    assert required["resource"]["description"] == description


def test_access_pass_info_is_the_same_for_every_request(envoy):
    values = {envoy.get(query("/api/data", **p)).headers["x-access-pass-tiers"]
              for p in ({}, {"tier": "24h"}, {"duration": "5400"})}
    assert len(values) == 1


def test_bypass_paths_reach_the_upstream_untouched(envoy, upstream):
    before = upstream.count()
    resp = envoy.get("/api/public/info", {"x-access-pass-tier": "24h"})
    assert resp.status == 200, resp
    echo = resp.json()
    assert echo["upstream"] == "demo" and echo["path"] == "/api/public/info"
    assert ["x-access-pass-tier", "24h"] in echo["headers"]  # the filter did not touch the request
    assert "payment-required" not in resp.headers
    assert upstream.count() == before + 1


def test_unprotected_paths_reach_the_upstream_untouched(envoy, upstream):
    resp = envoy.get("/health")
    assert resp.status == 200 and resp.json() == {"status": "ok"}, resp
    resp = envoy.post("/other/thing", {"Authorization": "Bearer not-a-pass"}, b"{}")
    assert resp.status == 200, resp
    assert ["authorization", "Bearer not-a-pass"] in resp.json()["headers"]
    assert "payment-required" not in resp.headers


def test_cors_preflight_gets_204_never_402(envoy, upstream):
    before = upstream.count()
    resp = envoy.request("OPTIONS", "/api/data", {
        "Origin": "https://app.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "payment-signature, authorization"})
    assert resp.status == 204, resp
    assert resp.headers.get("access-control-allow-origin") == "*", resp
    methods = {m.strip().upper() for m in resp.headers.get("access-control-allow-methods", "").split(",")}
    assert {"GET", "POST"} <= methods, resp
    allowed = {h.strip().lower() for h in resp.headers.get("access-control-allow-headers", "").split(",")}
    assert {"authorization", "payment-signature", "content-type"} <= allowed, resp
    assert int(resp.headers.get("access-control-max-age", "x")) > 0, resp
    assert "payment-required" not in resp.headers
    assert upstream.count() == before


def test_options_without_preflight_headers_is_a_normal_protected_request(envoy):
    resp = envoy.request("OPTIONS", "/api/data")
    assert_challenge(resp)

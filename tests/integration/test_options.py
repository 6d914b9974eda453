"""Plugin options beyond the defaults (docs/behaviour.md §2, §3, §7, §8): forwardAuthorization, claimHeaders,
audience, issuer, leewaySeconds, description, cors.allowOrigins, and key rings (rotation, EdDSA)."""

import base64
import hashlib
import hmac
import json
import time

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

import x402pay as xp
from helpers import (EXPOSE, assert_challenge, assert_purchase_ok, b64url, b64url_decode, buy, decode_jwt, expose_set,
                     hs256, pass_claims)

PAYER = xp.derived_keypair("options-payer").address
OPT_SECRET = "options-secret-0123456789abcdef0123456789"
ORIGIN = "https://app.example"


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def aud_claims(aud="api.example", iss="my-shop", **kw):
    claims = pass_claims(PAYER, iss=iss, **kw)
    if aud is not None:
        claims["aud"] = aud
    return claims


@pytest.fixture(scope="module")
def options_envoy(module_envoys):
    return module_envoys.start(
        "options", secret=OPT_SECRET, issuer="my-shop", audience="api.example", leewaySeconds=5,
        forwardAuthorization=True, description="Premium data",
        claimHeaders={"x-buyer": "payer", "x-pass-tier": "tier"})


@pytest.fixture
def cors_envoy(envoys):
    """cors.allowOrigins restricted (one Envoy per test: a crash must not spread to other tests)."""
    return envoys.start("cors", cors={"allowOrigins": [ORIGIN]})


def test_passes_carry_the_configured_issuer_and_audience_last(options_envoy, buyer):
    resp, _, _ = buy(options_envoy, buyer, "/api/data")
    assert resp.status == 200, resp
    header, claims, raw = decode_jwt(resp.headers["access-pass"])
    assert list(claims) == ["sub", "tier", "duration", "iat", "exp", "payer", "network", "iss", "aud"], raw
    assert claims["iss"] == "my-shop" and claims["aud"] == "api.example", claims
    assert hs256(raw, OPT_SECRET) == resp.headers["access-pass"]


def test_description_and_issuer_show_in_the_challenge(options_envoy):
    required, info = assert_challenge(options_envoy.get("/api/data"))
    assert required["resource"]["description"] == "Premium data"
    assert info["issuer"] == "my-shop"


def test_claim_headers_are_the_configured_ones_and_authorization_is_forwarded(options_envoy):
    token = hs256(aud_claims(), OPT_SECRET)
    resp = options_envoy.get("/api/data", {**bearer(token), "x-buyer": "spoofed", "x-pass-tier": "24h",
                                           "x-access-pass-tier": "client-value"})
    assert resp.status == 200, resp
    headers = resp.json()["headers"]
    assert [v for k, v in headers if k == "x-buyer"] == [PAYER], headers
    assert [v for k, v in headers if k == "x-pass-tier"] == ["1h"], headers
    assert [v for k, v in headers if k == "authorization"] == [f"Bearer {token}"], headers
    # Not a configured claim header any more: the filter leaves it alone.
    assert [v for k, v in headers if k == "x-access-pass-tier"] == ["client-value"], headers


@pytest.mark.parametrize("claims", [
    pytest.param(lambda: aud_claims(aud=None), id="no-aud"),
    pytest.param(lambda: aud_claims(aud="other.example"), id="wrong-aud"),
    pytest.param(lambda: aud_claims(iss="x402-access-pass"), id="default-iss"),
    pytest.param(lambda: aud_claims(iat=int(time.time()) - 3600 - 30), id="expired-beyond-leeway"),
    pytest.param(lambda: aud_claims(iat=int(time.time()) + 60), id="iat-beyond-leeway"),
])
def test_audience_issuer_and_leeway_are_enforced(options_envoy, claims):
    resp = options_envoy.get("/api/data", bearer(hs256(claims(), OPT_SECRET)))
    assert resp.status == 402, resp


@pytest.mark.parametrize("claims", [
    pytest.param(lambda: aud_claims(iat=int(time.time()) - 3600 - 2), id="expired-within-leeway"),
    pytest.param(lambda: aud_claims(iat=int(time.time()) + 3), id="iat-within-leeway"),
])
def test_leeway_allows_small_clock_skew(options_envoy, claims):
    resp = options_envoy.get("/api/data", bearer(hs256(claims(), OPT_SECRET)))
    assert resp.status == 200, resp


def test_cors_answers_only_allowed_origins(cors_envoy):
    resp = cors_envoy.get("/api/data", {"Origin": ORIGIN})
    assert_challenge(resp, origin=ORIGIN)
    pre = cors_envoy.request("OPTIONS", "/api/data", {"Origin": ORIGIN, "Access-Control-Request-Method": "POST"})
    assert pre.status == 204 and pre.headers.get("access-control-allow-origin") == ORIGIN, pre
    other = cors_envoy.get("/api/data", {"Origin": "https://evil.example"})
    assert other.status == 402, other
    assert other.headers.get("access-control-allow-origin") not in ("*", "https://evil.example"), other
    pre_other = cors_envoy.request("OPTIONS", "/api/data", {"Origin": "https://evil.example",
                                                            "Access-Control-Request-Method": "POST"})
    assert pre_other.status != 402, pre_other
    assert pre_other.headers.get("access-control-allow-origin") not in ("*", "https://evil.example"), pre_other


def test_a_pass_holder_from_an_allowed_origin_gets_the_api_and_the_workers_keep_serving(cors_envoy, buyer):
    resp, _, _ = buy(cors_envoy, buyer, "/api/data?tier=5m", origin=ORIGIN)
    token, _ = assert_purchase_ok(resp, buyer, "5m", 300, "5 minutes", origin=ORIGIN)
    for headers in ({"Origin": ORIGIN}, {}):
        used = cors_envoy.get("/api/data", {**bearer(token), **headers})
        assert used.status == 200 and used.json()["upstream"] == "demo", (headers, used)
        if headers:
            assert used.headers.get("access-control-allow-origin") == ORIGIN, used
            assert EXPOSE <= expose_set(used), used
    results = [cors_envoy.get("/health") for _ in range(8)]
    assert [r.status for r in results] == [200] * 8, results


def test_origin_is_added_to_the_upstreams_own_vary_never_replacing_it(cors_envoy, buyer):
    resp, _, _ = buy(cors_envoy, buyer, "/api/data?tier=5m", origin=ORIGIN)
    token, _ = assert_purchase_ok(resp, buyer, "5m", 300, "5 minutes", origin=ORIGIN)
    used = cors_envoy.get("/api/data", {**bearer(token), "Origin": ORIGIN, "X-Upstream-Vary": "Accept-Encoding"})
    assert used.status == 200, used
    vary = [v.strip().lower() for v in ",".join(used.headers.get_all("vary")).split(",")]
    assert "accept-encoding" in vary and "origin" in vary, used
    plain = cors_envoy.get("/api/data", {**bearer(token), "Origin": ORIGIN})
    assert [v.strip().lower() for v in ",".join(plain.headers.get_all("vary")).split(",")] == ["origin"], plain


# --------------------------------------------------------------------------- key rings

NEW_SECRET = "rotation-new-secret-0123456789abcdef0123"
OLD_SECRET = "rotation-old-secret-0123456789abcdef0123"


@pytest.fixture(scope="module")
def ring_envoy(module_envoys):
    return module_envoys.start("key-ring", secret=None, keys=[
        {"kid": "new", "alg": "HS256", "secret": NEW_SECRET},
        {"kid": "old", "alg": "HS256", "secret": OLD_SECRET},
    ])


def test_the_first_key_of_the_ring_signs_with_its_kid(ring_envoy, buyer):
    resp, _, _ = buy(ring_envoy, buyer, "/api/data")
    assert resp.status == 200, resp
    token = resp.headers["access-pass"]
    header, _, raw = decode_jwt(token)
    assert header == {"alg": "HS256", "typ": "JWT", "kid": "new"}, header
    head, body, sig = token.split(".")
    assert hmac.compare_digest(b64url_decode(sig), hmac.new(NEW_SECRET.encode(), f"{head}.{body}".encode(),
                                                              hashlib.sha256).digest())
    assert ring_envoy.get("/api/data", bearer(token)).status == 200


@pytest.mark.parametrize("secret, kid, status", [
    (OLD_SECRET, "old", 200),
    (OLD_SECRET, None, 200),      # no kid: every key is tried
    (NEW_SECRET, None, 200),
    (OLD_SECRET, "new", 402),     # kid selects the key
    (OLD_SECRET, "retired", 402),
    ("unrelated-secret-0123456789abcdef01234567", None, 402),
])
def test_every_key_of_the_ring_verifies_and_kid_selects_one(ring_envoy, secret, kid, status):
    header = {"alg": "HS256", "typ": "JWT"}
    if kid:
        header["kid"] = kid
    resp = ring_envoy.get("/api/data", bearer(hs256(pass_claims(PAYER), secret, header=header)))
    assert resp.status == status, resp


ED_KEY = Ed25519PrivateKey.from_private_bytes(b"\x2a" * 32)
ED_PRIVATE_PEM = ED_KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()).decode()
ED_PUBLIC_RAW = ED_KEY.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
ED_PUBLIC_PEM = ED_KEY.public_key().public_bytes(serialization.Encoding.PEM,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def eddsa(claims, key=ED_KEY, kid="ed1"):
    header = {"alg": "EdDSA", "typ": "JWT"}
    if kid:
        header["kid"] = kid
    signing_input = b64url(json.dumps(header, separators=(",", ":")).encode()) + "." + \
        b64url(json.dumps(claims, separators=(",", ":")).encode())
    return signing_input + "." + b64url(key.sign(signing_input.encode()))


@pytest.fixture(scope="module")
def eddsa_envoy(module_envoys):
    return module_envoys.start("eddsa-signer", secret=None, keys=[
        {"kid": "ed1", "alg": "EdDSA", "privateKey": ED_PRIVATE_PEM}])


def test_an_eddsa_key_signs_passes_that_verify_with_its_public_key(eddsa_envoy, buyer):
    resp, _, _ = buy(eddsa_envoy, buyer, "/api/data")
    assert resp.status == 200, resp
    token = resp.headers["access-pass"]
    header, _, _ = decode_jwt(token)
    assert header["alg"] == "EdDSA" and header.get("kid") == "ed1", header
    head, body, sig = token.split(".")
    Ed25519PublicKey.from_public_bytes(ED_PUBLIC_RAW).verify(b64url_decode(sig), f"{head}.{body}".encode())
    assert eddsa_envoy.get("/api/data", bearer(token)).status == 200
    assert eddsa_envoy.get("/api/data", bearer(eddsa(pass_claims(PAYER)))).status == 200


def test_hs256_signed_with_the_eddsa_public_key_is_not_a_pass(eddsa_envoy):
    # alg confusion: an attacker knows the public key and signs HS256 with it.
    for secret in (ED_PUBLIC_RAW, ED_PUBLIC_PEM.encode(), base64.b64encode(ED_PUBLIC_RAW)):
        for kid in ("ed1", None):
            header = {"alg": "HS256", "typ": "JWT", **({"kid": kid} if kid else {})}
            resp = eddsa_envoy.get("/api/data", bearer(hs256(pass_claims(PAYER), secret, header=header)))
            assert resp.status == 402, (kid, resp)
    other = Ed25519PrivateKey.from_private_bytes(b"\x2b" * 32)
    assert eddsa_envoy.get("/api/data", bearer(eddsa(pass_claims(PAYER), key=other))).status == 402


def test_a_verify_only_sidecar_with_a_public_key_accepts_eddsa_passes(envoys):
    # docs/behaviour.md §7: a sidecar that only verifies may hold an EdDSA public key alone.
    envoy = envoys.start("eddsa-verify-only", secret=None, keys=[
        {"kid": "ed1", "alg": "EdDSA", "publicKey": ED_PUBLIC_PEM}])
    assert envoy.get("/api/data", bearer(eddsa(pass_claims(PAYER)))).status == 200
    no_pass = envoy.get("/api/data")
    assert no_pass.status in (402, 503), no_pass

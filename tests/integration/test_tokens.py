"""Pass tokens (SPEC §7): anything but a valid pass gets the challenge (402, never 401 or 500), and
passes are byte-compatible with the Express reference's."""

import json
import time

import pytest

from harness import NETWORK, SECRET
from helpers import assert_challenge, assert_purchase_ok, b64url, buy, decode_jwt, hs256, pass_claims

VECTOR_SECRET = "0123456789abcdef0123456789abcdef"
VECTOR_CLAIMS = ('{"sub":"x402-access-pass","tier":"1h","duration":3600,"iat":1767225600,"exp":1767229200,'
                 '"payer":"BJPsPHUTyu8n3MJemH1jGZrg8amwsvhuMvPeJsfiraCB",'
                 '"network":"solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp","iss":"x402-access-pass"}')
VECTOR_TOKEN = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ4NDAyLWFjY2Vzcy1wYXNzIiwidGllciI6IjFoIiwiZHVyYXRpb24iOjM2MDAsIm"
    "lhdCI6MTc2NzIyNTYwMCwiZXhwIjoxNzY3MjI5MjAwLCJwYXllciI6IkJKUHNQSFVUeXU4bjNNSmVtSDFqR1pyZzhhbXdzdmh1TXZQZUpzZmly"
    "YUNCIiwibmV0d29yayI6InNvbGFuYTo1ZXlrdDRVc0Z2OFA4TkpkVFJFcFkxdnpxS3FaS3ZkcCIsImlzcyI6Ing0MDItYWNjZXNzLXBhc3Mi"
    "fQ.XkGUco-yWvnrOj7U6jOKCJBq_FDha0MBA7cR4eUrEOc")
PAYER = "BJPsPHUTyu8n3MJemH1jGZrg8amwsvhuMvPeJsfiraCB"


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def assert_no_pass(resp):
    """A token that is not a valid pass is the same as no token: the challenge."""
    assert resp.status == 402, resp
    assert_challenge(resp)


def test_a_token_minted_here_with_the_config_secret_is_accepted(envoy):
    resp = envoy.get("/api/data", bearer(hs256(pass_claims(PAYER), SECRET)))
    assert resp.status == 200 and resp.json()["upstream"] == "demo", resp


def _with(claims: dict, **changes) -> dict:
    out = dict(claims)
    for k, v in changes.items():
        if v is ...:
            out.pop(k)
        else:
            out[k] = v
    return out


def _tampered() -> str:
    head, body, sig = hs256(pass_claims(PAYER), SECRET).split(".")
    forged = b64url(json.dumps(_with(pass_claims(PAYER), tier="24h", duration=86400,
                                                  exp=int(time.time()) + 86400), separators=(",", ":")).encode())
    return ".".join([head, forged, sig])


BAD_TOKENS = {
    "tampered-claims": lambda: _tampered(),
    "foreign-key": lambda: hs256(pass_claims(PAYER), "another-secret-of-the-right-length-0123456789"),
    "alg-none": lambda: b64url(b'{"alg":"none","typ":"JWT"}') + "." +
                        b64url(json.dumps(pass_claims(PAYER)).encode()) + ".",
    "alg-none-signed": lambda: hs256(pass_claims(PAYER), SECRET, header={"alg": "none", "typ": "JWT"}),
    "alg-HS512-label": lambda: hs256(pass_claims(PAYER), SECRET, header={"alg": "HS512", "typ": "JWT"}),
    "alg-EdDSA-label": lambda: hs256(pass_claims(PAYER), SECRET, header={"alg": "EdDSA", "typ": "JWT"}),
    "expired": lambda: hs256(pass_claims(PAYER, iat=int(time.time()) - 7200), SECRET),
    "missing-exp": lambda: hs256(_with(pass_claims(PAYER), exp=...), SECRET),
    "exp-as-string": lambda: hs256(_with(pass_claims(PAYER), exp=str(int(time.time()) + 3600)), SECRET),
    "exp-as-float-string": lambda: hs256(_with(pass_claims(PAYER), exp="9999999999"), SECRET),
    "wrong-iss": lambda: hs256(pass_claims(PAYER, iss="someone-else"), SECRET),
    "missing-iss": lambda: hs256(_with(pass_claims(PAYER), iss=...), SECRET),
    "wrong-sub": lambda: hs256(_with(pass_claims(PAYER), sub="admin"), SECRET),
    "iat-in-the-future": lambda: hs256(pass_claims(PAYER, iat=int(time.time()) + 600), SECRET),
    "exp-minus-iat-not-duration": lambda: hs256(_with(pass_claims(PAYER), duration=300), SECRET),
    "longer-than-any-pass": lambda: hs256(pass_claims(PAYER, tier="custom", duration=40 * 86400), SECRET),
    "two-segments": lambda: ".".join(hs256(pass_claims(PAYER), SECRET).split(".")[:2]),
    "four-segments": lambda: hs256(pass_claims(PAYER), SECRET) + ".AAAA",
    "not-base64url": lambda: "e30.%%%%.@@@@",
    "empty": lambda: "",
    "huge": lambda: "a" * 9000 + "." + "b" * 9000 + "." + "c" * 100,
    "claims-not-json": lambda: b64url(b'{"alg":"HS256","typ":"JWT"}') + "." + b64url(b"not json") + ".sig",
}


@pytest.mark.parametrize("name", list(BAD_TOKENS))
def test_a_token_that_is_not_a_valid_pass_gets_the_challenge_never_401_or_500(envoy, upstream, name):
    before = upstream.count()
    resp = envoy.get("/api/data", bearer(BAD_TOKENS[name]()))
    assert_no_pass(resp)
    assert upstream.count() == before


@pytest.mark.parametrize("value", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer ", "Token abc.def.ghi", "bearer\tabc"])
def test_other_authorization_values_get_the_challenge(envoy, value):
    assert_no_pass(envoy.get("/api/data", {"Authorization": value}))


def test_a_pass_for_another_tier_price_still_only_lasts_what_it_says(envoy):
    # A 24h pass minted with the right secret is a 24h pass: exp is what counts.
    token = hs256(pass_claims(PAYER, tier="24h", duration=86400), SECRET)
    assert envoy.get("/api/data", bearer(token)).status == 200


def test_the_python_hs256_minter_reproduces_the_spec_token_vector():
    assert hs256(VECTOR_CLAIMS, VECTOR_SECRET) == VECTOR_TOKEN
    header, claims, raw = decode_jwt(VECTOR_TOKEN)
    assert raw == VECTOR_CLAIMS and header == {"alg": "HS256", "typ": "JWT"}


@pytest.fixture(scope="module")
def vector_envoy(module_envoys):
    return module_envoys.start("vector-secret", secret=VECTOR_SECRET)


def test_a_reference_style_pass_with_a_future_exp_is_accepted(vector_envoy):
    # The SPEC vector's claims, re-dated so exp is in the future, signed the same way.
    now = int(time.time())
    claims = VECTOR_CLAIMS.replace("1767225600", str(now)).replace("1767229200", str(now + 3600))
    claims = claims.replace("solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp", NETWORK)
    resp = vector_envoy.get("/api/data", bearer(hs256(claims, VECTOR_SECRET)))
    assert resp.status == 200, resp
    assert [v for k, v in resp.json()["headers"] if k == "x-access-pass-payer"] == [PAYER]


def test_the_spec_vector_token_itself_is_expired_and_gets_the_challenge(vector_envoy):
    if time.time() <= 1767229200:
        pytest.skip("the vector token has not expired yet")
    assert_no_pass(vector_envoy.get("/api/data", bearer(VECTOR_TOKEN)))


def test_passes_issued_by_the_filter_verify_with_the_configured_secret(vector_envoy, buyer):
    resp, _, _ = buy(vector_envoy, buyer, "/api/data?tier=5m")
    token, claims = assert_purchase_ok(resp, buyer, "5m", 300, "5 minutes")
    # Same header, same claims bytes, same secret: the same token, signature included.
    assert hs256(decode_jwt(token)[2], VECTOR_SECRET) == token

"""The native fast path (docs/fastpath.md): Envoy's jwt_authn verifies passes, a CEL marker re-checks
every rule of docs/behaviour.md §3 and §7 jwt_authn does not, and a request it marks skips the wasm
filter; everything else goes through the wasm filter as before. The answers are the filter's: the
token attacks of test_tokens.py and test_adversarial.py get the same answers (and the same
rejection counters) through the fast path as through the wasm path."""

from __future__ import annotations

import json
import pathlib
import time

import pytest

import x402pay as xp
from attacks import Counters, filter_counter, raw_exchange
from fastpath_harness import SHIPPED, FastPathEnvoy, fastpath, shipped_http_filters_yaml
from harness import (EXTERNAL, EXTERNAL_SKIP, NETWORK, OUT, PAY_TO_PLACEHOLDER, REPO, SECRET, SELLER_WALLET, WASM, Envoy,
                     default_plugin_config)
from helpers import PRICES, assert_challenge, assert_cors, assert_purchase_ok, buy, decode_jwt, hs256, pass_claims
from test_adversarial import BAD_PASSES
from test_tokens import BAD_TOKENS

pytestmark = pytest.mark.skipif(EXTERNAL, reason=EXTERNAL_SKIP)

PAYER = xp.derived_keypair("fastpath-payer").address
CLAIM_HEADERS = ("x-access-pass-tier", "x-access-pass-payer", "x-access-pass-expires", "x-access-pass-network")
SPOOF = {"X-Access-Pass-Tier": "24h", "X-Access-Pass-Payer": "someone-else", "X-Access-Pass-Expires": "99999999999",
         "X-Access-Pass-Network": "solana:mainnet", "X-X402-Fast-Path": "true"}

# Tokens the filter refuses but the fast path accepts; each needs a configured signing key to make
# (docs/fastpath.md, "What the fast path does not check"). Every other attack gets the same answer.
FAST_PATH_ACCEPTS = {
    "valid-but-8KiB": "no length bound: jwt_authn verifies a signed token of any length the header limit allows",
    "valid-but-4097-bytes": "no length bound: jwt_authn verifies a signed token of any length the header limit allows",
    "exp-float": "claims reach the marker as JSON numbers (doubles): 1767229200.0 and 1767229200 are the same",
    "signature-padded": "jwt_authn reads base64url with '=' padding: the same signed pass, padded",
}


def test_every_documented_exception_is_an_attack_of_the_suite():
    assert set(FAST_PATH_ACCEPTS) <= set(BAD_PASSES) | set(BAD_TOKENS)


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def upstream_headers(resp) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for k, v in resp.json()["headers"]:
        out.setdefault(k.lower(), []).append(v)
    return out


def passes_accepted(envoy) -> int:
    return filter_counter(envoy.stats(), "passes_accepted")


def served_natively(envoy) -> int:
    """The fast path's own counter (the RBAC filter that runs on the fast path only)."""
    return envoy.stats().get("http.ingress_http.rbac.x402_fast_path.allowed", 0)


@pytest.fixture(scope="module")
def fast(facilitator, upstream):
    envoy = FastPathEnvoy("fastpath", default_plugin_config(facilitator.addr), facilitator.port, upstream.port,
                          OUT / "test_fastpath")
    envoy.start()
    yield envoy
    envoy.stop()


# ----------------------------------------------------------------------------- the fast path


def test_a_pass_bought_through_the_wasm_filter_is_then_served_natively(fast, facilitator, upstream, buyer):
    resp, tx, _ = buy(fast, buyer, "/api/data?tier=1h")
    token, claims = assert_purchase_ok(resp, buyer, "1h", 3600, "1 hour")
    assert [s["amount"] for s in facilitator.settlements_for(tx.message_hash)] == [str(PRICES["1h"])]
    accepted_before, native_before = passes_accepted(fast), served_natively(fast)
    before = upstream.count()

    resp = fast.get("/api/data", {**bearer(token), **SPOOF, "Origin": "https://app.example"})

    assert resp.status == 200 and resp.json()["upstream"] == "demo", resp
    seen = upstream_headers(resp)
    assert seen["x-access-pass-tier"] == ["1h"]
    assert seen["x-access-pass-payer"] == [buyer.address]
    assert seen["x-access-pass-expires"] == [str(claims["exp"])]
    assert seen["x-access-pass-network"] == [NETWORK]
    assert "authorization" not in seen and "x-x402-fast-path" not in seen, seen
    assert_cors(resp)
    assert upstream.count() == before + 1
    # The wasm filter never saw the request: its accepted-pass counter did not move.
    time.sleep(0.2)
    assert passes_accepted(fast) == accepted_before
    assert served_natively(fast) == native_before + 1
    # Nothing more was charged.
    assert [s["amount"] for s in facilitator.settlements_for(tx.message_hash)] == [str(PRICES["1h"])]


def test_the_same_pass_through_the_wasm_filter_reaches_the_upstream_with_the_same_headers(fast, envoy, buyer):
    token = hs256(pass_claims(buyer.address, tier="5m", duration=300), SECRET)
    natively = upstream_headers(fast.get("/api/data", {**bearer(token), **SPOOF}))
    by_wasm = upstream_headers(envoy.get("/api/data", {**bearer(token), **SPOOF}))
    for name in (*CLAIM_HEADERS, "authorization"):
        assert natively.get(name) == by_wasm.get(name), name
    assert "x-x402-fast-path" not in natively


def test_without_a_token_the_wasm_filter_answers_the_challenge(fast, upstream):
    before = upstream.count()
    resp = fast.get("/api/data", SPOOF)
    assert_challenge(resp)
    assert upstream.count() == before


def test_a_lower_case_bearer_is_left_to_the_wasm_filter_which_accepts_it(fast):
    # jwt_authn's prefix is exactly "Bearer "; the filter takes any case and spacing (§7).
    token = hs256(pass_claims(PAYER), SECRET)
    for value in (f"bearer {token}", f"Bearer\t{token}", f"BEARER   {token}"):
        counters, native_before = Counters(fast), served_natively(fast)
        resp = fast.get("/api/data", {"Authorization": value})
        assert resp.status == 200, (value, resp)
        assert counters.delta("passes_accepted") == 1, value
        assert served_natively(fast) == native_before, value


def test_a_preflight_with_a_valid_pass_is_still_the_filters_204(fast, upstream):
    before = upstream.count()
    resp = fast.request("OPTIONS", "/api/data", {**bearer(hs256(pass_claims(PAYER), SECRET)),
                                                 "Origin": "https://app.example",
                                                 "Access-Control-Request-Method": "GET"})
    assert resp.status == 204, resp
    assert upstream.count() == before


def test_a_valid_pass_and_a_payment_is_the_pass_nobody_is_charged(fast, facilitator, buyer):
    required_resp = fast.get("/api/data")
    required, _ = assert_challenge(required_resp)
    header, tx = buyer.pay(required)
    resp = fast.get("/api/data", {**bearer(hs256(pass_claims(buyer.address), SECRET)), "PAYMENT-SIGNATURE": header})
    assert resp.status == 200 and resp.json()["upstream"] == "demo", resp
    assert facilitator.settlements_for(tx.message_hash) == []


def test_on_a_bypassed_path_nothing_is_touched_as_with_the_wasm_filter(fast, envoy):
    token = hs256(pass_claims(PAYER), SECRET)
    natively = upstream_headers(fast.get("/api/public/info", {**bearer(token), "X-Access-Pass-Tier": "24h"}))
    by_wasm = upstream_headers(envoy.get("/api/public/info", {**bearer(token), "X-Access-Pass-Tier": "24h"}))
    assert natively["x-access-pass-tier"] == by_wasm["x-access-pass-tier"] == ["24h"]
    assert natively["authorization"] == by_wasm["authorization"] == [f"Bearer {token}"]


def test_a_pass_at_the_limits_is_served_natively(fast):
    counters = Counters(fast)
    resp = fast.get("/api/data", bearer(hs256(pass_claims(PAYER, tier="custom", duration=2_592_000), SECRET)))
    assert resp.status == 200, resp
    assert counters.delta("passes_accepted") == 0


def test_a_kid_of_null_is_no_kid_and_the_wasm_filter_serves_it(fast):
    # jwt_authn refuses a header kid that is not a string; the filter reads null as no kid (§7).
    counters = Counters(fast)
    resp = fast.get("/api/data", bearer(hs256(pass_claims(PAYER), SECRET, header={"alg": "HS256", "typ": "JWT",
                                                                                   "kid": None})))
    assert resp.status == 200, resp
    assert counters.delta("passes_accepted") == 1


def test_a_cached_pass_still_expires_on_time(fast):
    token = hs256(pass_claims(PAYER, tier="5m", duration=300, iat=int(time.time()) - 298), SECRET)
    counters = Counters(fast)
    assert fast.get("/api/data", bearer(token)).status == 200
    assert fast.get("/api/data", bearer(token)).status == 200  # jwt_authn's cache
    assert counters.delta("passes_accepted") == 0
    time.sleep(3.5)
    assert_challenge(fast.get("/api/data", bearer(token)))
    assert counters.delta("tokens_rejected.expired") == 1


@pytest.mark.parametrize("values", [
    pytest.param(lambda t: [b"Bearer " + t, b"Bearer x.y.z"], id="two-authorization-valid-first"),
    pytest.param(lambda t: [b"Bearer x.y.z", b"Bearer " + t], id="two-authorization-garbage-first"),
    pytest.param(lambda t: [b"Bearer " + t + b",Bearer x.y.z"], id="comma-joined"),
    pytest.param(lambda t: [b"Bearer " + t + b" trailing"], id="a-second-word"),
    pytest.param(lambda t: [b"Bearer " + t + b"\xff"], id="a-non-utf8-byte-after-it"),
    pytest.param(lambda t: [b"Bearer  " + t], id="two-spaces"),
    pytest.param(lambda t: [b"Bearer " + t[:-1]], id="cut"),
])
def test_header_tricks_get_the_filters_answer(fast, envoy, upstream, values):
    token = hs256(pass_claims(PAYER), SECRET).encode()
    lines = [(b"Authorization", v) for v in values(token)]
    before = upstream.count()
    natively = raw_exchange(fast, b"GET", b"/api/data", lines)
    by_wasm = raw_exchange(envoy, b"GET", b"/api/data", lines)
    assert natively[0] == by_wasm[0], (natively, by_wasm)
    if by_wasm[0] != 200:
        assert upstream.count() == before


@pytest.mark.parametrize("payer", ["a\u00e9b", "a\nb", "a\r\nx-evil: 1", "a\x00b", "  spaced  "],
                         ids=["non-ascii", "newline", "header-injection", "nul", "spaces"])
def test_odd_claim_values_signed_with_the_key_reach_the_upstream_as_through_the_filter(fast, envoy, payer):
    token = hs256(pass_claims(payer), SECRET)
    natively, by_wasm = fast.get("/api/data", bearer(token)), envoy.get("/api/data", bearer(token))
    assert natively.status == by_wasm.status, (natively, by_wasm)
    if natively.status == 200:
        assert upstream_headers(natively).get("x-access-pass-payer") == upstream_headers(by_wasm).get(
            "x-access-pass-payer")
        assert "x-evil" not in upstream_headers(natively)


def test_an_empty_claim_is_no_header_natively_and_an_empty_header_through_the_filter(fast, envoy):
    # Documented exception (docs/fastpath.md): jwt_authn does not set a header for an empty claim.
    token = hs256(pass_claims(""), SECRET)
    assert "x-access-pass-payer" not in upstream_headers(fast.get("/api/data", bearer(token)))
    assert upstream_headers(envoy.get("/api/data", bearer(token)))["x-access-pass-payer"] == [""]


# ----------------------------------------------------------------------------- same answers as the filter


@pytest.mark.parametrize("name", list(BAD_TOKENS))
def test_a_token_that_is_not_a_valid_pass_gets_the_same_challenge_as_from_the_filter(fast, envoy, upstream, name):
    token = BAD_TOKENS[name]()
    before = upstream.count()
    natively, by_wasm = fast.get("/api/data", bearer(token)), envoy.get("/api/data", bearer(token))
    assert natively.status == by_wasm.status == 402, (natively, by_wasm)
    assert_challenge(natively)
    assert upstream.count() == before


@pytest.mark.parametrize("value", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer ", "Token abc.def.ghi", "bearer\tabc"])
def test_other_authorization_values_get_the_same_challenge(fast, value):
    assert_challenge(fast.get("/api/data", {"Authorization": value}))


@pytest.mark.parametrize("name", list(BAD_PASSES))
def test_a_forged_pass_gets_the_filters_answer_and_its_rejection_reason(fast, upstream, name):
    make, reasons = BAD_PASSES[name]
    reasons = (reasons,) if isinstance(reasons, str) else reasons
    counters = Counters(fast)
    before = upstream.count()
    resp = fast.get("/api/data", bearer(make()))
    if name in FAST_PATH_ACCEPTS:
        assert resp.status == 200, resp  # a documented exception: see FAST_PATH_ACCEPTS
        return
    assert_challenge(resp)
    assert upstream.count() == before, "a refused pass reached the upstream"
    # The wasm filter judged it, for the same reason as without the fast path.
    deadline = time.monotonic() + 5
    while sum(counters.delta(f"tokens_rejected.{r}") for r in reasons) < 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert sum(counters.delta(f"tokens_rejected.{r}") for r in reasons) == 1


def test_a_kid_reserved_for_an_unnamed_key_is_an_unknown_kid(fast):
    token = hs256(pass_claims(PAYER), SECRET, header={"alg": "HS256", "typ": "JWT", "kid": "x402-unnamed-0"})
    counters = Counters(fast)
    assert_challenge(fast.get("/api/data", bearer(token)))
    assert counters.delta("tokens_rejected.unknown_kid") == 1


# ----------------------------------------------------------------------------- key rings


ED_SEED = bytes(range(1, 33))
OLD_SECRET = "fastpath-old-hs256-secret-0123456789abcdef"


@pytest.fixture(scope="module")
def ring_envoy(facilitator, upstream):
    import base64
    cfg = default_plugin_config(facilitator.addr, secret=None, keys=[
        {"kid": "ed-2026", "alg": "EdDSA", "privateKey": base64.b64encode(ED_SEED).decode()},
        {"kid": "hs-2025", "alg": "HS256", "secret": OLD_SECRET},
    ])
    envoy = FastPathEnvoy("fastpath-ring", cfg, facilitator.port, upstream.port, OUT / "test_fastpath")
    envoy.start()
    yield envoy
    envoy.stop()


def test_eddsa_passes_sold_here_and_hs256_passes_of_an_older_key_are_served_natively(ring_envoy, buyer):
    resp, _, _ = buy(ring_envoy, buyer, "/api/data?tier=5m")
    assert resp.status == 200, resp
    token = resp.headers["access-pass"]
    assert decode_jwt(token)[0] == {"alg": "EdDSA", "typ": "JWT", "kid": "ed-2026"}
    old = hs256(pass_claims(PAYER), OLD_SECRET, header={"alg": "HS256", "typ": "JWT", "kid": "hs-2025"})
    for t in (token, old):
        counters = Counters(ring_envoy)
        r = ring_envoy.get("/api/data", bearer(t))
        assert r.status == 200, r
        assert counters.delta("passes_accepted") == 0


@pytest.mark.parametrize("header,secret,reason", [
    ({"alg": "HS256", "typ": "JWT", "kid": "ed-2026"}, OLD_SECRET, "algorithm_not_allowed"),
    ({"alg": "HS256", "typ": "JWT", "kid": "nobody"}, OLD_SECRET, "unknown_kid"),
    ({"alg": "HS256", "typ": "JWT"}, "a-secret-of-nobody-here-0123456789abcdef", "bad_signature"),
], ids=["hs256-under-the-eddsa-kid", "unknown-kid", "no-kid-foreign-secret"])
def test_a_ring_attack_gets_the_filters_answer(ring_envoy, header, secret, reason):
    counters = Counters(ring_envoy)
    assert_challenge(ring_envoy.get("/api/data", bearer(hs256(pass_claims(PAYER), secret, header=header))))
    assert counters.delta(f"tokens_rejected.{reason}") == 1


# ----------------------------------------------------------------------------- only the filter mints


def eddsa(claims: dict, seed: bytes, header: dict) -> str:
    import base64
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    enc = lambda obj: base64.urlsafe_b64encode(json.dumps(obj, separators=(",", ":")).encode()).rstrip(b"=").decode()
    signing_input = enc(header) + "." + enc(claims)
    sig = Ed25519PrivateKey.from_private_bytes(seed).sign(signing_input.encode())
    return signing_input + "." + base64.urlsafe_b64encode(sig).rstrip(b"=").decode()


ED_HEADER = {"alg": "EdDSA", "typ": "JWT", "kid": "ed-2026"}

# Passes that only a holder of the signing key can make, and the filter never mints: with only the
# filter minting (an EdDSA-only ring, or HS256 declared --sole-minter) the fast path does not re-check
# these structural rules and serves them; the filter refuses them (docs/fastpath.md, "Who can mint a
# pass"). Each: (claims from pass_claims' defaults, JWS header extras, the filter's reason).
SOLE_MINTER_ACCEPTS = {
    "duration-not-exp-minus-iat": (lambda c: {**c, "duration": c["duration"] + 1}, {}, "bad_duration"),
    "duration-longer-than-sold": (lambda c: {**c, "duration": 40 * 86400, "exp": c["iat"] + 40 * 86400}, {},
                                  "too_long"),
    "issued-in-the-future": (lambda c: {**c, "iat": c["iat"] + 600, "exp": c["exp"] + 600}, {}, "issued_in_future"),
    "tier-a-number": (lambda c: {**c, "tier": 1}, {}, "malformed"),
    "iat-a-float": (lambda c: {**c, "iat": c["iat"] + 0.5}, {}, "bad_duration"),
    "crit": (lambda c: c, {"crit": ["exp"]}, "malformed"),
}


@pytest.fixture(scope="module")
def eddsa_only(facilitator, upstream, module_envoys):
    import base64
    keys = [{"kid": "ed-2026", "alg": "EdDSA", "privateKey": base64.b64encode(ED_SEED).decode()}]
    native = FastPathEnvoy("fastpath-eddsa", default_plugin_config(facilitator.addr, secret=None, keys=keys),
                           facilitator.port, upstream.port, OUT / "test_fastpath")
    native.start()
    yield native, module_envoys.start("wasm-eddsa", secret=None, keys=keys)
    native.stop()


def test_with_only_the_filter_minting_the_chain_is_jwt_authn_and_one_matcher():
    import base64
    cfg = {"secret": None, "keys": [{"kid": "ed", "alg": "EdDSA", "privateKey": base64.b64encode(ED_SEED).decode()}]}
    keys = fastpath.ring(cfg, {})
    names = [f["name"] for f in fastpath.http_filters(cfg, keys, {"filename": "/j"}, {"name": "w", "typed_config": {}})]
    assert names == ["envoy.filters.http.jwt_authn", "x402_fast_path", "envoy.filters.http.router"]
    assert fastpath.expression(cfg, fastpath.only_the_filter_mints(keys)) is None
    hs = fastpath.ring({"secret": SECRET}, {})
    assert not fastpath.only_the_filter_mints(hs) and fastpath.only_the_filter_mints(hs, declared=True)


def test_an_eddsa_pass_sold_here_is_served_natively_as_the_filter_would(eddsa_only, buyer, upstream):
    native, wasm = eddsa_only
    resp, _, _ = buy(native, buyer, "/api/data?tier=5m")
    assert resp.status == 200, resp
    token = resp.headers["access-pass"]
    counters, before = Counters(native), served_natively(native)
    a = native.get("/api/data", {**bearer(token), **SPOOF, "Origin": "https://app.example"})
    b = wasm.get("/api/data", {**bearer(token), **SPOOF, "Origin": "https://app.example"})
    assert a.status == b.status == 200, (a, b)
    natively, by_wasm = upstream_headers(a), upstream_headers(b)
    # No header of the fast path's own here: a client's x-x402-fast-path is passed on, as by the filter.
    for name in (*CLAIM_HEADERS, "authorization", "x-x402-fast-path"):
        assert natively.get(name) == by_wasm.get(name), name
    assert_cors(a)
    assert counters.delta("passes_accepted") == 0 and served_natively(native) == before + 1
    # A preflight is still the filter's 204, a cached pass still expires (within 1 s: jwt_authn's).
    pre = native.request("OPTIONS", "/api/data", {**bearer(token), "Origin": "https://app.example",
                                                  "Access-Control-Request-Method": "GET"})
    assert pre.status == 204, pre


@pytest.mark.parametrize("name", list(SOLE_MINTER_ACCEPTS))
def test_with_only_the_filter_minting_a_structural_oddity_signed_with_its_key_is_served(eddsa_only, name):
    native, wasm = eddsa_only
    shape, header, reason = SOLE_MINTER_ACCEPTS[name]
    token = eddsa(shape(pass_claims(PAYER)), ED_SEED, {**ED_HEADER, **header})
    counters = Counters(wasm)
    assert_challenge(wasm.get("/api/data", bearer(token)))
    assert counters.delta(f"tokens_rejected.{reason}") == 1
    assert native.get("/api/data", bearer(token)).status == 200  # documented: docs/fastpath.md


@pytest.mark.parametrize("name", [n for n in BAD_PASSES if n not in FAST_PATH_ACCEPTS])
def test_with_only_the_filter_minting_every_forged_pass_still_gets_the_challenge(eddsa_only, upstream, name):
    # BAD_PASSES are made with the HS256 test secret: no key of this ring.
    native, _ = eddsa_only
    before = upstream.count()
    assert_challenge(native.get("/api/data", bearer(BAD_PASSES[name][0]())))
    assert upstream.count() == before


def test_an_expired_eddsa_pass_gets_the_challenge(eddsa_only):
    native, _ = eddsa_only
    token = eddsa(pass_claims(PAYER, iat=int(time.time()) - 3602), ED_SEED, ED_HEADER)
    counters = Counters(native)
    assert_challenge(native.get("/api/data", bearer(token)))
    assert counters.delta("tokens_rejected.expired") == 1


@pytest.fixture(scope="module")
def hs256_sole(facilitator, upstream):
    envoy = FastPathEnvoy("fastpath-hs-sole", default_plugin_config(facilitator.addr), facilitator.port, upstream.port,
                          OUT / "test_fastpath")
    envoy.sole_minter = True
    envoy.start()
    yield envoy
    envoy.stop()


def test_an_hs256_secret_declared_sole_minter_serves_natively_without_the_structural_checks(hs256_sole, envoy):
    token = hs256(pass_claims(PAYER), SECRET)
    counters, before = Counters(hs256_sole), served_natively(hs256_sole)
    a, b = hs256_sole.get("/api/data", {**bearer(token), **SPOOF}), envoy.get("/api/data", {**bearer(token), **SPOOF})
    assert a.status == b.status == 200
    for name in (*CLAIM_HEADERS, "authorization"):
        assert upstream_headers(a).get(name) == upstream_headers(b).get(name), name
    assert counters.delta("passes_accepted") == 0 and served_natively(hs256_sole) == before + 1
    odd = hs256({**pass_claims(PAYER), "duration": 1}, SECRET)
    assert hs256_sole.get("/api/data", bearer(odd)).status == 200  # the declaration's documented consequence
    assert_challenge(hs256_sole.get("/api/data", bearer(hs256(pass_claims(PAYER), "another-secret-0123456789abcdef-xyz"))))


# ----------------------------------------------------------------------------- the tool and the shipped file


def test_the_jwks_has_every_key_with_its_kid_and_alg():
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
    import base64
    cfg = {"secret": SECRET, "keys": [{"kid": "ed", "alg": "EdDSA", "privateKey": base64.b64encode(ED_SEED).decode()},
                                      {"kid": "hs", "secretEnv": "OLD"}]}
    jwks = fastpath.jwks(fastpath.ring(cfg, {"OLD": OLD_SECRET}))
    public = Ed25519PrivateKey.from_private_bytes(ED_SEED).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    assert jwks["keys"] == [
        {"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": "ed",
         "x": base64.urlsafe_b64encode(public).rstrip(b"=").decode()},
        {"kty": "oct", "alg": "HS256", "use": "sig", "kid": "hs",
         "k": base64.urlsafe_b64encode(OLD_SECRET.encode()).rstrip(b"=").decode()},
        {"kty": "oct", "alg": "HS256", "use": "sig", "kid": "x402-unnamed-0",
         "k": base64.urlsafe_b64encode(SECRET.encode()).rstrip(b"=").decode()},
    ]


@pytest.mark.parametrize("cfg,problem", [
    ({"secret": "short"}, "secret: HS256 secret must be at least 32 bytes"),
    ({"secretEnv": "NOT_SET_ANYWHERE"}, "secretEnv: environment variable NOT_SET_ANYWHERE is not set"),
    ({"keys": [{"kid": "a", "alg": "RS256", "secret": SECRET}]}, "keys[0].alg: must be HS256 or EdDSA"),
    ({"keys": [{"alg": "EdDSA", "secret": SECRET}]}, "keys[0].secret: does not fit alg EdDSA"),
    ({"secret": SECRET, "protect": [{"prefix": "/api?x"}]}, "protect[0]: a '?' in a path rule"),
])
def test_the_tool_refuses_what_it_cannot_build(cfg, problem):
    with pytest.raises(fastpath.ConfigProblem, match=problem.replace("[", r"\[").replace("?", r"\?")):
        keys = fastpath.ring(cfg, {})
        fastpath.http_filters(cfg, keys, {"filename": "/dev/null"}, {"name": "w", "typed_config": {}})


def test_the_shipped_envoy_fastpath_yaml_says_what_the_tool_builds_for_its_own_plugin_configuration():
    # Its http_filters are tools/fastpath.py's for the plugin configuration in it, verbatim (the
    # block is regenerated from fastpath_harness.shipped_http_filters_yaml).
    text = SHIPPED.read_text()
    assert shipped_http_filters_yaml(text) in text


# ----------------------------------------------------------------------------- every option the fast path reads

ISSUER = "seller.example"
OPTIONS = dict(audience="api.example", issuer=ISSUER, leewaySeconds=30, forwardAuthorization=True,
               cors={"allowOrigins": ["https://app.example"]},
               claimHeaders={"x-pass-tier": "tier", "x-pass-iat": "iat", "x-pass-duration": "duration",
                             "x-pass-exp": "exp", "x-pass-iss": "iss", "x-pass-sub": "sub"})


@pytest.fixture(scope="module")
def both_with_options(facilitator, upstream, module_envoys):
    """The same seller with every option the fast path reads, natively and through the wasm filter."""
    native = FastPathEnvoy("fastpath-options", default_plugin_config(facilitator.addr, **OPTIONS), facilitator.port,
                           upstream.port, OUT / "test_fastpath")
    native.start()
    yield native, module_envoys.start("wasm-options", **OPTIONS)
    native.stop()


def _aud(claims: dict, aud) -> dict:
    return {**claims, "aud": aud} if aud is not ... else claims


@pytest.mark.parametrize("aud,shift,served", [
    ("api.example", 0, True),
    ("api.example", None, False),         # the default issuer, not this seller's
    (["other", "api.example"], 0, True),
    (..., 0, False),
    ("other", 0, False),
    ("api.example", -3600 - 25, True),    # expired 25 s ago: within leewaySeconds
    ("api.example", -3600 - 40, False),   # expired 40 s ago
    ("api.example", 25, True),            # issued 25 s in the future: within leewaySeconds
    ("api.example", 40, False),
], ids=["aud", "default-issuer", "aud-in-a-list", "no-aud", "other-aud", "expired-within-leeway", "expired-beyond-leeway",
        "future-within-leeway", "future-beyond-leeway"])
def test_issuer_audience_and_leeway_give_the_filters_answers(both_with_options, aud, shift, served):
    native, wasm = both_with_options
    iss = "x402-access-pass" if shift is None else ISSUER
    token = hs256(_aud(pass_claims(PAYER, iat=int(time.time()) + (shift or 0), iss=iss), aud), SECRET)
    counters = Counters(native)
    a, b = native.get("/api/data", bearer(token)), wasm.get("/api/data", bearer(token))
    assert a.status == b.status == (200 if served else 402), (a, b)
    if served:
        assert counters.delta("passes_accepted") == 0, "served, but not natively"


def test_custom_claim_headers_and_forward_authorization_reach_the_upstream_as_the_filter_sets_them(both_with_options):
    native, wasm = both_with_options
    token = hs256({**pass_claims(PAYER, tier="5m", duration=300, iss=ISSUER), "aud": "api.example"}, SECRET)
    spoof = {"X-Pass-Tier": "24h", "X-Pass-Exp": "99999999999"}
    natively = upstream_headers(native.get("/api/data", {**bearer(token), **spoof}))
    by_wasm = upstream_headers(wasm.get("/api/data", {**bearer(token), **spoof}))
    for name in (*OPTIONS["claimHeaders"], "authorization"):
        assert natively.get(name) == by_wasm.get(name) is not None, (name, natively.get(name), by_wasm.get(name))


@pytest.mark.parametrize("origin", ["https://app.example", "https://evil.example", None])
def test_cors_of_a_listed_origin_is_the_filters(both_with_options, origin):
    native, wasm = both_with_options
    token = hs256({**pass_claims(PAYER, iss=ISSUER), "aud": "api.example"}, SECRET)
    headers = {**bearer(token), **({"Origin": origin} if origin else {})}
    a, b = native.get("/api/data", headers), wasm.get("/api/data", headers)
    assert a.status == b.status == 200, (a, b)
    for name in ("access-control-allow-origin", "access-control-expose-headers", "vary"):
        assert a.headers.get_all(name) == b.headers.get_all(name), (name, a, b)


class ShippedFastPathEnvoy(Envoy):
    """envoy/envoy-fastpath.yaml as a seller runs it (its payTo set, the wasm and the JWKS where it
    says), moved onto loopback: ephemeral listener and admin ports, the demo upstream, and the
    facilitator cluster pointed at a closed loopback port (no DNS, no network)."""

    jwks_path: pathlib.Path

    def render(self) -> pathlib.Path:
        text = (REPO / "envoy/envoy-fastpath.yaml").read_text()
        for old, new in [("/etc/envoy/x402_access_pass.wasm", str(WASM)),
                         ("/etc/envoy/x402-pass-jwks.json", str(self.jwks_path)),
                         (PAY_TO_PLACEHOLDER, SELLER_WALLET),
                         ("port_value: 9901", "port_value: 0"),
                         ("address: 0.0.0.0, port_value: 10000", "address: 127.0.0.1, port_value: 0"),
                         ("address: x402.dexter.cash, port_value: 443", "address: 127.0.0.1, port_value: 9"),
                         ("type: LOGICAL_DNS", "type: STATIC"),
                         ("port_value: 8080", f"port_value: {self.upstream_port}")]:
            assert old in text, old
            text = text.replace(old, new)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(text)
        return self.config_path


def test_the_shipped_envoy_fastpath_yaml_serves_a_valid_pass_natively_and_leaves_the_rest_to_the_filter(
        upstream, monkeypatch):
    secret = "shipped-fastpath-test-secret-0123456789abcdef"
    monkeypatch.setenv("X402_PASS_SECRET", secret)  # host_env_keys: Envoy's own environment
    out = OUT / "test_fastpath"
    out.mkdir(parents=True, exist_ok=True)
    text = (REPO / "envoy/envoy-fastpath.yaml").read_text()
    lines = text[text.index("value: |\n") + len("value: |\n"):].splitlines()
    indent = lines[0][:len(lines[0]) - len(lines[0].lstrip())]
    plugin = "\n".join(next(iter([lines[:i] for i, line in enumerate(lines) if not line.startswith(indent)]), lines))
    (out / "shipped.plugin.json").write_text(plugin)
    assert fastpath.main(["jwks", str(out / "shipped.plugin.json"), "-o", str(out / "shipped.jwks.json")]) == 0
    envoy = ShippedFastPathEnvoy("shipped-fastpath", {}, 9, upstream.port, out)
    envoy.jwks_path = out / "shipped.jwks.json"
    envoy.start()
    try:
        token = hs256(pass_claims(PAYER, network="solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp"), secret)
        counters = Counters(envoy)
        resp = envoy.get("/api/data", {**bearer(token), **SPOOF})
        assert resp.status == 200, resp
        seen = upstream_headers(resp)
        assert seen["x-access-pass-payer"] == [PAYER] and seen["x-access-pass-tier"] == ["1h"]
        assert "authorization" not in seen and "x-x402-fast-path" not in seen
        assert_cors(resp)
        assert counters.delta("passes_accepted") == 0
        assert served_natively(envoy) == 1
        # The same pass with a lower-case scheme: the filter's (the facilitator is unreachable,
        # but checking a pass needs no callout).
        assert envoy.get("/api/data", {"Authorization": f"bearer {token}"}).status == 200
        assert counters.delta("passes_accepted") == 1
        # No pass: the filter answers (here 503 fee_payer_unknown: no facilitator to ask).
        before = upstream.count()
        resp = envoy.get("/api/data")
        assert resp.status == 503 and resp.json()["reason"] == "fee_payer_unknown", resp
        assert upstream.count() == before
    finally:
        envoy.stop()


PATH_RULES = dict(protect=[{"path": "/exact"}, {"prefix": "/api/"}],
                  bypass=[{"path": "/api/open"}, {"prefix": "/api/public/"}])


@pytest.fixture(scope="module")
def both_with_path_rules(facilitator, upstream, module_envoys):
    native = FastPathEnvoy("fastpath-paths", default_plugin_config(facilitator.addr, **PATH_RULES), facilitator.port,
                           upstream.port, OUT / "test_fastpath")
    native.start()
    yield native, module_envoys.start("wasm-paths", **PATH_RULES)
    native.stop()


@pytest.mark.parametrize("path,protected", [
    ("/exact", True), ("/exact?x=1", True), ("/exact/more", False), ("/exactly", False),
    ("/api/data", True), ("/api/open", False), ("/api/open?x=1", False), ("/api/opener", True),
    ("/api/public/x", False), ("/other", False),
])
def test_protect_and_bypass_rules_apply_where_the_filters_do(both_with_path_rules, path, protected):
    native, wasm = both_with_path_rules
    token = hs256(pass_claims(PAYER), SECRET)
    headers = {**bearer(token), "X-Access-Pass-Tier": "24h"}
    before = served_natively(native)
    a, b = native.get(path, headers), wasm.get(path, headers)
    assert a.status == b.status == 200, (a, b)
    natively, by_wasm = upstream_headers(a), upstream_headers(b)
    for name in (*CLAIM_HEADERS, "authorization"):
        assert natively.get(name) == by_wasm.get(name), (name, natively.get(name), by_wasm.get(name))
    assert natively["x-access-pass-tier"] == (["1h"] if protected else ["24h"])
    assert served_natively(native) == before + (1 if protected else 0)

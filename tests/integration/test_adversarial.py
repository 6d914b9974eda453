"""Adversarial suite against the real Envoy: forged and malformed passes (docs/behaviour.md §7), payments that try
to get more than they pay for (§5, §6), header tricks (§3, §8, §10), and facilitator faults beyond
test_faults.py (§6.4, §6.5, §9.1).

Every attack asserts the exact answer, that nothing reached the upstream unless a valid pass was
presented, and, from the facilitator's own ledger (`/state`), that nothing was charged beyond what
was paid: each settlement has exactly the amount of the pass issued for it (`exp - iat` priced at
the configuration's tiers and ratePerHour), and at most one settlement per payment.

What test_tokens.py, test_purchase.py, test_replay.py, test_options.py, test_operations.py and
test_faults.py already cover is not repeated here (see docs/security.md for the map)."""

from __future__ import annotations

import base64
import json
import os
import socket
import time

import pytest

import siwx
import x402pay as xp
from attacks import (STALE_AFTER_SECONDS, Counters, Ledger, assert_pass_is_what_was_paid, custom_price,
                     json_reason, race, raw_exchange, tokens_of, upstream_header_values, worker_connections)
from harness import (ASSET, EXTERNAL, EXTERNAL_SKIP, FEE_PAYER_SEED_HEX, NETWORK, OUT, SECRET, Envoy, Facilitator,
                     default_plugin_config, wait_until)
from helpers import (PRICES, assert_challenge, assert_cors, assert_payment_error, assert_purchase_ok, buy, decode_jwt,
                     get_challenge, hs256, pass_claims, purchase, v1_payment)

TIMEOUT_S = 2.0          # facilitatorTimeoutMs of the default test configuration
NO_HANG = TIMEOUT_S + 1.5  # the longest any answer may take while the facilitator misbehaves


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def now() -> int:
    return int(time.time())


def claims_with(payer: str, /, **changes) -> dict:
    c = pass_claims(payer)
    for k, v in changes.items():
        if v is ...:
            c.pop(k, None)
        else:
            c[k] = v
    return c


def raw_claims(claims: dict) -> str:
    return json.dumps(claims, separators=(",", ":"))


# ================================================================ passes (docs/behaviour.md §7)

PAYER = xp.derived_keypair("adversarial-payer").address
HS = {"alg": "HS256", "typ": "JWT"}


def _signed_with_kid(kid):
    return lambda: hs256(pass_claims(PAYER), SECRET, header=dict(HS, kid=kid))


def _sig_of_other_token() -> str:
    a = hs256(pass_claims(PAYER), SECRET)
    b = hs256(claims_with(PAYER, tier="24h", duration=86400, exp=now() + 86400), SECRET)
    return ".".join(b.split(".")[:2] + [a.split(".")[2]])


def _exact_size_token(size: int) -> str:
    """A valid pass of exactly `size` bytes (its `payer` padded)."""
    for pad in range(size):
        token = hs256(claims_with(PAYER + "x" * pad), SECRET)
        if len(token) == size:
            return token
        if len(token) > size:
            break
    raise AssertionError(f"no token of exactly {size} bytes")


BAD_PASSES = {
    # kid: a key the ring does not hold, or something that is not a key name at all
    "kid-names-no-key": (_signed_with_kid("2026-01"), "unknown_kid"),
    "kid-path-traversal": (_signed_with_kid("../../../../dev/null"), "unknown_kid"),
    "kid-sql-injection": (_signed_with_kid("' OR '1'='1"), "unknown_kid"),
    "kid-300-bytes": (_signed_with_kid("k" * 300), "unknown_kid"),
    "kid-a-number": (_signed_with_kid(7), "malformed"),
    "kid-an-object": (_signed_with_kid({"$ne": ""}), "malformed"),
    # alg: only exact HS256 / EdDSA, never none, never a list
    "alg-lowercase": (lambda: hs256(pass_claims(PAYER), SECRET, header={"alg": "hs256", "typ": "JWT"}),
                      "algorithm_not_allowed"),
    "alg-trailing-space": (lambda: hs256(pass_claims(PAYER), SECRET, header={"alg": "HS256 ", "typ": "JWT"}),
                           "algorithm_not_allowed"),
    "alg-none-with-kid": (lambda: hs256(pass_claims(PAYER), SECRET, header={"alg": "none", "kid": "x"}),
                          "algorithm_not_allowed"),
    "alg-a-list": (lambda: hs256(pass_claims(PAYER), SECRET, header={"alg": ["HS256"], "typ": "JWT"}), "malformed"),
    "alg-twice-none-last": (lambda: hs256(pass_claims(PAYER), SECRET, header='{"alg":"HS256","alg":"none"}'),
                            "malformed"),
    "crit-extension": (lambda: hs256(pass_claims(PAYER), SECRET, header=dict(HS, crit=["exp"], exp=1)),
                       "malformed"),
    # exp / iat / duration
    "exp-twice-expired-first": (lambda: hs256(raw_claims(pass_claims(PAYER))[:-1] + ',"exp":1}', SECRET),
                                "malformed"),
    "exp-huge-1e30": (lambda: hs256(claims_with(PAYER, exp=10 ** 30), SECRET), "missing_expiry"),
    "exp-beyond-u64": (lambda: hs256(claims_with(PAYER, exp=2 ** 64), SECRET), "missing_expiry"),
    "exp-u64-max": (lambda: hs256(claims_with(PAYER, exp=2 ** 64 - 1, duration=2 ** 64 - 1 - now()), SECRET),
                    "too_long"),
    "exp-negative": (lambda: hs256(claims_with(PAYER, exp=-1), SECRET), "missing_expiry"),
    "exp-float": (lambda: hs256(claims_with(PAYER, exp=float(now() + 3600)), SECRET), "missing_expiry"),
    "exp-true": (lambda: hs256(claims_with(PAYER, exp=True), SECRET), "missing_expiry"),
    "iat-missing": (lambda: hs256(claims_with(PAYER, iat=...), SECRET), "bad_duration"),
    "iat-a-string": (lambda: hs256(claims_with(PAYER, iat=str(now())), SECRET), "bad_duration"),
    "iat-in-the-future-by-2s": (lambda: hs256(pass_claims(PAYER, iat=now() + 2), SECRET), "issued_in_future"),
    "one-second-over-the-longest-pass": (
        lambda: hs256(pass_claims(PAYER, tier="custom", duration=2_592_001), SECRET), "too_long"),
    # claims of the wrong type, or missing
    "tier-a-number": (lambda: hs256(claims_with(PAYER, tier=5), SECRET), "malformed"),
    "payer-missing": (lambda: hs256(claims_with(PAYER, payer=...), SECRET), "malformed"),
    "sub-null": (lambda: hs256(claims_with(PAYER, sub=None), SECRET), "wrong_subject"),
    # signature
    "signature-stripped": (lambda: hs256(pass_claims(PAYER), SECRET).rsplit(".", 1)[0] + ".", "bad_signature"),
    # 86 base64url characters decode to 64 bytes only when the stray bits happen to be zero
    "signature-doubled": (lambda: (lambda t: t + t.rsplit(".", 1)[1])(hs256(pass_claims(PAYER), SECRET)),
                          ("bad_signature", "malformed")),
    "signature-padded": (lambda: hs256(pass_claims(PAYER), SECRET) + "=", "malformed"),
    "signature-of-another-pass": (_sig_of_other_token, "bad_signature"),
    "five-segments": (lambda: hs256(pass_claims(PAYER), SECRET) + ".e30.e30", "malformed"),
    # size
    "valid-but-8KiB": (lambda: hs256(claims_with(PAYER + "x" * 6000), SECRET), "too_large"),
    "valid-but-4097-bytes": (lambda: _exact_size_token(4097), "too_large"),
}


@pytest.mark.parametrize("name", list(BAD_PASSES))
def test_a_forged_or_malformed_pass_gets_the_challenge_with_its_exact_reason(envoy, upstream, name):
    make, reasons = BAD_PASSES[name]
    reasons = (reasons,) if isinstance(reasons, str) else reasons
    token = make()
    counters = Counters(envoy)
    before = upstream.count()
    resp = envoy.get("/api/data", bearer(token))
    assert resp.status == 402, resp
    assert_challenge(resp)
    assert upstream.count() == before, "a refused pass reached the upstream"
    deadline = time.monotonic() + 5
    while sum(counters.delta(f"tokens_rejected.{r}") for r in reasons) < 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert sum(counters.delta(f"tokens_rejected.{r}") for r in reasons) == 1, \
        {k: v for k, v in envoy.stats().items() if "tokens_rejected" in k}


@pytest.mark.parametrize("make", [
    pytest.param(lambda: hs256(pass_claims(PAYER, tier="custom", duration=2_592_000), SECRET), id="the-longest-pass"),
    pytest.param(lambda: _exact_size_token(4096), id="exactly-4096-bytes"),
    pytest.param(lambda: hs256(pass_claims(PAYER), SECRET, header=dict(HS, kid=None)), id="kid-null-is-no-kid"),
])
def test_a_valid_pass_at_the_limits_is_accepted(envoy, make):
    token = make()
    resp = envoy.get("/api/data", bearer(token))
    assert resp.status == 200 and resp.json()["upstream"] == "demo", resp


# ================================================================ payments (docs/behaviour.md §5, §6)


def pay_amount(buyer, required: dict, amount: int, **options):
    """A payment naming and transferring `amount` (whatever the challenge asked)."""
    offer = required["accepts"][0]
    accepted = dict(offer, amount=str(amount), maxAmountRequired=str(amount))
    return buyer.pay(required, accepted=accepted, amount=amount, **options)


@pytest.mark.parametrize("query_string, amount", [
    ("duration=2592001", custom_price(2_592_001)),   # one second over maxDurationSeconds
    ("duration=59", custom_price(59)),               # under minDurationSeconds
    ("duration=0", 0),                               # a free pass
    ("duration=-3600", 500000),
    ("duration=%2B3600", 500000),                    # "+3600"
    ("duration=3600.0", 500000),
    ("duration=1e3", custom_price(1000)),
    ("duration=0x0e10", 500000),
    ("duration=%EF%BC%93%EF%BC%96%EF%BC%90%EF%BC%90", 500000),  # fullwidth digits "３６００"
    ("duration=18446744073709551616", 500000),       # beyond u64
])
def test_an_out_of_range_or_odd_duration_buys_nothing_and_never_reaches_the_facilitator(
        envoy, facilitator, buyer, query_string, amount):
    path = "/api/data?" + query_string
    required = get_challenge(envoy, path)
    assert required["accepts"][0]["amount"] == str(PRICES["5m"]), "not priced at the default pass"
    header, _ = pay_amount(buyer, required, amount)
    ledger = Ledger(facilitator)
    assert_payment_error(purchase(envoy, path, header), "amount_mismatch")
    ledger.assert_nothing_charged(no_callout=True)


@pytest.mark.parametrize("query_string, paid, tier, seconds, label", [
    ("tier=5m&tier=24h", PRICES["24h"], "24h", 86400, "1 day"),
    ("tier=24h&tier=24h&tier=24h", PRICES["5m"], "5m", 300, "5 minutes"),
    ("tier=1h&duration=60", custom_price(60), "custom", 60, "1 minute"),
    ("duration=7200&duration=60", custom_price(60), "custom", 60, "1 minute"),
    ("tier=%32%34h", PRICES["24h"], "24h", 86400, "1 day"),
    ("TIER=24h", PRICES["24h"], None, 0, ""),
    ("tier=24h%00", PRICES["24h"], None, 0, ""),
    ("tier=1h;tier=24h", PRICES["24h"], None, 0, ""),
    ("tier=" + "2" * 40 + "h", PRICES["24h"], None, 0, ""),
    # only the first 64 pairs of a query are read (pricing::parse_query): the tier is pair 65
    ("x=1&" * 64 + "tier=24h", PRICES["24h"], None, 0, ""),
], ids=["tiers-5m-then-24h-paid-24h", "24h-thrice-paid-5m", "tier-and-duration-paid-60s",
        "two-durations-paid-the-second", "percent-encoded-tier", "upper-case-key", "nul-in-value",
        "semicolon-separator", "overlong-tier-id", "tier-after-64-pairs"])
def test_repeated_and_conflicting_query_parameters_sell_exactly_what_was_paid(
        envoy, facilitator, buyer, query_string, paid, tier, seconds, label):
    path = "/api/data?" + query_string
    header, tx = pay_amount(buyer, get_challenge(envoy, path), paid)
    ledger = Ledger(facilitator)
    resp = purchase(envoy, path, header)
    if tier is None:
        assert_payment_error(resp, "amount_mismatch")
        ledger.assert_nothing_charged(no_callout=True)
        return
    token, _ = assert_purchase_ok(resp, buyer, tier, seconds, label)
    ledger.assert_charged({tx.message_hash: paid})
    assert_pass_is_what_was_paid(token, paid)


def test_amount_and_max_amount_required_that_disagree_cannot_buy_the_dearer_pass(envoy, facilitator, buyer):
    required = get_challenge(envoy, "/api/data?tier=24h")
    offer = required["accepts"][0]
    # Names the 24h price, transfers the 5m price: `amount` is what binds, the transfer does not match.
    lying = dict(offer, amount=str(PRICES["24h"]), maxAmountRequired=str(PRICES["5m"]))
    header, _ = buyer.pay(required, accepted=lying, amount=PRICES["5m"])
    ledger = Ledger(facilitator)
    assert_payment_error(purchase(envoy, "/api/data?tier=24h", header), "invalid_transaction")
    ledger.assert_nothing_charged(no_callout=True)
    # Without `amount`, `maxAmountRequired` binds (x402 v1 field name), and pays what it says.
    v1_style = {k: v for k, v in offer.items() if k != "amount"}
    header, tx = buyer.pay(required, accepted=v1_style)
    token, _ = assert_purchase_ok(purchase(envoy, "/api/data?tier=24h", header), buyer, "24h", 86400, "1 day")
    ledger.assert_charged({tx.message_hash: PRICES["24h"]})
    assert_pass_is_what_was_paid(token, PRICES["24h"])


@pytest.mark.parametrize("amount_text", ["02000000", "2000000.0", " 2000000", "2e6", "-2000000", "2000000 "])
def test_a_non_canonical_amount_is_an_amount_mismatch(envoy, facilitator, buyer, amount_text):
    required = get_challenge(envoy, "/api/data?tier=24h")
    accepted = dict(required["accepts"][0], amount=amount_text, maxAmountRequired=amount_text)
    header, _ = buyer.pay(required, accepted=accepted, amount=PRICES["24h"])
    ledger = Ledger(facilitator)
    assert_payment_error(purchase(envoy, "/api/data?tier=24h", header), "amount_mismatch")
    ledger.assert_nothing_charged(no_callout=True)


@pytest.mark.parametrize("field, value, reason", [
    ("scheme", "upto", "unsupported_scheme"),
    ("network", xp.MAINNET, "network_mismatch"),
    ("asset", xp.MAINNET_USDC, "asset_mismatch"),
    ("payTo", xp.derived_keypair("not-the-merchant").address, "pay_to_mismatch"),
])
def test_a_payment_for_other_terms_gets_its_exact_reason(envoy, facilitator, buyer, field, value, reason):
    required = get_challenge(envoy, "/api/data")
    header, _ = buyer.pay(required, accepted=dict(required["accepts"][0], **{field: value}))
    ledger = Ledger(facilitator)
    assert_payment_error(purchase(envoy, "/api/data", header), reason)
    ledger.assert_nothing_charged(no_callout=True)


def _with_fee_payer_slot(payload: dict, filler: bytes) -> dict:
    """The same transaction with the fee payer's signature slot (not part of the message) filled."""
    wire = bytearray(base64.b64decode(payload["payload"]["transaction"]))
    wire[1:65] = filler
    return dict(payload, payload={"transaction": base64.b64encode(bytes(wire)).decode()})


def test_the_same_transaction_in_another_envelope_is_the_same_payment(envoy, facilitator, buyer):
    required = get_challenge(envoy, "/api/data")
    payload, tx = buyer.pay_payload(required)
    ledger = Ledger(facilitator)
    first = purchase(envoy, "/api/data?tier=5m", xp.b64_json(payload))
    token, _ = assert_purchase_ok(first, buyer, "5m", 300, "5 minutes")
    envelopes = {
        "another resource": xp.b64_json(dict(payload, resource={"url": "https://evil.example/", "description": "x",
                                                                "mimeType": "text/plain"})),
        "extra members": xp.b64_json(dict(payload, extensions={"x": 1}, accepted=dict(payload["accepted"], memo="m"))),
        "pretty-printed JSON": base64.b64encode(json.dumps(payload, indent=2).encode()).decode(),
        "fee payer slot filled": xp.b64_json(_with_fee_payer_slot(payload, os.urandom(64))),
    }
    for name, header in envelopes.items():
        # As a purchase (the same 200) and as a paid request (forwarded with the same pass).
        for path in ("/api/data", "/api/data?tier=24h"):
            again = purchase(envoy, path, header)
            assert again.status == 200 and again.headers["access-pass"] == token, (name, path, again)
    ledger.assert_charged({tx.message_hash: PRICES["5m"]})
    assert_pass_is_what_was_paid(token, PRICES["5m"])


def test_one_payment_raced_on_16_connections_over_both_workers_is_charged_once(envoy, facilitator, buyer):
    required = get_challenge(envoy, "/api/data?tier=1h")
    payload, tx = buyer.pay_payload(required)
    headers = [xp.b64_json(payload), xp.b64_json(dict(payload, resource={"url": "x", "description": "y",
                                                                         "mimeType": "z"}))]
    paths = ["/api/data?tier=1h", "/api/data?tier=24h&tier=1h"]
    facilitator.fault("verify", "slow", delay_ms=300, count=1)
    workers_before = worker_connections(envoy)
    ledger = Ledger(facilitator)
    results = race(16, lambda i: purchase(envoy, paths[i % 2], headers[i // 2 % 2]))
    workers_after = worker_connections(envoy)
    used = {w for w, n in workers_after.items() if n > workers_before.get(w, 0)}
    assert len(used) >= 2, f"the race did not reach both workers: {workers_before} -> {workers_after}"
    assert {r.status for r in results} <= {200, 409}, [r for r in results if r.status not in (200, 409)]
    assert any(r.status == 200 for r in results), results
    tokens = tokens_of(results)
    assert len(tokens) == 1, tokens
    for r in results:
        if r.status == 409:
            assert json_reason(r) == "payment_in_progress" and r.headers.get("retry-after") == "1", r
    again = purchase(envoy, paths[0], headers[0])
    assert again.status == 200 and again.headers["access-pass"] in tokens, again
    ledger.assert_charged({tx.message_hash: PRICES["1h"]})
    assert_pass_is_what_was_paid(tokens.pop(), PRICES["1h"])


def test_a_1_mib_payment_header_is_refused_by_envoy_with_431_and_nothing_is_issued(envoy, facilitator, upstream, buyer):
    required = get_challenge(envoy, "/api/data?tier=24h")
    payload, _ = buyer.pay_payload(required)

    def padded(size: int) -> bytes:
        p = dict(payload, resource=dict(payload["resource"], description="A" * size))
        return xp.b64_json(p).encode()

    ledger = Ledger(facilitator)
    before = upstream.count()
    # Envoy's own limit (max_request_headers_kb, 60 KiB by default) answers before the filter runs.
    status, _, body = raw_exchange(envoy, b"POST", b"/api/data?tier=24h", [(b"PAYMENT-SIGNATURE", padded(768 * 1024))])
    assert status == 431, (status, body[:200])
    status, _, _ = raw_exchange(envoy, b"GET", b"/api/data", [(b"Authorization", b"Bearer " + b"a" * (1 << 20))])
    assert status == 431
    # Under Envoy's limit but over the filter's 16 KiB: refused before any decoding.
    status, headers, body = raw_exchange(envoy, b"POST", b"/api/data?tier=24h",
                                         [(b"PAYMENT-SIGNATURE", padded(40 * 1024))])
    assert status == 402 and json.loads(body) == {"error": "Payment verification failed",
                                                  "reason": "invalid_payment_header"}, (status, body)
    assert "payment-required" in headers
    ledger.assert_nothing_charged(no_callout=True)
    assert upstream.count() == before


def _standard_b64_with_url_unsafe_chars(payload: dict) -> str:
    for n in range(64):
        text = xp.b64_json(dict(payload, pad="~" * n))
        if "+" in text or "/" in text:
            return text
    raise AssertionError("no + or / in any padding")


@pytest.mark.parametrize("make_header", [
    pytest.param(lambda p: base64.b64encode(b'{"x402Version":2,"accepted":' + b"[" * 6000 + b"]" * 6000 + b"}").decode(),
                 id="nested-12000-deep"),
    pytest.param(lambda p: base64.b64encode(b'{"x402Version":NaN}').decode(), id="NaN"),
    pytest.param(lambda p: xp.b64_json(dict(p, x402Version="2")), id="version-a-string"),
    pytest.param(lambda p: xp.b64_json(dict(p, x402Version=2.0)), id="version-2.0"),
    pytest.param(lambda p: base64.b64encode(b"\xef\xbb\xbf" + xp.compact_json(p).encode()).decode(), id="utf8-bom"),
    pytest.param(lambda p: _standard_b64_with_url_unsafe_chars(p).replace("+", "-").replace("/", "_"),
                 id="base64url-alphabet"),
    pytest.param(lambda p: base64.b64encode(xp.compact_json(p).encode()[:-1]).decode(), id="truncated-json"),
    pytest.param(lambda p: xp.b64_json(dict(p, accepted=[p["accepted"]])), id="accepted-a-list"),
    pytest.param(lambda p: xp.b64_json(dict(p, payload={"transaction": 12345})), id="transaction-a-number"),
])
def test_a_malformed_payment_envelope_is_invalid_payment_header_and_never_a_trap(
        envoy, facilitator, buyer, make_header):
    required = get_challenge(envoy, "/api/data")
    payload, _ = buyer.pay_payload(required)
    ledger = Ledger(facilitator)
    assert_payment_error(purchase(envoy, "/api/data", make_header(payload)), "invalid_payment_header")
    ledger.assert_nothing_charged(no_callout=True)
    assert_challenge(envoy.get("/api/data"))  # the worker is still there


def test_a_duplicated_accepted_member_is_read_once_and_binds_what_the_transfer_pays(envoy, facilitator, buyer):
    required = get_challenge(envoy, "/api/data?tier=24h")
    payload, tx = buyer.pay_payload(get_challenge(envoy, "/api/data"))  # transfers the 5m price
    dear = dict(required["accepts"][0])
    text = xp.compact_json(payload)
    text = text.replace('"accepted":', '"accepted":' + xp.compact_json(dear) + ',"accepted":', 1)
    ledger = Ledger(facilitator)
    resp = purchase(envoy, "/api/data?tier=24h", base64.b64encode(text.encode()).decode())
    # serde_json keeps the last member (as JSON.parse does): the 5m terms, which the transfer pays.
    token, _ = assert_purchase_ok(resp, buyer, "5m", 300, "5 minutes")
    ledger.assert_charged({tx.message_hash: PRICES["5m"]})
    assert_pass_is_what_was_paid(token, PRICES["5m"])


def test_a_second_transfer_to_someone_else_is_refused_by_the_facilitator_and_nothing_is_charged(
        envoy, facilitator, buyer):
    required = get_challenge(envoy, "/api/data")
    mint = xp.pubkey(ASSET)
    thief = xp.derived_keypair("thief").public
    extra = xp.transfer_checked(xp.associated_token_address(buyer.keypair.public, mint), mint,
                                xp.associated_token_address(thief, mint), buyer.keypair.public, PRICES["5m"], 6)
    header, tx = buyer.pay(required, extra_instructions=[extra])
    ledger = Ledger(facilitator)
    resp = purchase(envoy, "/api/data", header)
    assert_payment_error(resp, "invalid_exact_svm_payload_unknown_instruction")
    ledger.assert_nothing_charged()
    assert ledger.counts_delta()["settle"] == 0


def test_a_transfer_whose_authority_is_the_fee_payer_is_refused_locally(envoy, facilitator, buyer):
    required = get_challenge(envoy, "/api/data")
    fee_payer = xp.keypair_from_seed(FEE_PAYER_SEED_HEX)
    header, _ = buyer.pay(required, authority=fee_payer)  # the fee payer's slot stays empty
    ledger = Ledger(facilitator)
    assert_payment_error(purchase(envoy, "/api/data", header), "invalid_transaction")
    ledger.assert_nothing_charged(no_callout=True)


# --------------------------------------------------------------------------- prices that do not fit
# Found by fuzzing: with an 18-decimal asset the custom-duration price used to wrap in u128 and
# sell ?duration=17014118346046923174 (5.4e11 years) for 0.0023 tokens. Configurations are now
# bounded to passes of at most ten years (test_config_errors.py), and a price that does not fit
# in u64 is not for sale: the request falls back to the next candidate, the default pass.

DECIMALS_18_CONFIG = dict(
    asset={"address": ASSET, "decimals": 18}, tiers=None, ratePerHour="10",
    maxDurationSeconds=315_360_000)
TEN_YEARS = 315_360_000  # 1e19 atomic/h × ten years = 8.8e23 atomic: far above u64::MAX


class Decimals18Facilitator(Facilitator):
    """The test facilitator for an 18-decimal asset (harness.Facilitator fixes the default of 6)."""

    def start(self, timeout: float = 30.0) -> "Decimals18Facilitator":
        import harness
        real = harness.Process

        class WithDecimals(real):  # type: ignore[misc, valid-type]
            def __init__(self, name, argv, log_path, env=None):
                super().__init__(name, [*argv, "--decimals", "18"], log_path, env)

        harness.Process = WithDecimals
        try:
            return super().start(timeout)
        finally:
            harness.Process = real


@pytest.mark.skipif(EXTERNAL, reason=EXTERNAL_SKIP)
def test_a_duration_whose_price_does_not_fit_is_not_for_sale(upstream, new_buyer):
    out = OUT / "test_adversarial.py__unfit_duration_price"
    fac = Decimals18Facilitator(out, "facilitator-18").start()
    env = Envoy("decimals-18", default_plugin_config(fac.addr, **DECIMALS_18_CONFIG), fac.port, upstream.port, out)
    try:
        env.start()
        path = f"/api/data?duration={TEN_YEARS}"
        required = get_challenge(env, path)
        one_hour = 10 * 10 ** 18
        assert int(required["accepts"][0]["amount"]) == one_hour, required["accepts"][0]
        buyer = new_buyer()
        ledger = Ledger(fac)
        header, _ = buyer.pay(required)
        resp = purchase(env, path, header)
        assert_purchase_ok(resp, buyer, "custom", 3600, "1 hour")
        assert [s["amount"] for s in ledger.new_settlements()] == [str(one_hour)]
    finally:
        env.stop()
        fac.stop()


# ================================================================ header tricks (docs/behaviour.md §3, §8, §10)


def test_spoofed_claim_headers_without_a_valid_pass_never_reach_the_upstream(envoy, upstream, buyer):
    spoof = {"X-Access-Pass-Tier": "24h", "X-Access-Pass-Payer": buyer.address,
             "X-Access-Pass-Expires": "99999999999", "X-Access-Pass-Network": NETWORK}
    expired = hs256(pass_claims(buyer.address, iat=now() - 7200), SECRET)
    forged = hs256(pass_claims(buyer.address), "not-the-secret-but-long-enough-0123456789")
    before = upstream.count()
    for extra in ({}, bearer(expired), bearer(forged), {"Authorization": "Basic eDp5"}):
        resp = envoy.get("/api/data", {**spoof, **extra})
        assert_challenge(resp)
    assert upstream.count() == before


def test_duplicated_and_mixed_case_claim_headers_are_replaced_by_the_passs_own(envoy, buyer):
    token = hs256(pass_claims(buyer.address, tier="5m", duration=300), SECRET)
    _, claims, _ = decode_jwt(token)
    status, _, body = raw_exchange(envoy, b"GET", b"/api/data", [
        (b"Authorization", b"Bearer " + token.encode()),
        (b"X-Access-Pass-Tier", b"24h"), (b"x-access-pass-tier", b"7d"),
        (b"X-ACCESS-PASS-EXPIRES", b"99999999999"), (b"x-access-pass-expires", b"\xff\xfe"),
        (b"x-access-pass-payer", b"someone-else"), (b"X-Access-Pass-Network", b"solana:mainnet"),
    ])
    assert status == 200, body
    echo = json.loads(body)
    assert upstream_header_values(echo, "x-access-pass-tier") == ["5m"], echo["headers"]
    assert upstream_header_values(echo, "x-access-pass-expires") == [str(claims["exp"])], echo["headers"]
    assert upstream_header_values(echo, "x-access-pass-payer") == [buyer.address], echo["headers"]
    assert upstream_header_values(echo, "x-access-pass-network") == [NETWORK], echo["headers"]
    assert upstream_header_values(echo, "authorization") == []


def test_every_other_header_of_a_forwarded_pass_reaches_the_upstream_as_sent_in_order(envoy, upstream, buyer):
    # The filter reads a request's headers in one block (docs/security.md §6) and sets the claims:
    # every header it does not own must reach the upstream byte for byte, repeated ones each in their
    # order, and a POST body intact.
    token = hs256(pass_claims(buyer.address, tier="5m", duration=300), SECRET)
    sent = [
        (b"X-Trace", b"first"), (b"Cookie", b"a=1; b=2"), (b"X-Raw", b"\xff\xfe bytes \xc3\x28"),
        (b"Authorization", b"Bearer " + token.encode()), (b"X-Trace", b"second"), (b"Cookie", b"c=3"),
        (b"X-Access-Pass-Tier", b"24h"), (b"X-Long", b"v" * 4096), (b"Content-Type", b"application/json"),
        (b"X-Empty", b""), (b"X-Trace", b"third"),
    ]
    body = b'{"query": "select", "n": 3}'
    status, _, answer = raw_exchange(envoy, b"POST", b"/api/data?x=1", sent, body)
    assert status == 200, answer
    echo = json.loads(answer)
    got = [(k, v) for k, v in echo["headers"]]
    for name in ("x-trace", "cookie", "x-raw", "x-long", "content-type", "x-empty"):
        expected = [v.decode("latin-1") for k, v in sent if k.lower().decode() == name]
        assert [v for k, v in got if k == name] == expected, (name, got)
    assert [v for k, v in got if k == "x-access-pass-tier"] == ["5m"], got
    assert not [k for k, _ in got if k == "authorization"], got
    logged = [r for r in upstream.requests if r["path"] == "/api/data?x=1"]
    assert logged and logged[-1]["body"] == body.decode(), logged[-1:]


def test_on_a_bypassed_path_client_claim_headers_pass_untouched(envoy, upstream):
    # Documented limit (docs/security.md): bypassed and unprotected paths are not the filter's;
    # an upstream must trust x-access-pass-* only on protected paths (or strip them at the edge).
    resp = envoy.get("/api/public/info", {"X-Access-Pass-Tier": "24h"})
    assert resp.status == 200, resp
    assert upstream_header_values(resp.json(), "x-access-pass-tier") == ["24h"]


@pytest.mark.parametrize("first_valid", [True, False], ids=["valid-first", "garbage-first"])
def test_two_authorization_headers_never_let_a_request_through(envoy, upstream, buyer, first_valid):
    token = hs256(pass_claims(buyer.address), SECRET)
    values = [b"Bearer " + token.encode(), b"Bearer x.y.z"]
    if not first_valid:
        values.reverse()
    before = upstream.count()
    status, headers, _ = raw_exchange(envoy, b"GET", b"/api/data", [(b"Authorization", v) for v in values])
    # Envoy joins repeated Authorization values with a comma: the result is no pass at all.
    assert status == 402 and "payment-required" in headers, status
    assert upstream.count() == before


def test_two_payment_headers_are_at_most_one_purchase(envoy, facilitator, buyer):
    required = get_challenge(envoy, "/api/data")
    first, tx1 = buyer.pay(required)
    second, tx2 = buyer.pay(required)
    ledger = Ledger(facilitator)
    status, headers, body = raw_exchange(envoy, b"POST", b"/api/data", [
        (b"PAYMENT-SIGNATURE", first.encode()), (b"PAYMENT-SIGNATURE", second.encode())])
    assert status == 200, body
    token = headers["access-pass"]
    ledger.assert_charged({tx1.message_hash: PRICES["5m"]})
    assert_pass_is_what_was_paid(token, PRICES["5m"])


# x402 v1 (docs/behaviour.md §20): each payment header takes its own version only, and a v1 network
# name is read as the network it stands for.


def test_a_v1_payload_in_payment_signature_is_refused_and_never_charged(envoy, facilitator, upstream, buyer):
    body = envoy.get("/api/data").json()
    header, _ = v1_payment(buyer, body)
    ledger = Ledger(facilitator)
    before = upstream.count()
    for path in ("/api/data", "/api/data?tier=5m"):
        assert_payment_error(purchase(envoy, path, header, method="GET"), "invalid_payment_header")
    ledger.assert_nothing_charged(no_callout=True)
    assert upstream.count() == before


def test_a_v2_payload_in_x_payment_is_refused_and_never_charged(envoy, facilitator, upstream, buyer):
    header, _ = buyer.pay(get_challenge(envoy, "/api/data"))
    ledger = Ledger(facilitator)
    before = upstream.count()
    for path in ("/api/data", "/api/data?tier=5m"):
        assert_payment_error(envoy.get(path, [("X-PAYMENT", header)]), "invalid_payment_header")
    ledger.assert_nothing_charged(no_callout=True)
    assert upstream.count() == before


@pytest.mark.parametrize("network", ["solana", "base-sepolia", NETWORK, "Solana-Devnet", ""])
def test_a_v1_network_name_for_another_network_is_network_mismatch_and_never_charged(
        envoy, facilitator, upstream, buyer, network):
    header, _ = v1_payment(buyer, envoy.get("/api/data").json(), network=network)
    ledger = Ledger(facilitator)
    before = upstream.count()
    assert_payment_error(envoy.get("/api/data", [("X-PAYMENT", header)]), "network_mismatch")
    ledger.assert_nothing_charged(no_callout=True)
    assert upstream.count() == before


def test_a_v1_payment_for_less_than_the_price_buys_nothing(envoy, facilitator, buyer):
    body = envoy.get("/api/data?tier=24h").json()
    # A v1 payload names no amount: the transfer is what was paid, and 1 atomic unit pays no pass.
    offer = dict(body["accepts"][0], amount="1", maxAmountRequired="1")
    header, _ = v1_payment(buyer, {"accepts": [offer]})
    ledger = Ledger(facilitator)
    assert_payment_error(envoy.post("/api/data?tier=24h", [("X-PAYMENT", header)]), "amount_mismatch")
    ledger.assert_nothing_charged(no_callout=True)


def test_non_utf8_in_the_query_and_claim_headers_is_never_a_pass_nor_a_trap(envoy, facilitator, buyer):
    required = get_challenge(envoy, "/api/data?tier=24h")
    header, _ = buyer.pay(required)
    ledger = Ledger(facilitator)
    # "?tier=%FF24h" decodes to bytes that are not UTF-8: not a tier, so not a candidate.
    status, _, body = raw_exchange(envoy, b"POST", b"/api/data?tier=%FF24h",
                                   [(b"PAYMENT-SIGNATURE", header.encode())])
    assert status == 402 and json.loads(body)["reason"] == "amount_mismatch", body
    ledger.assert_nothing_charged(no_callout=True)
    token = hs256(pass_claims(buyer.address), SECRET)
    status, _, body = raw_exchange(envoy, b"GET", b"/api/data?q=%FF%FE", [
        (b"Authorization", b"Bearer " + token.encode()), (b"X-Access-Pass-Tier", b"\xc3\x28\xff")])
    assert status == 200 and upstream_header_values(json.loads(body), "x-access-pass-tier") == ["1h"], body


# ================================================================ facilitator faults (docs/behaviour.md §6.4, §9.1)
# test_faults.py covers every verify and settle fault with its answer and the recovery; here: the
# time bound for each fault on both endpoints, /supported faults other than a refused connection,
# repeated unknown outcomes, a recovery raced on many connections, a buyer who hangs up mid-settle,
# and a facilitator that is down while a payment is being recovered.


@pytest.mark.parametrize("endpoint", ["verify", "settle"])
@pytest.mark.parametrize("mode, options", [
    ("status", {"status": 503}), ("garbage", {}), ("truncated", {}), ("reset", {}),
    ("slow", {"delay_ms": int(TIMEOUT_S * 1000) + 1500}),
], ids=["503", "garbage", "truncated", "reset", "slow"])
def test_no_fault_makes_a_purchase_wait_longer_than_the_callout_timeout_and_the_retry_charges_once(
        envoy, facilitator, buyer, endpoint, mode, options):
    required = get_challenge(envoy, "/api/data?tier=1h")
    header, tx = buyer.pay(required)
    ledger = Ledger(facilitator)
    facilitator.fault(endpoint, mode, **options)
    started = time.monotonic()
    resp = purchase(envoy, "/api/data?tier=1h", header)
    elapsed = time.monotonic() - started
    facilitator.clear_faults()
    assert elapsed < NO_HANG, f"{endpoint} {mode}: answered after {elapsed:.2f}s"
    assert resp.status == (502 if endpoint == "verify" else 503), resp
    assert resp.headers.get("retry-after"), resp
    assert_cors(resp)
    if mode == "slow":
        # the late answer of the facilitator must not change anything: wait for it
        wait_until(lambda: ledger.counts_delta().get(endpoint, 0) >= 1, 10, what="the slow callout")
        time.sleep(options["delay_ms"] / 1000 - TIMEOUT_S + 0.3)
    deadline = time.monotonic() + 15
    while True:  # a settle left unknown is recovered by the same payment, perhaps after a 409
        again = purchase(envoy, "/api/data?tier=1h", header)
        if again.status != 409 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert again.status == 200, again
    ledger.assert_charged({tx.message_hash: PRICES["1h"]})
    assert_pass_is_what_was_paid(again.headers["access-pass"], PRICES["1h"])


@pytest.mark.parametrize("mode, options", [
    ("slow", {"delay_ms": int(TIMEOUT_S * 1000) + 1500}),
    ("status", {"status": 500}),
    ("truncated", {}),
    ("reset", {}),
])
def test_a_misbehaving_supported_at_start_gives_bounded_503s_then_the_challenge(
        envoys, facilitator, new_buyer, mode, options):
    facilitator.fault("supported", mode, **options)
    try:
        envoy = envoys.start(f"supported-{mode}")
        for _ in range(2):
            started = time.monotonic()
            resp = envoy.get("/api/data")
            elapsed = time.monotonic() - started
            assert resp.status == 503, resp
            assert resp.headers.get("retry-after") and "payment-required" not in resp.headers, resp
            assert json_reason(resp) == "fee_payer_unknown", resp
            assert elapsed < NO_HANG, elapsed
        # A purchase meanwhile is not a 402 without fee payer either, and charges nothing.
        paid = envoy.post("/api/data", {"PAYMENT-SIGNATURE": "eyJ4NDAyVmVyc2lvbiI6Mn0="})
        assert paid.status == 503 and json_reason(paid) == "fee_payer_unknown", paid
    finally:
        facilitator.clear_faults()

    def challenge():
        r = envoy.get("/api/data")
        assert r.status in (402, 503), r
        return r if r.status == 402 else None

    assert_challenge(wait_until(challenge, 45, interval=0.5, what="the challenge once /supported answers"))
    fresh = new_buyer()
    bought, tx, _ = buy(envoy, fresh, "/api/data?tier=5m")
    token, _ = assert_purchase_ok(bought, fresh, "5m", 300, "5 minutes")
    assert len(facilitator.settlements_for(tx.message_hash)) == 1


@pytest.fixture(scope="module")
def resend_envoy(module_envoys):
    """settleDeadlineMs 0: a lost /settle answer is a 503 at once, so these tests exercise the
    recovery by the same payment sent again (docs/behaviour.md §6.5). The retries inside the
    request are test_settle_outcomes.py's."""
    return module_envoys.start("resend", settleDeadlineMs=0)


def test_two_unknown_settle_outcomes_in_a_row_still_end_in_one_charge_and_one_pass(resend_envoy, facilitator, buyer):
    required = get_challenge(resend_envoy, "/api/data?tier=24h")
    header, tx = buyer.pay(required)
    ledger = Ledger(facilitator)
    facilitator.fault("settle", "reset", count=2)  # nothing settled, no answer, twice
    for _ in range(2):
        resp = purchase(resend_envoy, "/api/data?tier=24h", header)
        assert resp.status == 503 and json_reason(resp) == "settlement_unknown", resp
    ledger.assert_nothing_charged()
    resp = purchase(resend_envoy, "/api/data?tier=24h", header)
    token, _ = assert_purchase_ok(resp, buyer, "24h", 86400, "1 day")
    ledger.assert_charged({tx.message_hash: PRICES["24h"]})
    assert_pass_is_what_was_paid(token, PRICES["24h"])


def test_a_recovery_raced_on_8_connections_settles_once(resend_envoy, facilitator, buyer):
    required = get_challenge(resend_envoy, "/api/data?tier=1h")
    header, tx = buyer.pay(required)
    ledger = Ledger(facilitator)
    facilitator.fault("settle", "truncated", count=1)  # it settled, the answer was cut
    first = purchase(resend_envoy, "/api/data?tier=1h", header)
    assert first.status == 503 and json_reason(first) == "settlement_unknown", first
    results = race(8, lambda i: purchase(resend_envoy, "/api/data?tier=1h", header))
    assert {r.status for r in results} <= {200, 409}, results
    tokens = tokens_of(results)
    assert len(tokens) <= 1, tokens
    final = purchase(resend_envoy, "/api/data?tier=1h", header)
    assert final.status == 200 and (not tokens or final.headers["access-pass"] in tokens), final
    ledger.assert_charged({tx.message_hash: PRICES["1h"]})
    assert_pass_is_what_was_paid(final.headers["access-pass"], PRICES["1h"])


def test_a_buyer_who_hangs_up_during_settle_gets_the_pass_later_and_is_charged_once(envoy, facilitator, buyer):
    required = get_challenge(envoy, "/api/data?tier=1h")
    header, tx = buyer.pay(required)
    ledger = Ledger(facilitator)
    facilitator.fault("settle", "slow", delay_ms=1500, count=1)
    with socket.create_connection((envoy.host, envoy.port), timeout=5) as sock:
        sock.sendall(b"POST /api/data?tier=1h HTTP/1.1\r\nHost: x\r\nPAYMENT-SIGNATURE: " + header.encode() +
                     b"\r\nContent-Length: 0\r\n\r\n")
        wait_until(lambda: ledger.counts_delta().get("settle", 0) >= 1, 5, what="the settle callout")
    hung_up = time.monotonic()
    wait_until(lambda: ledger.new_settlements(), 10, what="the settlement landing after the buyer left")
    # The purchase record waits for the abandoned callout (409) until it is stale, then the same
    # payment recovers the pass: the facilitator answers duplicate_settlement, nothing is charged again.
    statuses = []
    while time.monotonic() - hung_up < STALE_AFTER_SECONDS + 8:
        resp = purchase(envoy, "/api/data?tier=1h", header)
        statuses.append(resp.status)
        if resp.status == 200:
            break
        assert resp.status == 409 and json_reason(resp) == "payment_in_progress", resp
        time.sleep(1)
    assert statuses[-1] == 200, statuses
    token, _ = assert_purchase_ok(resp, buyer, "1h", 3600, "1 hour", transaction_known=False)
    ledger.assert_charged({tx.message_hash: PRICES["1h"]})
    assert_pass_is_what_was_paid(token, PRICES["1h"])


def test_a_facilitator_down_during_recovery_keeps_the_payment_recoverable(resend_envoy, facilitator, buyer):
    required = get_challenge(resend_envoy, "/api/data?tier=1h")
    header, tx = buyer.pay(required)
    ledger = Ledger(facilitator)
    facilitator.fault("settle", "truncated", count=1)  # settled, answer cut: unknown
    assert json_reason(purchase(resend_envoy, "/api/data?tier=1h", header)) == "settlement_unknown"
    facilitator.fault("all", "refuse")
    try:
        resp = purchase(resend_envoy, "/api/data?tier=1h", header)
        assert resp.status == 503 and json_reason(resp) == "settlement_unknown", resp
        assert resp.elapsed < NO_HANG
    finally:
        facilitator.clear_faults()
    resp = purchase(resend_envoy, "/api/data?tier=1h", header)
    token, _ = assert_purchase_ok(resp, buyer, "1h", 3600, "1 hour", transaction_known=False)
    ledger.assert_charged({tx.message_hash: PRICES["1h"]})
    assert_pass_is_what_was_paid(token, PRICES["1h"])


# --------------------------------------------------------------------------- per-process records (documented limits)


def test_a_second_envoy_replica_cannot_charge_a_settled_payment_again(envoys, facilitator, buyer):
    # Replay records live in one Envoy's shared data; a replica does not see them. The facilitator's
    # own duplicate check is what keeps the payment from being charged twice (docs/security.md).
    a = envoys.start("replica-a")
    b = envoys.start("replica-b")
    required = get_challenge(a, "/api/data?tier=1h")
    header, tx = buyer.pay(required)
    ledger = Ledger(facilitator)
    token, _ = assert_purchase_ok(purchase(a, "/api/data?tier=1h", header), buyer, "1h", 3600, "1 hour")
    other = purchase(b, "/api/data?tier=1h", header)
    assert_payment_error(other, "duplicate_settlement", error="Payment settlement failed")
    assert "access-pass" not in other.headers
    ledger.assert_charged({tx.message_hash: PRICES["1h"]})
    assert_pass_is_what_was_paid(token, PRICES["1h"])


def test_after_an_envoy_restart_an_unknown_settlement_is_not_recovered_but_not_charged_twice(
        envoys, facilitator, buyer):
    # Documented limit: the record that turns the facilitator's duplicate_settlement into the pass
    # is per process. After a restart the buyer, charged once, gets a refusal and needs support.
    first = envoys.start("before-restart", settleDeadlineMs=0)
    required = get_challenge(first, "/api/data?tier=1h")
    header, tx = buyer.pay(required)
    ledger = Ledger(facilitator)
    facilitator.fault("settle", "truncated", count=1)  # settled, answer cut
    resp = purchase(first, "/api/data?tier=1h", header)
    assert resp.status == 503 and json_reason(resp) == "settlement_unknown", resp
    first.stop()
    second = envoys.start("after-restart", settleDeadlineMs=0)
    again = purchase(second, "/api/data?tier=1h", header)
    assert_payment_error(again, "duplicate_settlement", error="Payment settlement failed")
    ledger.assert_charged({tx.message_hash: PRICES["1h"]})


# =========================================================================== Sign-In-With-X (docs/behaviour.md §16)
# test_siwx.py covers the flow, the declaration, another site's message, old and expired messages
# and an expired entitlement; here: forgeries and malformed headers. None may reach the upstream,
# charge anyone or cost more than the challenge; the VM keeps serving.

SIWX_ORIGIN = "https://api.siwx.test"
SIWX_HERE = [("Host", "api.siwx.test"), ("X-Forwarded-Proto", "https")]


@pytest.fixture(scope="module")
def siwx_envoy(module_envoys):
    return module_envoys.start("siwx-adversarial", siwx={"origins": [SIWX_ORIGIN]})


@pytest.fixture
def entitled(siwx_envoy, buyer):
    """`buyer` has bought a 1h pass on siwx_envoy."""
    required = get_challenge(siwx_envoy, "/api/data?tier=1h", SIWX_HERE)
    header, _ = buyer.pay(required)
    assert_purchase_ok(purchase(siwx_envoy, "/api/data?tier=1h", header, SIWX_HERE), buyer, "1h", 3600, "1 hour")
    return buyer


def _siwx_info() -> dict:
    return siwx.info_for(SIWX_ORIGIN, "/api/data")


def _siwx_signed(keypair, **changes) -> dict:
    chain = changes.pop("chainId", NETWORK)
    return siwx.payload({**_siwx_info(), **changes}, chain, keypair)


def _assert_siwx_refused(siwx_envoy, upstream, headers, counters: Counters, reason: str | None) -> None:
    before_up = upstream.count()
    resp = siwx_envoy.get("/api/data", SIWX_HERE + headers)
    assert_challenge(resp)
    assert upstream.count() == before_up, upstream.requests[before_up:]
    if reason:
        assert counters.delta(f"siwx_rejected.{reason}") >= 1, (reason, siwx_envoy.stats())
    assert counters.delta("siwx_accepted") == 0


def test_a_small_order_key_forgery_that_classic_ed25519_accepts_is_refused(siwx_envoy, upstream):
    """The identity point as the public key with R = identity, S = 0 verifies any message under
    tweetnacl alone (tests/vectors/siwx/siwx.json: small-order-key)."""
    identity = bytes([1]) + bytes(31)
    forged = bytes([1]) + bytes(63)
    info = _siwx_info()
    payload = {"domain": info["domain"], "address": xp.b58encode(identity), "uri": info["uri"], "version": "1",
               "chainId": NETWORK, "type": "ed25519", "nonce": info["nonce"], "issuedAt": info["issuedAt"],
               "resources": info["resources"], "signature": xp.b58encode(forged)}
    _assert_siwx_refused(siwx_envoy, upstream, [("SIGN-IN-WITH-X", siwx.encode(payload))], Counters(siwx_envoy),
                         "signature")


def test_a_paid_wallets_address_with_someone_elses_signature_is_refused(siwx_envoy, upstream, entitled, new_buyer):
    thief = new_buyer()
    payload = _siwx_signed(thief.keypair)
    payload["address"] = entitled.address  # claims the paid wallet, signed by another key
    _assert_siwx_refused(siwx_envoy, upstream, [("SIGN-IN-WITH-X", siwx.encode(payload))], Counters(siwx_envoy),
                         "signature")
    # The paid wallet's own signature, with one field changed after signing.
    payload = _siwx_signed(entitled.keypair)
    payload["uri"] = payload["uri"] + "?tier=24h"
    _assert_siwx_refused(siwx_envoy, upstream, [("SIGN-IN-WITH-X", siwx.encode(payload))], Counters(siwx_envoy),
                         "signature")


@pytest.mark.parametrize("name, changes, reason", [
    ("domain-upper-case", {"domain": "API.SIWX.TEST"}, "domain"),
    ("domain-with-port", {"domain": "api.siwx.test:443"}, "domain"),
    ("uri-userinfo", {"uri": "https://api.siwx.test@evil.example/api/data"}, "uri"),
    ("uri-other-host", {"uri": "https://api.siwx.test.evil.example/api/data"}, "uri"),
    ("uri-http", {"uri": "http://api.siwx.test/api/data"}, "uri"),
    ("statement-with-a-line-break", {"statement": "Hi\nURI: https://evil.example/"}, "malformed"),
    ("chain-of-another-network", {"chainId": "solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp"}, "chain"),
    ("issued-at-not-a-date", {"issuedAt": "yesterday"}, "issued_at"),
    ("issued-at-without-zone", {"issuedAt": "2030-01-01T00:00:00"}, "issued_at"),
    ("expiration-not-a-date", {"expirationTime": "soon"}, "expired"),
])
def test_a_message_signed_by_the_paid_wallet_but_not_for_here_is_refused(siwx_envoy, upstream, entitled, name,
                                                                          changes, reason):
    header = siwx.encode(_siwx_signed(entitled.keypair, **changes))
    _assert_siwx_refused(siwx_envoy, upstream, [("SIGN-IN-WITH-X", header)], Counters(siwx_envoy), reason)


def _deep_json(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("name, value", [
    ("not-base64", b"not base64!"),
    ("base64url", base64.urlsafe_b64encode(b'{"domain":"\xff\xfe?>"}').rstrip(b"=")),
    ("json-array", base64.b64encode(b"[]")),
    ("deeply-nested", base64.b64encode(_deep_json(2000).encode())),
    ("huge-number", base64.b64encode(b'{"domain":1e999999}')),
    ("null-members", base64.b64encode(json.dumps({k: None for k in ("domain", "address", "uri", "version", "chainId", "type", "nonce", "issuedAt", "signature")}).encode())),
    ("latin-1-inside", base64.b64encode(b'{"domain":"caf\xe9"}')),
    ("non-utf8-header-bytes", b"\xc3\x28\xff\xfe"),
    ("9-KiB", base64.b64encode(b"{" + b" " * 7000 + b"}")),
])
def test_a_malformed_sign_in_header_is_the_challenge_never_a_5xx_nor_a_trap(siwx_envoy, upstream, facilitator,
                                                                             name, value):
    ledger = Ledger(facilitator)
    counters = Counters(siwx_envoy)
    before_up = upstream.count()
    status, headers, body = raw_exchange(siwx_envoy, b"GET", b"/api/data", [(b"SIGN-IN-WITH-X", value)])
    assert status == 402, (status, body[:300])
    assert counters.delta("siwx_rejected.malformed") == 1
    assert upstream.count() == before_up
    ledger.assert_nothing_charged(no_callout=True)
    # The worker's VM is alive and serving.
    assert siwx_envoy.get("/api/data").status == 402


def test_two_sign_in_headers_that_are_not_one_valid_message_are_refused(siwx_envoy, upstream, entitled):
    good = siwx.encode(_siwx_signed(entitled.keypair)).encode()
    status, _, body = raw_exchange(siwx_envoy, b"GET", b"/api/data",
                                   [(b"SIGN-IN-WITH-X", b"garbage"), (b"SIGN-IN-WITH-X", b"garbage")])
    assert status == 402, body[:300]
    # A valid one next to garbage: Envoy hands the filter one value; it is honoured only if it is
    # the valid message itself, and nothing is ever charged or answered with a 5xx.
    status, _, body = raw_exchange(siwx_envoy, b"GET", b"/api/data",
                                   [(b"SIGN-IN-WITH-X", good), (b"SIGN-IN-WITH-X", b"garbage")])
    assert status in (200, 402), body[:300]

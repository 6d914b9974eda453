"""x402 helpers shared by the tests: decoding challenges, buying passes, minting HS256 tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

import x402pay as xp
from harness import ASSET, FEE_PAYER, MERCHANT, NETWORK, Envoy, Response

EXPOSE = {"payment-required", "x-access-pass-tiers", "access-pass", "payment-response"}
STD_B64 = re.compile(r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$")

TIERS_INFO = {
    "tiers": [
        {"id": "5m", "label": "5 minutes", "seconds": 300, "price": "0.05", "priceAtomic": "50000"},
        {"id": "1h", "label": "1 hour", "seconds": 3600, "price": "0.50", "priceAtomic": "500000"},
        {"id": "24h", "label": "1 day", "seconds": 86400, "price": "2.00", "priceAtomic": "2000000"},
    ],
    "ratePerHour": "0.50",
    "issuer": "x402-access-pass",
}
PRICES = {"5m": 50000, "1h": 500000, "24h": 2000000}

# `extensions["payment-identifier"]` of every 402: declarePaymentIdentifierExtension(false) of
# @x402/extensions 2.27.0, member for member (docs/behaviour.md §17.5).
PAYMENT_IDENTIFIER_DECLARATION = {
    "info": {"required": False},
    "schema": {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {
            "required": {"type": "boolean"},
            "id": {"type": "string", "minLength": 16, "maxLength": 128, "pattern": "^[a-zA-Z0-9_-]+$"},
        },
        "required": ["required"],
    },
}


def decode_std_b64_json(value: str) -> tuple[Any, str]:
    """Decode a header that MUST be standard base64 of compact JSON; returns (object, raw text)."""
    assert STD_B64.match(value), f"not standard padded base64: {value[:80]!r}"
    raw = base64.b64decode(value, validate=True).decode("utf-8")
    obj = json.loads(raw)
    assert raw == json.dumps(obj, separators=(",", ":"), ensure_ascii=False), f"JSON is not compact: {raw[:200]}"
    return obj, raw


def expose_set(resp: Response) -> set[str]:
    values = resp.headers.get_all("access-control-expose-headers")
    return {v.strip().lower() for one in values for v in one.split(",") if v.strip()}


def assert_cors(resp: Response, origin: str = "*") -> None:
    assert EXPOSE <= expose_set(resp), f"Access-Control-Expose-Headers missing names: {resp!r}"
    assert resp.headers.get("access-control-allow-origin") == origin, resp


def assert_challenge(resp: Response, origin: str = "*") -> tuple[dict, dict]:
    """A 402 with both challenge headers; returns (PaymentRequired, AccessPassInfo)."""
    assert resp.status == 402, resp
    assert "payment-required" in resp.headers, resp
    assert "x-access-pass-tiers" in resp.headers, resp
    required, _ = decode_std_b64_json(resp.headers["payment-required"])
    tiers, _ = decode_std_b64_json(resp.headers["x-access-pass-tiers"])
    assert resp.headers.get("cache-control") == "no-store", resp
    assert_cors(resp, origin)
    offer = required["accepts"][0]
    assert offer["extra"]["feePayer"], f"a challenge without feePayer: {required}"
    return required, tiers


def expected_offer(amount: int) -> dict:
    return {"scheme": "exact", "network": NETWORK, "amount": str(amount), "maxAmountRequired": str(amount),
            "asset": ASSET, "payTo": MERCHANT, "maxTimeoutSeconds": 60,
            "extra": {"feePayer": FEE_PAYER, "decimals": 6}}


def assert_payment_error(resp: Response, reason: str, error: str = "Payment verification failed") -> dict:
    """402 + challenge headers + `{"error": .., "reason": ..}`."""
    assert_challenge(resp)
    assert resp.headers.get("content-type", "").startswith("application/json"), resp
    body = resp.json()
    assert body == {"error": error, "reason": reason}, resp
    return body


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def decode_jwt(token: str) -> tuple[dict, dict, str]:
    """(header, claims, raw claims JSON) without verifying."""
    head, claims, _sig = token.split(".")
    raw = b64url_decode(claims).decode()
    return json.loads(b64url_decode(head)), json.loads(raw), raw


def hs256(claims: dict | str, secret: str | bytes, header: dict | str | None = None, alg: str = "HS256") -> str:
    """A compact JWS signed with HMAC-SHA256 (header/claims serialized compactly, in the given order)."""
    if header is None:
        header = {"alg": alg, "typ": "JWT"}
    head = header if isinstance(header, str) else json.dumps(header, separators=(",", ":"))
    body = claims if isinstance(claims, str) else json.dumps(claims, separators=(",", ":"))
    signing_input = b64url(head.encode()) + "." + b64url(body.encode())
    key = secret.encode() if isinstance(secret, str) else secret
    sig = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64url(sig)


def pass_claims(payer: str, tier: str = "1h", duration: int = 3600, iat: int | None = None,
                network: str = NETWORK, iss: str = "x402-access-pass") -> dict:
    iat = int(time.time()) if iat is None else iat
    return {"sub": "x402-access-pass", "tier": tier, "duration": duration, "iat": iat, "exp": iat + duration,
            "payer": payer, "network": network, "iss": iss}


@dataclass
class Buyer:
    """A buyer with a keypair derived from a label; every payment gets a fresh blockhash so no two
    payments (and so no two message hashes) collide across tests or within one."""

    label: str
    counter: itertools.count = field(default_factory=itertools.count)

    def __post_init__(self) -> None:
        self.keypair = xp.derived_keypair(self.label)

    @property
    def address(self) -> str:
        return self.keypair.address

    def next_blockhash(self) -> bytes:
        return hashlib.sha256(f"blockhash:{self.label}:{next(self.counter)}".encode()).digest()

    def pay(self, required: dict, **options: Any) -> tuple[str, xp.BuiltTransaction]:
        options.setdefault("blockhash", self.next_blockhash())
        return xp.payment_header(required, self.keypair, **options)

    def pay_payload(self, required: dict, **options: Any) -> tuple[dict, xp.BuiltTransaction]:
        options.setdefault("blockhash", self.next_blockhash())
        return xp.build_payment(required, self.keypair, **options)


def get_challenge(envoy: Envoy, path: str, headers=(), origin: str = "*") -> dict:
    resp = envoy.get(path, headers)
    required, _ = assert_challenge(resp, origin)
    return required


def purchase(envoy: Envoy, path: str, header: str, extra_headers=(), method: str = "POST") -> Response:
    return envoy.request(method, path, [("PAYMENT-SIGNATURE", header), *extra_headers])


def buy(envoy: Envoy, buyer: Buyer, path: str, price_path: str | None = None, origin: str | None = None,
        **options: Any) -> tuple[Response, xp.BuiltTransaction, str]:
    """Ask `price_path` (default `path`) for its 402, pay it, and POST the payment to `path`
    (both with `Origin: origin` when given)."""
    headers = [("Origin", origin)] if origin else []
    required = get_challenge(envoy, price_path or path, headers, origin or "*")
    header, tx = buyer.pay(required, **options)
    return purchase(envoy, path, header, headers), tx, header


def assert_purchase_ok(resp: Response, buyer: Buyer, tier: str, seconds: int, label: str,
                       transaction_known: bool = True, origin: str = "*") -> tuple[str, dict]:
    """A successful purchase answer (SPEC §6.6); returns (token, claims).

    `transaction_known=False`: a pass recovered after an unknown settle outcome, where the
    facilitator answered `duplicate_settlement` (which carries no transaction id)."""
    assert resp.status == 200, resp
    assert resp.headers.get("cache-control") == "no-store", resp
    assert resp.headers.get("content-type", "").startswith("application/json"), resp
    assert_cors(resp, origin)
    token = resp.headers["access-pass"]
    header, claims, raw = decode_jwt(token)
    assert header == {"alg": "HS256", "typ": "JWT"}, header
    assert list(claims) == ["sub", "tier", "duration", "iat", "exp", "payer", "network", "iss"], raw
    assert claims["sub"] == "x402-access-pass" and claims["iss"] == "x402-access-pass", claims
    assert claims["tier"] == tier and claims["duration"] == seconds, claims
    assert claims["exp"] - claims["iat"] == seconds, claims
    assert abs(claims["iat"] - time.time()) < 30, claims
    assert claims["payer"] == buyer.address and claims["network"] == NETWORK, claims
    settle, _ = decode_std_b64_json(resp.headers["payment-response"])
    assert settle["success"] is True and settle["network"] == NETWORK and settle["payer"] == buyer.address, settle
    assert isinstance(settle["transaction"], str), settle
    if transaction_known:
        assert settle["transaction"], settle
    expires = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(claims["exp"]))
    body = resp.json()
    usage = body["accessPass"].get("usage")
    assert usage in ("Include on subsequent requests as: Authorization: Bearer <token>",
                     f"Include on subsequent requests as: Authorization: Bearer {token}"), body
    assert body == {
        "accessPass": {"token": token, "tier": tier, "duration": label, "durationSeconds": seconds,
                       "expiresAt": expires, "usage": usage},
        "transaction": settle["transaction"], "payer": buyer.address,
    }, body
    return token, claims

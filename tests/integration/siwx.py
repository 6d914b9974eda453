"""A Sign-In-With-X client (docs/behaviour.md §16), written after the official one
(`@x402/extensions/sign-in-with-x` 2.27.0: `createSIWxPayload`, `formatSIWSMessage`,
`encodeSIWxHeader`) and checked against its golden vectors (tests/vectors/siwx/siwx.json) in
test_siwx.py. Ed25519 signing is x402pay's (the `cryptography` package)."""

from __future__ import annotations

import base64
import json
import pathlib
import time
from typing import Any

import x402pay as xp

VECTORS = json.loads((pathlib.Path(__file__).resolve().parents[1] / "vectors" / "siwx" / "siwx.json").read_text())
DECLARATION = "sign-in-with-x"


def iso_now(offset_seconds: float = 0.0) -> str:
    """`new Date().toISOString()`, shifted."""
    ms = int((time.time() + offset_seconds) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"


def parse_iso(text: str) -> float:
    """Seconds since the epoch of `2026-03-01T12:00:00.000Z`."""
    whole, _, frac = text.rstrip("Z").partition(".")
    return time.mktime(time.strptime(whole, "%Y-%m-%dT%H:%M:%S")) - time.timezone + (int(frac or 0) / 1000)


def format_siws_message(info: dict, address: str) -> str:
    """`formatSIWSMessage(info, address)`: the text the wallet signs."""
    lines = [f"{info['domain']} wants you to sign in with your Solana account:", address, ""]
    if info.get("statement"):
        lines += [info["statement"], ""]
    chain = info["chainId"].split(":")
    lines += [f"URI: {info['uri']}", f"Version: {info['version']}",
              f"Chain ID: {chain[1] if len(chain) > 1 else 'undefined'}",
              f"Nonce: {info['nonce']}", f"Issued At: {info['issuedAt']}"]
    for key, label in (("expirationTime", "Expiration Time"), ("notBefore", "Not Before"), ("requestId", "Request ID")):
        if info.get(key):
            lines.append(f"{label}: {info[key]}")
    if info.get("resources"):
        lines.append("Resources:")
        lines += [f"- {r}" for r in info["resources"]]
    return "\n".join(lines)


def payload(info: dict, chain_id: str, keypair: xp.Keypair) -> dict:
    """`createSIWxPayload({...info, chainId, type: "ed25519"}, signer)`: the signed payload, members
    in the package's order, absent ones left out (as `JSON.stringify` drops `undefined`)."""
    complete = {**info, "chainId": chain_id, "type": "ed25519"}
    signature = xp.b58encode(keypair.sign(format_siws_message(complete, keypair.address).encode("utf-8")))
    order = ["domain", "address", "statement", "uri", "version", "chainId", "type", "nonce", "issuedAt",
             "expirationTime", "notBefore", "requestId", "resources", "signatureScheme", "signature"]
    values = {**complete, "address": keypair.address, "signature": signature}
    return {k: values[k] for k in order if values.get(k) is not None}


def encode(body: dict | str) -> str:
    """`encodeSIWxHeader`: standard base64 of the JSON."""
    text = body if isinstance(body, str) else json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    return base64.b64encode(text.encode("utf-8")).decode()


def declaration(required: dict) -> dict | None:
    return (required.get("extensions") or {}).get(DECLARATION)


def sign_in(required: dict, keypair: xp.Keypair, **changes: Any) -> str:
    """The SIGN-IN-WITH-X header answering a 402's declaration, as the official client builds it
    (the first `ed25519` chain); `changes` alter the info before signing (e.g. an old `issuedAt`)."""
    declared = declaration(required)
    assert declared, f"the 402 declares no sign-in-with-x: {required}"
    chain = next(c for c in declared["supportedChains"] if c["type"] == "ed25519")
    info = {**declared["info"], **changes}
    return encode(payload(info, chain["chainId"], keypair))


def info_for(origin: str, path: str, statement: str | None = None, **changes: Any) -> dict:
    """A challenge's info as another site on `origin` would have issued it now."""
    host = origin.split("://", 1)[1]
    uri = origin + path
    info = {"domain": host, "uri": uri, "version": "1", "nonce": "0123456789abcdef0123456789abcdef",
            "issuedAt": iso_now(), "resources": [uri]}
    if statement:
        info["statement"] = statement
    return {**info, **changes}

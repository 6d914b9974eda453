#!/usr/bin/env python3
"""Write the derived fuzz seeds into fuzz/corpus/<target>/seed-* (git-ignored).

Derived from the golden vectors (`tests/vectors/x402-svm-exact.json`:
the official client's PAYMENT-SIGNATURE and its Solana transaction; `tests/vectors/siwx/siwx.json`:
the official SIGN-IN-WITH-X headers) and from the integration
suite (its default plugin configuration); tokens are signed here with the fuzz key ring's HS256
secrets (fuzz/src/lib.rs). Small hand-written text seeds are committed in fuzz/seeds/<target>/;
crash reproducers in fuzz/regressions/<target>/. Standard library only.

Usage: gen_seeds.py [--vectors PATH]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import pathlib
import sys

FUZZ = pathlib.Path(__file__).resolve().parent
REPO = FUZZ.parent
sys.path.insert(0, str(REPO / "tests/integration"))

NOW = 1_767_225_600  # fuzz/src/lib.rs NOW
SECRET_A = "fuzz-secret-a-0123456789abcdef0123456789"
SECRET_B = "fuzz-secret-b-0123456789abcdef0123456789"
AUDIENCE = "fuzz-api"
MAINNET = "solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp"
MAINNET_USDC = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"


def compact(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def b64(data: bytes) -> bytes:
    return base64.b64encode(data)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs256(header: dict, claims: dict, secret: str) -> str:
    signing_input = b64url(compact(header)) + "." + b64url(compact(claims))
    sig = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64url(sig)


def cu16(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        if n:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


class Writer:
    def __init__(self) -> None:
        self.count: dict[str, int] = {}

    def __call__(self, target: str, name: str, data: bytes | str) -> None:
        d = FUZZ / "corpus" / target
        d.mkdir(parents=True, exist_ok=True)
        (d / f"seed-{name}").write_bytes(data.encode() if isinstance(data, str) else data)
        self.count[target] = self.count.get(target, 0) + 1


def transaction_seeds(write: Writer, wire: bytes, tag: str) -> None:
    """The transaction, and variants that exercise each branch of the decoder."""
    write("solana_tx", tag, wire)
    nsig = wire[0]
    message = wire[1 + 64 * nsig:]
    bad_sig = bytearray(wire)
    bad_sig[1 + 64 + 5] ^= 0xFF
    write("solana_tx", f"{tag}-bad-signature", bytes(bad_sig))
    if message[0] & 0x80 and message.endswith(b"\x00"):
        # The same instructions as a legacy message (no version byte, no lookup count).
        write("solana_tx", f"{tag}-legacy", wire[:1 + 64 * nsig] + message[1:-1])
        # One address-table lookup: refused by the decoder.
        lookup = b"\x01" + b"\x09" * 32 + cu16(1) + b"\x00" + cu16(0)
        write("solana_tx", f"{tag}-lookup-table", wire[:-1] + lookup)
        write("solana_tx", f"{tag}-trailing-byte", wire + b"\x00")
    write("solana_tx", f"{tag}-truncated", wire[: len(wire) // 2])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vectors", type=pathlib.Path,
                        default=REPO / "tests/vectors/x402-svm-exact.json")
    args = parser.parse_args()
    write = Writer()

    # ---- configurations: the integration suite's default, and the harnesses' own.
    import harness  # noqa: E402 (tests/integration, standard library only)
    default = harness.default_plugin_config("127.0.0.1:9")
    write("config", "integration-default", json.dumps(default))
    write("config", "integration-ring", json.dumps(dict(default, secret=None, keys=[
        {"kid": "new", "alg": "HS256", "secret": SECRET_A}, {"kid": "old", "alg": "HS256", "secretEnv": "PASS_SECRET"},
        {"kid": "ed", "alg": "EdDSA", "privateKeyEnv": "PASS_KEY"}])))
    write("config", "integration-short-windows", json.dumps(dict(
        default, tiers={"1m": "0.01"}, minDurationSeconds=2, replayWindowSeconds=2)))
    write("config", "integration-options", json.dumps(dict(
        default, issuer="my-issuer", audience="my-audience", leewaySeconds=30, description="Dashboard",
        claimHeaders={"x-who": "payer", "x-until": "exp"}, forwardAuthorization=True,
        cors={"allowOrigins": ["https://app.example"]})))

    # ---- tokens for the token harness's ring (fuzz/src/token.rs).
    claims = {"sub": "x402-access-pass", "tier": "1h", "duration": 3600, "iat": NOW - 60, "exp": NOW + 3540,
              "payer": "AKnL4NNf3DGWZJS6cPknBuEGnVsV4A4m5tgebLHaRSZ9", "network": MAINNET,
              "iss": "x402-access-pass", "aud": AUDIENCE}
    write("token", "valid-hs1", "Bearer " + hs256({"alg": "HS256", "typ": "JWT", "kid": "hs1"}, claims, SECRET_A))
    write("token", "valid-kidless", "Bearer " + hs256({"alg": "HS256", "typ": "JWT"}, claims, SECRET_B))
    write("token", "aud-list", "bearer\t" + hs256({"alg": "HS256", "typ": "JWT"},
                                                  dict(claims, aud=["other", AUDIENCE]), SECRET_B))
    write("token", "expired", "Bearer " + hs256({"alg": "HS256", "typ": "JWT"},
                                                dict(claims, iat=NOW - 7200, exp=NOW - 3600), SECRET_B))
    headers = {
        "ed1": {"alg": "EdDSA", "typ": "JWT", "kid": "ed1"},
        "hs1": {"alg": "HS256", "typ": "JWT", "kid": "hs1"},
        "none": {"alg": "HS256", "typ": "JWT"},
        "crit": {"alg": "HS256", "typ": "JWT", "crit": ["exp"]},
        "kid-nowhere": {"alg": "HS256", "typ": "JWT", "kid": "../../etc/passwd"},
    }
    variants = {
        "valid": claims,
        "long": dict(claims, duration=40 * 86400, exp=NOW - 60 + 40 * 86400),
        "future": dict(claims, iat=NOW + 600, exp=NOW + 4200),
        "exp-string": dict(claims, exp=str(NOW + 3540)),
        "exp-float": dict(claims, exp=float(NOW + 3540)),
        "exp-huge": dict(claims, exp=10**30),
        "no-aud": {k: v for k, v in claims.items() if k != "aud"},
        "sub": dict(claims, sub="admin"),
    }
    for kind, header_name in enumerate(["ed1", "hs1", "none", "ed1", "none"]):
        for vname, body in variants.items():
            data = b"S" + bytes([kind]) + compact(headers[header_name]) + b"\0" + compact(body)
            write("token", f"signed-{kind}-{header_name}-{vname}", data)
    for hname in ("crit", "kid-nowhere"):
        write("token", f"signed-1-{hname}", b"S\x01" + compact(headers[hname]) + b"\0" + compact(claims))

    # ---- the golden payment and its transaction.
    if not args.vectors.exists():
        print(f"gen_seeds: {args.vectors} not found: no vector seeds", file=sys.stderr)
    else:
        vectors = json.loads(args.vectors.read_text())
        header = vectors["paymentSignatureHeader"]["PAYMENT-SIGNATURE"]
        payload = vectors["decodedPaymentPayload"]
        write("payment", "vector", header)
        for name, path in [("tier-1h", "/weather?tier=1h"), ("react", "/weather?tier=24h&tier=5m"),
                           ("duration", "/weather?duration=7200&tier=5m")]:
            write("payment", f"vector-{name}", path + "\n" + header)

        def variant(name: str, change) -> None:
            p = json.loads(json.dumps(payload))
            change(p)
            write("payment", f"vector-{name}", b64(compact(p)))

        variant("max-amount-only", lambda p: p["accepted"].update(maxAmountRequired=p["accepted"].pop("amount")))
        variant("amount-2000", lambda p: p["accepted"].update(amount="2000"))
        variant("amount-leading-zero", lambda p: p["accepted"].update(amount="01000"))
        variant("pay-to", lambda p: p["accepted"].update(payTo=vectors["keys"]["payer"]))
        variant("mint", lambda p: p["accepted"].update(asset=MAINNET_USDC))
        variant("network", lambda p: p["accepted"].update(network=MAINNET))
        variant("scheme", lambda p: p["accepted"].update(scheme="upto"))
        variant("version-1", lambda p: p.update(x402Version=1))
        variant("garbage-tx", lambda p: p["payload"].update(transaction="AAAA"))
        # v1's X-PAYMENT (target x_payment): the vector's v1 header and its variants.
        v1 = vectors["v1"]
        write("x_payment", "vector", v1["xPaymentHeader"])
        write("x_payment", "vector-tier-1h", "/weather?tier=1h\n" + v1["xPaymentHeader"])
        write("x_payment", "v2-in-x-payment", header)
        for name, change in [("mainnet-name", lambda p: p.update(network="solana")),
                             ("caip2-name", lambda p: p.update(network=MAINNET)),
                             ("version-2", lambda p: p.update(x402Version=2)),
                             ("scheme", lambda p: p.update(scheme="upto")),
                             ("garbage-tx", lambda p: p["payload"].update(transaction="AAAA"))]:
            p = json.loads(json.dumps(v1["payload"]))
            change(p)
            write("x_payment", f"vector-{name}", b64(compact(p)))
        tx = base64.b64decode(payload["payload"]["transaction"])
        bad = bytearray(tx)
        bad[1 + 64 + 5] ^= 0xFF
        variant("bad-signature", lambda p: p["payload"].update(transaction=b64(bytes(bad)).decode()))

        transaction_seeds(write, tx, "vector")
        transaction_seeds(write, base64.b64decode(vectors["fullySignedTxBroadcast"]), "broadcast")
        v1 = vectors["v1"]["payload"]["payload"]["transaction"]
        transaction_seeds(write, base64.b64decode(v1), "v1")

    # ---- Sign-In-With-X: the package's headers (fuzz/src/siwx.rs), as sent and as `S<k><JSON>`.
    siwx_vectors = json.loads((REPO / "tests/vectors/siwx/siwx.json").read_text())
    for case in siwx_vectors["cases"]:
        write("siwx", f"header-{case['name']}", case["header"])
        write("siwx", f"signed-{case['name']}", b"S\x00" + compact(case["payload"]))
    for case in siwx_vectors["malformed"]:
        write("siwx", f"malformed-{case['name']}", case["header"])

    print("gen_seeds: " + ", ".join(f"{t} {n}" for t, n in sorted(write.count.items())))


if __name__ == "__main__":
    main()

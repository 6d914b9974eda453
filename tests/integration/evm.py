"""An EVM `exact` buyer for the integration suite (docs/behaviour.md §21), as `@x402/evm` 2.27.0's
client builds its payment: an EIP-3009 `TransferWithAuthorization` signed with EIP-712 under the
token's domain (`extra.name`, `extra.version`, the network's chain id, the asset), sent as
`{"x402Version":2,"payload":{"authorization":{...},"signature":"0x…"},"resource":…,"accepted":…}`.

Pure Python (keccak-256 and secp256k1 signing written out below): the suite's virtualenv has no
Ethereum package, and `hashlib.sha3_256` is not keccak-256 (other padding). Checked against the
golden vectors in tests/vectors/evm (test_evm.py)."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

# --- keccak-256 (the original Keccak padding 0x01, not SHA-3's 0x06) ---------------------------

_RC = [
    0x0000000000000001, 0x0000000000008082, 0x800000000000808A, 0x8000000080008000, 0x000000000000808B,
    0x0000000080000001, 0x8000000080008081, 0x8000000000008009, 0x000000000000008A, 0x0000000000000088,
    0x0000000080008009, 0x000000008000000A, 0x000000008000808B, 0x800000000000008B, 0x8000000000008089,
    0x8000000000008003, 0x8000000000008002, 0x8000000000000080, 0x000000000000800A, 0x800000008000000A,
    0x8000000080008081, 0x8000000000008080, 0x0000000080000001, 0x8000000080008008,
]
_ROT = [[0, 36, 3, 41, 18], [1, 44, 10, 45, 2], [62, 6, 43, 15, 61], [28, 55, 25, 21, 56], [27, 20, 39, 8, 14]]
_MASK = (1 << 64) - 1


def _rol(v: int, n: int) -> int:
    return ((v << n) | (v >> (64 - n))) & _MASK if n else v


def _keccak_f(a: list[list[int]]) -> None:
    for rc in _RC:
        c = [a[x][0] ^ a[x][1] ^ a[x][2] ^ a[x][3] ^ a[x][4] for x in range(5)]
        d = [c[(x - 1) % 5] ^ _rol(c[(x + 1) % 5], 1) for x in range(5)]
        for x in range(5):
            for y in range(5):
                a[x][y] ^= d[x]
        b = [[0] * 5 for _ in range(5)]
        for x in range(5):
            for y in range(5):
                b[y][(2 * x + 3 * y) % 5] = _rol(a[x][y], _ROT[x][y])
        for x in range(5):
            for y in range(5):
                a[x][y] = b[x][y] ^ ((~b[(x + 1) % 5][y]) & b[(x + 2) % 5][y])
        a[0][0] ^= rc


def keccak256(*parts: bytes) -> bytes:
    data = b"".join(parts)
    rate = 136
    padded = bytearray(data) + b"\x01" + b"\x00" * ((-len(data) - 1) % rate)
    padded[-1] |= 0x80
    state = [[0] * 5 for _ in range(5)]
    for block in range(0, len(padded), rate):
        for i in range(rate // 8):
            lane = int.from_bytes(padded[block + 8 * i:block + 8 * i + 8], "little")
            state[i % 5][i // 5] ^= lane
        _keccak_f(state)
    out = b"".join(state[i % 5][i // 5].to_bytes(8, "little") for i in range(4))
    return out


# --- secp256k1 -------------------------------------------------------------------------------

P = 2**256 - 2**32 - 977
N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
G = (0x79BE667EF9DCBBAC55A06295CE870B07029BFCDB2DCE28D959F2815B16F81798,
     0x483ADA7726A3C4655DA4FBFC0E1108A8FD17B448A68554199C47D08FFB10D4B8)


def _add(p1, p2):
    if p1 is None:
        return p2
    if p2 is None:
        return p1
    if p1[0] == p2[0] and (p1[1] + p2[1]) % P == 0:
        return None
    if p1 == p2:
        lam = 3 * p1[0] * p1[0] * pow(2 * p1[1], -1, P) % P
    else:
        lam = (p2[1] - p1[1]) * pow(p2[0] - p1[0], -1, P) % P
    x = (lam * lam - p1[0] - p2[0]) % P
    return x, (lam * (p1[0] - x) - p1[1]) % P


def _mul(k: int, point=G):
    result = None
    while k:
        if k & 1:
            result = _add(result, point)
        point = _add(point, point)
        k >>= 1
    return result


def address_of(private_key: int) -> str:
    x, y = _mul(private_key)
    return checksum("0x" + keccak256(x.to_bytes(32, "big") + y.to_bytes(32, "big"))[12:].hex())


def checksum(address: str) -> str:
    """EIP-55."""
    digits = address[2:].lower()
    nibbles = keccak256(digits.encode()).hex()
    return "0x" + "".join(c.upper() if int(h, 16) >= 8 else c for c, h in zip(digits, nibbles))


def sign_hash(digest: bytes, private_key: int) -> bytes:
    """65 bytes r || s || v (v 27/28), low s, as viem's local accounts sign."""
    z = int.from_bytes(digest, "big")
    while True:
        k = secrets.randbelow(N - 1) + 1
        rx, ry = _mul(k)
        r = rx % N
        s = pow(k, -1, N) * (z + r * private_key) % N
        if r and s:
            break
    v = ry & 1
    if s > N // 2:
        s, v = N - s, v ^ 1
    return r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([27 + v])


def high_s_twin(signature: bytes) -> bytes:
    """The malleated twin (n - s, other v) of a signature: the same signer, refused by §21."""
    s = int.from_bytes(signature[32:64], "big")
    return signature[:32] + (N - s).to_bytes(32, "big") + bytes([55 - signature[64]])


# --- EIP-712 TransferWithAuthorization --------------------------------------------------------

DOMAIN_TYPE = b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
TRANSFER_TYPE = (b"TransferWithAuthorization(address from,address to,uint256 value,uint256 validAfter,"
                 b"uint256 validBefore,bytes32 nonce)")


def _word(n: int) -> bytes:
    return n.to_bytes(32, "big")


def _address_word(address: str) -> bytes:
    return b"\x00" * 12 + bytes.fromhex(address[2:])


def chain_id(network: str) -> int:
    return int(network.split(":", 1)[1])


def domain_separator(name: str, version: str, chain: int, token: str) -> bytes:
    return keccak256(keccak256(DOMAIN_TYPE), keccak256(name.encode()), keccak256(version.encode()), _word(chain),
                     _address_word(token))


def signing_hash(authorization: dict, name: str, version: str, chain: int, token: str) -> bytes:
    message = keccak256(
        keccak256(TRANSFER_TYPE), _address_word(authorization["from"]), _address_word(authorization["to"]),
        _word(int(authorization["value"])), _word(int(authorization["validAfter"])),
        _word(int(authorization["validBefore"])), bytes.fromhex(authorization["nonce"][2:]))
    return keccak256(b"\x19\x01", domain_separator(name, version, chain, token), message)


@dataclass
class EvmBuyer:
    """A buyer whose private key derives from a label (so each test has its own account)."""

    label: str
    private_key: int = field(init=False)

    def __post_init__(self) -> None:
        self.private_key = int.from_bytes(hashlib.sha256(f"evm-buyer:{self.label}".encode()).digest(), "big") % N

    @property
    def address(self) -> str:
        return address_of(self.private_key)

    def payload(self, required: dict, accepted: dict | None = None, *, now: int | None = None,
                chain: int | None = None, signer: int | None = None, **authorization: Any) -> dict:
        """The v2 payment for `accepted` (default: the first EVM entry of `required`), as the official
        client builds it (validAfter 0, validBefore now + maxTimeoutSeconds).
        `authorization` overrides members after signing would be wrong, so they are set before;
        `chain` signs under another chain id; `signer` signs with another key."""
        if accepted is None:
            accepted = next(a for a in required["accepts"] if a["network"].startswith("eip155:"))
        now = int(time.time()) if now is None else now
        auth = {"from": self.address, "to": accepted["payTo"], "value": accepted["amount"],
                "validAfter": "0", "validBefore": str(now + accepted["maxTimeoutSeconds"]),
                "nonce": "0x" + secrets.token_bytes(32).hex()}
        auth.update({k: str(v) if isinstance(v, int) else v for k, v in authorization.items()})
        digest = signing_hash(auth, accepted["extra"]["name"], accepted["extra"]["version"],
                              chain if chain is not None else chain_id(accepted["network"]), accepted["asset"])
        signature = sign_hash(digest, self.private_key if signer is None else signer)
        return {"x402Version": 2, "payload": {"authorization": auth, "signature": "0x" + signature.hex()},
                "resource": required.get("resource"), "accepted": accepted}

    def header(self, required: dict, **options: Any) -> tuple[str, dict]:
        payload = self.payload(required, **options)
        return encode(payload), payload


def encode(payload: dict) -> str:
    return base64.b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode()


# --- Sign-In-With-X on EVM networks (EIP-4361 text, EIP-191 signature) ---------------------------

def format_siwe_message(info: dict, address: str) -> str:
    """`formatSIWEMessage(info, address)` of `@x402/extensions` 2.27.0 (siwe's `prepareMessage`):
    checked against tests/vectors/evm/siwe.json in test_evm.py."""
    lines = [f"{info['domain']} wants you to sign in with your Ethereum account:", address, ""]
    if info.get("statement") is not None:
        lines += [info["statement"], ""]
    else:
        lines += [""]
    lines += [f"URI: {info['uri']}", f"Version: {info['version']}", f"Chain ID: {chain_id(info['chainId'])}",
              f"Nonce: {info['nonce']}", f"Issued At: {info['issuedAt']}"]
    for key, label in (("expirationTime", "Expiration Time"), ("notBefore", "Not Before")):
        if info.get(key):
            lines.append(f"{label}: {info[key]}")
    if info.get("requestId") is not None:
        lines.append(f"Request ID: {info['requestId']}")
    if info.get("resources"):
        lines.append("Resources:")
        lines += [f"- {r}" for r in info["resources"]]
    return "\n".join(lines)


def personal_sign(message: str, private_key: int) -> str:
    """EIP-191 `personal_sign`: `0x` + r || s || v."""
    data = message.encode("utf-8")
    digest = keccak256(b"\x19Ethereum Signed Message:\n" + str(len(data)).encode() + data)
    return "0x" + sign_hash(digest, private_key).hex()


def sign_in(required: dict, buyer: EvmBuyer, **changes: Any) -> str:
    """The SIGN-IN-WITH-X header answering a 402's declaration as the official client does with an
    EVM signer (the first `eip191` chain); `changes` alter the info before signing."""
    declared = (required.get("extensions") or {}).get("sign-in-with-x")
    assert declared, f"the 402 declares no sign-in-with-x: {required}"
    chain = next(c for c in declared["supportedChains"] if c["type"] == "eip191")
    address = changes.pop("address", buyer.address)  # another address than the signer's: a forgery
    info = {**declared["info"], "chainId": chain["chainId"], "type": "eip191", **changes}
    order = ["domain", "address", "statement", "uri", "version", "chainId", "type", "nonce", "issuedAt",
             "expirationTime", "notBefore", "requestId", "resources", "signatureScheme", "signature"]
    values = {**info, "address": address, "signature": personal_sign(format_siwe_message(info, address),
                                                                      buyer.private_key)}
    return encode({k: values[k] for k in order if values.get(k) is not None})

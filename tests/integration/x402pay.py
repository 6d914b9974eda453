"""Independent Python builder of x402 v2 "exact" Solana payments.

It produces what the `@dexterai/x402` / `@x402/svm` clients send (docs/behaviour.md §6.1, §11): a Solana v0
transaction with two signature slots (slot 0 = the facilitator's fee payer, left all zeros;
slot 1 = the buyer's Ed25519 signature), instructions SetComputeUnitLimit, SetComputeUnitPrice,
SPL Token TransferChecked (source ATA of the buyer -> ATA of payTo) and an optional Memo, wrapped
in the `PAYMENT-SIGNATURE` JSON and encoded as standard base64 of compact JSON.

Nothing here calls the project's Rust code: it is a second, independent implementation, checked
against the golden vector captured from the official packages (test_x402pay.py).

Every knob the attack tests need is a keyword argument of `build_transaction` / `build_payment`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

# --------------------------------------------------------------------------- base58

_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(_B58)}


def b58encode(data: bytes) -> str:
    n = int.from_bytes(data, "big")
    out = ""
    while n:
        n, r = divmod(n, 58)
        out = _B58[r] + out
    zeros = len(data) - len(data.lstrip(b"\0"))
    return "1" * zeros + out


def b58decode(text: str) -> bytes:
    n = 0
    for c in text:
        if c not in _B58_INDEX:
            raise ValueError(f"invalid base58 character {c!r}")
        n = n * 58 + _B58_INDEX[c]
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    zeros = len(text) - len(text.lstrip("1"))
    return b"\0" * zeros + body


def pubkey(addr: str | bytes) -> bytes:
    """32-byte public key from a base58 address (or pass bytes through)."""
    if isinstance(addr, bytes):
        if len(addr) != 32:
            raise ValueError("public key must be 32 bytes")
        return addr
    raw = b58decode(addr)
    if len(raw) != 32:
        raise ValueError(f"{addr} does not decode to 32 bytes")
    return raw


# --------------------------------------------------------------------------- ed25519 curve check

_P = 2**255 - 19
_D = (-121665 * pow(121666, _P - 2, _P)) % _P


def is_on_curve(point: bytes) -> bool:
    """True when the 32 bytes decompress to an Ed25519 point (curve25519-dalek semantics:
    y is taken mod p with the sign bit cleared; the point is valid iff x^2 = (y^2-1)/(d*y^2+1)
    has a square root)."""
    y = int.from_bytes(point, "little") & ((1 << 255) - 1)
    y %= _P
    u = (y * y - 1) % _P
    v = (_D * y * y + 1) % _P
    if v == 0:
        return u == 0
    x2 = u * pow(v, _P - 2, _P) % _P
    if x2 == 0:
        return True
    return pow(x2, (_P - 1) // 2, _P) == 1


def find_program_address(seeds: Sequence[bytes], program_id: str | bytes) -> tuple[bytes, int]:
    program = pubkey(program_id)
    for bump in range(255, -1, -1):
        h = hashlib.sha256()
        for s in seeds:
            h.update(s)
        h.update(bytes([bump]))
        h.update(program)
        h.update(b"ProgramDerivedAddress")
        candidate = h.digest()
        if not is_on_curve(candidate):
            return candidate, bump
    raise ValueError("no viable bump seed")


# --------------------------------------------------------------------------- programs

TOKEN_PROGRAM = "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA"
TOKEN_2022_PROGRAM = "TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb"
COMPUTE_BUDGET_PROGRAM = "ComputeBudget111111111111111111111111111111"
MEMO_PROGRAM = "MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr"
ATA_PROGRAM = "ATokenGPvbdGVxr1b2hvZbsiqW5xWH25efTNsLJA8knL"

DEVNET = "solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1"
MAINNET = "solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp"
DEVNET_USDC = "4zMMC9srt5Ri5X14GAgXhaHii3GnPAEERYPJgZJDncDU"
MAINNET_USDC = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"


def associated_token_address(owner: str | bytes, mint: str | bytes,
                             token_program: str | bytes = TOKEN_PROGRAM) -> bytes:
    addr, _ = find_program_address([pubkey(owner), pubkey(token_program), pubkey(mint)], ATA_PROGRAM)
    return addr


# --------------------------------------------------------------------------- keys


@dataclass(frozen=True)
class Keypair:
    seed: bytes

    @property
    def _private(self) -> Ed25519PrivateKey:
        return Ed25519PrivateKey.from_private_bytes(self.seed)

    @property
    def public(self) -> bytes:
        return self._private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    @property
    def address(self) -> str:
        return b58encode(self.public)

    def sign(self, message: bytes) -> bytes:
        return self._private.sign(message)


def keypair_from_seed(seed: bytes | str) -> Keypair:
    if isinstance(seed, str):
        seed = bytes.fromhex(seed)
    if len(seed) != 32:
        raise ValueError("an Ed25519 seed is 32 bytes")
    return Keypair(seed)


def derived_keypair(label: str) -> Keypair:
    """A deterministic keypair per label (tests use one per test so payments never collide)."""
    return Keypair(hashlib.sha256(b"x402-integration-buyer:" + label.encode()).digest())


def keypair_from_solana_json(path: str) -> Keypair:
    """A Solana CLI keypair file (JSON array of 64 bytes: seed then public key)."""
    with open(path) as f:
        raw = bytes(json.load(f))
    return keypair_from_seed(raw[:32])


# --------------------------------------------------------------------------- wire encoding


def compact_u16(n: int) -> bytes:
    if not 0 <= n <= 0xFFFF:
        raise ValueError("compact-u16 out of range")
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


@dataclass
class AccountMeta:
    key: bytes
    signer: bool
    writable: bool


@dataclass
class Instruction:
    program: bytes
    accounts: list[AccountMeta]
    data: bytes


def set_compute_unit_limit(units: int) -> Instruction:
    return Instruction(pubkey(COMPUTE_BUDGET_PROGRAM), [], b"\x02" + struct.pack("<I", units))


def set_compute_unit_price(micro_lamports: int) -> Instruction:
    return Instruction(pubkey(COMPUTE_BUDGET_PROGRAM), [], b"\x03" + struct.pack("<Q", micro_lamports))


def transfer_checked(source: bytes, mint: bytes, dest: bytes, authority: bytes, amount: int,
                     decimals: int, token_program: str | bytes = TOKEN_PROGRAM) -> Instruction:
    return Instruction(pubkey(token_program), [
        AccountMeta(source, False, True),
        AccountMeta(mint, False, False),
        AccountMeta(dest, False, True),
        AccountMeta(authority, True, False),
    ], b"\x0c" + struct.pack("<QB", amount, decimals))


def memo(text: str | bytes) -> Instruction:
    return Instruction(pubkey(MEMO_PROGRAM), [], text.encode() if isinstance(text, str) else text)


def _address_sort_key(key: bytes) -> tuple:
    # @solana/kit orders accounts of the same category by their base58 text with an
    # Intl.Collator('en', {caseFirst: 'lower', numeric: false}): case-insensitive first,
    # lower case first on a tie.
    text = b58encode(key)
    return ([c.lower() for c in text], [0 if c.islower() else 1 for c in text])


def compile_message(fee_payer: bytes, instructions: Sequence[Instruction], blockhash: bytes,
                    lookup_tables: Sequence[tuple[bytes, Sequence[int], Sequence[int]]] = (),
                    version: int | None = 0) -> tuple[bytes, list[bytes]]:
    """Solana message bytes (v0 by default, `version=None` for legacy) and its account keys.

    Accounts: fee payer first, then writable signers, readonly signers, writable non-signers,
    readonly non-signers (each group sorted as @solana/kit sorts it)."""
    flags: dict[bytes, list[bool]] = {fee_payer: [True, True]}  # key -> [signer, writable]
    for ix in instructions:
        flags.setdefault(ix.program, [False, False])
        for meta in ix.accounts:
            f = flags.setdefault(meta.key, [False, False])
            f[0] |= meta.signer
            f[1] |= meta.writable
    others = [k for k in flags if k != fee_payer]
    groups = [
        sorted([k for k in others if flags[k][0] and flags[k][1]], key=_address_sort_key),
        sorted([k for k in others if flags[k][0] and not flags[k][1]], key=_address_sort_key),
        sorted([k for k in others if not flags[k][0] and flags[k][1]], key=_address_sort_key),
        sorted([k for k in others if not flags[k][0] and not flags[k][1]], key=_address_sort_key),
    ]
    keys = [fee_payer] + groups[0] + groups[1] + groups[2] + groups[3]
    num_signers = 1 + len(groups[0]) + len(groups[1])
    header = bytes([num_signers, len(groups[1]), len(groups[3])])
    index = {k: i for i, k in enumerate(keys)}

    out = bytearray()
    if version is not None:
        out.append(0x80 | version)
    out += header
    out += compact_u16(len(keys))
    for k in keys:
        out += k
    if len(blockhash) != 32:
        raise ValueError("blockhash must be 32 bytes")
    out += blockhash
    out += compact_u16(len(instructions))
    for ix in instructions:
        out.append(index[ix.program])
        out += compact_u16(len(ix.accounts))
        out += bytes(index[m.key] for m in ix.accounts)
        out += compact_u16(len(ix.data))
        out += ix.data
    if version is not None:
        out += compact_u16(len(lookup_tables))
        for table, writable, readonly in lookup_tables:
            out += table
            out += compact_u16(len(writable)) + bytes(writable)
            out += compact_u16(len(readonly)) + bytes(readonly)
    return bytes(out), keys


@dataclass
class BuiltTransaction:
    wire: bytes
    message: bytes
    account_keys: list[bytes]

    @property
    def base64(self) -> str:
        return base64.b64encode(self.wire).decode()

    @property
    def message_hash(self) -> str:
        return hashlib.sha256(self.message).hexdigest()


def build_transaction(*, payer: Keypair, fee_payer: str | bytes, pay_to: str | bytes, mint: str | bytes,
                      amount: int, decimals: int = 6, blockhash: bytes | str | None = None,
                      memo_text: str | bytes | None = None, cu_limit: int = 20000, cu_price: int = 1,
                      token_program: str | bytes = TOKEN_PROGRAM, transfer_mint: str | bytes | None = None,
                      dest_owner: str | bytes | None = None, dest_ata: bytes | None = None,
                      source_ata: bytes | None = None, authority: Keypair | None = None,
                      extra_instructions: Iterable[Instruction] = (),
                      instructions: Sequence[Instruction] | None = None,
                      lookup_tables: Sequence[tuple[bytes, Sequence[int], Sequence[int]]] = (),
                      version: int | None = 0, corrupt_signature: bool = False,
                      fee_payer_signature: bytes | None = None) -> BuiltTransaction:
    """Build and sign a payment transaction.

    Attack knobs: `transfer_mint` (mint in the transfer, default `mint`), `dest_owner` /
    `dest_ata` (destination other than ATA(pay_to)), `extra_instructions`, `instructions`
    (replace them all), `lookup_tables`, `corrupt_signature`, `version=None` (legacy)."""
    fee = pubkey(fee_payer)
    mint_key = pubkey(transfer_mint if transfer_mint is not None else mint)
    if blockhash is None:
        blockhash = os.urandom(32)
    elif isinstance(blockhash, str):
        blockhash = b58decode(blockhash)
    auth = authority or payer
    if instructions is None:
        source = source_ata or associated_token_address(auth.public, mint_key, token_program)
        dest = dest_ata or associated_token_address(
            pubkey(dest_owner) if dest_owner is not None else pubkey(pay_to), mint_key, token_program)
        instructions = [
            set_compute_unit_limit(cu_limit),
            set_compute_unit_price(cu_price),
            transfer_checked(source, mint_key, dest, auth.public, amount, decimals, token_program),
        ]
        instructions += list(extra_instructions)
        if memo_text is not None:
            instructions.append(memo(memo_text))
    message, keys = compile_message(fee, instructions, blockhash, lookup_tables, version)
    num_signers = message[1] if version is not None else message[0]
    sigs = []
    for key in keys[:num_signers]:
        if key == fee:
            sigs.append(fee_payer_signature or b"\0" * 64)
        elif key == payer.public:
            sig = payer.sign(message)
            if corrupt_signature:
                sig = bytes([sig[0] ^ 0xFF]) + sig[1:]
            sigs.append(sig)
        elif authority is not None and key == authority.public:
            sigs.append(authority.sign(message))
        else:
            sigs.append(b"\0" * 64)
    wire = compact_u16(len(sigs)) + b"".join(sigs) + message
    return BuiltTransaction(wire, message, keys)


# --------------------------------------------------------------------------- decoding (for tests)


def decode_transaction(wire: bytes) -> dict[str, Any]:
    pos = 0

    def cu16() -> int:
        nonlocal pos
        value = shift = 0
        while True:
            b = wire[pos]
            pos += 1
            value |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return value

    def take(n: int) -> bytes:
        nonlocal pos
        if pos + n > len(wire):
            raise ValueError("truncated transaction")
        out = wire[pos:pos + n]
        pos += n
        return out

    nsig = cu16()
    signatures = [take(64) for _ in range(nsig)]
    msg_start = pos
    version = None
    if wire[pos] & 0x80:
        version = wire[pos] & 0x7F
        pos += 1
    header = list(take(3))
    keys = [take(32) for _ in range(cu16())]
    blockhash = take(32)
    instructions = []
    for _ in range(cu16()):
        program_index = take(1)[0]
        accounts = list(take(cu16()))
        data = take(cu16())
        instructions.append({"programIndex": program_index, "program": b58encode(keys[program_index]),
                             "accounts": accounts, "data": data})
    lookups = []
    if version is not None:
        for _ in range(cu16()):
            table = take(32)
            writable = list(take(cu16()))
            readonly = list(take(cu16()))
            lookups.append((table, writable, readonly))
    if pos != len(wire):
        raise ValueError("trailing bytes")
    return {"signatures": signatures, "message": wire[msg_start:], "version": version, "header": header,
            "accountKeys": [b58encode(k) for k in keys], "blockhash": b58encode(blockhash),
            "instructions": instructions, "lookupTables": lookups}


# --------------------------------------------------------------------------- x402 header


def compact_json(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def b64_json(obj: Any) -> str:
    return base64.b64encode(compact_json(obj).encode()).decode()


def decode_b64_json(value: str) -> Any:
    return json.loads(base64.b64decode(value, validate=True))


def build_payment(payment_required: dict, payer: Keypair, *, accepted: dict | None = None,
                  amount: int | None = None, blockhash: bytes | str | None = None,
                  x402_version: int = 2, **tx_options: Any) -> tuple[dict, BuiltTransaction]:
    """The decoded PAYMENT-SIGNATURE payload paying `payment_required` (a decoded
    PAYMENT-REQUIRED), and the transaction in it.

    `accepted` replaces the echoed accepts entry (tests modify it for attacks); `amount`
    overrides the amount in the transaction (default: the accepted entry's amount)."""
    offer = payment_required["accepts"][0]
    echoed = accepted if accepted is not None else offer
    tx_options.setdefault("memo_text", (offer.get("extra") or {}).get("memo"))
    tx = build_transaction(
        payer=payer,
        fee_payer=offer["extra"]["feePayer"],
        pay_to=offer["payTo"],
        mint=offer["asset"],
        amount=int(amount if amount is not None else offer.get("amount") or offer["maxAmountRequired"]),
        decimals=int((offer.get("extra") or {}).get("decimals", 6)),
        blockhash=blockhash,
        **tx_options,
    )
    payload = {
        "x402Version": x402_version,
        "resource": payment_required.get("resource"),
        "accepted": echoed,
        "payload": {"transaction": tx.base64},
    }
    return payload, tx


def payment_header(payment_required: dict | str, payer: Keypair, **options: Any) -> tuple[str, BuiltTransaction]:
    """`PAYMENT-SIGNATURE` header value (standard base64 of compact JSON) and its transaction."""
    if isinstance(payment_required, str):
        payment_required = decode_b64_json(payment_required)
    payload, tx = build_payment(payment_required, payer, **options)
    return b64_json(payload), tx

"""The Python payment builder against the golden vector captured from the official x402 packages.

These tests need no Envoy: they check the harness's own buyer before it is trusted to test the filter.
"""

import base64
import json
import pathlib

import pytest

import x402pay as xp

VECTORS = pathlib.Path(__file__).resolve().parents[1] / "vectors" / "x402-svm-exact.json"


@pytest.fixture(scope="module")
def vector():
    return json.loads(VECTORS.read_text())


def test_keys_from_seeds_match_the_vector_addresses(vector):
    keys = vector["keys"]
    assert xp.keypair_from_seed(keys["payerSecretSeedHex"]).address == keys["payer"]
    assert xp.keypair_from_seed(keys["feePayerSecretSeedHex"]).address == keys["feePayer"]
    assert xp.keypair_from_seed(keys["merchantSecretSeedHex"]).address == keys["merchant"]


def test_base58_round_trips():
    for raw in [b"", b"\0", b"\0\0\x01", bytes(range(32)), b"\xff" * 32]:
        assert xp.b58decode(xp.b58encode(raw)) == raw
    assert xp.b58encode(b"\0" * 32) == "1" * 32


def test_curve_check_accepts_real_public_keys_and_rejects_a_known_pda():
    for seed in range(1, 8):
        assert xp.is_on_curve(xp.keypair_from_seed(bytes([seed]) * 32).public)
    ata = xp.associated_token_address("GyGKxMyg1p9SsHfm15MkNUu1u9TN2JtTspcdmrtGUdse", xp.DEVNET_USDC)
    assert not xp.is_on_curve(ata)


def test_builder_reproduces_the_official_transaction_byte_for_byte(vector):
    keys = vector["keys"]
    official = base64.b64decode(vector["decodedPaymentPayload"]["payload"]["transaction"])
    accepted = vector["decodedPaymentPayload"]["accepted"]
    tx = xp.build_transaction(
        payer=xp.keypair_from_seed(keys["payerSecretSeedHex"]),
        fee_payer=keys["feePayer"], pay_to=keys["merchant"], mint=accepted["asset"],
        amount=int(accepted["amount"]), decimals=6, memo_text=accepted["extra"]["memo"],
        blockhash=accepted["extra"]["recentBlockhash"])
    ours, theirs = xp.decode_transaction(tx.wire), xp.decode_transaction(official)
    assert ours["accountKeys"] == theirs["accountKeys"]
    assert ours["header"] == theirs["header"]
    assert ours["version"] == theirs["version"] == 0
    assert ours["blockhash"] == theirs["blockhash"]
    assert [(i["program"], i["accounts"], i["data"]) for i in ours["instructions"]] == \
        [(i["program"], i["accounts"], i["data"]) for i in theirs["instructions"]]
    assert ours["lookupTables"] == theirs["lookupTables"] == []
    assert ours["message"] == theirs["message"]
    # Ed25519 is deterministic: the whole wire transaction is identical.
    assert tx.wire == official


def test_builder_derives_the_official_token_accounts(vector):
    keys = vector["keys"]
    official = xp.decode_transaction(base64.b64decode(vector["decodedPaymentPayload"]["payload"]["transaction"]))
    transfer = next(i for i in official["instructions"] if i["program"] == xp.TOKEN_PROGRAM)
    source, mint, dest, authority = (official["accountKeys"][i] for i in transfer["accounts"])
    assert source == xp.b58encode(xp.associated_token_address(keys["payer"], xp.DEVNET_USDC))
    assert dest == xp.b58encode(xp.associated_token_address(keys["merchant"], xp.DEVNET_USDC))
    assert mint == xp.DEVNET_USDC and authority == keys["payer"]


def test_payment_header_is_standard_base64_of_compact_json(vector):
    required = vector["unpaid402"]["decodedPaymentRequired"]
    payer = xp.keypair_from_seed(vector["keys"]["payerSecretSeedHex"])
    header, tx = xp.payment_header(required, payer, blockhash=b"\x07" * 32)
    raw = base64.b64decode(header, validate=True).decode()
    decoded = json.loads(raw)
    assert raw == json.dumps(decoded, separators=(",", ":"), ensure_ascii=False)
    assert decoded["x402Version"] == 2
    assert decoded["accepted"] == required["accepts"][0]
    assert decoded["resource"] == required["resource"]
    assert base64.b64decode(decoded["payload"]["transaction"]) == tx.wire


def test_attack_knobs_change_what_they_say():
    payer = xp.derived_keypair("knobs")
    base = dict(payer=payer, fee_payer=xp.keypair_from_seed(b"\2" * 32).address,
                pay_to="GyGKxMyg1p9SsHfm15MkNUu1u9TN2JtTspcdmrtGUdse", mint=xp.DEVNET_USDC,
                amount=5, blockhash=b"\1" * 32)
    plain = xp.decode_transaction(xp.build_transaction(**base).wire)
    assert plain["lookupTables"] == [] and len(plain["instructions"]) == 3
    lut = xp.decode_transaction(xp.build_transaction(**base, lookup_tables=[(b"\x09" * 32, [0], [])]).wire)
    assert len(lut["lookupTables"]) == 1
    bad = xp.build_transaction(**base, corrupt_signature=True)
    good = xp.build_transaction(**base)
    assert bad.message == good.message and bad.wire != good.wire

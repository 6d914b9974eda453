"""Base and other EVM networks (docs/behaviour.md §21), through Envoy: one seller on Solana devnet and
Base Sepolia, the test facilitator serving both. The 402 lists one accepts entry per network; an
EIP-3009 authorization signed with EIP-712 (tests/integration/evm.py, the official client's wire
form) buys the pass on Base Sepolia, whose `network` claim says so; every payment the local checks
must refuse is refused before any facilitator call; the facilitator's own ledger shows what each
buyer paid, and nothing else."""

from __future__ import annotations

import base64
import json
import time

import pytest

import evm
from attacks import Ledger
from harness import (ASSET, EVM_ASSET, EVM_MERCHANT, EVM_NETWORK, EXTERNAL, EXTERNAL_SKIP, MERCHANT, NETWORK, OUT,
                     Envoy, Facilitator, default_plugin_config)
from helpers import Buyer, assert_cors, decode_jwt, decode_std_b64_json, purchase

pytestmark = pytest.mark.skipif(EXTERNAL, reason=EXTERNAL_SKIP)

PRICES = {"5m": 50_000, "1h": 500_000, "24h": 2_000_000}


def networks_config(fac: Facilitator, **overrides) -> dict:
    config = default_plugin_config(fac.addr, payTo=None, network=None, **overrides)
    config.setdefault("networks", [{"network": NETWORK, "payTo": MERCHANT},
                                   {"network": EVM_NETWORK, "payTo": EVM_MERCHANT}])
    return config


@pytest.fixture(scope="module")
def evm_facilitator():
    out = OUT / "test_evm.py"
    fac = Facilitator(out, "facilitator-evm", evm_networks=[EVM_NETWORK]).start()
    yield fac
    fac.stop()


@pytest.fixture(scope="module")
def two_networks(evm_facilitator, upstream):
    """Envoy selling on Solana devnet, then Base Sepolia."""
    envoy = Envoy("two-networks", networks_config(evm_facilitator), evm_facilitator.port, upstream.port,
                  OUT / "test_evm.py")
    envoy.start()
    yield envoy
    envoy.stop()


@pytest.fixture
def evm_buyer(request) -> evm.EvmBuyer:
    return evm.EvmBuyer(request.node.nodeid)


def challenge(envoy: Envoy, path: str = "/api/data") -> dict:
    resp = envoy.get(path)
    assert resp.status == 402, resp
    required, _ = decode_std_b64_json(resp.headers["payment-required"])
    return required


def evm_settlements(fac: Facilitator, payer: str) -> list[dict]:
    return [s for s in fac.state()["settlements"] if s["payer"].lower() == payer.lower()]


def test_the_402_lists_one_entry_per_network_in_order_with_the_same_prices(two_networks, evm_facilitator):
    resp = two_networks.get("/api/data?tier=1h")
    assert resp.status == 402, resp
    assert_cors(resp)
    required, _ = decode_std_b64_json(resp.headers["payment-required"])
    solana, base = required["accepts"]
    assert (solana["network"], solana["payTo"], solana["asset"]) == (NETWORK, MERCHANT, ASSET)
    assert solana["extra"]["feePayer"]
    assert base == {"scheme": "exact", "network": EVM_NETWORK, "amount": "500000", "maxAmountRequired": "500000",
                    "asset": EVM_ASSET, "payTo": EVM_MERCHANT, "maxTimeoutSeconds": 60,
                    "extra": {"name": "USDC", "version": "2"}}
    assert solana["amount"] == base["amount"] == "500000"
    # The v1 body: the same entries under their v1 network names.
    body = resp.json()
    assert [a["network"] for a in body["accepts"]] == ["solana-devnet", "base-sepolia"]
    assert body["accepts"][1]["extra"] == {"name": "USDC", "version": "2"}


def test_an_evm_buyer_pays_on_base_sepolia_and_uses_the_pass(two_networks, evm_facilitator, upstream, evm_buyer):
    ledger = Ledger(evm_facilitator)
    required = challenge(two_networks, "/api/data?tier=1h")
    header, payload = evm_buyer.header(required, accepted=required["accepts"][1])
    resp = purchase(two_networks, "/api/data?tier=1h", header)
    assert resp.status == 200, resp
    token = resp.headers["access-pass"]
    _, claims, _ = decode_jwt(token)
    assert (claims["tier"], claims["payer"], claims["network"]) == ("1h", evm_buyer.address, EVM_NETWORK), claims
    settle, _ = decode_std_b64_json(resp.headers["payment-response"])
    assert settle["success"] is True and settle["network"] == EVM_NETWORK, settle
    assert settle["transaction"].startswith("0x") and len(settle["transaction"]) == 66, settle
    # The facilitator's own ledger: one settlement, of the price, to the seller, by this buyer.
    new = ledger.new_settlements()
    assert len(new) == 1, new
    assert (new[0]["amount"], new[0]["payTo"].lower(), new[0]["network"]) == ("500000", EVM_MERCHANT.lower(),
                                                                             EVM_NETWORK), new
    assert new[0]["payer"].lower() == evm_buyer.address.lower() and new[0]["transaction"] == settle["transaction"]
    # The pass opens the API, checked locally.
    before = evm_facilitator.counts()
    used = two_networks.get("/api/data?x=1", {"Authorization": f"Bearer {token}"})
    assert used.status == 200, used
    headers = used.json()["headers"]
    assert [v for k, v in headers if k == "x-access-pass-network"] == [EVM_NETWORK], headers
    assert evm_facilitator.counts()["verify"] == before["verify"]
    # The same authorization again is the same answer, never a second settlement.
    again = purchase(two_networks, "/api/data?tier=1h", header)
    assert again.status == 200 and again.headers["access-pass"] == token, again
    assert len(evm_settlements(evm_facilitator, evm_buyer.address)) == 1


def test_a_solana_buyer_and_an_evm_buyer_are_served_side_by_side(two_networks, evm_facilitator, evm_buyer, request):
    ledger = Ledger(evm_facilitator)
    solana_buyer = Buyer(request.node.nodeid)
    required = challenge(two_networks)
    header, tx = solana_buyer.pay(required)
    resp = purchase(two_networks, "/api/data?tier=5m", header)
    assert resp.status == 200, resp
    assert decode_jwt(resp.headers["access-pass"])[1]["network"] == NETWORK
    header, _ = evm_buyer.header(required)
    resp = purchase(two_networks, "/api/data?tier=5m", header)
    assert resp.status == 200, resp
    assert decode_jwt(resp.headers["access-pass"])[1]["network"] == EVM_NETWORK
    paid = sorted((s["network"], s["amount"]) for s in ledger.new_settlements())
    assert paid == [(EVM_NETWORK, "50000"), (NETWORK, "50000")], paid
    assert len(evm_facilitator.settlements_for(tx.message_hash)) == 1


def test_a_paid_request_on_base_sepolia_is_served_with_the_pass(two_networks, evm_facilitator, upstream, evm_buyer):
    ledger = Ledger(evm_facilitator)
    header, _ = evm_buyer.header(challenge(two_networks))
    resp = two_networks.request("GET", "/api/data", [("PAYMENT-SIGNATURE", header)])
    assert resp.status == 200, resp
    assert resp.json()["upstream"] == "demo"
    assert decode_jwt(resp.headers["access-pass"])[1]["network"] == EVM_NETWORK
    assert [s["amount"] for s in ledger.new_settlements()] == ["50000"]


def test_a_v1_x_payment_on_base_sepolia_buys_the_pass(two_networks, evm_facilitator, evm_buyer):
    ledger = Ledger(evm_facilitator)
    required = challenge(two_networks, "/api/data?tier=5m")
    payload = evm_buyer.payload(required)
    v1 = {"x402Version": 1, "scheme": "exact", "network": "base-sepolia", "payload": payload["payload"]}
    resp = two_networks.request("POST", "/api/data?tier=5m", [("X-PAYMENT", evm.encode(v1))])
    assert resp.status == 200, resp
    settle = json.loads(base64.b64decode(resp.headers["x-payment-response"]))
    assert settle["network"] == "base-sepolia", settle
    assert [s["amount"] for s in ledger.new_settlements()] == ["50000"]


def refused_locally(envoy: Envoy, fac: Facilitator, header: str, reason: str) -> None:
    ledger = Ledger(fac)
    resp = purchase(envoy, "/api/data?tier=5m", header)
    assert resp.status == 402, resp
    assert resp.json() == {"error": "Payment verification failed", "reason": reason}, resp
    assert "payment-required" in resp.headers
    ledger.assert_nothing_charged(no_callout=True)


def test_an_authorization_whose_valid_before_has_passed_is_refused_before_any_callout(two_networks, evm_facilitator,
                                                                                       evm_buyer):
    required = challenge(two_networks, "/api/data?tier=5m")
    header, _ = evm_buyer.header(required, validBefore=int(time.time()) - 1)
    refused_locally(two_networks, evm_facilitator, header, "invalid_authorization")
    header, _ = evm_buyer.header(required, validAfter=int(time.time()) + 600)
    refused_locally(two_networks, evm_facilitator, header, "invalid_authorization")


def test_a_signature_under_another_chain_id_is_refused_before_any_callout(two_networks, evm_facilitator, evm_buyer):
    header, _ = evm_buyer.header(challenge(two_networks, "/api/data?tier=5m"), chain=8453)
    refused_locally(two_networks, evm_facilitator, header, "invalid_authorization")


def test_a_signature_by_another_account_than_from_is_refused_before_any_callout(two_networks, evm_facilitator,
                                                                                 evm_buyer):
    other = evm.EvmBuyer("someone else")
    header, _ = evm_buyer.header(challenge(two_networks, "/api/data?tier=5m"), signer=other.private_key)
    refused_locally(two_networks, evm_facilitator, header, "invalid_authorization")


def test_a_high_s_signature_is_refused_before_any_callout(two_networks, evm_facilitator, evm_buyer):
    payload = evm_buyer.payload(challenge(two_networks, "/api/data?tier=5m"))
    good = bytes.fromhex(payload["payload"]["signature"][2:])
    payload["payload"]["signature"] = "0x" + evm.high_s_twin(good).hex()
    refused_locally(two_networks, evm_facilitator, evm.encode(payload), "invalid_authorization")


def test_a_transfer_to_another_address_or_of_another_value_is_refused_before_any_callout(two_networks,
                                                                                           evm_facilitator, evm_buyer):
    required = challenge(two_networks, "/api/data?tier=5m")
    header, _ = evm_buyer.header(required, to=evm_buyer.address)
    refused_locally(two_networks, evm_facilitator, header, "pay_to_mismatch")
    header, _ = evm_buyer.header(required, value=1)
    refused_locally(two_networks, evm_facilitator, header, "amount_mismatch")


def test_the_solana_entrys_payment_on_the_evm_entry_is_refused_before_any_callout(two_networks, evm_facilitator,
                                                                                    evm_buyer, request):
    required = challenge(two_networks, "/api/data?tier=5m")
    # A Solana transaction presented on the EVM entry, and an EVM authorization on the Solana entry.
    payload, _ = Buyer(request.node.nodeid).pay_payload(required)
    payload["accepted"] = required["accepts"][1]
    refused_locally(two_networks, evm_facilitator, evm.encode(payload), "invalid_authorization")
    payload = evm_buyer.payload(required)
    payload["accepted"] = required["accepts"][0]
    refused_locally(two_networks, evm_facilitator, evm.encode(payload), "invalid_transaction")


def test_the_same_authorization_reworded_is_a_replay_not_a_second_payment(two_networks, evm_facilitator, evm_buyer):
    required = challenge(two_networks, "/api/data?tier=5m")
    payload = evm_buyer.payload(required)
    first = purchase(two_networks, "/api/data?tier=5m", evm.encode(payload))
    assert first.status == 200, first
    payload["payload"]["authorization"]["from"] = payload["payload"]["authorization"]["from"].lower()
    payload["resource"] = {"url": "http://elsewhere/", "description": "other", "mimeType": "text/plain"}
    again = purchase(two_networks, "/api/data?tier=5m", evm.encode(payload))
    assert again.status == 200 and again.headers["access-pass"] == first.headers["access-pass"], again
    assert len(evm_settlements(evm_facilitator, evm_buyer.address)) == 1


def test_an_evm_only_seller_needs_no_fee_payer(evm_facilitator, upstream, evm_buyer):
    config = networks_config(evm_facilitator, networks=[{"network": EVM_NETWORK, "payTo": EVM_MERCHANT}])
    envoy = Envoy("evm-only", config, evm_facilitator.port, upstream.port, OUT / "test_evm.py")
    try:
        envoy.start()
        required = challenge(envoy)
        assert [a["network"] for a in required["accepts"]] == [EVM_NETWORK]
        header, _ = evm_buyer.header(required)
        resp = purchase(envoy, "/api/data?tier=5m", header)
        assert resp.status == 200, resp
        assert len(evm_settlements(evm_facilitator, evm_buyer.address)) == 1
    finally:
        envoy.stop()


def test_the_python_evm_buyer_signs_as_the_official_client(request):
    """The golden vectors (tests/vectors/evm, captured from @x402/evm 2.27.0) pin this buyer's hashing."""
    import pathlib
    vectors = json.loads((pathlib.Path(__file__).resolve().parents[1] / "vectors/evm/exact.json").read_text())
    assert evm.address_of(int(vectors["keys"]["payer"]["privateKey"], 16)) == vectors["keys"]["payer"]["address"]
    case = vectors["baseSepolia"]
    authorization = case["paymentPayload"]["payload"]["authorization"]
    digest = evm.signing_hash(authorization, case["name"], case["version"], case["chainId"], case["asset"])
    assert "0x" + digest.hex() == case["signingHash"]


def test_the_python_siwe_text_is_format_siwe_message_byte_for_byte():
    import pathlib
    cases = json.loads((pathlib.Path(__file__).resolve().parents[1] / "vectors/evm/siwe.json").read_text())["cases"]
    for case in cases:
        info = {k: v for k, v in case["payload"].items() if k not in ("address", "signature")}
        # `formatSIWEMessage` leaves out an empty expiration / not-before, writes an empty request id.
        assert evm.format_siwe_message(info, case["payload"]["address"]) == case["message"], case["label"]


def test_an_evm_buyer_who_paid_signs_in_with_eip191_and_is_served_without_paying_again(evm_facilitator, upstream,
                                                                                        evm_buyer):
    origin = "https://api.evm.test"
    here = [("Host", "api.evm.test"), ("X-Forwarded-Proto", "https")]
    config = networks_config(evm_facilitator, siwx={"origins": [origin]})
    envoy = Envoy("evm-siwx", config, evm_facilitator.port, upstream.port, OUT / "test_evm.py")
    try:
        envoy.start()
        first = envoy.get("/api/data", here)
        assert first.status == 402, first
        required, _ = decode_std_b64_json(first.headers["payment-required"])
        assert required["extensions"]["sign-in-with-x"]["supportedChains"] == [
            {"chainId": NETWORK, "type": "ed25519"}, {"chainId": EVM_NETWORK, "type": "eip191"}]
        # Never paid: signing in gets the challenge.
        refused = envoy.get("/api/data", here + [("SIGN-IN-WITH-X", evm.sign_in(required, evm_buyer))])
        assert refused.status == 402, refused
        header, _ = evm_buyer.header(challenge_here(envoy, "/api/data?tier=1h", here))
        paid = envoy.request("GET", "/api/data?tier=1h", here + [("PAYMENT-SIGNATURE", header)])
        assert paid.status == 200, paid
        assert len(evm_settlements(evm_facilitator, evm_buyer.address)) == 1
        for i in range(2):
            required = challenge_here(envoy, f"/api/data?page={i}", here)
            resp = envoy.get(f"/api/data?page={i}", here + [("SIGN-IN-WITH-X", evm.sign_in(required, evm_buyer))])
            assert resp.status == 200, resp
            headers = resp.json()["headers"]
            assert [v for k, v in headers if k == "x-access-pass-network"] == [EVM_NETWORK], headers
            assert [v for k, v in headers if k == "x-access-pass-tier"] == ["1h"], headers
            # The wallet as its pass names it (EIP-55), though its entitlement is kept lower-case.
            assert [v for k, v in headers if k == "x-access-pass-payer"] == [evm.checksum(evm_buyer.address)]
        # Signed by another account claiming this address: refused.
        required = challenge_here(envoy, "/api/data", here)
        other = evm.EvmBuyer("another account")
        forged = evm.sign_in(required, other, address=evm_buyer.address)
        assert envoy.get("/api/data", here + [("SIGN-IN-WITH-X", forged)]).status == 402
        # The facilitator's own ledger: still the one settlement, of the hour's price.
        assert [s["amount"] for s in evm_settlements(evm_facilitator, evm_buyer.address)] == ["500000"]
    finally:
        envoy.stop()


def challenge_here(envoy: Envoy, path: str, here: list) -> dict:
    resp = envoy.get(path, here)
    assert resp.status == 402, resp
    return decode_std_b64_json(resp.headers["payment-required"])[0]

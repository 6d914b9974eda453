//! The EVM `exact` payment core (`evm::payload` + `evm::exact`) on arbitrary bytes: the input
//! is the `payload` member of a `PAYMENT-SIGNATURE` (JSON), as `@x402/evm` 2.27.0 sends it.
//!
//! For a payload that decodes:
//! * it re-encodes (canonical lower-case JSON) to a payload that decodes to the same payment;
//! * the EIP-712 hash and the replay key are functions of the authorization alone;
//! * checked against the seller's terms (Base USDC, the vectors' `payTo`, 10000), a payment that
//!   passes pays exactly that amount to that seller within its window, and its payer is `from`,
//!   recovered from the signature;
//! * checked against terms made from the payload itself (so the fuzzer reaches the signature
//!   recovery), a pass means the signature recovers `from`; a fail is a signature failure.

use serde_json::json;
use x402_access_pass::evm::address::{Address, Case};
use x402_access_pass::evm::eip712::Domain;
use x402_access_pass::evm::exact::{check, replay_key, CheckError, Terms};
use x402_access_pass::evm::hex;
use x402_access_pass::evm::payload::ExactEvmPayload;
use x402_access_pass::evm::uint::U256;

/// The vectors' clock (2026-12-07T01:00:00Z), inside their payments' window.
pub const EVM_NOW: u64 = 1_796_605_200;
const BASE_USDC: &str = "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913";
const PAY_TO: &str = "0x3325a78425F17a7E487Eb5666b2bFd93aBb06c70";

fn address(text: &str) -> Address {
    match Address::parse(text, Case::Strict) {
        Some(a) => a,
        None => panic!("fixed address {text} refused"),
    }
}

fn decimal(n: &U256) -> String {
    // Big-endian bytes to decimal, by repeated division (the inverse of parse_decimal).
    let mut digits = Vec::new();
    let mut word = n.0;
    loop {
        let mut rem = 0u16;
        for byte in word.iter_mut() {
            let v = (rem << 8) | u16::from(*byte);
            *byte = (v / 10) as u8;
            rem = v % 10;
        }
        digits.push(b'0' + rem as u8);
        if word.iter().all(|b| *b == 0) {
            break;
        }
    }
    digits.reverse();
    String::from_utf8(digits).unwrap_or_default()
}

pub fn run(data: &[u8]) {
    let Ok(payment) = ExactEvmPayload::from_json(data) else { return };
    let auth = payment.authorization;

    // Round trip through the wire form.
    let text = |a: &Address| a.to_checksum();
    let wire = json!({
        "authorization": {
            "from": text(&auth.from), "to": hex::encode(&auth.to.0), "value": decimal(&auth.value),
            "validAfter": decimal(&auth.valid_after), "validBefore": decimal(&auth.valid_before),
            "nonce": hex::encode(&auth.nonce),
        },
        "signature": "0x",
    });
    let mut wire = wire;
    let original: serde_json::Value = serde_json::from_slice(data).unwrap_or_default();
    wire["signature"] = original["signature"].clone();
    let again = ExactEvmPayload::from_value(&wire).unwrap_or_else(|e| panic!("re-encoded payload refused: {e:?}"));
    assert_eq!(again, payment, "re-encoded payload differs");
    assert_eq!(Address::parse(&auth.from.to_checksum(), Case::Strict), Some(auth.from));

    // The seller's terms.
    let seller = Terms {
        domain: Domain { name: "USD Coin", version: "2", chain_id: 8453, verifying_contract: address(BASE_USDC) },
        pay_to: address(PAY_TO),
        amount: 10_000,
    };
    let hash = auth.signing_hash(&seller.domain);
    assert_eq!(hash, again.authorization.signing_hash(&seller.domain));
    for now in [EVM_NOW, 0, u64::MAX] {
        if let Ok(checked) = check(&payment, &seller, now) {
            assert_eq!(checked.payer, auth.from);
            assert_eq!(auth.to, seller.pay_to);
            assert_eq!(auth.value, U256::from_u64(10_000));
            assert!(auth.valid_after <= U256::from_u64(now) && U256::from_u64(now) < auth.valid_before);
            assert_eq!(checked.signing_hash, hash);
            assert_eq!(checked.replay_key, replay_key(&auth.from, &auth.nonce));
            assert_eq!(payment.signature.recover(&hash), Ok(auth.from));
        }
    }

    // Terms the payload meets by construction: only the signature decides.
    if let (Some(amount), Some(now)) = (auth.value.to_u64(), auth.valid_after.to_u64()) {
        let own = Terms { pay_to: auth.to, amount, ..seller };
        if U256::from_u64(now) < auth.valid_before {
            match check(&payment, &own, now) {
                Ok(checked) => assert_eq!(checked.payer, auth.from),
                Err(CheckError::Signature(_) | CheckError::SignerMismatch) => {
                    assert_ne!(payment.signature.recover(&hash).ok(), Some(auth.from));
                }
                Err(other) => panic!("terms met by construction refused: {other:?}"),
            }
        }
    }

    // Through the filter's own door (docs/behaviour.md §21): the payload in a v2 PAYMENT-SIGNATURE
    // for the Base entry of a Solana + Base seller. A payment the filter takes pays that seller's
    // price on Base, within its window, signed by its `from`, and is its pass's payer.
    let header = json!({"x402Version": 2, "payload": original,
        "accepted": {"scheme": "exact", "network": "eip155:8453", "amount": "10000", "asset": BASE_USDC, "payTo": PAY_TO}});
    let encoded = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, header.to_string());
    let config = two_network_seller();
    for now in [EVM_NOW, 0] {
        let checked =
            x402_access_pass::payment::decode_header(config, x402_access_pass::payment::Wire::V2, encoded.as_bytes())
                .and_then(|p| x402_access_pass::payment::check(config, b"/weather", p, || now));
        if let Ok(checked) = checked {
            assert_eq!((checked.network, checked.price, checked.offer.tier.as_str()), (1, 10_000, "5m"));
            assert_eq!(checked.payer, auth.from.to_checksum());
            assert_eq!((auth.to, auth.value), (seller.pay_to, U256::from_u64(10_000)));
            assert!(auth.valid_after <= U256::from_u64(now) && U256::from_u64(now) < auth.valid_before);
            assert_eq!(payment.signature.recover(&hash), Ok(auth.from));
            assert_eq!(checked.message_hash, replay_key(&auth.from, &auth.nonce));
        }
    }
}

/// Solana devnet, then Base (the vectors' `payTo`): the 5-minute pass is 10000 atomic USDC.
fn two_network_seller() -> &'static x402_access_pass::config::Config {
    static CONFIG: std::sync::OnceLock<x402_access_pass::config::Config> = std::sync::OnceLock::new();
    CONFIG.get_or_init(|| {
        let json = json!({"networks": [
                {"network": "solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1", "payTo": "GyGKxMyg1p9SsHfm15MkNUu1u9TN2JtTspcdmrtGUdse"},
                {"network": "eip155:8453", "payTo": PAY_TO}],
            "tiers": {"5m": "0.01"}, "secret": "fuzz-evm-seller-secret-0123456789abcdef"});
        match x402_access_pass::config::Config::parse(json.to_string().as_bytes(), &|_| None) {
            Ok(config) => config,
            Err(e) => panic!("the fuzz seller's configuration: {e}"),
        }
    })
}

//! The golden vectors of `tests/vectors/` (captured from the official x402 packages), for tests.

use crate::facilitator::Config;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

pub const DEVNET: &str = "solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1";
pub const DEVNET_USDC: &str = "4zMMC9srt5Ri5X14GAgXhaHii3GnPAEERYPJgZJDncDU";
pub const MAINNET_USDC: &str = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v";

pub fn vectors() -> serde_json::Value {
    serde_json::from_str(include_str!("../../vectors/x402-svm-exact.json")).expect("vector JSON")
}

/// The unsigned-by-fee-payer payment transaction of the vectors.
pub fn payment_wire() -> Vec<u8> {
    let v = vectors();
    B64.decode(v["decodedPaymentPayload"]["payload"]["transaction"].as_str().expect("tx")).expect("base64")
}

/// The facilitator configured as in the vectors (fee payer seed 02…02).
pub fn config() -> Config {
    Config::new(DEVNET, DEVNET_USDC, [2u8; 32], 6).expect("config")
}

/// The EVM golden vectors of `tests/vectors/evm/` (captured from @x402/evm 2.27.0).
pub fn evm_vectors() -> serde_json::Value {
    serde_json::from_str(include_str!("../../vectors/evm/exact.json")).expect("vector JSON")
}

/// The vectors' clock (2026-12-07T01:00:00Z).
pub fn evm_now() -> u64 {
    1_796_605_200
}

/// Base and Base Sepolia with the vectors' facilitator key (04…04).
pub fn evm_config() -> crate::evm::EvmConfig {
    crate::evm::EvmConfig::new(&["eip155:84532".to_string(), "eip155:8453".to_string()], [4u8; 32]).expect("evm config")
}

/// The `/verify` and `/settle` body of a vector payment and its requirements.
pub fn evm_body(payment: &serde_json::Value, requirements: &serde_json::Value) -> serde_json::Value {
    serde_json::json!({"x402Version": 2, "paymentPayload": payment, "paymentRequirements": requirements})
}

/// The vector's payment on `net` re-signed by the payer key (01…01) for the present: `validBefore`
/// = now + 300, as the official client would make it now (the vectors' own window has passed).
pub fn fresh_evm_payment(net: &str, nonce_byte: u8) -> serde_json::Value {
    use x402_access_pass::evm::address::{Address, Case};
    use x402_access_pass::evm::eip712::{chain_id, Domain, TransferWithAuthorization};
    use x402_access_pass::evm::{hex, uint::U256};
    let v = evm_vectors();
    let mut payment = v[net]["paymentPayload"].clone();
    let reqs = &v[net]["requirements"];
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    let addr = |s: &serde_json::Value| Address::parse(s.as_str().expect("address"), Case::Strict).expect("address");
    let auth = &payment["payload"]["authorization"];
    let transfer = TransferWithAuthorization {
        from: addr(&auth["from"]),
        to: addr(&auth["to"]),
        value: U256::parse_decimal(auth["value"].as_str().expect("value")).expect("value"),
        valid_after: U256::from_u64(0),
        valid_before: U256::from_u64(now + 300),
        nonce: [nonce_byte; 32],
    };
    let domain = Domain {
        name: reqs["extra"]["name"].as_str().expect("name"),
        version: reqs["extra"]["version"].as_str().expect("version"),
        chain_id: chain_id(reqs["network"].as_str().expect("network")).expect("chain id"),
        verifying_contract: addr(&reqs["asset"]),
    };
    let key = k256::ecdsa::SigningKey::from_slice(&[1u8; 32]).expect("key");
    let (sig, rec) = key.sign_prehash_recoverable(&transfer.signing_hash(&domain)).expect("sign");
    let mut bytes = sig.to_bytes().to_vec();
    bytes.push(27 + rec.to_byte());
    payment["payload"]["authorization"]["validBefore"] = serde_json::json!((now + 300).to_string());
    payment["payload"]["authorization"]["nonce"] = serde_json::json!(hex::encode(&[nonce_byte; 32]));
    payment["payload"]["signature"] = serde_json::json!(hex::encode(&bytes));
    payment
}

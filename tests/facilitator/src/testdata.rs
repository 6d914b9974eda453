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

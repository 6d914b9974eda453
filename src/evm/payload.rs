//! The `payload` member of a v2 `PAYMENT-SIGNATURE` for EVM `exact` over EIP-3009, as
//! `@x402/evm` 2.27.0's client builds it:
//! `{"authorization":{"from","to","value","validAfter","validBefore","nonce"},"signature":"0x…"}`
//! with addresses `0x` + 40 hex, amounts and times as decimal strings, `nonce` `0x` + 64 hex and
//! `signature` `0x` + 130 hex (an externally owned account's ECDSA signature).
//!
//! Not taken here: the Permit2 payload (`permit2Authorization`, for tokens without EIP-3009)
//! and smart-wallet signatures (ERC-1271 / ERC-6492, longer than 65 bytes), which only a chain
//! can judge: the local checks could not prove the buyer signed, so such payments are refused
//! before any callout.

use serde_json::Value;

use super::address::{Address, Case};
use super::eip712::TransferWithAuthorization;
use super::hex;
use super::signature::{RecoverableSignature, SignatureError};
use super::uint::U256;

/// Larger `payload` JSON is refused before parsing (a real one is about 450 bytes).
pub const MAX_PAYLOAD_BYTES: usize = 4 * 1024;

/// Why a `payload` is not an EVM `exact` EIP-3009 payment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PayloadError {
    /// Too large, not JSON, not an object, or a member missing or not a string.
    Shape,
    /// The Permit2 form (`permit2Authorization`), not taken (see the module documentation).
    Permit2,
    /// `from` or `to` is not an address (lower-case or EIP-55).
    Address,
    /// `value`, `validAfter` or `validBefore` is not a decimal `uint256`.
    Number,
    /// `nonce` is not 32 bytes of hex.
    Nonce,
    /// `signature` is not a usable 65-byte ECDSA signature.
    Signature(SignatureError),
}

/// A decoded EVM `exact` payment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExactEvmPayload {
    pub authorization: TransferWithAuthorization,
    pub signature: RecoverableSignature,
}

impl ExactEvmPayload {
    /// From the `payload` member's JSON text.
    pub fn from_json(json: &[u8]) -> Result<Self, PayloadError> {
        if json.len() > MAX_PAYLOAD_BYTES {
            return Err(PayloadError::Shape);
        }
        let value: Value = serde_json::from_slice(json).map_err(|_| PayloadError::Shape)?;
        Self::from_value(&value)
    }

    /// From the decoded `PAYMENT-SIGNATURE`'s `payload` member.
    pub fn from_value(payload: &Value) -> Result<Self, PayloadError> {
        let payload = payload.as_object().ok_or(PayloadError::Shape)?;
        if payload.contains_key("permit2Authorization") {
            return Err(PayloadError::Permit2);
        }
        let authorization = payload.get("authorization").and_then(Value::as_object).ok_or(PayloadError::Shape)?;
        let field = |key: &str| authorization.get(key).and_then(Value::as_str).ok_or(PayloadError::Shape);
        let address =
            |key: &str| field(key).and_then(|text| Address::parse(text, Case::Strict).ok_or(PayloadError::Address));
        let number = |key: &str| field(key).and_then(|text| U256::parse_decimal(text).ok_or(PayloadError::Number));
        let authorization = TransferWithAuthorization {
            from: address("from")?,
            to: address("to")?,
            value: number("value")?,
            valid_after: number("validAfter")?,
            valid_before: number("validBefore")?,
            nonce: hex::decode_fixed::<32>(field("nonce")?).ok_or(PayloadError::Nonce)?,
        };
        let signature = payload.get("signature").and_then(Value::as_str).ok_or(PayloadError::Shape)?;
        let signature = RecoverableSignature::parse_hex(signature).map_err(PayloadError::Signature)?;
        Ok(Self { authorization, signature })
    }
}

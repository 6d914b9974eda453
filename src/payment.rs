//! The buyer's payment (SPEC §6.1–§6.3): decode `PAYMENT-SIGNATURE`, bind it to
//! the pass whose price it pays, and check the Solana transaction locally so
//! that garbage never reaches the facilitator.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde_json::Value;

use crate::config::Config;
use crate::offer::{self, Offer};
use crate::solana::{self, Transaction};

/// Larger headers are refused before any decoding.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// A payment identifier (`@x402/extensions/payment-identifier` 2.27.0): 16 to 128 characters of
/// `[a-zA-Z0-9_-]`.
pub const PAYMENT_ID_MIN_LENGTH: usize = 16;
pub const PAYMENT_ID_MAX_LENGTH: usize = 128;

/// Why a payment was refused before any facilitator call; `reason()` is the
/// `reason` of the 402 body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    InvalidPaymentHeader,
    UnsupportedScheme,
    NetworkMismatch,
    AssetMismatch,
    PayToMismatch,
    AmountMismatch,
    InvalidTransaction,
    InvalidPaymentIdentifier,
}

impl Refusal {
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::InvalidPaymentHeader => "invalid_payment_header",
            Refusal::UnsupportedScheme => "unsupported_scheme",
            Refusal::NetworkMismatch => "network_mismatch",
            Refusal::AssetMismatch => "asset_mismatch",
            Refusal::PayToMismatch => "pay_to_mismatch",
            Refusal::AmountMismatch => "amount_mismatch",
            Refusal::InvalidTransaction => "invalid_transaction",
            Refusal::InvalidPaymentIdentifier => "invalid_payment_identifier",
        }
    }
}

/// A decoded `PAYMENT-SIGNATURE`.
#[derive(Debug, Clone)]
pub struct Payment {
    /// The whole decoded JSON: the facilitator gets it as `paymentPayload`.
    pub payload: Value,
    pub scheme: String,
    pub network: String,
    pub asset: String,
    pub pay_to: String,
    /// `accepted.amount`, else `accepted.maxAmountRequired`, as sent.
    pub amount: String,
    /// The Solana transaction, wire bytes.
    pub transaction: Vec<u8>,
}

/// A payment that passed every local check, bound to the pass it buys.
#[derive(Debug, Clone)]
pub struct CheckedPayment {
    pub payment: Payment,
    pub offer: Offer,
    /// SHA-256 of the transaction message: the key of the purchase (SPEC §6.5).
    pub message_hash: [u8; 32],
    /// The buyer: the transfer's authority, whose signature was checked.
    pub payer: String,
}

/// Standard base64 of JSON `{"x402Version":2,"accepted":{...},"payload":{"transaction":...}}`.
pub fn decode_header(raw: &[u8]) -> Result<Payment, Refusal> {
    let invalid = Refusal::InvalidPaymentHeader;
    if raw.len() > MAX_HEADER_BYTES {
        return Err(invalid);
    }
    let json = BASE64.decode(raw.trim_ascii()).map_err(|_| invalid)?;
    let payload: Value = serde_json::from_slice(&json).map_err(|_| invalid)?;
    if payload.get("x402Version").and_then(Value::as_u64) != Some(2) {
        return Err(invalid);
    }
    let accepted = payload.get("accepted").and_then(Value::as_object).ok_or(invalid)?;
    let text = |key: &str| accepted.get(key).and_then(Value::as_str).map(str::to_owned);
    let transaction =
        payload.get("payload").and_then(|p| p.get("transaction")).and_then(Value::as_str).ok_or(invalid)?;
    // A transaction that is not base64 is a transaction that does not decode.
    let transaction = BASE64.decode(transaction).unwrap_or_default();
    Ok(Payment {
        scheme: text("scheme").ok_or(invalid)?,
        network: text("network").ok_or(invalid)?,
        asset: text("asset").ok_or(invalid)?,
        pay_to: text("payTo").ok_or(invalid)?,
        amount: text("amount").or_else(|| text("maxAmountRequired")).ok_or(invalid)?,
        transaction,
        payload,
    })
}

/// The buyer's payment identifier, where the official client puts it:
/// `extensions["payment-identifier"].info.id` (docs/behaviour.md §17.5). `None` without one (the
/// declaration echoed back without an id included); an id that is not a string of 16–128
/// `[a-zA-Z0-9_-]` is refused, as the package's `validatePaymentIdentifier` refuses it.
pub fn identifier(payload: &Value) -> Result<Option<String>, Refusal> {
    let id = payload
        .get("extensions")
        .and_then(|e| e.get("payment-identifier"))
        .and_then(|e| e.get("info"))
        .and_then(|info| info.get("id"));
    match id {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(id))
            if (PAYMENT_ID_MIN_LENGTH..=PAYMENT_ID_MAX_LENGTH).contains(&id.len())
                && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') =>
        {
            Ok(Some(id.clone()))
        }
        Some(_) => Err(Refusal::InvalidPaymentIdentifier),
    }
}

/// SPEC §6.2 then §6.3: the payment must be for this seller, network and asset,
/// pay exactly the price of one of the request's candidates (the first that
/// matches is the pass issued), and carry a transaction that really pays that
/// price in that asset, signed by its buyer.
pub fn check(config: &Config, path: &[u8], payment: Payment) -> Result<CheckedPayment, Refusal> {
    if payment.scheme != "exact" {
        return Err(Refusal::UnsupportedScheme);
    }
    if payment.network != config.network {
        return Err(Refusal::NetworkMismatch);
    }
    if payment.asset != config.asset.address {
        return Err(Refusal::AssetMismatch);
    }
    if payment.pay_to != config.pay_to {
        return Err(Refusal::PayToMismatch);
    }
    let paid = crate::pricing::parse_duration_seconds(&payment.amount).ok_or(Refusal::AmountMismatch)?;
    let offer = offer::offer_paid_for(config, path, paid).ok_or(Refusal::AmountMismatch)?;
    let (message_hash, payer) = check_transaction(config, &payment.transaction, offer.atomic)?;
    Ok(CheckedPayment { payment, offer, message_hash, payer })
}

fn check_transaction(config: &Config, wire: &[u8], price: u64) -> Result<([u8; 32], String), Refusal> {
    let invalid = Refusal::InvalidTransaction;
    // Decoding refuses address-table lookups: every account must be visible here.
    let tx = Transaction::decode(wire).map_err(|_| invalid)?;
    let transfer = tx
        .transfer_checked()
        .into_iter()
        .find(|t| t.amount == price && *t.mint == config.asset.key && t.decimals == config.asset.decimals)
        .ok_or(invalid)?;
    let signer = tx
        .account_keys
        .iter()
        .take(usize::from(tx.num_required_signatures))
        .position(|key| *key == transfer.authority)
        .ok_or(invalid)?;
    if !tx.verify_signature(signer) {
        return Err(invalid);
    }
    Ok((tx.message_hash(), solana::encode_base58(transfer.authority)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_id(id: Value) -> Value {
        serde_json::json!({"x402Version": 2, "extensions": {"payment-identifier": {"info": {"required": false, "id": id}}}})
    }

    #[test]
    fn a_payment_identifier_is_read_where_the_official_client_puts_it() {
        assert_eq!(
            identifier(&with_id("pay_7d5d747be160e280504c099d984bcfe0".into())),
            Ok(Some("pay_7d5d747be160e280504c099d984bcfe0".into()))
        );
        assert_eq!(identifier(&with_id("a".repeat(16).into())), Ok(Some("a".repeat(16))));
        assert_eq!(identifier(&with_id("A-_9".repeat(32).into())), Ok(Some("A-_9".repeat(32))));
        // No id: the declaration echoed back, or no extensions at all.
        assert_eq!(
            identifier(&serde_json::json!({"extensions": {"payment-identifier": {"info": {"required": false}}}})),
            Ok(None)
        );
        assert_eq!(identifier(&serde_json::json!({"x402Version": 2})), Ok(None));
        assert_eq!(identifier(&with_id(Value::Null)), Ok(None));
        for bad in [
            Value::from("a".repeat(15)),
            Value::from("a".repeat(129)),
            Value::from("pay_abc!@#defghijklmnop"),
            Value::from("pay_ünicode_0123456789"),
            Value::from(1234567890123456789_u64),
        ] {
            assert_eq!(identifier(&with_id(bad.clone())), Err(Refusal::InvalidPaymentIdentifier), "{bad}");
        }
    }
}

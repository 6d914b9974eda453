//! The buyer's payment (docs/behaviour.md §6.1–§6.3): decode `PAYMENT-SIGNATURE`, bind it to
//! the pass whose price it pays, and check the Solana transaction locally so
//! that garbage never reaches the facilitator.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde_json::Value;

use crate::config::Config;
use crate::evm::exact;
use crate::evm::payload::ExactEvmPayload;
use crate::networks::Rail;
use crate::offer::{self, Offer};
use crate::solana::{self, Pubkey, Transaction};

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
    /// An EVM authorization that is malformed, outside its validity window, or not signed by its
    /// `from` under the seller's domain (docs/behaviour.md §21).
    InvalidAuthorization,
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
            Refusal::InvalidAuthorization => "invalid_authorization",
            Refusal::InvalidPaymentIdentifier => "invalid_payment_identifier",
        }
    }
}

/// The header a payment came in, which says its x402 version (docs/behaviour.md §20): v2 in
/// `PAYMENT-SIGNATURE`, v1 in `X-PAYMENT`. Its answer and its facilitator bodies speak the same
/// version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    V2,
    V1,
}

impl Wire {
    pub fn version(self) -> u64 {
        match self {
            Wire::V2 => 2,
            Wire::V1 => 1,
        }
    }

    /// The request header the payment came in.
    pub fn request_header(self) -> &'static str {
        match self {
            Wire::V2 => "payment-signature",
            Wire::V1 => "x-payment",
        }
    }

    /// The response header that carries the settlement.
    pub fn response_header(self) -> &'static str {
        match self {
            Wire::V2 => "payment-response",
            Wire::V1 => "x-payment-response",
        }
    }
}

/// A decoded `PAYMENT-SIGNATURE` (or `X-PAYMENT`).
#[derive(Debug, Clone)]
pub struct Payment {
    pub wire: Wire,
    /// The whole decoded JSON: the facilitator gets it as `paymentPayload`.
    pub payload: Value,
    pub scheme: String,
    pub network: String,
    pub asset: String,
    pub pay_to: String,
    /// `accepted.amount`, else `accepted.maxAmountRequired`, as sent. `None` for v1, whose
    /// payload names no amount: the transaction's transfer says what was paid.
    pub amount: Option<String>,
    /// The Solana transaction, wire bytes (empty for an EVM payment).
    pub transaction: Vec<u8>,
}

impl Payment {
    /// The scheme's own payload: `payload` of the decoded header.
    pub fn scheme_payload(&self) -> Option<&Value> {
        self.payload.get("payload")
    }
}

/// A payment that passed every local check, bound to the pass it buys.
#[derive(Debug, Clone)]
pub struct CheckedPayment {
    pub payment: Payment,
    pub offer: Offer,
    /// The key of the purchase (docs/behaviour.md §6.5): SHA-256 of the Solana transaction
    /// message, or of an EVM authorization's (`from`, `nonce`) (§21).
    pub message_hash: [u8; 32],
    /// The buyer: the transfer's authority, or the EVM authorization's `from` (EIP-55), whose
    /// signature was checked.
    pub payer: String,
    /// The network paid on: its index in `config.networks`.
    pub network: usize,
    /// The price paid, in that network's asset's atomic units.
    pub price: u64,
}

/// Standard base64 of JSON, in the version its header carries (docs/behaviour.md §6.1, §20):
/// - `PAYMENT-SIGNATURE`: `{"x402Version":2,"accepted":{...},"payload":{"transaction":...}}`;
/// - `X-PAYMENT`: `{"x402Version":1,"scheme":"exact","network":"solana-devnet","payload":{"transaction":...}}`.
///
/// Any other version in either header is refused: a v1 payload in `PAYMENT-SIGNATURE` or a v2
/// payload in `X-PAYMENT` never reaches a facilitator. A v1 payload names its network by its v1
/// name; it is read as the CAIP-2 network that name stands for, or as no network at all.
/// `config` gives what a v1 payload leaves out (asset and payee are the seller's: the
/// transaction and the facilitator hold the buyer to them).
pub fn decode_header(config: &Config, wire: Wire, raw: &[u8]) -> Result<Payment, Refusal> {
    let invalid = Refusal::InvalidPaymentHeader;
    if raw.len() > MAX_HEADER_BYTES {
        return Err(invalid);
    }
    let json = BASE64.decode(raw.trim_ascii()).map_err(|_| invalid)?;
    let payload: Value = serde_json::from_slice(&json).map_err(|_| invalid)?;
    if payload.get("x402Version").and_then(Value::as_u64) != Some(wire.version()) {
        return Err(invalid);
    }
    // A Solana payment carries a transaction, an EVM one an authorization (docs/behaviour.md §21).
    let scheme_payload = payload.get("payload").ok_or(invalid)?;
    let transaction = match scheme_payload.get("transaction") {
        // A transaction that is not base64 is a transaction that does not decode.
        Some(Value::String(transaction)) => BASE64.decode(transaction).unwrap_or_default(),
        _ if scheme_payload.get("authorization").is_some_and(Value::is_object) => Vec::new(),
        _ => return Err(invalid),
    };
    let fields = match wire {
        Wire::V2 => payload.get("accepted").and_then(Value::as_object),
        Wire::V1 => payload.as_object(),
    };
    let fields = fields.ok_or(invalid)?;
    let text = |key: &str| fields.get(key).and_then(Value::as_str).map(str::to_owned);
    let (scheme, network) = (text("scheme").ok_or(invalid)?, text("network").ok_or(invalid)?);
    let (network, asset, pay_to, amount) = match wire {
        Wire::V2 => (
            network,
            text("asset").ok_or(invalid)?,
            text("payTo").ok_or(invalid)?,
            Some(text("amount").or_else(|| text("maxAmountRequired")).ok_or(invalid)?),
        ),
        Wire::V1 => {
            let network = crate::challenge::network_of_v1(&network).unwrap_or_default();
            // v1 names no asset nor payee: the seller's on that network.
            let seller = config.networks.iter().find(|n| n.network == network);
            let (asset, pay_to) = seller.map(|n| (n.asset.address.clone(), n.pay_to.clone())).unwrap_or_default();
            (network.to_owned(), asset, pay_to, None)
        }
    };
    Ok(Payment { wire, scheme, network, asset, pay_to, amount, transaction, payload })
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

/// docs/behaviour.md §6.2 then §6.3 (§21): the payment must be for one of this seller's
/// networks, with its asset and payee there, pay exactly the price, in that asset, of one of the
/// request's candidates (the first that matches is the pass issued), and carry a Solana
/// transaction that really pays that price, signed by its buyer, or an EVM authorization of that
/// price to the seller, valid at `now_s` and signed by its `from`. `now_s` (unix seconds) is read
/// for an EVM payment only.
pub fn check(
    config: &Config,
    path: &[u8],
    payment: Payment,
    now_s: impl FnOnce() -> u64,
) -> Result<CheckedPayment, Refusal> {
    if payment.scheme != "exact" {
        return Err(Refusal::UnsupportedScheme);
    }
    let (index, network) = config
        .networks
        .iter()
        .enumerate()
        .find(|(_, n)| n.network == payment.network)
        .ok_or(Refusal::NetworkMismatch)?;
    // An EVM address is the same in any letter case (EIP-55 is only a checksum); base58 is not.
    let same = |a: &str, b: &str| a == b || (network.is_evm() && a.eq_ignore_ascii_case(b));
    if !same(&payment.asset, &network.asset.address) {
        return Err(Refusal::AssetMismatch);
    }
    if !same(&payment.pay_to, &network.pay_to) {
        return Err(Refusal::PayToMismatch);
    }
    let decimals = network.asset.decimals;
    match &network.rail {
        Rail::Solana { mint, .. } => {
            let offer = match &payment.amount {
                Some(amount) => {
                    let paid = crate::pricing::parse_duration_seconds(amount).ok_or(Refusal::AmountMismatch)?;
                    offer::offer_paid_in(config, path, decimals, paid)
                }
                None => offer_in_transaction(config, path, mint, decimals, &payment.transaction)?,
            };
            let (offer, price) = offer.ok_or(Refusal::AmountMismatch)?;
            let (message_hash, payer) = check_transaction(mint, decimals, &payment.transaction, price)?;
            Ok(CheckedPayment { payment, offer, message_hash, payer, network: index, price })
        }
        Rail::Evm(token) => {
            let authorization = payment.scheme_payload().ok_or(Refusal::InvalidAuthorization)?;
            let evm = ExactEvmPayload::from_value(authorization).map_err(|_| Refusal::InvalidAuthorization)?;
            // v1 names no amount: the authorization's value says what was paid.
            let paid = match &payment.amount {
                Some(amount) => crate::pricing::parse_duration_seconds(amount),
                None => evm.authorization.value.to_u64(),
            };
            let (offer, price) = paid
                .and_then(|paid| offer::offer_paid_in(config, path, decimals, paid))
                .ok_or(Refusal::AmountMismatch)?;
            let terms = exact::Terms { domain: token.domain(), pay_to: token.pay_to, amount: price };
            let checked = exact::check(&evm, &terms, now_s()).map_err(|e| match e {
                exact::CheckError::RecipientMismatch => Refusal::PayToMismatch,
                exact::CheckError::AmountMismatch => Refusal::AmountMismatch,
                _ => Refusal::InvalidAuthorization,
            })?;
            let payer = checked.payer.to_checksum();
            Ok(CheckedPayment { payment, offer, message_hash: checked.replay_key, payer, network: index, price })
        }
    }
}

/// A v1 payment names no amount (docs/behaviour.md §20): the pass it buys is the first candidate
/// whose price one of its transfers of the asset pays.
fn offer_in_transaction(
    config: &Config,
    path: &[u8],
    mint: &Pubkey,
    decimals: u8,
    wire: &[u8],
) -> Result<Option<(Offer, u64)>, Refusal> {
    let tx = Transaction::decode(wire).map_err(|_| Refusal::InvalidTransaction)?;
    let paid: Vec<u64> = tx
        .transfer_checked()
        .into_iter()
        .filter(|t| t.mint == mint && t.decimals == decimals)
        .map(|t| t.amount)
        .collect();
    Ok(offer::candidates(config, path).into_iter().find_map(|o| {
        let price = offer::price_in(config, &o, decimals)?;
        paid.contains(&price).then_some((o, price))
    }))
}

fn check_transaction(mint: &Pubkey, decimals: u8, wire: &[u8], price: u64) -> Result<([u8; 32], String), Refusal> {
    let invalid = Refusal::InvalidTransaction;
    // Decoding refuses address-table lookups: every account must be visible here.
    let tx = Transaction::decode(wire).map_err(|_| invalid)?;
    let transfer = tx
        .transfer_checked()
        .into_iter()
        .find(|t| t.amount == price && t.mint == mint && t.decimals == decimals)
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
mod evm_tests;

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

    const VECTORS: &str = include_str!("../tests/vectors/x402-svm-exact.json");

    fn devnet() -> Config {
        let json = r#"{"payTo":"GyGKxMyg1p9SsHfm15MkNUu1u9TN2JtTspcdmrtGUdse","network":"solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1",
            "tiers":{"5m":"0.001","1h":"0.50"},"secret":"payment-test-secret-0123456789abcdef0123"}"#;
        Config::parse(json.as_bytes(), &|_| None).unwrap()
    }

    #[test]
    fn a_v1_x_payment_is_read_with_its_network_mapped_and_the_sellers_asset_and_payee() {
        let vectors: Value = serde_json::from_str(VECTORS).unwrap();
        let c = devnet();
        let header = vectors["v1"]["xPaymentHeader"].as_str().unwrap();
        let p = decode_header(&c, Wire::V1, header.as_bytes()).unwrap();
        assert_eq!((p.wire, p.scheme.as_str(), p.network.as_str()), (Wire::V1, "exact", crate::config::DEVNET));
        assert_eq!(
            (p.asset.as_str(), p.pay_to.as_str(), p.amount.as_deref()),
            (c.asset.address.as_str(), c.pay_to.as_str(), None)
        );
        assert_eq!(p.payload, vectors["v1"]["payload"]);
        let checked = check(&c, b"/weather", p, || 0).unwrap();
        assert_eq!(
            (checked.offer.tier.as_str(), checked.payer.as_str()),
            ("5m", vectors["v1"]["verify"]["payer"].as_str().unwrap())
        );
        // Each header takes its own version only.
        assert_eq!(decode_header(&c, Wire::V2, header.as_bytes()).err(), Some(Refusal::InvalidPaymentHeader));
        let v2 = vectors["paymentSignatureHeader"]["PAYMENT-SIGNATURE"].as_str().unwrap();
        assert_eq!(decode_header(&c, Wire::V1, v2.as_bytes()).err(), Some(Refusal::InvalidPaymentHeader));
        assert!(decode_header(&c, Wire::V2, v2.as_bytes()).is_ok());
    }

    #[test]
    fn a_v1_x_payment_without_scheme_network_or_transaction_or_too_large_is_an_invalid_header() {
        let c = devnet();
        for json in [
            r#"{"x402Version":1,"network":"solana-devnet","payload":{"transaction":"AA=="}}"#,
            r#"{"x402Version":1,"scheme":"exact","payload":{"transaction":"AA=="}}"#,
            r#"{"x402Version":1,"scheme":"exact","network":"solana-devnet","payload":{}}"#,
            r#"{"x402Version":"1","scheme":"exact","network":"solana-devnet","payload":{"transaction":"AA=="}}"#,
            r#"[1]"#,
        ] {
            assert_eq!(
                decode_header(&c, Wire::V1, BASE64.encode(json).as_bytes()).err(),
                Some(Refusal::InvalidPaymentHeader),
                "{json}"
            );
        }
        assert_eq!(
            decode_header(&c, Wire::V1, &[b'A'; MAX_HEADER_BYTES + 1]).err(),
            Some(Refusal::InvalidPaymentHeader)
        );
        assert_eq!(decode_header(&c, Wire::V1, b"\xff not base64").err(), Some(Refusal::InvalidPaymentHeader));
        // A transaction that does not decode is refused by the local checks, before any callout.
        let garbage =
            r#"{"x402Version":1,"scheme":"exact","network":"solana-devnet","payload":{"transaction":"AA=="}}"#;
        let p = decode_header(&c, Wire::V1, BASE64.encode(garbage).as_bytes()).unwrap();
        assert_eq!(check(&c, b"/weather", p, || 0).err(), Some(Refusal::InvalidTransaction));
        let upto = r#"{"x402Version":1,"scheme":"upto","network":"solana-devnet","payload":{"transaction":"AA=="}}"#;
        let p = decode_header(&c, Wire::V1, BASE64.encode(upto).as_bytes()).unwrap();
        assert_eq!(check(&c, b"/weather", p, || 0).err(), Some(Refusal::UnsupportedScheme));
    }
}

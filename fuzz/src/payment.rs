//! `PAYMENT-SIGNATURE` (and v1's `X-PAYMENT`, target `x_payment`) decoding and the local checks, with a fixed configuration
//! (devnet USDC, `payTo` and a 5-minute tier priced like the golden vector's
//! payment, so the vector passes every check). Input: `path\nheader`, or just
//! the header (path `/api/data`).
//!
//! For a payment that passes `payment::check`:
//! * the pass is one of the request's candidates, and its price is exactly the
//!   amount the payment names and the amount its `TransferChecked` moves, in the
//!   configured mint, signed by the payer;
//! * the seller, network and asset are the configured ones;
//! * the purchase key is the SHA-256 of the transaction message;
//! * the facilitator body and the pass claims can be built.

use std::sync::OnceLock;

use sha2::{Digest, Sha256};
use x402_access_pass::challenge;
use x402_access_pass::config::Config;
use x402_access_pass::facilitator;
use x402_access_pass::offer;
use x402_access_pass::payment::{self, Refusal, Wire};
use x402_access_pass::purchase;
use x402_access_pass::replay;
use x402_access_pass::solana::{self, Transaction};
use x402_access_pass::token;

use crate::{fixed_config, split_path, NOW};

pub const CONFIG: &str = r#"{
  "payTo": "GyGKxMyg1p9SsHfm15MkNUu1u9TN2JtTspcdmrtGUdse",
  "network": "solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1",
  "tiers": {"5m": "0.001", "1h": "0.50", "24h": "2.00"},
  "ratePerHour": "0.50",
  "secret": "fuzz-secret-a-0123456789abcdef0123456789",
  "protect": [{"prefix": "/"}]
}"#;

fn config() -> &'static Config {
    static CONFIG_CELL: OnceLock<Config> = OnceLock::new();
    CONFIG_CELL.get_or_init(|| fixed_config(CONFIG))
}

pub fn run(data: &[u8]) {
    run_wire(data, Wire::V2)
}

/// The same checks for a payment in the header of `wire` (`x_payment` fuzzes v1's `X-PAYMENT`).
pub fn run_wire(data: &[u8], wire: Wire) {
    let config = config();
    let (path, header) = split_path(data, b"/api/data");
    let decoded = match payment::decode_header(config, wire, header) {
        Ok(decoded) => decoded,
        Err(refusal) => {
            assert_eq!(refusal, Refusal::InvalidPaymentHeader);
            return;
        }
    };
    assert!(header.len() <= payment::MAX_HEADER_BYTES);
    let checked = match payment::check(config, path, decoded, || NOW) {
        Ok(checked) => checked,
        Err(refusal) => {
            assert_ne!(refusal, Refusal::InvalidPaymentHeader, "a decoded header refused as undecodable");
            return;
        }
    };
    let p = &checked.payment;
    assert_eq!(p.wire, wire);
    assert_eq!(p.payload["x402Version"], wire.version());
    assert_eq!(p.scheme, "exact");
    assert_eq!(p.network, config.network);
    assert_eq!(p.asset, config.asset.address);
    assert_eq!(p.pay_to, config.pay_to);
    if let Some(amount) = &p.amount {
        assert_eq!(*amount, checked.offer.atomic.to_string(), "the pass is not priced at the amount paid");
    }
    assert_eq!(p.amount.is_none(), wire == Wire::V1, "only a v1 payment names no amount");
    assert!(offer::candidates(config, path).contains(&checked.offer), "the pass sold is not one the request asked for");

    let tx = match Transaction::decode(&p.transaction) {
        Ok(tx) => tx,
        Err(e) => panic!("a checked payment whose transaction does not decode: {e:?}"),
    };
    assert_eq!(checked.message_hash, <[u8; 32]>::from(Sha256::digest(tx.message)));
    let payer = solana::decode_pubkey(&checked.payer).expect("payer is an address");
    let paid = tx.transfer_checked().into_iter().any(|t| {
        t.amount == checked.offer.atomic
            && *t.mint == config.asset.key
            && t.decimals == config.asset.decimals
            && *t.authority == payer
    });
    assert!(paid, "no transfer of the price, in the asset, by the payer");
    let signer = tx.account_keys.iter().take(usize::from(tx.num_required_signatures)).position(|k| **k == payer);
    assert!(signer.is_some_and(|i| tx.verify_signature(i)), "the payer did not sign");

    let network = config.networks.get(checked.network).expect("the network paid on is the seller's");
    let requirements =
        challenge::requirements(config, network, &checked.offer, "9hSR6S7WPtxmTojgo6GG3k4yDPecgJY292j7xrsUGWBu")
            .expect("the pass paid for has a price on the network paid on");
    let resource =
        challenge::Resource { url: "http://x/api".into(), description: "d".into(), mime_type: "application/json" };
    let body = facilitator::request_body(&p.payload, wire, &requirements, &resource);
    let body: serde_json::Value = serde_json::from_slice(&body).expect("the facilitator body is JSON");
    assert_eq!(body["x402Version"], wire.version());
    assert_eq!(body["paymentRequirements"]["maxAmountRequired"], checked.offer.atomic.to_string());
    if wire == Wire::V1 {
        assert_eq!(body["paymentRequirements"]["network"], challenge::v1_network(&config.network));
        assert_eq!(body["paymentRequirements"]["resource"], "http://x/api");
    }
    let (bucket, key) = replay::locate(&checked.message_hash);
    assert!(bucket < replay::BUCKETS && key.len() == 64);
    let claims = purchase::claims(config, &checked, NOW);
    assert_eq!(claims.exp - claims.iat, checked.offer.seconds);
    let pass = token::sign(&config.keys, &claims).expect("a pass for a checked payment can be signed");
    assert_eq!(token::verify(&config.keys, &config.verify_policy, pass.as_bytes(), NOW), Ok(claims));
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;

    /// The golden vector's payment passes every local check with this configuration.
    #[test]
    fn the_golden_vector_passes_the_checks() {
        let text = include_str!("../../tests/vectors/x402-svm-exact.json");
        let vectors: serde_json::Value = serde_json::from_str(text).unwrap();
        let header = vectors["paymentSignatureHeader"]["PAYMENT-SIGNATURE"].as_str().unwrap();
        let decoded = x402_access_pass::payment::decode_header(
            super::config(),
            x402_access_pass::payment::Wire::V2,
            header.as_bytes(),
        )
        .unwrap();
        let checked = x402_access_pass::payment::check(super::config(), b"/weather", decoded, || crate::NOW).unwrap();
        assert_eq!((checked.offer.tier.as_str(), checked.offer.atomic), ("5m", 1000));
        super::run(header.as_bytes());
        let tx = base64::engine::general_purpose::STANDARD
            .decode(vectors["decodedPaymentPayload"]["payload"]["transaction"].as_str().unwrap())
            .unwrap();
        crate::solana_tx::run(&tx);
    }

    /// The vector's v1 `X-PAYMENT` passes every local check as v1, and is refused as v2.
    #[test]
    fn the_v1_vector_passes_the_checks_as_x_payment() {
        use x402_access_pass::payment::{decode_header, Refusal, Wire};
        let text = include_str!("../../tests/vectors/x402-svm-exact.json");
        let vectors: serde_json::Value = serde_json::from_str(text).unwrap();
        let header = vectors["v1"]["xPaymentHeader"].as_str().unwrap();
        let decoded = decode_header(super::config(), Wire::V1, header.as_bytes()).unwrap();
        let checked = x402_access_pass::payment::check(super::config(), b"/weather", decoded, || crate::NOW).unwrap();
        assert_eq!((checked.offer.tier.as_str(), checked.offer.atomic), ("5m", 1000));
        super::run_wire(header.as_bytes(), Wire::V1);
        assert_eq!(
            decode_header(super::config(), Wire::V2, header.as_bytes()).err(),
            Some(Refusal::InvalidPaymentHeader)
        );
    }
}

//! docs/behaviour.md §21 at the payment's door: an EVM `exact` payment from `@x402/evm` 2.27.0
//! (the golden vectors) is bound to the seller's EVM accepts entry and its price, and checked
//! locally (recipient, value, validity window, signer under the network's EIP-712 domain) before
//! any facilitator is asked. Each adversarial payment here is refused by `check` itself, which
//! runs before any callout (`Checkout::begin`).

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde_json::{json, Value};

use super::*;
use crate::config::Config;

const VECTORS: &str = include_str!("../../tests/vectors/evm/exact.json");
const DEVNET_PAY_TO: &str = "GyGKxMyg1p9SsHfm15MkNUu1u9TN2JtTspcdmrtGUdse";

fn vectors() -> Value {
    serde_json::from_str(VECTORS).unwrap()
}

fn merchant() -> String {
    vectors()["keys"]["merchant"]["address"].as_str().unwrap().to_owned()
}

/// Solana devnet first, then Base Sepolia; the 5-minute pass costs 1000 atomic USDC (the
/// vectors' price), the hour 10000.
fn seller(evm: Value) -> Config {
    let json = json!({
        "networks": [{"network": crate::config::DEVNET, "payTo": DEVNET_PAY_TO}, evm],
        "tiers": {"5m": "0.001", "1h": "0.01"},
        "secret": "payment-test-secret-0123456789abcdef0123",
    });
    Config::parse(json.to_string().as_bytes(), &|_| None).unwrap()
}

fn base_sepolia_seller() -> Config {
    seller(json!({"network": "eip155:84532", "payTo": merchant()}))
}

fn header(payment: &Value) -> Vec<u8> {
    BASE64.encode(payment.to_string()).into_bytes()
}

/// The vectors' clock: 2026-12-07T01:00:00Z; the payment is valid until now + 300.
fn now() -> u64 {
    vectors()["baseSepolia"]["now"].as_u64().unwrap()
}

fn checked(config: &Config, payment: &Value, now: u64) -> Result<CheckedPayment, Refusal> {
    let decoded = decode_header(config, Wire::V2, &header(payment))?;
    check(config, b"/weather", decoded, || now)
}

fn official() -> Value {
    vectors()["baseSepolia"]["paymentPayload"].clone()
}

#[test]
fn the_official_evm_clients_payment_buys_the_pass_on_the_network_it_paid_on() {
    let v = vectors();
    let c = base_sepolia_seller();
    let paid = checked(&c, &official(), now()).unwrap();
    assert_eq!((paid.offer.tier.as_str(), paid.price, paid.network), ("5m", 1000, 1));
    assert_eq!(paid.payer, v["keys"]["payer"]["address"].as_str().unwrap());
    assert_eq!(paid.payment.network, "eip155:84532");
    let authorization = &official()["payload"]["authorization"];
    let nonce = crate::evm::hex::decode_fixed::<32>(authorization["nonce"].as_str().unwrap()).unwrap();
    let from =
        crate::evm::address::Address::parse(authorization["from"].as_str().unwrap(), crate::evm::address::Case::Strict)
            .unwrap();
    assert_eq!(paid.message_hash, crate::evm::exact::replay_key(&from, &nonce), "the replay key is (from, nonce)");
    // The pass says the network paid on.
    let claims = crate::purchase::claims(&c, &paid, now());
    assert_eq!(claims.network, "eip155:84532");
}

#[test]
fn the_same_authorization_in_other_json_has_the_same_replay_key() {
    let c = base_sepolia_seller();
    let mut reworded = official();
    let from = official()["payload"]["authorization"]["from"].as_str().unwrap().to_lowercase();
    reworded["payload"]["authorization"]["from"] = Value::from(from);
    reworded["resource"]["description"] = Value::from("other words");
    let a = checked(&c, &official(), now()).unwrap();
    let b = checked(&c, &reworded, now()).unwrap();
    assert_eq!(a.message_hash, b.message_hash);
}

#[test]
fn the_accepted_entry_echoed_in_another_letter_case_is_the_same_entry() {
    let c = base_sepolia_seller();
    let mut payment = official();
    let lower = |v: &Value| Value::from(v.as_str().unwrap().to_lowercase());
    payment["accepted"]["payTo"] = lower(&payment["accepted"]["payTo"]);
    payment["accepted"]["asset"] = lower(&payment["accepted"]["asset"]);
    assert!(checked(&c, &payment, now()).is_ok());
    // Another address is not.
    payment["accepted"]["asset"] = Value::from("0x833589fcd6edb6e08f4c7c32d4f71b54bda02913");
    assert_eq!(checked(&c, &payment, now()).err(), Some(Refusal::AssetMismatch));
}

#[test]
fn an_authorization_outside_its_validity_window_is_refused() {
    let c = base_sepolia_seller();
    let valid_before = official()["payload"]["authorization"]["validBefore"].as_str().unwrap().parse::<u64>().unwrap();
    assert!(checked(&c, &official(), valid_before - 1).is_ok());
    assert_eq!(checked(&c, &official(), valid_before).err(), Some(Refusal::InvalidAuthorization));
    assert_eq!(checked(&c, &official(), valid_before + 3600).err(), Some(Refusal::InvalidAuthorization));
}

#[test]
fn a_signature_under_another_chain_id_is_refused() {
    // The same token, name and version, on another chain: only the domain's chain id differs.
    let v = vectors();
    let case = &v["baseSepolia"];
    let c = seller(json!({"network": "eip155:1", "payTo": merchant(),
        "asset": {"address": case["asset"], "decimals": 6, "name": case["name"], "version": case["version"]}}));
    let mut payment = official();
    payment["accepted"]["network"] = Value::from("eip155:1");
    assert_eq!(checked(&c, &payment, now()).err(), Some(Refusal::InvalidAuthorization));
    // And Base's payment (chain 8453, Base's USDC) offered on Base Sepolia's entry.
    let mut base = v["base"]["paymentPayload"].clone();
    base["accepted"] = official()["accepted"].clone();
    base["payload"]["authorization"]["value"] = Value::from("1000");
    assert_eq!(checked(&base_sepolia_seller(), &base, now()).err(), Some(Refusal::InvalidAuthorization));
}

#[test]
fn a_signature_by_another_account_does_not_prove_from() {
    let v = vectors();
    let mut payment = official();
    payment["payload"]["signature"] = v["baseSepolia"]["otherSignerPayment"]["payload"]["signature"].clone();
    assert_eq!(checked(&base_sepolia_seller(), &payment, now()).err(), Some(Refusal::InvalidAuthorization));
    // The other account's own payment is its own, and good.
    let other = v["baseSepolia"]["otherSignerPayment"].clone();
    let paid = checked(&base_sepolia_seller(), &other, now()).unwrap();
    assert_eq!(paid.payer, v["keys"]["other"]["address"].as_str().unwrap());
}

#[test]
fn the_high_s_twin_of_a_good_signature_is_refused() {
    let mut payment = official();
    let signature = crate::evm::hex::decode_fixed::<65>(payment["payload"]["signature"].as_str().unwrap()).unwrap();
    let parsed = k256::ecdsa::Signature::from_slice(&signature[..64]).unwrap();
    let (r, s) = parsed.split_scalars();
    let twin = k256::ecdsa::Signature::from_scalars(r, -*s).unwrap();
    let mut bytes = [0u8; 65];
    bytes[..64].copy_from_slice(&twin.to_bytes());
    bytes[64] = if signature[64] == 27 { 28 } else { 27 };
    payment["payload"]["signature"] = Value::from(crate::evm::hex::encode(&bytes));
    assert_eq!(checked(&base_sepolia_seller(), &payment, now()).err(), Some(Refusal::InvalidAuthorization));
}

#[test]
fn a_transfer_to_another_address_than_pay_to_is_refused() {
    let v = vectors();
    // The authorization pays the merchant; this seller's payTo is another address.
    let other = v["keys"]["other"]["address"].as_str().unwrap();
    let c = seller(json!({"network": "eip155:84532", "payTo": other}));
    let mut payment = official();
    assert_eq!(checked(&c, &payment, now()).err(), Some(Refusal::PayToMismatch));
    payment["accepted"]["payTo"] = Value::from(other);
    assert_eq!(checked(&c, &payment, now()).err(), Some(Refusal::PayToMismatch), "the authorization's `to`");
}

#[test]
fn a_value_other_than_the_price_is_refused() {
    let c = base_sepolia_seller();
    let mut payment = official();
    payment["payload"]["authorization"]["value"] = Value::from("2000");
    assert_eq!(checked(&c, &payment, now()).err(), Some(Refusal::AmountMismatch));
    // The hour's price in `accepted` with a 5-minute authorization.
    let mut payment = official();
    payment["accepted"]["amount"] = Value::from("10000");
    assert_eq!(checked(&c, &payment, now()).err(), Some(Refusal::AmountMismatch));
}

#[test]
fn the_solana_entrys_amount_does_not_pay_an_evm_entry_priced_in_other_decimals() {
    // An EVM token of 18 decimals: the 5-minute pass is 10^15 there, 1000 on Solana.
    let v = vectors();
    let case = &v["baseSepolia"];
    let c = seller(json!({"network": "eip155:84532", "payTo": merchant(),
        "asset": {"address": case["asset"], "decimals": 18, "name": case["name"], "version": case["version"]}}));
    let offer = crate::offer::default_offer(&c).unwrap();
    let accepts = crate::challenge::Challenge::new(&c, &offer, "http://api.test/weather".into(), DEVNET_PAY_TO).accepts;
    let amounts: Vec<&str> = accepts.iter().map(|r| r.amount.as_str()).collect();
    assert_eq!(amounts, ["1000", "1000000000000000"]);
    // The vectors' payment pays 1000, the Solana entry's amount, on the EVM entry.
    assert_eq!(checked(&c, &official(), now()).err(), Some(Refusal::AmountMismatch));
    let mut payment = official();
    payment["accepted"]["amount"] = Value::from("1000000000000000");
    assert_eq!(checked(&c, &payment, now()).err(), Some(Refusal::AmountMismatch), "the authorization's value");
}

#[test]
fn an_evm_payment_on_the_solana_entry_or_a_solana_one_on_the_evm_entry_is_refused() {
    let c = base_sepolia_seller();
    let solana_entry = json!({"scheme": "exact", "network": crate::config::DEVNET, "amount": "1000",
        "asset": c.networks[0].asset.address, "payTo": DEVNET_PAY_TO});
    let mut payment = official();
    payment["accepted"] = solana_entry;
    assert_eq!(checked(&c, &payment, now()).err(), Some(Refusal::InvalidTransaction));
    let mut payment = official();
    payment["payload"] = json!({"transaction": "AQID"});
    assert_eq!(checked(&c, &payment, now()).err(), Some(Refusal::InvalidAuthorization));
    // A network the seller does not sell on.
    let mut payment = official();
    payment["accepted"]["network"] = Value::from("eip155:8453");
    assert_eq!(checked(&c, &payment, now()).err(), Some(Refusal::NetworkMismatch));
}

#[test]
fn a_v1_x_payment_on_base_sepolia_is_read_with_the_sellers_asset_and_payee_there() {
    let c = base_sepolia_seller();
    let v1 = json!({"x402Version": 1, "scheme": "exact", "network": "base-sepolia", "payload": official()["payload"]});
    let p = decode_header(&c, Wire::V1, &header(&v1)).unwrap();
    assert_eq!(
        (p.network.as_str(), p.pay_to.as_str(), p.asset.as_str()),
        ("eip155:84532", merchant().as_str(), c.networks[1].asset.address.as_str())
    );
    let paid = check(&c, b"/weather", p, now).unwrap();
    assert_eq!((paid.offer.tier.as_str(), paid.price), ("5m", 1000));
}

#[test]
fn the_clock_is_read_for_an_evm_payment_only() {
    let c = base_sepolia_seller();
    let solana = serde_json::from_str::<Value>(include_str!("../../tests/vectors/x402-svm-exact.json")).unwrap();
    let header = solana["paymentSignatureHeader"]["PAYMENT-SIGNATURE"].as_str().unwrap();
    let p = decode_header(&c, Wire::V2, header.as_bytes()).unwrap();
    // Whatever the Solana verdict, the clock was not read.
    let _ = check(&c, b"/weather", p, || panic!("the clock was read"));
}

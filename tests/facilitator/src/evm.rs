//! The x402 `exact` EVM facilitator logic (docs/behaviour.md §21): EIP-3009
//! `transferWithAuthorization` payments on Base, verified and "settled" offline against an
//! in-memory stand-in for the token contract (balances, used authorization nonces).
//!
//! Checks and reason strings follow `@x402/evm` 2.27.0 (`verifyEIP3009`, `settleEIP3009`):
//! scheme, EIP-712 domain present, network, signature (recovers `from`), recipient,
//! `validBefore >= now + 6`, `validAfter <= now`, value, the token deployed; then, on `/verify`,
//! the simulation's diagnosis (nonce used, token name/version, balance, a malleated signature
//! the contract refuses). `/settle` re-verifies without simulating, as the official one, and the
//! stand-in contract refuses what the real one reverts on (used nonce, balance, high-`s`).

use serde_json::Value;
use std::collections::{HashMap, HashSet};
use x402_access_pass::evm::address::{Address, Case};
use x402_access_pass::evm::eip712::{chain_id, Domain};
use x402_access_pass::evm::exact::replay_key;
use x402_access_pass::evm::hex;
use x402_access_pass::evm::keccak::keccak256;
use x402_access_pass::evm::payload::{ExactEvmPayload, PayloadError};
use x402_access_pass::evm::signature::{address_of_point, RecoverableSignature, SignatureError};
use x402_access_pass::evm::uint::U256;

use crate::facilitator::{reason as common, Invalid};

/// Reason strings of `@x402/evm` 2.27.0 (src/exact/facilitator/errors.ts).
pub mod reason {
    pub const INVALID_SCHEME: &str = "invalid_exact_evm_scheme";
    pub const NETWORK_MISMATCH: &str = "invalid_exact_evm_network_mismatch";
    pub const MISSING_EIP712_DOMAIN: &str = "invalid_exact_evm_missing_eip712_domain";
    pub const RECIPIENT_MISMATCH: &str = "invalid_exact_evm_recipient_mismatch";
    pub const INVALID_SIGNATURE: &str = "invalid_exact_evm_signature";
    pub const VALID_BEFORE: &str = "invalid_exact_evm_payload_authorization_valid_before";
    pub const VALID_AFTER: &str = "invalid_exact_evm_payload_authorization_valid_after";
    pub const VALUE_MISMATCH: &str = "invalid_exact_evm_payload_authorization_value_mismatch";
    pub const TRANSACTION_FAILED: &str = "invalid_exact_evm_transaction_failed";
    pub const TOKEN_NAME_MISMATCH: &str = "invalid_exact_evm_token_name_mismatch";
    pub const TOKEN_VERSION_MISMATCH: &str = "invalid_exact_evm_token_version_mismatch";
    pub const NONCE_ALREADY_USED: &str = "invalid_exact_evm_nonce_already_used";
    pub const INSUFFICIENT_BALANCE: &str = "invalid_exact_evm_insufficient_balance";
    pub const SIMULATION_FAILED: &str = "invalid_exact_evm_transaction_simulation_failed";
    pub const ASSET_NOT_DEPLOYED: &str = "asset_not_deployed_contract";
    pub const UNSUPPORTED_PAYLOAD_TYPE: &str = "unsupported_payload_type";
}

/// `validBefore` must leave the settlement this many seconds (as the official facilitator).
const VALID_BEFORE_MARGIN: u64 = 6;
/// Every account's balance until a settlement or the control API changes it (the Solana
/// stand-in's token balance too).
pub const DEFAULT_BALANCE: u64 = 1_000_000_000_000;

/// A token the stand-in chain has deployed: the network's USDC with its EIP-712 name/version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub network: String,
    pub chain_id: u64,
    pub asset: Address,
    pub name: String,
    pub version: String,
}

impl Token {
    /// USDC on Base and Base Sepolia, as `@x402/evm` 2.27.0's default assets.
    pub fn usdc(network: &str) -> Option<Token> {
        let (asset, name) = match network {
            "eip155:8453" => ("0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913", "USD Coin"),
            "eip155:84532" => ("0x036CbD53842c5426634e7929541eC2318f3dCF7e", "USDC"),
            _ => return None,
        };
        Some(Token {
            network: network.to_string(),
            chain_id: chain_id(network)?,
            asset: Address::parse(asset, Case::Strict)?,
            name: name.to_string(),
            version: "2".to_string(),
        })
    }
}

/// The EVM side of the facilitator's configuration.
pub struct EvmConfig {
    pub tokens: Vec<Token>,
    /// The facilitator's own account (it would send the transactions): `/supported` signers.
    pub signer: Address,
}

impl EvmConfig {
    /// `networks` must be Base or Base Sepolia; `signer_key` a secp256k1 private key.
    pub fn new(networks: &[String], signer_key: [u8; 32]) -> Result<EvmConfig, String> {
        let key = k256::ecdsa::SigningKey::from_slice(&signer_key)
            .map_err(|_| "--evm-signer-key-hex is not a secp256k1 private key")?;
        let tokens = networks
            .iter()
            .map(|n| Token::usdc(n).ok_or_else(|| format!("--evm-network {n}: only eip155:8453 and eip155:84532")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(EvmConfig { tokens, signer: address_of_point(key.verifying_key().as_affine()) })
    }

    fn token(&self, network: &str) -> Option<&Token> {
        self.tokens.iter().find(|t| t.network == network)
    }
}

/// Whether a `/verify` or `/settle` body is for an EVM network.
pub fn is_evm(body: &Value) -> bool {
    body.pointer("/paymentRequirements/network").and_then(Value::as_str).is_some_and(|n| caip2(n).is_some())
}

/// The CAIP-2 id of an EVM network named by its id or its x402 v1 name (`base`, `base-sepolia`).
fn caip2(network: &str) -> Option<&str> {
    match network {
        "base" => Some("eip155:8453"),
        "base-sepolia" => Some("eip155:84532"),
        n if n.starts_with("eip155:") => Some(n),
        _ => None,
    }
}

/// The stand-in for the token contracts' state: `balanceOf` and `authorizationState`.
#[derive(Default, Debug)]
pub struct Chain {
    balances: HashMap<(u64, Address), u64>,
    used: HashSet<(u64, Address, [u8; 32])>,
}

impl Chain {
    pub fn balance(&self, chain: u64, account: &Address) -> u64 {
        self.balances.get(&(chain, *account)).copied().unwrap_or(DEFAULT_BALANCE)
    }

    pub fn set_balance(&mut self, chain: u64, account: Address, amount: u64) {
        self.balances.insert((chain, account), amount);
    }

    fn nonce_used(&self, chain: u64, from: &Address, nonce: &[u8; 32]) -> bool {
        self.used.contains(&(chain, *from, *nonce))
    }

    /// `transferWithAuthorization` on the stand-in contract: the reverts of the real one, as
    /// `parseEip3009TransferError` names them, else the transfer. Returns the transaction hash.
    pub fn transfer(&mut self, valid: &ValidEvm) -> Result<String, &'static str> {
        let chain = valid.chain_id;
        let from = valid.authorization_from;
        if self.nonce_used(chain, &from, &valid.nonce) {
            return Err(reason::NONCE_ALREADY_USED);
        }
        // ECRecover rejects a high-s signature; a domain the token does not have recovers
        // another signer: "FiatTokenV2: invalid signature".
        if valid.malleated || !valid.domain_is_the_tokens {
            return Err(reason::INVALID_SIGNATURE);
        }
        let balance = self.balance(chain, &from);
        if balance < valid.amount {
            return Err(reason::INSUFFICIENT_BALANCE);
        }
        self.balances.insert((chain, from), balance - valid.amount);
        let to_balance = self.balance(chain, &valid.pay_to);
        self.balances.insert((chain, valid.pay_to), to_balance.saturating_add(valid.amount));
        self.used.insert((chain, from, valid.nonce));
        let tx = keccak256(&[b"x402-test-facilitator/evm-tx", &chain.to_be_bytes(), &from.0, &valid.nonce]);
        Ok(hex::encode(&tx))
    }

    /// Balances that differ from the default, for `/state`.
    pub fn balances(&self) -> Vec<(u64, Address, u64)> {
        let mut out: Vec<_> = self.balances.iter().map(|((c, a), b)| (*c, *a, *b)).collect();
        out.sort();
        out
    }
}

/// An EVM payment that passed verification.
#[derive(Debug, Clone)]
pub struct ValidEvm {
    /// (from, nonce): the replay key (`x402_access_pass::evm::exact::replay_key`).
    pub key: [u8; 32],
    pub network: String,
    /// An x402 v1 body: its answers name the network by its v1 name.
    pub v1: bool,
    pub chain_id: u64,
    pub asset: Address,
    pub authorization_from: Address,
    pub pay_to: Address,
    pub amount: u64,
    pub nonce: [u8; 32],
    /// A high-`s` signature (valid off-chain, refused by the contract).
    pub malleated: bool,
    /// The requirements' `extra` name/version are the token's own.
    pub domain_is_the_tokens: bool,
}

impl ValidEvm {
    pub fn payer(&self) -> String {
        self.authorization_from.to_checksum()
    }

    /// The network as the body named it: the v1 name for a v1 body, else the CAIP-2 id.
    pub fn answer_network(&self) -> String {
        match (self.v1, self.network.as_str()) {
            (true, "eip155:8453") => "base".to_owned(),
            (true, "eip155:84532") => "base-sepolia".to_owned(),
            (_, network) => network.to_owned(),
        }
    }
}

fn str_at<'v>(v: &'v Value, path: &str) -> Option<&'v str> {
    v.pointer(path)?.as_str()
}

/// A high-`s` signature made low, as hex (the same signer; viem's `recoverAddress` takes either).
fn low_s_twin(text: &str) -> Option<String> {
    let mut bytes = hex::decode_fixed::<65>(text)?;
    let signature = k256::ecdsa::Signature::from_slice(bytes.get(..64)?).ok()?;
    let low = signature.normalize_s()?;
    bytes.get_mut(..64)?.copy_from_slice(&low.to_bytes());
    let v = bytes.get_mut(64)?;
    *v = match *v {
        27 => 28,
        28 => 27,
        0 => 1,
        1 => 0,
        _ => return None,
    };
    RecoverableSignature::from_bytes(&bytes).ok()?;
    Some(hex::encode(&bytes))
}

/// Verifies an EVM `/verify` or `/settle` body (`x402Version` already checked) at unix time
/// `now`, in the order of `verifyEIP3009`. `simulate`: the `/verify` diagnosis against `chain`.
pub fn verify(cfg: &EvmConfig, body: &Value, now: u64, chain: &Chain, simulate: bool) -> Result<ValidEvm, Invalid> {
    let payload = body.get("paymentPayload").unwrap_or(&Value::Null);
    let reqs = body.get("paymentRequirements").unwrap_or(&Value::Null);
    // The official facilitator names the payer as the authorization says, from the start.
    let payer = str_at(payload, "/payload/authorization/from").unwrap_or_default().to_string();
    let fail = |reason: &'static str| Invalid { reason, payer: payer.clone() };

    // An x402 v1 body (`@x402/evm`'s exact/v1 facilitator): scheme and network are the payload's
    // own, the network its v1 name, the amount `maxAmountRequired`.
    let v1 = payload.get("x402Version").and_then(Value::as_u64) == Some(1);
    let (accepted, amount_at) = if v1 { ("", "/maxAmountRequired") } else { ("/accepted", "/amount") };
    let of_payload = |member: &str| str_at(payload, &format!("{accepted}/{member}"));
    if str_at(reqs, "/scheme") != Some("exact") || of_payload("scheme") != Some("exact") {
        return Err(fail(reason::INVALID_SCHEME));
    }
    let (Some(name), Some(version)) = (str_at(reqs, "/extra/name"), str_at(reqs, "/extra/version")) else {
        return Err(fail(reason::MISSING_EIP712_DOMAIN));
    };
    let named = str_at(reqs, "/network").unwrap_or_default();
    let network = caip2(named).unwrap_or_default();
    let Some(token) = cfg.token(network) else {
        return Err(fail(reason::NETWORK_MISMATCH));
    };
    if of_payload("network") != Some(named) {
        return Err(fail(reason::NETWORK_MISMATCH));
    }
    let asset = str_at(reqs, "/asset").and_then(|a| Address::parse(a, Case::AllowUpper).or_else(|| lower(a)));
    let pay_to = str_at(reqs, "/payTo").and_then(|a| Address::parse(a, Case::AllowUpper).or_else(|| lower(a)));
    let amount = str_at(reqs, amount_at).and_then(U256::parse_decimal);
    let (Some(asset), Some(pay_to), Some(amount)) = (asset, pay_to, amount) else {
        return Err(fail(common::INVALID_PAYLOAD));
    };

    let raw = payload.get("payload").unwrap_or(&Value::Null);
    let (payment, malleated) = match ExactEvmPayload::from_value(raw) {
        Ok(p) => (p, false),
        Err(PayloadError::Permit2) => return Err(fail(reason::UNSUPPORTED_PAYLOAD_TYPE)),
        Err(PayloadError::Signature(SignatureError::HighS)) => {
            let twin = str_at(raw, "/signature").and_then(low_s_twin);
            let mut low = raw.clone();
            if let (Some(twin), Some(slot)) = (twin, low.get_mut("signature")) {
                *slot = Value::from(twin);
            }
            match ExactEvmPayload::from_value(&low) {
                Ok(p) => (p, true),
                Err(_) => return Err(fail(reason::INVALID_SIGNATURE)),
            }
        }
        // Addresses viem's strict check refuses make hashTypedData throw; a signature that is
        // not 65 bytes of a recoverable ECDSA signature does not verify for an account.
        Err(PayloadError::Address | PayloadError::Signature(_)) => return Err(fail(reason::INVALID_SIGNATURE)),
        Err(PayloadError::Shape | PayloadError::Number | PayloadError::Nonce) => {
            return Err(fail(common::INVALID_PAYLOAD))
        }
    };
    let auth = payment.authorization;
    let domain = Domain { name, version, chain_id: token.chain_id, verifying_contract: asset };
    let hash = auth.signing_hash(&domain);
    if payment.signature.recover(&hash).ok() != Some(auth.from) {
        return Err(fail(reason::INVALID_SIGNATURE));
    }
    if auth.to != pay_to {
        return Err(fail(reason::RECIPIENT_MISMATCH));
    }
    if auth.valid_before < U256::from_u64(now.saturating_add(VALID_BEFORE_MARGIN)) {
        return Err(fail(reason::VALID_BEFORE));
    }
    if auth.valid_after > U256::from_u64(now) {
        return Err(fail(reason::VALID_AFTER));
    }
    if auth.value != amount {
        return Err(fail(reason::VALUE_MISMATCH));
    }
    if asset != token.asset {
        return Err(fail(reason::ASSET_NOT_DEPLOYED));
    }
    let Some(amount) = amount.to_u64() else {
        return Err(fail(reason::INSUFFICIENT_BALANCE));
    };
    let valid = ValidEvm {
        key: replay_key(&auth.from, &auth.nonce),
        network: network.to_string(),
        v1,
        chain_id: token.chain_id,
        asset,
        authorization_from: auth.from,
        pay_to,
        amount,
        nonce: auth.nonce,
        malleated,
        domain_is_the_tokens: name == token.name && version == token.version,
    };
    if simulate {
        // diagnoseEip3009SimulationFailure's order.
        if chain.nonce_used(token.chain_id, &auth.from, &auth.nonce) {
            return Err(fail(reason::NONCE_ALREADY_USED));
        }
        if name != token.name {
            return Err(fail(reason::TOKEN_NAME_MISMATCH));
        }
        if version != token.version {
            return Err(fail(reason::TOKEN_VERSION_MISMATCH));
        }
        if chain.balance(token.chain_id, &auth.from) < amount {
            return Err(fail(reason::INSUFFICIENT_BALANCE));
        }
        if malleated {
            return Err(fail(reason::SIMULATION_FAILED));
        }
    }
    Ok(valid)
}

/// viem's `getAddress` takes any case; so does the requirements side.
fn lower(text: &str) -> Option<Address> {
    Address::parse(&text.to_ascii_lowercase(), Case::Strict)
}

#[cfg(test)]
mod tests {
    use crate::facilitator::{Facilitator, SettleAs};
    use crate::testdata::{self, evm_body, evm_now, evm_vectors};
    use serde_json::{json, Value};

    use super::reason;

    fn facilitator() -> Facilitator {
        let mut f = Facilitator::new(testdata::config()).with_evm(Some(testdata::evm_config()));
        f.clock = evm_now;
        f
    }

    fn body(net: &str) -> Value {
        let v = evm_vectors();
        evm_body(&v[net]["paymentPayload"], &v[net]["requirements"])
    }

    const NETS: [&str; 2] = ["baseSepolia", "base"];

    #[test]
    fn supported_lists_the_evm_kinds_and_signer_as_the_official_facilitator() {
        let v = evm_vectors();
        let answer = facilitator().supported();
        let kinds = answer["kinds"].as_array().unwrap();
        for official in v["supported"]["kinds"].as_array().unwrap() {
            assert!(kinds.contains(official), "{official}");
        }
        assert_eq!(answer["signers"]["eip155:*"], v["supported"]["signers"]["eip155:*"]);
        assert!(kinds.contains(&json!({"x402Version": 1, "scheme": "exact", "network": "base-sepolia"})));
        // Without EVM networks, nothing EVM is listed.
        let solana_only = Facilitator::new(testdata::config()).supported();
        assert!(solana_only["signers"].get("eip155:*").is_none());
        assert!(!solana_only.to_string().contains("eip155"));
    }

    #[test]
    fn verify_accepts_the_official_clients_payments() {
        let v = evm_vectors();
        let fac = facilitator();
        for net in NETS {
            let answer = fac.verify(&body(net));
            assert_eq!(answer, json!({"isValid": true, "payer": v["keys"]["payer"]["address"]}), "{net}");
        }
    }

    /// The v1 body the filter sends for an `X-PAYMENT` on Base (docs/behaviour.md §20, §21).
    fn v1_body(net: &str, v1_name: &str) -> Value {
        let v = evm_vectors();
        let reqs = &v[net]["requirements"];
        json!({
            "x402Version": 1,
            "paymentPayload": {"x402Version": 1, "scheme": "exact", "network": v1_name,
                               "payload": v[net]["paymentPayload"]["payload"]},
            "paymentRequirements": {"scheme": "exact", "network": v1_name, "maxAmountRequired": reqs["amount"],
                "resource": "https://api.example.com/data", "description": "data", "mimeType": "application/json",
                "payTo": reqs["payTo"], "maxTimeoutSeconds": 60, "asset": reqs["asset"], "extra": reqs["extra"]},
        })
    }

    #[test]
    fn a_v1_body_on_base_is_verified_and_settled_under_its_v1_name() {
        let v = evm_vectors();
        let fac = facilitator();
        for (net, name) in [("baseSepolia", "base-sepolia"), ("base", "base")] {
            let b = v1_body(net, name);
            assert_eq!(fac.verify(&b), json!({"isValid": true, "payer": v["keys"]["payer"]["address"]}), "{net}");
            let answer = fac.settle(&b, false);
            assert_eq!((answer["success"].clone(), answer["network"].clone()), (json!(true), json!(name)), "{answer}");
            // The payload naming another network than the requirements is refused.
            let mut other = v1_body(net, name);
            other["paymentPayload"]["network"] = json!(if name == "base" { "base-sepolia" } else { "base" });
            assert_eq!(fac.verify(&other)["invalidReason"], reason::NETWORK_MISMATCH);
        }
        let state = fac.state();
        let networks: Vec<&str> =
            state["settlements"].as_array().unwrap().iter().map(|s| s["network"].as_str().unwrap()).collect();
        assert_eq!(networks, ["eip155:84532", "eip155:8453"], "the ledger says the CAIP-2 id");
    }

    #[test]
    fn verify_answers_the_official_negatives_as_the_official_facilitator() {
        let v = evm_vectors();
        for net in NETS {
            for (name, negative) in v[net]["negatives"].as_object().unwrap() {
                let mut fac = facilitator();
                let b = match negative.get("now") {
                    Some(now) => {
                        // The "expired" case: the valid payment, later.
                        fac.clock = match now.as_u64().unwrap() {
                            1_796_605_501 => || 1_796_605_501,
                            other => panic!("a new expired vector time {other}"),
                        };
                        body(net)
                    }
                    None => evm_body(&negative["paymentPayload"], &negative["requirements"]),
                };
                let answer = fac.verify(&b);
                assert_eq!(answer["isValid"], negative["official"]["isValid"], "{net} {name}");
                assert_eq!(answer["invalidReason"], negative["official"]["invalidReason"], "{net} {name}");
            }
        }
    }

    #[test]
    fn verify_other_failures_in_the_official_order() {
        let fac = facilitator();
        let r = |b: &Value| fac.verify(b)["invalidReason"].as_str().unwrap_or("").to_string();
        let with = |f: &dyn Fn(&mut Value)| {
            let mut b = body("base");
            f(&mut b);
            b
        };
        assert_eq!(r(&with(&|b| b["paymentRequirements"]["scheme"] = json!("upto"))), reason::INVALID_SCHEME);
        assert_eq!(
            r(&with(&|b| {
                b["paymentRequirements"]["extra"].as_object_mut().unwrap().remove("version");
            })),
            reason::MISSING_EIP712_DOMAIN
        );
        assert_eq!(
            r(&with(&|b| b["paymentPayload"]["accepted"]["network"] = json!("eip155:84532"))),
            reason::NETWORK_MISMATCH
        );
        assert_eq!(r(&with(&|b| b["paymentRequirements"]["network"] = json!("eip155:1"))), reason::NETWORK_MISMATCH);
        // The requirements name another token: the client signed for it, the chain has no code there.
        let other_asset = "0x1111111111111111111111111111111111111111";
        let a = facilitator_answer_for_asset(other_asset);
        assert_eq!(a, reason::ASSET_NOT_DEPLOYED);
        assert_eq!(
            r(&with(&|b| b["paymentPayload"]["payload"]["signature"] = json!("0x12"))),
            reason::INVALID_SIGNATURE
        );
        assert_eq!(
            r(&with(&|b| b["paymentPayload"]["payload"]["authorization"]["nonce"] = json!("0x12"))),
            "invalid_payload"
        );
        assert_eq!(
            r(&with(&|b| b["paymentPayload"]["payload"] = json!({"permit2Authorization": {}, "signature": "0x"}))),
            reason::UNSUPPORTED_PAYLOAD_TYPE
        );
        // validBefore within the 6-second margin.
        let mut near = facilitator();
        near.clock = || 1_796_605_495;
        assert_eq!(near.verify(&body("base"))["invalidReason"], reason::VALID_BEFORE);
        // EVM not configured: the network is not served.
        let solana_only = Facilitator::new(testdata::config());
        assert_eq!(solana_only.verify(&body("base"))["invalidReason"], reason::NETWORK_MISMATCH);
    }

    /// The vectors' Base payment re-signed by the payer after `change` (asset, authorization).
    fn signed(
        change: impl FnOnce(&mut String, &mut x402_access_pass::evm::eip712::TransferWithAuthorization),
    ) -> Value {
        use k256::ecdsa::SigningKey;
        use x402_access_pass::evm::address::{Address, Case};
        use x402_access_pass::evm::eip712::{Domain, TransferWithAuthorization};
        use x402_access_pass::evm::{hex, uint::U256};
        let mut b = body("base");
        let auth = b["paymentPayload"]["payload"]["authorization"].clone();
        let addr = |s: &str| Address::parse(s, Case::Strict).unwrap();
        let number = |v: &Value| U256::parse_decimal(v.as_str().unwrap()).unwrap();
        let mut transfer = TransferWithAuthorization {
            from: addr(auth["from"].as_str().unwrap()),
            to: addr(auth["to"].as_str().unwrap()),
            value: number(&auth["value"]),
            valid_after: number(&auth["validAfter"]),
            valid_before: number(&auth["validBefore"]),
            nonce: hex::decode_fixed::<32>(auth["nonce"].as_str().unwrap()).unwrap(),
        };
        let mut asset = b["paymentRequirements"]["asset"].as_str().unwrap().to_string();
        change(&mut asset, &mut transfer);
        let domain = Domain { name: "USD Coin", version: "2", chain_id: 8453, verifying_contract: addr(&asset) };
        let key = SigningKey::from_slice(&[1u8; 32]).unwrap();
        let (sig, rec) = key.sign_prehash_recoverable(&transfer.signing_hash(&domain)).unwrap();
        let mut bytes = sig.to_bytes().to_vec();
        bytes.push(27 + rec.to_byte());
        let decimal = |n: &U256| n.to_u64().unwrap().to_string();
        b["paymentRequirements"]["asset"] = json!(asset);
        b["paymentPayload"]["accepted"]["asset"] = json!(asset);
        b["paymentPayload"]["payload"] = json!({
            "authorization": {
                "from": transfer.from.to_checksum(), "to": transfer.to.to_checksum(),
                "value": decimal(&transfer.value), "validAfter": decimal(&transfer.valid_after),
                "validBefore": decimal(&transfer.valid_before), "nonce": hex::encode(&transfer.nonce),
            },
            "signature": hex::encode(&bytes),
        });
        b
    }

    fn facilitator_answer_for_asset(asset: &str) -> String {
        let b = signed(|a, _| *a = asset.to_string());
        facilitator().verify(&b)["invalidReason"].as_str().unwrap_or("").to_string()
    }

    #[test]
    fn a_payment_signed_consistently_still_meets_the_sellers_terms() {
        use x402_access_pass::evm::uint::U256;
        let fac = facilitator();
        let reason_of = |b: Value| fac.verify(&b)["invalidReason"].as_str().unwrap_or("").to_string();
        // Re-signed unchanged: valid (the helper is honest).
        assert_eq!(reason_of(signed(|_, _| {})), "");
        // Paying someone else, with a signature that covers it.
        let other = x402_access_pass::evm::address::Address([9u8; 20]);
        assert_eq!(reason_of(signed(|_, t| t.to = other)), reason::RECIPIENT_MISMATCH);
        // Not valid yet.
        assert_eq!(reason_of(signed(|_, t| t.valid_after = U256::from_u64(evm_now() + 60))), reason::VALID_AFTER);
        // Paying less than asked.
        assert_eq!(reason_of(signed(|_, t| t.value = U256::from_u64(9_999))), reason::VALUE_MISMATCH);
        // The order: recipient before the window before the value.
        let all = signed(|_, t| {
            t.to = other;
            t.value = U256::from_u64(1);
            t.valid_after = U256::from_u64(evm_now() + 60);
        });
        assert_eq!(reason_of(all), reason::RECIPIENT_MISMATCH);
    }

    #[test]
    fn settle_moves_the_money_once_and_refuses_the_used_nonce() {
        let v = evm_vectors();
        let fac = facilitator();
        let payer = v["keys"]["payer"]["address"].as_str().unwrap();
        let merchant = v["keys"]["merchant"]["address"].as_str().unwrap();
        let answer = fac.settle(&body("baseSepolia"), false);
        assert_eq!(answer["success"], true);
        assert_eq!(answer["network"], "eip155:84532");
        assert_eq!(answer["payer"], payer);
        let tx = answer["transaction"].as_str().unwrap();
        assert!(tx.len() == 66 && tx.starts_with("0x") && tx[2..].bytes().all(|c| c.is_ascii_hexdigit()), "{tx}");

        let state = fac.state();
        let s = &state["settlements"][0];
        assert_eq!(
            (s["payer"].as_str(), s["payTo"].as_str(), s["amount"].as_str()),
            (Some(payer), Some(merchant), Some("1000"))
        );
        assert_eq!(s["network"], "eip155:84532");
        assert_eq!(s["asset"], "0x036CbD53842c5426634e7929541eC2318f3dCF7e");
        assert_eq!(s["transaction"], tx);
        let balances = state["evmBalances"].as_array().unwrap();
        assert!(balances.contains(
            &json!({"network": "eip155:84532", "address": payer, "amount": (super::DEFAULT_BALANCE - 1000).to_string()})
        ));
        assert!(balances.contains(&json!({"network": "eip155:84532", "address": merchant, "amount": (super::DEFAULT_BALANCE + 1000).to_string()})));

        // The same authorization again: the contract refuses its used nonce, on /settle and /verify.
        let again = fac.settle(&body("baseSepolia"), false);
        assert_eq!(again["success"], false);
        assert_eq!(again["errorReason"], reason::NONCE_ALREADY_USED);
        assert_eq!(fac.verify(&body("baseSepolia"))["invalidReason"], reason::NONCE_ALREADY_USED);
        assert_eq!(fac.state()["settlements"].as_array().unwrap().len(), 1);
        // The Base payment (another nonce) settles on its own chain.
        assert_eq!(fac.settle(&body("base"), false)["success"], true);
        assert_eq!(fac.state()["counts"]["settleSuccess"], 2);
    }

    #[test]
    fn settle_refuses_what_the_contract_would_revert() {
        let v = evm_vectors();
        let payer = v["keys"]["payer"]["address"].as_str().unwrap();
        // Not enough balance.
        let fac = facilitator();
        fac.set_evm_balance("eip155:8453", payer, 9_999).unwrap();
        assert_eq!(fac.verify(&body("base"))["invalidReason"], reason::INSUFFICIENT_BALANCE);
        assert_eq!(fac.settle(&body("base"), false)["errorReason"], reason::INSUFFICIENT_BALANCE);
        fac.set_evm_balance("eip155:8453", &payer.to_ascii_lowercase(), 10_000).unwrap();
        assert_eq!(fac.settle(&body("base"), false)["success"], true);
        assert!(fac.state()["evmBalances"]
            .as_array()
            .unwrap()
            .contains(&json!({"network": "eip155:8453", "address": payer, "amount": "0"})));

        // A high-s twin: recovers the payer off-chain, refused by the contract.
        let fac = facilitator();
        let mut b = body("base");
        let sig = b["paymentPayload"]["payload"]["signature"].as_str().unwrap().to_string();
        b["paymentPayload"]["payload"]["signature"] = json!(high_s_twin(&sig));
        assert_eq!(fac.verify(&b)["invalidReason"], reason::SIMULATION_FAILED);
        assert_eq!(fac.settle(&b, false)["errorReason"], reason::INVALID_SIGNATURE);
        assert!(fac.state()["settlements"].as_array().unwrap().is_empty());

        // A domain name the token does not have, signed consistently: the simulation names it.
        let fac = facilitator();
        let b = v["base"]["negatives"]["wrongName"].clone();
        let signed_for_other_name = evm_body(&b["paymentPayload"], &b["requirements"]);
        assert_eq!(fac.verify(&signed_for_other_name)["invalidReason"], reason::INVALID_SIGNATURE);
    }

    fn high_s_twin(sig: &str) -> String {
        use x402_access_pass::evm::hex;
        let bytes = hex::decode_fixed::<65>(sig).unwrap();
        let parsed = k256::ecdsa::Signature::from_slice(&bytes[..64]).unwrap();
        let (r, s) = parsed.split_scalars();
        let twin = k256::ecdsa::Signature::from_scalars(r, -*s).unwrap();
        let mut out = twin.to_bytes().to_vec();
        out.push(if bytes[64] == 27 { 28 } else { 27 });
        hex::encode(&out)
    }

    #[test]
    fn settle_fault_modes_answer_in_evm_terms() {
        let v = evm_vectors();
        let payer = v["keys"]["payer"]["address"].as_str().unwrap();
        let fac = facilitator();
        let (status, a) = fac.settle_as(&body("base"), SettleAs::Refused400);
        assert_eq!((status, a["errorReason"].as_str()), (400, Some(reason::INSUFFICIENT_BALANCE)));
        let (_, a) = fac.settle_as(&body("base"), SettleAs::Failure);
        assert_eq!(a["errorReason"], reason::TRANSACTION_FAILED);
        assert!(fac.state()["settlements"].as_array().unwrap().is_empty());

        // Pending: settled, then confirmed by the next settle with the same transaction.
        let (_, a) = fac.settle_as(&body("base"), SettleAs::Pending);
        assert_eq!((a["success"].as_bool(), a["errorReason"].as_str()), (Some(false), Some("settlement_pending")));
        let tx = a["transaction"].clone();
        let (_, b) = fac.settle_as(&body("base"), SettleAs::Normal);
        assert_eq!((b["success"].as_bool(), &b["transaction"]), (Some(true), &tx));
        let (_, c) = fac.settle_as(&body("base"), SettleAs::Normal);
        assert_eq!(c["errorReason"], reason::NONCE_ALREADY_USED);
        assert_eq!(fac.state()["settlements"].as_array().unwrap().len(), 1);

        let (_, a) = fac.settle_as(&body("baseSepolia"), SettleAs::BadNetwork);
        assert_eq!((a["success"].as_bool(), a["network"].as_str()), (Some(true), Some("eip155:8453")));
        let fac = facilitator();
        let (_, a) = fac.settle_as(&body("baseSepolia"), SettleAs::BadPayer);
        assert_ne!(a["payer"], payer);
        assert_eq!(a["payer"], v["keys"]["facilitator"]["address"]);
        let fac = facilitator();
        let (_, a) = fac.settle_as(&body("baseSepolia"), SettleAs::BadTransaction);
        assert!(a["transaction"].as_str().unwrap().contains('\n'));
    }

    #[test]
    fn concurrent_settles_of_one_authorization_settle_once() {
        let fac = std::sync::Arc::new(facilitator());
        let b = std::sync::Arc::new(body("base"));
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let (fac, b) = (fac.clone(), b.clone());
                std::thread::spawn(move || fac.settle(&b, false))
            })
            .collect();
        let answers: Vec<Value> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert_eq!(answers.iter().filter(|a| a["success"] == true).count(), 1);
        assert_eq!(answers.iter().filter(|a| a["errorReason"] == reason::NONCE_ALREADY_USED).count(), 7);
    }
}

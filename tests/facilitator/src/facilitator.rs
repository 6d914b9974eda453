//! The x402 `exact` SVM facilitator logic (docs/behaviour.md §9, §13): `/supported`,
//! `/verify` and `/settle`, without a blockchain. Pure functions over JSON
//! values; the HTTP layer is in `app`.

use crate::evm::{self, EvmConfig};
use crate::pda::associated_token_address;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ed25519_compact::{KeyPair, Seed};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Mutex;
use x402_access_pass::solana::{
    decode_pubkey, encode_base58, Pubkey, Transaction, COMPUTE_BUDGET_PROGRAM_ID, MEMO_PROGRAM_ID,
    TOKEN_2022_PROGRAM_ID, TOKEN_PROGRAM_ID, TRANSFER_CHECKED_TAG,
};

/// Reason strings of `@x402/svm` (exact scheme), plus a few of our own.
pub mod reason {
    pub const INVALID_PAYLOAD: &str = "invalid_payload";
    pub const INVALID_X402_VERSION: &str = "invalid_x402_version";
    /// The v1 reasons (`x402` 1.2.0's SVM `exact` facilitator, `verifySchemesAndNetworks`).
    pub const V1_UNSUPPORTED_SCHEME: &str = "unsupported_scheme";
    pub const V1_INVALID_NETWORK: &str = "invalid_network";
    pub const UNSUPPORTED_SCHEME: &str = "invalid_exact_svm_unsupported_scheme";
    pub const NETWORK_MISMATCH: &str = "invalid_exact_svm_network_mismatch";
    pub const MISSING_FEE_PAYER: &str = "invalid_exact_svm_payload_missing_fee_payer";
    pub const FEE_PAYER_NOT_MANAGED: &str = "invalid_exact_svm_fee_payer_not_managed_by_facilitator";
    pub const INVALID_PAYLOAD_TRANSACTION: &str = "invalid_exact_svm_payload_transaction";
    pub const COULD_NOT_BE_DECODED: &str = "invalid_exact_svm_payload_transaction_could_not_be_decoded";
    pub const SIGNATURE_INVALID: &str = "invalid_exact_svm_payload_signature_invalid";
    pub const INSTRUCTIONS_LENGTH: &str = "invalid_exact_svm_payload_transaction_instructions_length";
    pub const COMPUTE_LIMIT: &str = "invalid_exact_svm_payload_transaction_instructions_compute_limit_instruction";
    pub const COMPUTE_PRICE: &str = "invalid_exact_svm_payload_transaction_instructions_compute_price_instruction";
    pub const COMPUTE_PRICE_TOO_HIGH: &str =
        "invalid_exact_svm_payload_transaction_instructions_compute_price_instruction_too_high";
    pub const NO_TRANSFER: &str = "invalid_exact_svm_payload_no_transfer_instruction";
    pub const FEE_PAYER_TRANSFERRING: &str = "invalid_exact_svm_payload_transaction_fee_payer_transferring_funds";
    pub const MINT_MISMATCH: &str = "invalid_exact_svm_payload_mint_mismatch";
    pub const RECIPIENT_MISMATCH: &str = "invalid_exact_svm_payload_recipient_mismatch";
    pub const AMOUNT_MISMATCH: &str = "invalid_exact_svm_payload_amount_mismatch";
    /// Not in `@x402/svm` (which reads decimals from the mint on chain).
    pub const DECIMALS_MISMATCH: &str = "invalid_exact_svm_payload_decimals_mismatch";
    pub const UNKNOWN_INSTRUCTION: &str = "invalid_exact_svm_payload_unknown_instruction";
    pub const MEMO_COUNT: &str = "invalid_exact_svm_payload_memo_count";
    pub const MEMO_MISMATCH: &str = "invalid_exact_svm_payload_memo_mismatch";
    pub const DUPLICATE_SETTLEMENT: &str = "duplicate_settlement";
    /// What the `settle_failure` fault answers.
    pub const TRANSACTION_FAILED: &str = "transaction_failed";
    /// The settle fault modes' answers (reasons of x402 facilitators: src/settle_outcome.rs).
    pub const SETTLEMENT_PENDING: &str = "settlement_pending";
    pub const CONFIRMATION_TIMED_OUT: &str = "settle_exact_svm_transaction_confirmation_timed_out";
    pub const ALREADY_PROCESSED: &str = "settle_exact_svm_transaction_already_processed";
    pub const INSUFFICIENT_FUNDS: &str = "insufficient_funds";
}

/// Lighthouse (wallet guard) program, allowed after the transfer like a memo.
const LIGHTHOUSE_PROGRAM: &str = "L2TExMFKdjpN9kozasaurPirfHy9P8sbXoAN1qA3S95";
/// Highest compute-unit price accepted, in micro-lamports (as `@x402/svm`).
const MAX_COMPUTE_UNIT_PRICE: u64 = 5_000_000;

pub struct Config {
    pub network: String,
    pub asset: Pubkey,
    pub decimals: u8,
    keypair: KeyPair,
    pub fee_payer: Pubkey,
}

impl Config {
    pub fn new(network: &str, asset: &str, fee_payer_seed: [u8; 32], decimals: u8) -> Result<Config, String> {
        let asset = decode_pubkey(asset).ok_or("--asset is not a base58 32-byte address")?;
        let keypair = KeyPair::try_from_seed(Seed::new(fee_payer_seed))
            .map_err(|_| "--fee-payer-seed-hex must not be all zeros")?;
        let fee_payer = *keypair.pk;
        Ok(Config { network: network.to_string(), asset, decimals, keypair, fee_payer })
    }

    pub fn fee_payer_b58(&self) -> String {
        encode_base58(&self.fee_payer)
    }
}

/// A payment that passed verification.
#[derive(Debug, Clone)]
pub struct Valid {
    /// The x402 version of the body (1 or 2): a v1 answer names the network by its v1 name.
    pub version: u64,
    pub wire: Vec<u8>,
    pub message_hash: [u8; 32],
    pub payer: String,
    pub amount: u64,
    pub pay_to: String,
}

/// Why a payment is invalid, and its payer when known (x402 reports the
/// payer only once the buyer's signature has been checked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub reason: &'static str,
    pub payer: String,
}

fn invalid(reason: &'static str) -> Invalid {
    Invalid { reason, payer: String::new() }
}

fn str_at<'v>(v: &'v Value, path: &[&str]) -> Option<&'v str> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_str()
}

/// A payment that verified, on either family.
enum Verified {
    Svm(Valid),
    Evm(evm::ValidEvm),
}

impl Verified {
    fn payer(&self) -> String {
        match self {
            Verified::Svm(v) => v.payer.clone(),
            Verified::Evm(v) => v.payer(),
        }
    }
}

fn network_of(body: &Value) -> String {
    str_at(body, &["paymentRequirements", "network"]).unwrap_or_default().to_string()
}

/// Both objects present and x402 v2, for every network.
fn common_checks(body: &Value) -> Result<(&Value, &Value, &Value), Invalid> {
    let payload = body.get("paymentPayload").filter(|v| v.is_object());
    let reqs = body.get("paymentRequirements").filter(|v| v.is_object());
    let (Some(payload), Some(reqs)) = (payload, reqs) else {
        return Err(invalid(reason::INVALID_PAYLOAD));
    };
    let version_ok = |v: Option<&Value>| v.is_none_or(|v| v.as_u64() == Some(2));
    if !version_ok(body.get("x402Version")) || payload.get("x402Version").and_then(Value::as_u64) != Some(2) {
        return Err(invalid(reason::INVALID_X402_VERSION));
    }
    let accepted = payload.get("accepted").filter(|v| v.is_object());
    let Some(accepted) = accepted else {
        return Err(invalid(reason::INVALID_PAYLOAD));
    };
    Ok((payload, reqs, accepted))
}

/// The x402 version of a body whose payload says 1 and whose own `x402Version`, when given, agrees.
fn v1_body(body: &Value) -> bool {
    let payload = body.get("paymentPayload").and_then(|p| p.get("x402Version")).and_then(Value::as_u64);
    payload == Some(1) && body.get("x402Version").is_none_or(|v| v.as_u64() == Some(1))
}

/// Verifies a `/verify` or `/settle` body, check by check in the order of
/// `@x402/svm`'s exact facilitator.
///
/// x402 v1 bodies too (`{"x402Version":1,"paymentPayload":{"x402Version":1,"scheme","network",
/// "payload":{"transaction"}},"paymentRequirements":{v1 requirements}}`, the vectors' `v1` entry):
/// scheme and network are the payload's own, the network its v1 name (`solana-devnet`), checked
/// as `x402` 1.2.0's `verifySchemesAndNetworks` checks them (`unsupported_scheme`,
/// `invalid_network`), and the amount is `maxAmountRequired`. Every other check is the same.
pub fn verify(cfg: &Config, body: &Value) -> Result<Valid, Invalid> {
    let version = if v1_body(body) { 1 } else { 2 };
    let (payload, reqs) = if version == 1 {
        let payload = body.get("paymentPayload").filter(|v| v.is_object());
        let reqs = body.get("paymentRequirements").filter(|v| v.is_object());
        let (Some(payload), Some(reqs)) = (payload, reqs) else {
            return Err(invalid(reason::INVALID_PAYLOAD));
        };
        // Scheme and network: the payload's, the same as the requirements', and ours.
        if str_at(payload, &["scheme"]) != Some("exact") || str_at(reqs, &["scheme"]) != Some("exact") {
            return Err(invalid(reason::V1_UNSUPPORTED_SCHEME));
        }
        let network = str_at(reqs, &["network"]);
        if network.is_none() || network != v1_network(&cfg.network) || str_at(payload, &["network"]) != network {
            return Err(invalid(reason::V1_INVALID_NETWORK));
        }
        (payload, reqs)
    } else {
        let (payload, reqs, accepted) = common_checks(body)?;

        // Scheme and network.
        if str_at(reqs, &["scheme"]) != Some("exact") || str_at(accepted, &["scheme"]) != Some("exact") {
            return Err(invalid(reason::UNSUPPORTED_SCHEME));
        }
        let network = str_at(reqs, &["network"]);
        if network != Some(cfg.network.as_str()) || str_at(accepted, &["network"]) != network {
            return Err(invalid(reason::NETWORK_MISMATCH));
        }
        (payload, reqs)
    };

    // Fee payer: named by the requirements, and ours.
    let Some(fee_payer) = str_at(reqs, &["extra", "feePayer"]).and_then(decode_pubkey) else {
        return Err(invalid(reason::MISSING_FEE_PAYER));
    };
    if fee_payer != cfg.fee_payer {
        return Err(invalid(reason::FEE_PAYER_NOT_MANAGED));
    }

    // The transaction.
    let Some(tx_b64) = str_at(payload, &["payload", "transaction"]) else {
        return Err(invalid(reason::INVALID_PAYLOAD_TRANSACTION));
    };
    let Ok(wire) = B64.decode(tx_b64) else {
        return Err(invalid(reason::COULD_NOT_BE_DECODED));
    };
    // Lookup tables make decoding fail too (as @x402/svm, which cannot
    // resolve them offline either).
    let Ok(tx) = Transaction::decode(&wire) else {
        return Err(invalid(reason::COULD_NOT_BE_DECODED));
    };
    if tx.fee_payer() != Some(&cfg.fee_payer) {
        return Err(invalid(reason::FEE_PAYER_NOT_MANAGED));
    }
    // Every signer but the fee payer (who signs at settlement) has signed.
    if tx.signatures.len() < 2 || !(1..tx.signatures.len()).all(|i| tx.verify_signature(i)) {
        return Err(invalid(reason::SIGNATURE_INVALID));
    }

    // Instruction layout: compute limit, compute price, transfer, then
    // optional memo / guard instructions.
    let ixs = &tx.instructions;
    if !(3..=7).contains(&ixs.len()) {
        return Err(invalid(reason::INSTRUCTIONS_LENGTH));
    }
    let limit_ok = ixs.first().is_some_and(|ix| {
        tx.program_id(ix) == Some(&COMPUTE_BUDGET_PROGRAM_ID) && ix.data.len() == 5 && ix.data.first() == Some(&2)
    });
    if !limit_ok {
        return Err(invalid(reason::COMPUTE_LIMIT));
    }
    let price = ixs.get(1).and_then(|ix| {
        let data = ix.data;
        (tx.program_id(ix) == Some(&COMPUTE_BUDGET_PROGRAM_ID) && data.len() == 9 && data.first() == Some(&3))
            .then(|| data.get(1..9).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes))
            .flatten()
    });
    match price {
        None => return Err(invalid(reason::COMPUTE_PRICE)),
        Some(p) if p > MAX_COMPUTE_UNIT_PRICE => return Err(invalid(reason::COMPUTE_PRICE_TOO_HIGH)),
        Some(_) => {}
    }
    let third_is_transfer = ixs.get(2).is_some_and(|ix| {
        let p = tx.program_id(ix);
        (p == Some(&TOKEN_PROGRAM_ID) || p == Some(&TOKEN_2022_PROGRAM_ID))
            && ix.data.len() == 10
            && ix.data.first() == Some(&TRANSFER_CHECKED_TAG)
            && ix.accounts.len() >= 4
    });
    // The first TransferChecked is the third instruction: the two before are
    // compute-budget ones.
    let transfer = tx.transfer_checked().into_iter().next();
    let Some(transfer) = transfer.filter(|_| third_is_transfer) else {
        return Err(invalid(reason::NO_TRANSFER));
    };
    let payer = encode_base58(transfer.authority);
    let fail = |reason: &'static str| Invalid { reason, payer: payer.clone() };

    // The authority must have signed (it is one of the verified signers).
    let signers = usize::from(tx.num_required_signatures);
    if !tx.account_keys.iter().take(signers).skip(1).any(|k| *k == transfer.authority) {
        return Err(fail(reason::SIGNATURE_INVALID));
    }
    // The fee payer's funds are never moved: it appears in no instruction.
    if ixs.iter().any(|ix| ix.accounts.iter().any(|&a| tx.account_key(a) == Some(&cfg.fee_payer))) {
        return Err(fail(reason::FEE_PAYER_TRANSFERRING));
    }

    let req_asset = str_at(reqs, &["asset"]).and_then(decode_pubkey);
    if req_asset != Some(*transfer.mint) || *transfer.mint != cfg.asset {
        return Err(fail(reason::MINT_MISMATCH));
    }
    let pay_to_str = str_at(reqs, &["payTo"]).unwrap_or_default();
    let Some(pay_to) = decode_pubkey(pay_to_str) else {
        return Err(fail(reason::RECIPIENT_MISMATCH));
    };
    if *transfer.destination != associated_token_address(&pay_to, transfer.program, transfer.mint) {
        return Err(fail(reason::RECIPIENT_MISMATCH));
    }
    // v1 requirements have only `maxAmountRequired`.
    let amount = match version {
        1 => str_at(reqs, &["maxAmountRequired"]),
        _ => str_at(reqs, &["amount"]).or_else(|| str_at(reqs, &["maxAmountRequired"])),
    };
    let amount = amount.and_then(|a| a.parse::<u64>().ok());
    if amount != Some(transfer.amount) {
        return Err(fail(reason::AMOUNT_MISMATCH));
    }
    if transfer.decimals != cfg.decimals {
        return Err(fail(reason::DECIMALS_MISMATCH));
    }

    // Optional instructions after the transfer: memos and wallet guards only.
    let lighthouse = decode_pubkey(LIGHTHOUSE_PROGRAM);
    let mut memos = Vec::new();
    for ix in ixs.iter().skip(3) {
        let program = tx.program_id(ix).copied();
        if program == Some(MEMO_PROGRAM_ID) {
            memos.push(ix.data);
        } else if program.is_none() || program != lighthouse {
            return Err(fail(reason::UNKNOWN_INSTRUCTION));
        }
    }
    if let Some(expected) = str_at(reqs, &["extra", "memo"]) {
        match memos.as_slice() {
            [one] if *one == expected.as_bytes() => {}
            [_] => return Err(fail(reason::MEMO_MISMATCH)),
            _ => return Err(fail(reason::MEMO_COUNT)),
        }
    }

    Ok(Valid {
        version,
        message_hash: tx.message_hash(),
        wire: wire.clone(),
        payer,
        amount: transfer.amount,
        pay_to: pay_to_str.to_string(),
    })
}

/// Co-signs a verified payment: signature slot 0 = fee payer over the message.
/// Returns the signed wire transaction and the signature.
pub fn co_sign(cfg: &Config, wire: &[u8]) -> Option<(Vec<u8>, [u8; 64])> {
    let tx = Transaction::decode(wire).ok()?;
    let sig = cfg.keypair.sk.sign(tx.message, None);
    let prefix = wire.len().checked_sub(tx.message.len() + 64 * tx.signatures.len())?;
    let mut out = wire.to_vec();
    out.get_mut(prefix..prefix + 64)?.copy_from_slice(sig.as_ref());
    Some((out, *sig))
}

#[derive(Debug, Clone)]
pub struct Settlement {
    /// The x402 version it was settled in.
    pub version: u64,
    /// Solana: SHA-256 of the transaction message; EVM: the replay key of (from, nonce).
    pub message_hash: [u8; 32],
    pub network: String,
    pub asset: String,
    pub transaction: String,
    pub signed_transaction: String,
    pub payer: String,
    pub amount: u64,
    pub pay_to: String,
}

#[derive(Default, Debug, Clone, Copy)]
pub struct Counts {
    pub supported: u64,
    pub verify: u64,
    pub settle: u64,
    pub settle_success: u64,
    pub rpc: u64,
}

#[derive(Default)]
struct Store {
    by_hash: HashMap<[u8; 32], usize>,
    /// Settled, but answered `settlement_pending`: the next settle of it confirms it (as the
    /// pending store of @x402/svm 2.27.0 does).
    pending: std::collections::HashSet<[u8; 32]>,
    settlements: Vec<Settlement>,
    counts: Counts,
    /// The EVM token contracts' stand-in.
    chain: evm::Chain,
}

/// How `/settle` answers (the settle fault modes of `faults::Mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SettleAs {
    Normal,
    /// `transaction_failed`, nothing recorded.
    Failure,
    /// Settled, answered `settlement_pending` with its transaction; the next settle confirms it.
    Pending,
    /// Settled, answered `…transaction_confirmation_timed_out` (submitted, not confirmed).
    ConfirmationTimeout,
    /// A payment already settled is answered `…transaction_already_processed`.
    AlreadyProcessed,
    /// HTTP 400 with a readable `success:false` (`insufficient_funds`), nothing recorded.
    Refused400,
    /// Settled, answered `success:true` with a transaction id that is not one (and a newline).
    BadTransaction,
    /// Settled, answered with another network.
    BadNetwork,
    /// Settled, answered with another payer.
    BadPayer,
}

/// The facilitator: configuration plus the settlement records.
pub struct Facilitator {
    pub cfg: Config,
    /// EVM networks it also serves (`--evm-network`), if any.
    pub evm: Option<EvmConfig>,
    /// Unix seconds (EVM authorizations' validity window); tests fix it.
    pub clock: fn() -> u64,
    store: Mutex<Store>,
}

fn system_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// v1 network name of a CAIP-2 id, for the `/supported` listing.
fn v1_network(caip2: &str) -> Option<&'static str> {
    match caip2 {
        "solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp" => Some("solana"),
        "solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1" => Some("solana-devnet"),
        "eip155:8453" => Some("base"),
        "eip155:84532" => Some("base-sepolia"),
        _ => None,
    }
}

impl Facilitator {
    pub fn new(cfg: Config) -> Facilitator {
        Facilitator { cfg, evm: None, clock: system_now, store: Mutex::new(Store::default()) }
    }

    /// Also serves the EVM networks of `evm`.
    pub fn with_evm(mut self, evm: Option<EvmConfig>) -> Facilitator {
        self.evm = evm;
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn count(&self, f: impl FnOnce(&mut Counts)) {
        f(&mut self.lock().counts)
    }

    pub fn supported(&self) -> Value {
        let fp = self.cfg.fee_payer_b58();
        let mut kinds =
            vec![json!({"x402Version": 2, "scheme": "exact", "network": self.cfg.network, "extra": {"feePayer": fp}})];
        if let Some(v1) = v1_network(&self.cfg.network) {
            kinds.push(json!({"x402Version": 1, "scheme": "exact", "network": v1, "extra": {"feePayer": fp}}));
        }
        let mut signers = json!({"solana:*": [fp]});
        if let Some(evm) = &self.evm {
            // As @x402/evm's ExactEvmScheme: no `extra`, the facilitator's account as signer.
            for token in &evm.tokens {
                kinds.push(json!({"x402Version": 2, "scheme": "exact", "network": token.network}));
            }
            for token in &evm.tokens {
                if let Some(v1) = v1_network(&token.network) {
                    kinds.push(json!({"x402Version": 1, "scheme": "exact", "network": v1}));
                }
            }
            signers["eip155:*"] = json!([evm.signer.to_checksum()]);
        }
        json!({"kinds": kinds, "extensions": [], "signers": signers})
    }

    /// Verifies a body for a Solana or (when configured) an EVM network.
    fn verify_any(&self, body: &Value, simulate: bool) -> Result<Verified, Invalid> {
        if evm::is_evm(body) {
            if v1_body(body) {
                let objects =
                    ["paymentPayload", "paymentRequirements"].map(|k| body.get(k).is_some_and(Value::is_object));
                if objects.contains(&false) {
                    return Err(invalid(reason::INVALID_PAYLOAD));
                }
            } else {
                common_checks(body)?;
            }
            let Some(cfg) = &self.evm else {
                return Err(invalid(evm::reason::NETWORK_MISMATCH));
            };
            let chain = &self.lock().chain;
            return evm::verify(cfg, body, (self.clock)(), chain, simulate).map(Verified::Evm);
        }
        verify(&self.cfg, body).map(Verified::Svm)
    }

    pub fn verify(&self, body: &Value) -> Value {
        match self.verify_any(body, true).map(|v| v.payer()) {
            Ok(payer) => json!({"isValid": true, "payer": payer}),
            Err(e) => json!({"isValid": false, "invalidReason": e.reason, "payer": e.payer}),
        }
    }

    /// The network a Solana settle answer names: a v1 body's by its v1 name (as `x402` 1.2.0
    /// answers, `network: paymentRequirements.network`), else the CAIP-2 id.
    fn answer_network(&self, body: &Value) -> String {
        match v1_network(&self.cfg.network) {
            Some(name) if v1_body(body) => name.to_owned(),
            _ => self.cfg.network.clone(),
        }
    }

    fn settle_error(&self, body: &Value, reason: &str, payer: &str) -> Value {
        self.settle_error_on(&self.answer_network(body), reason, payer)
    }

    fn settle_error_on(&self, network: &str, reason: &str, payer: &str) -> Value {
        json!({"success": false, "errorReason": reason, "transaction": "", "network": network, "payer": payer})
    }

    /// Sets an EVM account's balance on the stand-in chain (the control API's `/evm/balance`).
    pub fn set_evm_balance(&self, network: &str, account: &str, amount: u64) -> Result<(), String> {
        let token = self.evm.as_ref().and_then(|e| e.tokens.iter().find(|t| t.network == network));
        let token = token.ok_or_else(|| format!("network {network} is not an --evm-network"))?;
        let account = x402_access_pass::evm::address::Address::parse(
            &account.to_ascii_lowercase(),
            x402_access_pass::evm::address::Case::Strict,
        )
        .ok_or_else(|| format!("{account} is not an address"))?;
        self.lock().chain.set_balance(token.chain_id, account, amount);
        Ok(())
    }

    /// `/settle` of an EVM payment that verified: a payment this facilitator already settled
    /// (its authorization nonce used) is refused as the token contract refuses it
    /// (`invalid_exact_evm_nonce_already_used`), unless it was left pending; the settle fault
    /// modes answer as for Solana, in the EVM reasons.
    fn settle_evm(&self, valid: evm::ValidEvm, how: SettleAs) -> (u16, Value) {
        let payer = valid.payer();
        let network = valid.answer_network();
        let mut store = self.lock();
        if let Some(index) = store.by_hash.get(&valid.key).copied() {
            if store.pending.remove(&valid.key) {
                let txid = store.settlements.get(index).map(|s| s.transaction.clone()).unwrap_or_default();
                return (200, json!({"success": true, "transaction": txid, "network": network, "payer": payer}));
            }
        }
        match how {
            SettleAs::Failure => return (200, self.settle_error_on(&network, evm::reason::TRANSACTION_FAILED, &payer)),
            SettleAs::Refused400 => {
                return (400, self.settle_error_on(&network, evm::reason::INSUFFICIENT_BALANCE, &payer))
            }
            _ => {}
        }
        let txid = match store.chain.transfer(&valid) {
            Ok(txid) => txid,
            Err(reason) => return (200, self.settle_error_on(&network, reason, &payer)),
        };
        let index = store.settlements.len();
        store.settlements.push(Settlement {
            version: if valid.v1 { 1 } else { 2 },
            message_hash: valid.key,
            network: valid.network.clone(),
            asset: valid.asset.to_checksum(),
            transaction: txid.clone(),
            signed_transaction: String::new(),
            payer: payer.clone(),
            amount: valid.amount,
            pay_to: valid.pay_to.to_checksum(),
        });
        store.by_hash.insert(valid.key, index);
        store.counts.settle_success += 1;
        let answer = match how {
            // No confirmation in time: the official facilitator answers settlement_pending.
            SettleAs::Pending | SettleAs::ConfirmationTimeout => {
                store.pending.insert(valid.key);
                json!({"success": false, "errorReason": reason::SETTLEMENT_PENDING, "transaction": txid, "network": network, "payer": payer})
            }
            SettleAs::BadTransaction => json!({"success": true,
                "transaction": "0xabc\nx402-access-pass: purchase settled payer=forged tier=24h amount=0 transaction=forged",
                "network": network, "payer": payer}),
            SettleAs::BadNetwork => {
                let other = if network == "eip155:8453" { "eip155:84532" } else { "eip155:8453" };
                json!({"success": true, "transaction": txid, "network": other, "payer": payer})
            }
            SettleAs::BadPayer => {
                let signer = self.evm.as_ref().map(|e| e.signer.to_checksum()).unwrap_or_default();
                json!({"success": true, "transaction": txid, "network": network, "payer": signer})
            }
            _ => json!({"success": true, "transaction": txid, "network": network, "payer": payer}),
        };
        (200, answer)
    }

    /// Re-verifies, refuses a payment already settled, co-signs and records.
    /// `fail` (the `settle_failure` fault) answers `transaction_failed`
    /// without recording. Atomic per message hash: the store lock is held
    /// from the duplicate check to the record.
    pub fn settle(&self, body: &Value, fail: bool) -> Value {
        let how = if fail { SettleAs::Failure } else { SettleAs::Normal };
        self.settle_as(body, how).1
    }

    /// `settle`, answered as `how` says (the settle fault modes): the HTTP status and the body.
    pub fn settle_as(&self, body: &Value, how: SettleAs) -> (u16, Value) {
        let valid = match self.verify_any(body, false) {
            Ok(Verified::Svm(v)) => v,
            Ok(Verified::Evm(v)) => return self.settle_evm(v, how),
            Err(e) => return (200, self.settle_error_on(&network_of(body), e.reason, &e.payer)),
        };
        let mut store = self.lock();
        if let Some(index) = store.by_hash.get(&valid.message_hash).copied() {
            if store.pending.remove(&valid.message_hash) {
                // Left pending: confirmed now, with the transaction it broadcast.
                let txid = store.settlements.get(index).map(|s| s.transaction.clone()).unwrap_or_default();
                return (
                    200,
                    json!({"success": true, "transaction": txid, "network": self.answer_network(body), "payer": valid.payer}),
                );
            }
            let reason = match how {
                SettleAs::AlreadyProcessed => reason::ALREADY_PROCESSED,
                _ => reason::DUPLICATE_SETTLEMENT,
            };
            return (200, self.settle_error(body, reason, &valid.payer));
        }
        match how {
            SettleAs::Failure => return (200, self.settle_error(body, reason::TRANSACTION_FAILED, &valid.payer)),
            SettleAs::Refused400 => return (400, self.settle_error(body, reason::INSUFFICIENT_FUNDS, &valid.payer)),
            _ => {}
        }
        let Some((signed, sig)) = co_sign(&self.cfg, &valid.wire) else {
            return (200, self.settle_error(body, reason::TRANSACTION_FAILED, &valid.payer));
        };
        let txid = encode_base58(&sig);
        let index = store.settlements.len();
        store.settlements.push(Settlement {
            version: valid.version,
            message_hash: valid.message_hash,
            network: self.cfg.network.clone(),
            asset: encode_base58(&self.cfg.asset),
            transaction: txid.clone(),
            signed_transaction: B64.encode(&signed),
            payer: valid.payer.clone(),
            amount: valid.amount,
            pay_to: valid.pay_to.clone(),
        });
        store.by_hash.insert(valid.message_hash, index);
        store.counts.settle_success += 1;
        let network = self.answer_network(body);
        let answer = match how {
            SettleAs::Pending => {
                store.pending.insert(valid.message_hash);
                json!({"success": false, "errorReason": reason::SETTLEMENT_PENDING, "transaction": txid, "network": network, "payer": valid.payer})
            }
            SettleAs::ConfirmationTimeout => self.settle_error(body, reason::CONFIRMATION_TIMED_OUT, &valid.payer),
            SettleAs::BadTransaction => json!({"success": true,
                "transaction": "5mYP\nx402-access-pass: purchase settled payer=forged tier=24h amount=0 transaction=forged",
                "network": network, "payer": valid.payer}),
            SettleAs::BadNetwork => json!({"success": true, "transaction": txid,
                "network": "solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp", "payer": valid.payer}),
            SettleAs::BadPayer => json!({"success": true, "transaction": txid, "network": network,
                "payer": encode_base58(&self.cfg.fee_payer)}),
            _ => json!({"success": true, "transaction": txid, "network": network, "payer": valid.payer}),
        };
        (200, answer)
    }

    pub fn state(&self) -> Value {
        let store = self.lock();
        let settlements: Vec<Value> = store
            .settlements
            .iter()
            .map(|s| {
                json!({
                    "x402Version": s.version,
                    "messageHash": hex(&s.message_hash),
                    "transaction": s.transaction,
                    "payer": s.payer,
                    "amount": s.amount.to_string(),
                    "payTo": s.pay_to,
                    "asset": s.asset,
                    "network": s.network,
                    "signedTransaction": s.signed_transaction,
                })
            })
            .collect();
        let c = store.counts;
        let balances: Vec<Value> = store
            .chain
            .balances()
            .into_iter()
            .map(|(chain, account, amount)| {
                json!({"network": format!("eip155:{chain}"), "address": account.to_checksum(), "amount": amount.to_string()})
            })
            .collect();
        json!({
            "settlements": settlements,
            "evmBalances": balances,
            "counts": {"supported": c.supported, "verify": c.verify, "settle": c.settle, "settleSuccess": c.settle_success, "rpc": c.rpc},
        })
    }

    /// Forgets every settlement and counter.
    pub fn reset_records(&self) {
        *self.lock() = Store::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata;

    fn facilitator() -> Facilitator {
        Facilitator::new(testdata::config())
    }

    fn verify_body() -> Value {
        testdata::vectors()["facilitatorWire"][1]["req"].clone()
    }

    fn with_reqs(f: impl FnOnce(&mut Value)) -> Value {
        let mut b = verify_body();
        f(&mut b["paymentRequirements"]);
        b
    }

    #[test]
    fn supported_lists_the_fee_payer() {
        let v = testdata::vectors();
        assert_eq!(facilitator().supported(), v["facilitatorWire"][0]["resp"]);
    }

    #[test]
    fn verify_accepts_the_official_payment() {
        let v = testdata::vectors();
        assert_eq!(facilitator().verify(&verify_body()), v["facilitatorWire"][1]["resp"]);
    }

    /// The vectors' v1 payment, as a v1 buyer's seller sends it: `x402Version: 1` body, the v1
    /// payload and the v1 requirements.
    fn v1_request() -> Value {
        let v = testdata::vectors();
        json!({"x402Version": 1, "paymentPayload": v["v1"]["payload"], "paymentRequirements": v["v1"]["requirements"]})
    }

    #[test]
    fn verify_accepts_the_official_v1_payment_and_settles_it_in_v1() {
        let v = testdata::vectors();
        let fac = facilitator();
        assert_eq!(fac.verify(&v1_request()), v["v1"]["verify"]);
        let answer = fac.settle(&v1_request(), false);
        assert_eq!(answer["success"], true);
        assert_eq!(answer["network"], "solana-devnet", "a v1 answer names the v1 network");
        assert_eq!(answer["payer"], v["v1"]["verify"]["payer"]);
        let state = fac.state();
        assert_eq!(state["settlements"][0]["x402Version"], 1);
        assert_eq!(state["settlements"][0]["amount"], "1000");
        // The same transaction again, in either version: settled once.
        let again = fac.settle(&v1_request(), false);
        assert_eq!(
            (again["success"].as_bool(), again["errorReason"].as_str()),
            (Some(false), Some(reason::DUPLICATE_SETTLEMENT))
        );
        assert_eq!(again["network"], "solana-devnet");
        assert_eq!(fac.state()["settlements"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn verify_refuses_v1_bodies_as_the_v1_facilitator_does() {
        let fac = facilitator();
        let r = |b: &Value| fac.verify(b)["invalidReason"].as_str().unwrap_or_default().to_owned();
        let mut b = v1_request();
        b["paymentPayload"]["network"] = json!("solana");
        assert_eq!(r(&b), reason::V1_INVALID_NETWORK);
        let mut b = v1_request();
        b["paymentRequirements"]["network"] = json!("solana");
        b["paymentPayload"]["network"] = json!("solana");
        assert_eq!(r(&b), reason::V1_INVALID_NETWORK, "a v1 name for another network than ours");
        let mut b = v1_request();
        b["paymentRequirements"]["network"] = json!(testdata::DEVNET);
        b["paymentPayload"]["network"] = json!(testdata::DEVNET);
        assert_eq!(r(&b), reason::V1_INVALID_NETWORK, "v1 names networks by v1 names only");
        let mut b = v1_request();
        b["paymentPayload"]["scheme"] = json!("upto");
        assert_eq!(r(&b), reason::V1_UNSUPPORTED_SCHEME);
        let mut b = v1_request();
        b["paymentRequirements"]["maxAmountRequired"] = json!("2000");
        assert_eq!(r(&b), reason::AMOUNT_MISMATCH);
        // Versions must agree: a v2 payload in a v1 body, a v1 payload in a v2 body.
        let mut b = verify_body();
        b["x402Version"] = json!(1);
        assert_eq!(r(&b), reason::INVALID_X402_VERSION);
        let mut b = v1_request();
        b["x402Version"] = json!(2);
        assert_eq!(r(&b), reason::INVALID_X402_VERSION);
        let mut b = v1_request();
        b["paymentPayload"]["x402Version"] = json!(3);
        b["x402Version"] = json!(3);
        assert_eq!(r(&b), reason::INVALID_X402_VERSION);
        // A refused v1 settle answers in v1 too.
        let mut b = v1_request();
        b["paymentPayload"]["scheme"] = json!("upto");
        assert_eq!(fac.settle(&b, false)["network"], "solana-devnet");
        assert_eq!(fac.state()["settlements"].as_array().unwrap().len(), 0);
    }

    #[test]
    fn verify_matches_the_official_negative_answers() {
        let v = testdata::vectors();
        let neg = &v["negativeV2"];
        let payer = v["keys"]["payer"].as_str().unwrap().to_string();
        let fac = facilitator();
        let cases: Vec<(&str, Value)> = vec![
            ("amount", with_reqs(|r| r["amount"] = json!("2000"))),
            ("payTo", with_reqs(|r| r["payTo"] = json!(payer))),
            ("mint", with_reqs(|r| r["asset"] = json!(testdata::MAINNET_USDC))),
            ("feePayerNotManaged", with_reqs(|r| r["extra"]["feePayer"] = v["keys"]["merchant"].clone())),
            ("memo", with_reqs(|r| r["extra"]["memo"] = json!("other"))),
            ("badSig", {
                let mut b = verify_body();
                let mut wire = testdata::payment_wire();
                wire[1 + 64 + 5] ^= 0xff;
                b["paymentPayload"]["payload"]["transaction"] = json!(B64.encode(&wire));
                b
            }),
            ("garbage", {
                let mut b = verify_body();
                b["paymentPayload"]["payload"]["transaction"] = json!("AAAA");
                b
            }),
            ("network", {
                let mut b = verify_body();
                b["paymentPayload"]["accepted"]["network"] = json!("solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp");
                b
            }),
        ];
        assert_eq!(cases.len(), neg.as_object().unwrap().len());
        for (name, body) in cases {
            assert_eq!(fac.verify(&body), neg[name], "case {name}");
        }
    }

    #[test]
    fn verify_other_failures() {
        let fac = facilitator();
        let r = |b: &Value| fac.verify(b)["invalidReason"].as_str().unwrap_or("").to_string();
        assert_eq!(r(&with_reqs(|r| r["scheme"] = json!("upto"))), reason::UNSUPPORTED_SCHEME);
        assert_eq!(
            r(&with_reqs(|r| r["network"] = json!("solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp"))),
            reason::NETWORK_MISMATCH
        );
        assert_eq!(
            r(&with_reqs(|r| {
                r["extra"].as_object_mut().unwrap().remove("feePayer");
            })),
            reason::MISSING_FEE_PAYER
        );
        assert_eq!(
            r(&with_reqs(|r| {
                r["extra"].as_object_mut().unwrap().remove("memo");
            })),
            ""
        );
        assert_eq!(r(&json!({"x402Version": 2})), reason::INVALID_PAYLOAD);
        let mut b = verify_body();
        b["paymentPayload"]["x402Version"] = json!(1);
        assert_eq!(r(&b), reason::INVALID_X402_VERSION);
        // maxAmountRequired is the fallback for amount.
        assert_eq!(
            r(&with_reqs(|r| {
                let a = r.as_object_mut().unwrap().remove("amount").unwrap();
                r["maxAmountRequired"] = a;
            })),
            ""
        );
        // An asset other than the configured one, even if the tx pays it.
        let mut cfg = testdata::config();
        cfg.asset = decode_pubkey(testdata::MAINNET_USDC).unwrap();
        assert_eq!(verify(&cfg, &verify_body()).unwrap_err().reason, reason::MINT_MISMATCH);
        let mut cfg = testdata::config();
        cfg.decimals = 9;
        assert_eq!(verify(&cfg, &verify_body()).unwrap_err().reason, reason::DECIMALS_MISMATCH);
        // A transaction with lookup tables does not decode.
        let mut wire = testdata::payment_wire();
        *wire.last_mut().unwrap() = 1;
        wire.extend_from_slice(&[7u8; 32]);
        wire.extend_from_slice(&[1, 0, 0]);
        let mut b = verify_body();
        b["paymentPayload"]["payload"]["transaction"] = json!(B64.encode(&wire));
        assert_eq!(r(&b), reason::COULD_NOT_BE_DECODED);
        // The fully signed transaction verifies too (fee payer slot ignored).
        let mut b = verify_body();
        b["paymentPayload"]["payload"]["transaction"] = testdata::vectors()["fullySignedTxBroadcast"].clone();
        assert_eq!(r(&b), "");
    }

    #[test]
    fn settle_co_signs_like_the_official_facilitator() {
        let v = testdata::vectors();
        let fac = facilitator();
        let body = v["facilitatorWire"][2]["req"].clone();
        let answer = fac.settle(&body, false);
        assert_eq!(answer, v["facilitatorWire"][2]["resp"]);
        assert_eq!(answer["transaction"], v["settleResult"]["decoded"]["transaction"]);
        let state = fac.state();
        assert_eq!(state["settlements"][0]["signedTransaction"], v["fullySignedTxBroadcast"]);
        assert_eq!(state["settlements"][0]["amount"], "1000");
        assert_eq!(state["settlements"][0]["payTo"], v["keys"]["merchant"]);
        assert_eq!(state["counts"]["settleSuccess"], 1);
        // Settling again is refused, as the official facilitator does.
        assert_eq!(fac.settle(&body, false), v["duplicateSettle"]);
        assert_eq!(fac.state()["settlements"].as_array().unwrap().len(), 1);
        fac.reset_records();
        assert_eq!(fac.settle(&body, false), v["facilitatorWire"][2]["resp"]);
    }

    #[test]
    fn settle_failure_and_invalid_do_not_record() {
        let fac = facilitator();
        let body = verify_body();
        let a = fac.settle(&body, true);
        assert_eq!(a["success"], false);
        assert_eq!(a["errorReason"], reason::TRANSACTION_FAILED);
        assert_eq!(a["transaction"], "");
        let bad = with_reqs(|r| r["amount"] = json!("2000"));
        let a = fac.settle(&bad, false);
        assert_eq!(a["errorReason"], reason::AMOUNT_MISMATCH);
        assert_eq!(a["payer"], testdata::vectors()["keys"]["payer"]);
        assert!(fac.state()["settlements"].as_array().unwrap().is_empty());
        assert_eq!(fac.settle(&body, false)["success"], true);
    }

    #[test]
    fn concurrent_settles_settle_once() {
        let fac = std::sync::Arc::new(facilitator());
        let body = std::sync::Arc::new(verify_body());
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let (fac, body) = (fac.clone(), body.clone());
                std::thread::spawn(move || fac.settle(&body, false))
            })
            .collect();
        let answers: Vec<Value> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert_eq!(answers.iter().filter(|a| a["success"] == true).count(), 1);
        assert_eq!(answers.iter().filter(|a| a["errorReason"] == reason::DUPLICATE_SETTLEMENT).count(), 7);
    }
}

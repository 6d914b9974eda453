//! A Solana JSON-RPC stand-in (docs/behaviour.md §13): enough for `@dexterai/x402` and
//! `@solana/web3.js` to build and sign payments offline. Every token account
//! exists, holds plenty of the asset, and the mint is a 6-decimal SPL mint.

use crate::pda::associated_token_address;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use x402_access_pass::solana::{decode_pubkey, encode_base58, Pubkey, Transaction, TOKEN_PROGRAM, TOKEN_PROGRAM_ID};

const SYSTEM_PROGRAM: &str = "11111111111111111111111111111111";
const TOKEN_BALANCE: u64 = 1_000_000_000_000;
const MINT_SUPPLY: u64 = 1_000_000_000_000_000;
const WALLET_LAMPORTS: u64 = 1_000_000_000;
const FIRST_SLOT: u64 = 350_000_000;
const HEIGHT_BEHIND_SLOT: u64 = 12_000_000;

pub struct Rpc {
    network: String,
    asset: Pubkey,
    decimals: u8,
    /// (associated token account, owner) of every `--ata-owner`.
    atas: Vec<(Pubkey, Pubkey)>,
    start: Instant,
    blockhashes: AtomicU64,
}

fn rent_exempt(space: u64) -> u64 {
    (128 + space) * 6960
}

fn ui_amount(amount: u64, decimals: u8) -> (f64, String) {
    let scale = 10u64.pow(u32::from(decimals));
    let s = if decimals == 0 {
        amount.to_string()
    } else {
        let frac = format!("{:0width$}", amount % scale, width = usize::from(decimals));
        let frac = frac.trim_end_matches('0');
        if frac.is_empty() {
            (amount / scale).to_string()
        } else {
            format!("{}.{}", amount / scale, frac)
        }
    };
    (s.parse().unwrap_or(0.0), s)
}

struct Account {
    owner: &'static str,
    lamports: u64,
    data: Vec<u8>,
    parsed: Option<Value>,
}

/// JSON-RPC error object.
fn error(code: i64, message: &str) -> Result<Value, (i64, String)> {
    Err((code, message.to_string()))
}

impl Rpc {
    pub fn new(network: &str, asset: Pubkey, decimals: u8, ata_owners: &[Pubkey]) -> Rpc {
        let atas = ata_owners.iter().map(|o| (associated_token_address(o, &TOKEN_PROGRAM_ID, &asset), *o)).collect();
        Rpc {
            network: network.to_string(),
            asset,
            decimals,
            atas,
            start: Instant::now(),
            blockhashes: AtomicU64::new(0),
        }
    }

    fn slot(&self) -> u64 {
        FIRST_SLOT + self.start.elapsed().as_millis() as u64 / 400
    }

    fn block_height(&self) -> u64 {
        self.slot() - HEIGHT_BEHIND_SLOT
    }

    fn context(&self) -> Value {
        json!({"apiVersion": "2.2.0", "slot": self.slot()})
    }

    /// A fresh blockhash per call, as a real cluster gives a new one every
    /// slot: two payments built alike still differ.
    fn next_blockhash(&self) -> String {
        let n = self.blockhashes.fetch_add(1, Ordering::Relaxed);
        let mut h = Sha256::new();
        h.update(b"x402-test-facilitator/blockhash/");
        h.update(n.to_le_bytes());
        encode_base58(&h.finalize())
    }

    fn genesis_hash(&self) -> &'static str {
        match self.network.as_str() {
            "solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp" => "5eykt4UsFv8P8NJdTREpY1vzqKqZKvdpKuc147dw2N9d",
            _ => "EtWTRABZaYq6iMfeYKouRu166VU2xqa1wcaWoxPkrZBG",
        }
    }

    fn token_amount(&self, amount: u64) -> Value {
        let (ui, ui_s) = ui_amount(amount, self.decimals);
        json!({"amount": amount.to_string(), "decimals": self.decimals, "uiAmount": ui, "uiAmountString": ui_s})
    }

    fn mint_account(&self) -> Account {
        let mut d = Vec::with_capacity(82);
        d.extend_from_slice(&[0u8; 4 + 32]); // mint_authority: COption::None
        d.extend_from_slice(&MINT_SUPPLY.to_le_bytes());
        d.push(self.decimals);
        d.push(1); // is_initialized
        d.extend_from_slice(&[0u8; 4 + 32]); // freeze_authority: COption::None
        Account {
            owner: TOKEN_PROGRAM,
            lamports: rent_exempt(82),
            data: d,
            parsed: Some(json!({"program": "spl-token", "parsed": {"type": "mint", "info": {
                "decimals": self.decimals, "freezeAuthority": null, "isInitialized": true,
                "mintAuthority": null, "supply": MINT_SUPPLY.to_string()}}, "space": 82})),
        }
    }

    fn token_account(&self, owner: &Pubkey) -> Account {
        let mut d = Vec::with_capacity(165);
        d.extend_from_slice(&self.asset);
        d.extend_from_slice(owner);
        d.extend_from_slice(&TOKEN_BALANCE.to_le_bytes());
        d.extend_from_slice(&[0u8; 4 + 32]); // delegate: None
        d.push(1); // state: Initialized
        d.extend_from_slice(&[0u8; 4 + 8]); // is_native: None
        d.extend_from_slice(&0u64.to_le_bytes()); // delegated_amount
        d.extend_from_slice(&[0u8; 4 + 32]); // close_authority: None
        Account {
            owner: TOKEN_PROGRAM,
            lamports: rent_exempt(165),
            data: d,
            parsed: Some(json!({"program": "spl-token", "parsed": {"type": "account", "info": {
                "isNative": false, "mint": encode_base58(&self.asset), "owner": encode_base58(owner),
                "state": "initialized", "tokenAmount": self.token_amount(TOKEN_BALANCE)}}, "space": 165})),
        }
    }

    /// Every address exists: the mint, the wallets named by `--ata-owner`
    /// (system accounts), and anything else as a token account of the asset.
    fn account(&self, address: &Pubkey) -> Account {
        if *address == self.asset {
            return self.mint_account();
        }
        if self.atas.iter().any(|(_, owner)| owner == address) {
            return Account { owner: SYSTEM_PROGRAM, lamports: WALLET_LAMPORTS, data: Vec::new(), parsed: None };
        }
        let owner = self.atas.iter().find(|(ata, _)| ata == address).map(|(_, owner)| *owner).unwrap_or([0; 32]);
        self.token_account(&owner)
    }

    fn account_json(&self, acc: &Account, encoding: &str) -> Value {
        let data = match (encoding, &acc.parsed) {
            ("jsonParsed", Some(p)) => p.clone(),
            ("base58", _) => json!([encode_base58(&acc.data), "base58"]),
            _ => json!([B64.encode(&acc.data), "base64"]),
        };
        json!({"data": data, "executable": false, "lamports": acc.lamports, "owner": acc.owner,
               "rentEpoch": u64::MAX, "space": acc.data.len()})
    }

    fn address_param(params: &Value, i: usize) -> Result<Pubkey, (i64, String)> {
        let s =
            params.get(i).and_then(Value::as_str).ok_or((-32602, "Invalid params: address expected".to_string()))?;
        decode_pubkey(s).ok_or((-32602, format!("Invalid param: WrongSize or bad base58: {s}")))
    }

    fn encoding(params: &Value, i: usize) -> Result<String, (i64, String)> {
        let enc = params.get(i).and_then(|c| c.get("encoding")).and_then(Value::as_str).unwrap_or("base58");
        match enc {
            "base64" | "base58" | "jsonParsed" => Ok(enc.to_string()),
            other => Err((-32602, format!("Invalid params: unsupported encoding {other}"))),
        }
    }

    fn call(&self, method: &str, params: &Value) -> Result<Value, (i64, String)> {
        let ctx = || self.context();
        Ok(match method {
            "getLatestBlockhash" => json!({"context": ctx(), "value": {
                "blockhash": self.next_blockhash(), "lastValidBlockHeight": self.block_height() + 150}}),
            "getRecentBlockhash" => json!({"context": ctx(), "value": {
                "blockhash": self.next_blockhash(), "feeCalculator": {"lamportsPerSignature": 5000}}}),
            "isBlockhashValid" => json!({"context": ctx(), "value": true}),
            "getAccountInfo" => {
                let addr = Self::address_param(params, 0)?;
                let enc = Self::encoding(params, 1)?;
                json!({"context": ctx(), "value": self.account_json(&self.account(&addr), &enc)})
            }
            "getMultipleAccounts" => {
                let list = params.get(0).and_then(Value::as_array).ok_or((-32602, "Invalid params".to_string()))?;
                let enc = Self::encoding(params, 1)?;
                let mut out = Vec::with_capacity(list.len());
                for i in 0..list.len() {
                    let addr = Self::address_param(&params[0], i)?;
                    out.push(self.account_json(&self.account(&addr), &enc));
                }
                json!({"context": ctx(), "value": out})
            }
            "getTokenAccountsByOwner" => {
                let owner = Self::address_param(params, 0)?;
                let enc = Self::encoding(params, 2)?;
                let ata = associated_token_address(&owner, &TOKEN_PROGRAM_ID, &self.asset);
                json!({"context": ctx(), "value": [{"pubkey": encode_base58(&ata),
                    "account": self.account_json(&self.token_account(&owner), &enc)}]})
            }
            "getBalance" => {
                Self::address_param(params, 0)?;
                json!({"context": ctx(), "value": WALLET_LAMPORTS})
            }
            "getTokenAccountBalance" => {
                Self::address_param(params, 0)?;
                json!({"context": ctx(), "value": self.token_amount(TOKEN_BALANCE)})
            }
            "getTokenSupply" => json!({"context": ctx(), "value": self.token_amount(MINT_SUPPLY)}),
            "getMinimumBalanceForRentExemption" => {
                let space = params.get(0).and_then(Value::as_u64).unwrap_or(0);
                json!(rent_exempt(space))
            }
            "getSlot" => json!(self.slot()),
            "getBlockHeight" => json!(self.block_height()),
            "getEpochInfo" => {
                let slot = self.slot();
                json!({"absoluteSlot": slot, "blockHeight": self.block_height(), "epoch": slot / 432_000,
                       "slotIndex": slot % 432_000, "slotsInEpoch": 432_000, "transactionCount": null})
            }
            "getHealth" => json!("ok"),
            "getVersion" => json!({"solana-core": "2.2.0", "feature-set": 3_294_202_862u64}),
            "getGenesisHash" => json!(self.genesis_hash()),
            "getFeeForMessage" => json!({"context": ctx(), "value": 5000}),
            "getRecentPrioritizationFees" => json!([]),
            "getSignatureStatuses" => {
                let n = params.get(0).and_then(Value::as_array).map_or(0, Vec::len);
                let status = json!({"slot": self.slot(), "confirmations": null, "err": null,
                                    "status": {"Ok": null}, "confirmationStatus": "finalized"});
                json!({"context": ctx(), "value": vec![status; n]})
            }
            "simulateTransaction" => json!({"context": ctx(), "value": {
                "err": null, "logs": [], "accounts": null, "unitsConsumed": 6000, "returnData": null}}),
            "sendTransaction" => {
                let s = params.get(0).and_then(Value::as_str).unwrap_or("");
                let base58 = params.get(1).and_then(|c| c.get("encoding")).and_then(Value::as_str) == Some("base58");
                let wire = if base58 { bs58::decode(s).into_vec().ok() } else { B64.decode(s).ok() };
                let sig = wire.as_deref().and_then(|w| {
                    Transaction::decode(w).ok().and_then(|t| t.signatures.first().map(|s| encode_base58(s)))
                });
                match sig {
                    Some(sig) => json!(sig),
                    None => return error(-32602, "invalid transaction"),
                }
            }
            _ => return error(-32601, "Method not found"),
        })
    }

    fn one(&self, req: &Value) -> Value {
        let id = req.get("id").cloned().unwrap_or(Value::Null);
        let Some(method) = req.get("method").and_then(Value::as_str) else {
            return json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32600, "message": "Invalid request"}});
        };
        let params = req.get("params").cloned().unwrap_or(Value::Array(Vec::new()));
        match self.call(method, &params) {
            Ok(result) => json!({"jsonrpc": "2.0", "id": id, "result": result}),
            Err((code, message)) => {
                json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
            }
        }
    }

    /// Answers a JSON-RPC body: one request or a batch. Returns the answer and
    /// the methods called (for the log).
    pub fn handle(&self, body: &[u8]) -> (Value, Vec<String>) {
        let methods = |v: &Value| v.get("method").and_then(Value::as_str).unwrap_or("?").to_string();
        match serde_json::from_slice::<Value>(body) {
            Err(_) => {
                (json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32700, "message": "Parse error"}}), vec![])
            }
            Ok(Value::Array(batch)) if batch.is_empty() => {
                (json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32600, "message": "Invalid request"}}), vec![])
            }
            Ok(Value::Array(batch)) => {
                (Value::Array(batch.iter().map(|r| self.one(r)).collect()), batch.iter().map(methods).collect())
            }
            Ok(req) => (self.one(&req), vec![methods(&req)]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata;

    fn rpc() -> (Rpc, Pubkey) {
        let v = testdata::vectors();
        let merchant = decode_pubkey(v["keys"]["merchant"].as_str().unwrap()).unwrap();
        let asset = decode_pubkey(testdata::DEVNET_USDC).unwrap();
        (Rpc::new(testdata::DEVNET, asset, 6, &[merchant]), merchant)
    }

    fn call(rpc: &Rpc, body: Value) -> Value {
        rpc.handle(body.to_string().as_bytes()).0
    }

    fn data(answer: &Value) -> Vec<u8> {
        B64.decode(answer["result"]["value"]["data"][0].as_str().unwrap()).unwrap()
    }

    #[test]
    fn latest_blockhash_is_32_bytes_and_fresh() {
        let (rpc, _) = rpc();
        let a = call(
            &rpc,
            json!({"jsonrpc": "2.0", "id": 1, "method": "getLatestBlockhash", "params": [{"commitment": "confirmed"}]}),
        );
        assert_eq!(a["id"], 1);
        let bh = a["result"]["value"]["blockhash"].as_str().unwrap();
        assert!(decode_pubkey(bh).is_some());
        assert!(a["result"]["value"]["lastValidBlockHeight"].as_u64().unwrap() > 0);
        assert!(a["result"]["context"]["slot"].as_u64().unwrap() > 0);
        let b = call(&rpc, json!({"jsonrpc": "2.0", "id": 2, "method": "getLatestBlockhash"}));
        assert_ne!(b["result"]["value"]["blockhash"], a["result"]["value"]["blockhash"]);
    }

    #[test]
    fn mint_account_layout() {
        let (rpc, _) = rpc();
        let a = call(
            &rpc,
            json!({"jsonrpc": "2.0", "id": "x", "method": "getAccountInfo",
            "params": [testdata::DEVNET_USDC, {"encoding": "base64"}]}),
        );
        assert_eq!(a["result"]["value"]["owner"], TOKEN_PROGRAM);
        assert_eq!(a["result"]["value"]["space"], 82);
        let d = data(&a);
        assert_eq!(d.len(), 82);
        assert_eq!(d[44], 6); // decimals
        assert_eq!(d[45], 1); // initialized
        assert_eq!(a["result"]["value"]["rentEpoch"], u64::MAX);
    }

    #[test]
    fn token_accounts_exist_with_their_owner() {
        let (rpc, merchant) = rpc();
        let asset = decode_pubkey(testdata::DEVNET_USDC).unwrap();
        let ata = associated_token_address(&merchant, &TOKEN_PROGRAM_ID, &asset);
        let a = call(
            &rpc,
            json!({"jsonrpc": "2.0", "id": 3, "method": "getAccountInfo",
            "params": [encode_base58(&ata), {"encoding": "base64", "commitment": "confirmed"}]}),
        );
        let d = data(&a);
        assert_eq!(d.len(), 165);
        assert_eq!(&d[0..32], &asset);
        assert_eq!(&d[32..64], &merchant);
        assert_eq!(u64::from_le_bytes(d[64..72].try_into().unwrap()), TOKEN_BALANCE);
        assert_eq!(d[108], 1); // state initialized
        assert_eq!(a["result"]["value"]["lamports"], 2_039_280);
        // Any other address: a token account of the asset, owner unknown.
        let a = call(
            &rpc,
            json!({"jsonrpc": "2.0", "id": 4, "method": "getAccountInfo",
            "params": ["AKnL4NNf3DGWZJS6cPknBuEGnVsV4A4m5tgebLHaRSZ9", {"encoding": "jsonParsed"}]}),
        );
        assert_eq!(a["result"]["value"]["data"]["parsed"]["info"]["tokenAmount"]["uiAmountString"], "1000000");
        // The merchant wallet itself is a system account.
        let a = call(
            &rpc,
            json!({"jsonrpc": "2.0", "id": 5, "method": "getAccountInfo",
            "params": [encode_base58(&merchant), {"encoding": "base64"}]}),
        );
        assert_eq!(a["result"]["value"]["owner"], SYSTEM_PROGRAM);
    }

    #[test]
    fn errors_and_batches() {
        let (rpc, _) = rpc();
        let a = call(&rpc, json!({"jsonrpc": "2.0", "id": 7, "method": "nope"}));
        assert_eq!(a["error"]["code"], -32601);
        assert_eq!(a["id"], 7);
        let a = call(&rpc, json!({"jsonrpc": "2.0", "id": 8, "method": "getAccountInfo", "params": ["xyz"]}));
        assert_eq!(a["error"]["code"], -32602);
        assert_eq!(rpc.handle(b"{nope").0["error"]["code"], -32700);
        let a = call(
            &rpc,
            json!([
                {"jsonrpc": "2.0", "id": 1, "method": "getSlot"},
                {"jsonrpc": "2.0", "id": 2, "method": "getMinimumBalanceForRentExemption", "params": [165]},
                {"jsonrpc": "2.0", "id": 3, "method": "bogus"}
            ]),
        );
        let arr = a.as_array().unwrap();
        assert_eq!(arr.len(), 3);
        assert!(arr[0]["result"].as_u64().unwrap() >= FIRST_SLOT);
        assert_eq!(arr[1]["result"], 2_039_280);
        assert_eq!(arr[2]["error"]["code"], -32601);
    }

    #[test]
    fn ui_amounts() {
        assert_eq!(ui_amount(1_000_000, 6).1, "1");
        assert_eq!(ui_amount(1_500_000, 6).1, "1.5");
        assert_eq!(ui_amount(1, 6).1, "0.000001");
        assert_eq!(ui_amount(42, 0).1, "42");
    }
}

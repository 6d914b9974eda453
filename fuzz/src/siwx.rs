//! Sign-In-With-X (docs/behaviour.md §16) with fixed settings: origins
//! `https://api.example.com` and `http://127.0.0.1:10000`, 300 s maximum age, 5 s leeway, devnet;
//! the clock is the golden vectors' (tests/vectors/siwx/siwx.json), so their headers verify.
//!
//! Two kinds of input:
//! * `S<k><JSON>`: the harness sets `address` to its own key and signs the CAIP-122 text of
//!   whatever payload the JSON makes, so the fuzzer explores everything past the signature.
//!   `k % 2 == 1` signs with another key instead: that MUST never be honoured.
//! * anything else: a `SIGN-IN-WITH-X` header value as sent.
//!
//! Whatever is honoured names a configured origin's host as `domain`, a `uri` on that very
//! origin, an `issuedAt` inside the window, the configured chain, and an address whose key
//! verifies the exact text `formatSIWSMessage` would build; the text is the same however often it
//! is built; and every instant read is written back to itself.

use std::sync::OnceLock;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ed25519_compact::{KeyPair, Seed};
use serde_json::Value;
use x402_access_pass::siwx::{self, header, message, time, Origin, Settings};

pub const NETWORK: &str = "solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1";
/// The vectors' `now` of their valid case: 2026-03-01T12:00:30.000Z.
pub const NOW_MS: u64 = 1_772_366_430_000;
pub const LEEWAY: u64 = 5;

/// The configured networks: Solana devnet only.
pub fn networks() -> &'static [x402_access_pass::networks::Network] {
    static NETWORKS: OnceLock<Vec<x402_access_pass::networks::Network>> = OnceLock::new();
    NETWORKS.get_or_init(|| {
        let pay_to = Value::from("GyGKxMyg1p9SsHfm15MkNUu1u9TN2JtTspcdmrtGUdse");
        x402_access_pass::networks::parse(None, Some(&pay_to), Some(&Value::from(NETWORK)), None).unwrap_or_default()
    })
}

pub fn settings() -> &'static Settings {
    static SETTINGS: OnceLock<Settings> = OnceLock::new();
    SETTINGS.get_or_init(|| {
        let json = serde_json::json!({"origins": ["https://api.example.com", "http://127.0.0.1:10000"]});
        match Settings::parse(Some(&json)) {
            Ok(Some(settings)) => settings,
            other => panic!("fixed SIWX settings refused: {other:?}"),
        }
    })
}

fn key(seed: u8) -> KeyPair {
    KeyPair::from_seed(Seed::new([seed; 32]))
}

fn address(pair: &KeyPair) -> String {
    bs58::encode(&pair.pk[..]).into_string()
}

pub fn run(data: &[u8]) {
    match data {
        [b'S', k, json @ ..] => signed(*k, json),
        raw => {
            check(raw);
        }
    }
}

/// Signs the payload the JSON makes with the harness's key (or, for odd `k`, another one).
fn signed(k: u8, json: &[u8]) {
    let Ok(Value::Object(mut object)) = serde_json::from_slice::<Value>(json) else { return };
    let owner = key(1);
    object.insert("address".into(), Value::from(address(&owner)));
    object.insert("signature".into(), Value::from(""));
    let unsigned = STANDARD.encode(Value::Object(object.clone()).to_string());
    let Some(payload) = header::parse(unsigned.as_bytes()) else { return };
    let text = message::format(&payload);
    let signer = if k % 2 == 1 { key(2) } else { owner };
    let signature = signer.sk.sign(text.as_bytes(), None);
    object.insert("signature".into(), Value::from(bs58::encode(&signature[..]).into_string()));
    let header = STANDARD.encode(Value::Object(object).to_string());
    let honoured = check(header.as_bytes());
    if k % 2 == 1 {
        assert!(honoured.is_none(), "a message signed by another key was honoured");
    }
}

/// Runs the check and asserts what an honoured sign-in implies; the payer when honoured.
fn check(raw: &[u8]) -> Option<String> {
    let mut signers = siwx::SignerKeys::new(4);
    let outcome = siwx::check(settings(), networks(), &mut signers, LEEWAY, raw, NOW_MS);
    // Again, with the key kept decoded if it verified (src/siwx/signers.rs): the same verdict.
    let again = siwx::check(settings(), networks(), &mut signers, LEEWAY, raw, NOW_MS);
    assert_eq!(outcome, again, "a decoded key changed the verdict");
    let payload = header::parse(raw);
    if let Some(p) = &payload {
        let text = message::format(p);
        assert_eq!(text, message::format(p), "the message text is not deterministic");
        assert!(text.starts_with(&p.domain), "the text does not open with the domain");
        for instant in [Some(&p.issued_at), p.expiration_time.as_ref(), p.not_before.as_ref()].into_iter().flatten() {
            if let Some(ms) = time::parse_millis(instant) {
                if let Ok(ms) = u64::try_from(ms) {
                    if ms < 253_402_300_800_000 {
                        assert_eq!(time::parse_millis(&time::format_millis(ms)), Some(ms as i64), "{instant}");
                    }
                }
            }
        }
    }
    let payer = outcome.ok()?;
    let Some(p) = payload else { panic!("honoured a header that does not parse") };
    assert_eq!(payer, p.address);
    let origin = settings().origins.iter().find(|o| o.host == p.domain).expect("domain is a configured host");
    assert_eq!(Origin::of_url(&p.uri).as_ref(), Some(origin), "uri on another origin");
    let issued = time::parse_millis(&p.issued_at).expect("issuedAt parses");
    let now = NOW_MS as i64;
    assert!(issued <= now + (LEEWAY as i64) * 1_000 && now - issued <= 300_000, "issuedAt outside the window");
    assert_eq!(p.chain_id, NETWORK);
    let key = ed25519_compact::PublicKey::from_slice(&bs58::decode(&p.address).into_vec().expect("base58 address"))
        .expect("32-byte key");
    key.validate().expect("not a small-order key");
    let signature = bs58::decode(&p.signature).into_vec().expect("base58 signature");
    let signature = ed25519_compact::Signature::from_slice(&signature).expect("64-byte signature");
    key.verify(message::format(&p), &signature).expect("the signature verifies over the text");
    Some(payer)
}

//! The sign-in path of the filter, natively: a request coming back with `SIGN-IN-WITH-X`
//! (docs/behaviour.md §16), from the raw header to the headers set for the upstream: parse the
//! header, check the message, verify its Ed25519 signature, look the payer's entitlement up in a
//! local store. Run under `valgrind --tool=callgrind` by `bench/callgrind.sh`, which counts the
//! instructions of `request_with_sign_in` only (its own binary, so that the valid-pass figure of
//! examples/hot_path.rs stays comparable with earlier ones).
//!
//!     cargo run --release --example hot_path_siwx -- 100

use std::cell::RefCell;
use std::collections::HashMap;
use std::hint::black_box;

use x402_access_pass::config::Config;
use x402_access_pass::decision::{self, Decision};
use x402_access_pass::entitlements::{self, Entitlement};
use x402_access_pass::header_map::HeaderMap;
use x402_access_pass::ledger::{SharedStore, Write};
use x402_access_pass::siwx::SignerKeys;
use x402_access_pass::token::PassCache;

/// The golden SIWX vectors made by `@x402/extensions` 2.27.0: the "valid" case is the measured header.
const SIWX_VECTORS: &str = include_str!("../tests/vectors/siwx/siwx.json");

/// Envoy's shared data as one worker sees it, in memory: the entitlement lookup reads and decodes
/// the payer's bucket as the filter does.
#[derive(Default)]
struct LocalStore(RefCell<HashMap<String, (Vec<u8>, u32)>>);

impl SharedStore for LocalStore {
    fn read(&self, key: &str) -> Option<(Option<Vec<u8>>, Option<u32>)> {
        Some(match self.0.borrow().get(key) {
            Some((value, cas)) => (Some(value.clone()), Some(*cas)),
            None => (None, None),
        })
    }

    fn write(&self, key: &str, value: &[u8], cas: Option<u32>) -> Write {
        let mut data = self.0.borrow_mut();
        let current = data.get(key).map(|(_, c)| *c);
        if cas.is_some() && cas != current {
            return Write::CasMismatch;
        }
        data.insert(key.to_owned(), (value.to_vec(), current.map_or(1, |c| c + 1)));
        Write::Done
    }
}

/// A sign-in, as the filter takes it: the decision (which verifies the header), then the
/// entitlement of the verified payer, then the claim headers.
#[inline(never)]
fn request_with_sign_in(
    config: &Config,
    cache: &mut PassCache,
    signers: &mut SignerKeys,
    store: &LocalStore,
    now_ms: u64,
    headers: &HeaderMap,
) -> usize {
    let Decision::SignIn { outcome: Ok(payer), .. } =
        decision::decide(config, cache, signers, now_ms, b"/api/data", headers)
    else {
        return 0;
    };
    let Ok(found) = entitlements::lookup(store, &payer) else { return 0 };
    decision::honour(config, &payer, found.as_ref(), now_ms / 1_000).map_or(0, |claims| claims.len())
}

fn sign_in(iterations: u64) {
    let Some((header, now_ms)) = siwx_vector() else {
        eprintln!("tests/vectors/siwx/siwx.json has no valid case");
        std::process::exit(1);
    };
    let json = br#"{"payTo":"GyGKxMyg1p9SsHfm15MkNUu1u9TN2JtTspcdmrtGUdse","network":"solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1",
        "tiers":{"1h":"0.50"},"secret":"bench-secret-0123456789abcdef0123456789",
        "protect":[{"prefix":"/api/"}],"siwx":{"origins":["https://api.example.com"]}}"#;
    let config = match Config::parse(json, &|_| None) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    let now = now_ms / 1_000;
    let store = LocalStore::default();
    let paid = Entitlement { tier: "1h".into(), iat: now - 60, exp: now + 3_540, network: config.network.clone() };
    // The payer of the vector bought a pass a minute ago: its entitlement is in the store, among others'.
    let payer = "AKnL4NNf3DGWZJS6cPknBuEGnVsV4A4m5tgebLHaRSZ9";
    entitlements::grant(&store, payer, &paid, now);
    // As Envoy serializes them for the filter's one read (src/header_map.rs).
    let headers = HeaderMap::serialize(&[
        (":authority", b"api.example.com"),
        (":path", b"/api/data"),
        (":method", b"GET"),
        (":scheme", b"https"),
        ("sign-in-with-x", &header),
        ("x-forwarded-proto", b"https"),
    ]);
    // The worker's decoded keys: the wallet's first sign-in decodes its key, the others find it
    // (src/siwx/signers.rs), as when a buyer signs in on every request.
    let (mut cache, mut signers) = (PassCache::new(16), SignerKeys::default());
    let mut forwarded = 0;
    for _ in 0..=iterations {
        forwarded +=
            request_with_sign_in(&config, &mut cache, &mut signers, &store, black_box(now_ms), black_box(&headers));
    }
    if forwarded == 0 {
        eprintln!("the sign-in was not honoured");
        std::process::exit(1);
    }
    println!("{} sign-ins, {forwarded} claim headers set", iterations + 1);
}

/// The "valid" case of the vectors: its header and the time it is valid at (milliseconds).
fn siwx_vector() -> Option<(Vec<u8>, u64)> {
    let v: serde_json::Value = serde_json::from_str(SIWX_VECTORS).ok()?;
    let case = v.get("cases")?.as_array()?.iter().find(|c| c.get("name").and_then(|n| n.as_str()) == Some("valid"))?;
    Some((case.get("header")?.as_str()?.as_bytes().to_vec(), case.get("now")?.as_u64()?))
}

fn main() {
    sign_in(std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(100));
}

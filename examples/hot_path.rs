//! The hot path of the filter, natively: a request carrying a valid (cached)
//! pass, from the raw headers to the headers set for the upstream. Run under
//! `valgrind --tool=callgrind` by `bench/callgrind.sh`, which counts the
//! instructions of `request_with_valid_pass` only: a regression shows as a
//! number, without timing noise.
//!
//!     cargo run --release --example hot_path -- 1000

use std::hint::black_box;

use x402_access_pass::config::Config;
use x402_access_pass::decision::{self, Decision};
use x402_access_pass::header_map::HeaderMap;
use x402_access_pass::siwx::SignerKeys;
use x402_access_pass::token::{self, PassCache, PassClaims};

#[inline(never)]
fn request_with_valid_pass(
    config: &Config,
    cache: &mut PassCache,
    signers: &mut SignerKeys,
    now: u64,
    headers: &HeaderMap,
) -> usize {
    match decision::decide(config, cache, signers, now * 1_000, b"/api/data?page=2", headers) {
        Decision::Forward { claim_headers } => claim_headers.len(),
        _ => 0,
    }
}

fn main() {
    let iterations: u64 = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(1_000);
    let json = br#"{"payTo":"GyGKxMyg1p9SsHfm15MkNUu1u9TN2JtTspcdmrtGUdse","network":"solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1",
        "tiers":{"5m":"0.05","1h":"0.50","24h":"2.00"},"ratePerHour":"0.50","secret":"bench-secret-0123456789abcdef0123456789",
        "protect":[{"prefix":"/api/"}]}"#;
    let config = match Config::parse(json, &|_| None) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    let now = 1_800_000_000;
    let claims = PassClaims {
        sub: token::SUBJECT.into(),
        tier: "1h".into(),
        duration: 3_600,
        iat: now,
        exp: now + 3_600,
        payer: "AKnL4NNf3DGWZJS6cPknBuEGnVsV4A4m5tgebLHaRSZ9".into(),
        network: config.network.clone(),
        iss: config.issuer.clone(),
        aud: None,
    };
    let Ok(pass) = token::sign(&config.keys, &claims) else {
        eprintln!("could not sign");
        std::process::exit(1);
    };
    // The request's headers as Envoy serializes them for the filter's one read (src/header_map.rs),
    // in the order an HTTP/1.1 client like the bench's sends them.
    let authorization = format!("Bearer {pass}");
    let headers = HeaderMap::serialize(&[
        (":authority", b"localhost:10000"),
        (":path", b"/api/data?page=2"),
        (":method", b"GET"),
        (":scheme", b"http"),
        ("authorization", authorization.as_bytes()),
        ("x-forwarded-proto", b"http"),
        ("x-request-id", b"6a1c3f2e-9a1b-4c55-8f7d-0b9e2d1c4a77"),
    ]);
    let (mut cache, mut signers) = (PassCache::new(1_024), SignerKeys::new(1));
    // The first request verifies and caches; the measured ones are cache hits.
    let mut forwarded = request_with_valid_pass(&config, &mut cache, &mut signers, now, &headers);
    for _ in 0..iterations {
        forwarded +=
            request_with_valid_pass(&config, &mut cache, &mut signers, black_box(now + 1), black_box(&headers));
    }
    println!("{iterations} requests, {forwarded} claim headers set");
}

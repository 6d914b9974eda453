//! A request's headers as the filter receives them from Envoy, in one serialized block
//! (`header_map::HeaderMap`, src/header_map.rs), then the order of decisions (`decision::decide`,
//! docs/behaviour.md §3) on them, with the `token` harness's key ring and Sign-In-With-X on.
//!
//! Two kinds of input:
//! * `P<pairs>`: the fuzzer writes (name, value) pairs, `name\0value\0` one after the other; the
//!   harness serializes them as Envoy does, so every decision path is reachable with valid blocks.
//! * anything else: the block's bytes as they come (truncated, lying lengths, missing NULs).
//!
//! Invariants: nothing panics; a header reads as the first value of that name in the block, or as
//! absent when the block cannot hold it; a purchase carries exactly the payment header's first
//! value; only a request that carries a Bearer pass is ever forwarded.

use std::sync::OnceLock;

use x402_access_pass::config::Config;
use x402_access_pass::decision::{self, Decision, RequestHeaders};
use x402_access_pass::header_map::HeaderMap;
use x402_access_pass::payment::Wire;
use x402_access_pass::siwx::SignerKeys;
use x402_access_pass::token::PassCache;

use crate::{fixed_config, NOW};

fn config() -> &'static Config {
    static CONFIG: OnceLock<Config> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let json = crate::token::config_json();
        let with_siwx = json.trim_end().trim_end_matches('}').to_owned()
            + r#", "protect": [{"prefix": "/"}], "bypass": [{"prefix": "/public/"}],
                 "siwx": {"origins": ["https://api.example.com"]}}"#;
        fixed_config(&with_siwx)
    })
}

pub fn run(data: &[u8]) {
    match data.split_first() {
        Some((b'P', pairs)) => run_pairs(pairs),
        _ => run_block(HeaderMap::from_serialized(data.to_vec())),
    }
}

fn run_pairs(data: &[u8]) {
    let mut fields = data.split(|&b| b == 0);
    let mut pairs: Vec<(String, &[u8])> = Vec::new();
    while let (Some(name), Some(value)) = (fields.next(), fields.next()) {
        // Envoy's names are lower-case tokens: never a NUL, so the serialization stays readable.
        pairs.push((String::from_utf8_lossy(name).to_ascii_lowercase(), value));
    }
    let borrowed: Vec<(&str, &[u8])> = pairs.iter().map(|(n, v)| (n.as_str(), *v)).collect();
    let map = HeaderMap::serialize(&borrowed);
    for (name, _) in &borrowed {
        let first = borrowed.iter().find(|(n, _)| n == name).map(|(_, v)| *v);
        assert_eq!(map.get(name), first, "{name:?} did not read as its first value");
    }
    assert_eq!(map.pairs().count(), borrowed.len());
    run_block(map);
}

fn run_block(map: HeaderMap) {
    let _ = map.pairs().count();
    let path = map.get(":path").unwrap_or(b"/api/data").to_vec();
    let mut cache = PassCache::new(8);
    let decision = decision::decide(config(), &mut cache, &mut SignerKeys::new(4), NOW * 1_000, &path, &map);
    match decision {
        Decision::Purchase { payment, wire, .. } => {
            let header = match wire {
                Wire::V2 => "payment-signature",
                Wire::V1 => "x-payment",
            };
            assert_eq!(map.header(header), Some(payment.as_slice()));
        }
        Decision::Forward { .. } => {
            assert!(map.header("authorization").is_some(), "forwarded without a pass");
        }
        _ => {}
    }
}

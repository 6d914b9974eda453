//! Fuzz harnesses for the filter's host-agnostic core, shared by the libFuzzer
//! targets in `fuzz_targets/` (one thin `fuzz_target!` each) and by the unit
//! tests below, which replay the committed seeds and every regression input.
//!
//! Each harness feeds untrusted bytes to one entry point of the core, then
//! checks invariants the filter relies on (a panic is a finding):
//!
//! | target      | entry points                                                     |
//! |-------------|------------------------------------------------------------------|
//! | `config`    | `Config::parse`, then everything a configuration drives          |
//! | `payment`   | `payment::decode_header` + `payment::check` with a fixed config  |
//! | `x_payment` | the same for v1's `X-PAYMENT` (`payment::run_wire`, `Wire::V1`)  |
//! | `solana_tx` | `solana::Transaction::decode` and every method of it             |
//! | `token`     | `token::bearer_token`, `token::verify`, `token::verify_cached`   |
//! | `query`     | `pricing::parse_query`, `offer::candidates`, the price parsers   |
//! | `siwx`      | `siwx::check`, `siwx::header::parse`, `siwx::message::format`    |
//! | `evm_payment` | `evm::payload::ExactEvmPayload::from_json` + `evm::exact::check`, then `payment::decode_header` + `payment::check` on a Solana + Base seller |
//! | `siwe`      | `evm::siwe::format_message` + `evm::siwe::verify`                |
//! | `request`   | `header_map::HeaderMap` (Envoy's serialized headers) + `decision::decide` |

#![forbid(unsafe_code)]

use x402_access_pass::config::Config;

pub mod config;
pub mod evm_payment;
pub mod payment;
pub mod query;
pub mod request;
pub mod siwe;
pub mod siwx;
pub mod solana_tx;
pub mod token;

/// The fixed clock of every harness (2026-01-01T00:00:00Z): runs are reproducible.
pub const NOW: u64 = 1_767_225_600;

/// HS256 secrets and the Ed25519 seed the fixed configurations hold.
pub const SECRET_A: &str = "fuzz-secret-a-0123456789abcdef0123456789";
pub const SECRET_B: &str = "fuzz-secret-b-0123456789abcdef0123456789";
pub const ED_SEED: [u8; 32] = [7; 32];
/// base64 of [`ED_SEED`].
pub const ED_SEED_B64: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";

/// The VM environment the harnesses give `Config::parse`.
pub fn env(name: &str) -> Option<String> {
    match name {
        "PASS_SECRET" => Some(SECRET_A.to_owned()),
        "PASS_KEY" => Some(ED_SEED_B64.to_owned()),
        "API_KEY" => Some("k-123".to_owned()),
        "SHORT" => Some("short".to_owned()),
        "EMPTY" => Some(String::new()),
        _ => None,
    }
}

/// Parses a configuration the harness itself wrote; a refusal is a harness bug.
pub fn fixed_config(json: &str) -> Config {
    match Config::parse(json.as_bytes(), &env) {
        Ok(config) => config,
        Err(e) => panic!("fixed fuzz configuration refused: {e}"),
    }
}

/// Splits `path\nrest`; without a newline the whole input is `rest`.
pub fn split_path<'a>(data: &'a [u8], default_path: &'a [u8]) -> (&'a [u8], &'a [u8]) {
    match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (default_path, data),
    }
}

#[cfg(test)]
mod tests {
    //! Replays every committed seed and regression input through its harness
    //! (`cargo test --manifest-path fuzz/Cargo.toml`; no nightly flags needed).
    use std::path::Path;

    fn replay(target: &str, run: fn(&[u8])) {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut n = 0;
        for dir in ["seeds", "regressions"] {
            let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else { continue };
            for entry in entries.flatten() {
                let data = std::fs::read(entry.path()).unwrap();
                run(&data);
                n += 1;
            }
        }
        eprintln!("{target}: {n} committed inputs replayed");
    }

    /// Found by fuzzing (regressions/config/duration-price-overflow.json): the
    /// custom-duration price wrapped in u128 and sold 5.4e11 years for 0.0023 tokens.
    /// Now such bounds are refused, and the arithmetic is checked.
    #[test]
    fn fixed_overflowing_duration_prices_are_not_for_sale() {
        let seconds = 17_014_118_346_046_923_174;
        let rate = 10_000_000_000_000_000_000; // "10" with 18 decimals
        assert_eq!(x402_access_pass::pricing::duration_price(rate, seconds, 18), None);
        let json = r#"{"payTo":"GRzLBcpDz3XkKQ1y2dmbezuXYRTUJ3vNueDNkma32unv","ratePerHour":"10","maxDurationSeconds":18446744073709551615,
            "asset":{"address":"4zMMC9srt5Ri5X14GAgXhaHii3GnPAEERYPJgZJDncDU","decimals":18},"secret":"fuzz-config-secret-0123456789abcdef0123"}"#;
        let refused = x402_access_pass::config::Config::parse(json.as_bytes(), &|_| None).err().unwrap();
        assert_eq!(refused.field, "maxDurationSeconds");
    }

    /// Found by fuzzing (regressions/config/pass-expiry-saturates.json): a tier longer
    /// than `u64::MAX - now` seconds was sold, and its pass then refused. Now refused
    /// at configuration time.
    #[test]
    fn fixed_passes_longer_than_ten_years_are_not_for_sale() {
        let json = r#"{"payTo":"GRzLBcpDz3XkKQ1y2dmbezuXYRTUJ3vNueDNkma32unv","tiers":{"30500568904943w":"0.000001"},"secret":"fuzz-config-secret-0123456789abcdef0123"}"#;
        let refused = x402_access_pass::config::Config::parse(json.as_bytes(), &|_| None).err().unwrap();
        assert_eq!(refused.field, "tiers.30500568904943w");
    }

    #[test]
    fn siwx_inputs() {
        replay("siwx", crate::siwx::run);
    }

    /// The golden vectors' headers through the harness: the valid ones are honoured, and a
    /// message signed by another key never is.
    #[test]
    fn siwx_vectors_hold_the_invariants() {
        let vectors: serde_json::Value =
            serde_json::from_str(include_str!("../../tests/vectors/siwx/siwx.json")).unwrap();
        for case in vectors["cases"].as_array().unwrap() {
            crate::siwx::run(case["header"].as_str().unwrap().as_bytes());
            let mut signed = b"S\x01".to_vec();
            signed.extend(case["payload"].to_string().as_bytes());
            crate::siwx::run(&signed);
            signed[1] = 0;
            crate::siwx::run(&signed);
        }
        let valid = vectors["cases"][0]["header"].as_str().unwrap();
        let s = crate::siwx::settings();
        let honoured = x402_access_pass::siwx::check(
            s,
            crate::siwx::networks(),
            &mut x402_access_pass::siwx::SignerKeys::new(4),
            crate::siwx::LEEWAY,
            valid.as_bytes(),
            crate::siwx::NOW_MS,
        );
        assert!(honoured.is_ok(), "{honoured:?}");
    }

    #[test]
    fn config_inputs() {
        replay("config", crate::config::run);
    }

    #[test]
    fn payment_inputs() {
        replay("payment", crate::payment::run);
    }

    #[test]
    fn x_payment_inputs() {
        replay("x_payment", |data| crate::payment::run_wire(data, x402_access_pass::payment::Wire::V1));
    }

    #[test]
    fn solana_tx_inputs() {
        replay("solana_tx", crate::solana_tx::run);
    }

    #[test]
    fn token_inputs() {
        replay("token", crate::token::run);
    }

    #[test]
    fn query_inputs() {
        replay("query", crate::query::run);
    }

    #[test]
    fn evm_payment_inputs() {
        replay("evm_payment", crate::evm_payment::run);
    }

    #[test]
    fn siwe_inputs() {
        replay("siwe", crate::siwe::run);
    }

    #[test]
    fn request_inputs() {
        replay("request", crate::request::run);
    }
}

#![no_main]
//! See `fuzz/src/token.rs` for what this target checks.
libfuzzer_sys::fuzz_target!(|data: &[u8]| x402_fuzz::token::run(data));

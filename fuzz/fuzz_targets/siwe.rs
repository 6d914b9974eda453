#![no_main]
//! See `fuzz/src/siwe.rs` for what this target checks.
libfuzzer_sys::fuzz_target!(|data: &[u8]| x402_fuzz::siwe::run(data));

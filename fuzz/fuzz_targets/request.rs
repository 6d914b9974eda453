#![no_main]
//! See `fuzz/src/request.rs` for what this target checks.
libfuzzer_sys::fuzz_target!(|data: &[u8]| x402_fuzz::request::run(data));

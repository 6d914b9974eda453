#![no_main]
//! See `fuzz/src/evm_payment.rs` for what this target checks.
libfuzzer_sys::fuzz_target!(|data: &[u8]| x402_fuzz::evm_payment::run(data));

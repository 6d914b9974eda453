#![no_main]
//! See `fuzz/src/solana_tx.rs` for what this target checks.
libfuzzer_sys::fuzz_target!(|data: &[u8]| x402_fuzz::solana_tx::run(data));

#![no_main]
//! v1's `X-PAYMENT`: see `fuzz/src/payment.rs` (`run_wire` with `Wire::V1`) for what this target checks.
libfuzzer_sys::fuzz_target!(|data: &[u8]| x402_fuzz::payment::run_wire(data, x402_access_pass::payment::Wire::V1));

//! x402 Access Pass for Envoy: sells time-boxed API access over x402 (USDC on Solana).
//!
//! The crate is split in two: a host-agnostic core (every module below except
//! `filter`) that is plain Rust and tested natively with `cargo test`, and a thin
//! proxy-wasm layer (`filter`) that only moves bytes between Envoy and the core.
//! The purchase flow, where money moves, is the core's `checkout` step machine over
//! the `ledger` interface; the layer executes its steps.

pub mod base58;
pub mod catalogue;
pub mod challenge;
pub mod challenge_cache;
pub mod checkout;
pub mod config;
pub mod decision;
pub mod ed25519;
pub mod entitlement_cache;
pub mod entitlements;
pub mod etcd;
pub mod evm;
pub mod facilitator;
pub mod fee_payer;
pub mod header_map;
pub mod jwt_crypto;
pub mod known_keys;
pub mod ledger;
pub mod networks;
pub mod offer;
pub mod payment;
pub mod pricing;
pub mod purchase;
pub mod replay;
pub mod response;
pub mod settle_outcome;
pub mod siwx;
pub mod solana;
pub mod token;

#[cfg(target_arch = "wasm32")]
mod filter;

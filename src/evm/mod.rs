//! EVM `exact` payments (EIP-3009 `transferWithAuthorization` signed with EIP-712) and
//! Sign-In-With-Ethereum (EIP-191), for USDC on Base (docs/behaviour.md §21).
//!
//! Host-agnostic and pure Rust like the Solana core (`crate::solana`): secp256k1 public-key
//! recovery on `k256`'s curve arithmetic (no ECDSA signing or verifying code in the module),
//! keccak-256 from `sha3`. One job per file:
//! - `hex`: `0x` hex text to bytes and back;
//! - `keccak`: keccak-256;
//! - `address`: 20-byte addresses, EIP-55 checksums;
//! - `uint`: the decimal `uint256` strings of the wire;
//! - `signature`: 65-byte `r || s || v` signatures, recovery of the signer's address;
//! - `eip712`: the typed-data hash of `TransferWithAuthorization` under the token's domain;
//! - `payload`: the `payload` member of a v2 `PAYMENT-SIGNATURE` for EVM `exact`;
//! - `exact`: the local checks before any callout, and the payment's replay key;
//! - `siwe`: the CAIP-122 / EIP-4361 message text and its `personal_sign` signature.

pub mod address;
pub mod eip712;
pub mod exact;
pub mod hex;
pub mod keccak;
pub mod payload;
pub mod signature;
pub mod siwe;
pub mod uint;

#[cfg(test)]
mod tests;

//! The chain and the signature (docs/behaviour.md §16.2, §21), as the package's
//! `verifySIWxSignature` does:
//! - `solana:*`: base58 signature of 64 bytes and address of 32, a key that is not of small order
//!   (classic Ed25519 accepts the identity key with `R = identity, S = 0` for any message), and
//!   Ed25519 over the exact `formatSIWSMessage` text;
//! - `eip155:*`: the EIP-4361 text `formatSIWEMessage` builds, and its EIP-191 `personal_sign`
//!   signature recovering the payload's `address` (an externally owned account: smart-wallet
//!   signatures need a chain to judge and are refused).
//!
//! Bound, besides, to one of the configured networks. The verified wallet is returned as the
//! entitlements know it: base58 on Solana, lower-case `0x` hex on EVM.

use super::header::Payload;
use super::signers::SignerKeys;
use super::{message, Reason};
use crate::ed25519::PublicKey;
use crate::evm::siwe::{self, SiweFields};
use crate::networks::Network;

/// `signers`: the keys of wallets that signed in lately, decoded (src/siwx/signers.rs); a key
/// that verifies is kept there.
pub fn verify(networks: &[Network], signers: &mut SignerKeys, payload: &Payload) -> Result<String, Reason> {
    if !networks.iter().any(|n| n.network == payload.chain_id) {
        return Err(Reason::Chain);
    }
    if payload.chain_id.starts_with("eip155:") {
        return verify_evm(payload);
    }
    if !payload.chain_id.starts_with("solana:") {
        return Err(Reason::Chain);
    }
    let signature = decode::<64>(&payload.signature).ok_or(Reason::Signature)?;
    let bytes = decode::<32>(&payload.address).ok_or(Reason::Signature)?;
    // Refuses non-canonical and small-order keys (crate::ed25519).
    let key = match signers.get(&bytes) {
        Some(key) => *key,
        None => PublicKey::decode(&bytes).ok_or(Reason::Signature)?,
    };
    if !key.verify(message::format(payload).as_bytes(), &signature) {
        return Err(Reason::Signature);
    }
    signers.remember(key);
    Ok(payload.address.clone())
}

/// EIP-191 over `formatSIWEMessage`'s text (docs/behaviour.md §21).
fn verify_evm(payload: &Payload) -> Result<String, Reason> {
    if payload.kind != "eip191" || payload.signature_scheme.as_deref().is_some_and(|s| s != "eip191") {
        return Err(Reason::Signature);
    }
    let resources: Option<Vec<&str>> = payload.resources.as_ref().map(|r| r.iter().map(String::as_str).collect());
    let fields = SiweFields {
        domain: &payload.domain,
        address: &payload.address,
        statement: payload.statement.as_deref(),
        uri: &payload.uri,
        version: &payload.version,
        chain_id: &payload.chain_id,
        nonce: &payload.nonce,
        issued_at: &payload.issued_at,
        expiration_time: payload.expiration_time.as_deref(),
        not_before: payload.not_before.as_deref(),
        request_id: payload.request_id.as_deref(),
        resources: resources.as_deref(),
    };
    let signer = siwe::verify(&fields, &payload.signature).map_err(|_| Reason::Signature)?;
    Ok(crate::evm::hex::encode(&signer.0))
}

/// Base58 of exactly `N` bytes.
fn decode<const N: usize>(text: &str) -> Option<[u8; N]> {
    crate::base58::decode(text.as_bytes())
}

//! The chain and the signature (docs/behaviour.md §16.2), as the package's `verifySIWxSignature`
//! does for `solana:*`: base58 signature of 64 bytes and address of 32, a key that is not of
//! small order (classic Ed25519 accepts the identity key with `R = identity, S = 0` for any
//! message), and Ed25519 over the exact message text. Bound, besides, to the configured network.

use ed25519_compact::{PublicKey, Signature};

use super::header::Payload;
use super::{message, Reason};

pub fn verify(network: &str, payload: &Payload) -> Result<(), Reason> {
    if payload.chain_id != network || !network.starts_with("solana:") {
        return Err(Reason::Chain);
    }
    let signature = decode::<64>(&payload.signature).ok_or(Reason::Signature)?;
    let key = decode::<32>(&payload.address).ok_or(Reason::Signature)?;
    let key = PublicKey::new(key);
    // Refuses non-canonical and small-order keys before any verification.
    key.validate().map_err(|_| Reason::Signature)?;
    key.verify(message::format(payload), &Signature::new(signature)).map_err(|_| Reason::Signature)
}

/// Base58 of exactly `N` bytes.
fn decode<const N: usize>(text: &str) -> Option<[u8; N]> {
    // Base58 of N bytes is at most ~1.37 N characters: longer input is refused before decoding.
    if text.len() > N * 2 {
        return None;
    }
    let mut out = [0u8; N];
    match bs58::decode(text).onto(&mut out) {
        Ok(n) if n == N => Some(out),
        _ => None,
    }
}

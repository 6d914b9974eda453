//! The decoded Ed25519 keys of the Solana wallets that signed in lately, per worker.
//!
//! The official client signs a fresh message on every request (docs/buyers.md), so a buyer
//! signing in verifies one signature per request, always with the same key. Decoding a key
//! (point decompression: a field exponentiation, and the small-order check) is ~7 % of a
//! sign-in in V8; a wallet that signed in once has its key kept decoded, and its next sign-ins
//! only verify.
//!
//! Only keys that verified a signature are kept, so a stream of made-up addresses cannot push
//! the buyers' keys out any more than other buyers can. A slot is chosen by the key's bytes;
//! two wallets on one slot take turns, each then costing what every sign-in cost before this
//! cache.

use crate::ed25519::PublicKey;

/// Slots per worker: ~200 bytes each (the key and its decoded point), ~50 KB when full.
pub const CAPACITY: usize = 256;

#[derive(Debug)]
pub struct SignerKeys {
    slots: Vec<Option<PublicKey>>,
}

impl Default for SignerKeys {
    fn default() -> Self {
        Self::new(CAPACITY)
    }
}

impl SignerKeys {
    /// A cache of `capacity` slots (at least 1).
    pub fn new(capacity: usize) -> Self {
        Self { slots: vec![None; capacity.max(1)] }
    }

    /// The decoded key of `bytes`, if a signature verified with it lately.
    pub fn get(&self, bytes: &[u8; 32]) -> Option<&PublicKey> {
        self.slots.get(self.slot(bytes))?.as_ref().filter(|key| key.bytes() == bytes)
    }

    /// Keeps `key`, which just verified a signature.
    pub fn remember(&mut self, key: PublicKey) {
        let slot = self.slot(key.bytes());
        if let Some(entry) = self.slots.get_mut(slot) {
            *entry = Some(key);
        }
    }

    fn slot(&self, bytes: &[u8; 32]) -> usize {
        let [a, b, c, d, e, f, g, h, ..] = *bytes;
        let mixed = u64::from_le_bytes([a, b, c, d, e, f, g, h]).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        ((mixed >> 32) as usize) % self.slots.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> PublicKey {
        let kp = ed25519_compact::KeyPair::from_seed(ed25519_compact::Seed::new([seed; 32]));
        PublicKey::decode(&kp.pk).unwrap()
    }

    #[test]
    fn a_remembered_key_is_found_by_its_bytes_and_no_other() {
        let mut signers = SignerKeys::new(8);
        let (k1, k2) = (key(1), key(2));
        assert!(signers.get(k1.bytes()).is_none());
        signers.remember(k1);
        assert_eq!(signers.get(k1.bytes()).map(PublicKey::bytes), Some(k1.bytes()));
        assert!(signers.get(k2.bytes()).is_none());
    }

    #[test]
    fn two_keys_on_one_slot_take_turns() {
        let mut signers = SignerKeys::new(1);
        let (k1, k2) = (key(1), key(2));
        signers.remember(k1);
        signers.remember(k2);
        assert!(signers.get(k1.bytes()).is_none());
        assert!(signers.get(k2.bytes()).is_some());
    }
}

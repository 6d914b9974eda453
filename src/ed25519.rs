//! Ed25519 for Solana signatures (payments and Sign-In-With-X, docs/behaviour.md §16.2) and EdDSA
//! passes, on curve25519-dalek.
//!
//! Why curve25519-dalek: inside Envoy the module runs as wasm32, which has a 64-bit multiply but
//! no 64×64→128 one. Field arithmetic on 51-bit limbs (ed25519-compact's) turns each of its
//! 25 limb products into a call to the compiler's 128-bit multiply; curve25519-dalek picks its
//! 32-bit backend (25.5-bit limbs, 64-bit products) on wasm32. Measured in V8 (TurboFan, as Envoy
//! runs it): one verification ~270 µs with ed25519-compact as used before, ~130 µs here with
//! the curve crate built at opt-level 3 (Cargo.toml).
//!
//! Verification accepts exactly what ed25519-compact's did, which the Sign-In-With-X tests pin:
//! `S` canonical (below the group order), the key and `R` canonical encodings of points that are
//! not of small order (classic Ed25519 accepts the identity key with `R = identity, S = 0` for
//! any message), and the cofactored equation `8(S·B − k·A − R) = 0`.

use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use sha2::{Digest, Sha512};

/// A public key decoded once (point decompression is a field exponentiation): a key that is
/// checked several times (a payer signing in again) can be kept decoded.
#[derive(Clone, Copy, Debug)]
pub struct PublicKey {
    bytes: [u8; 32],
    minus_a: EdwardsPoint,
}

impl PublicKey {
    /// The key, if `bytes` is the canonical encoding of a point that is not of small order.
    pub fn decode(bytes: &[u8; 32]) -> Option<Self> {
        let point = decode_point(bytes)?;
        Some(Self { bytes: *bytes, minus_a: -point })
    }

    /// The key's encoding.
    pub fn bytes(&self) -> &[u8; 32] {
        &self.bytes
    }

    /// Whether `signature` (`R || S`) is this key's signature of `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8; 64]) -> bool {
        let Some((r_bytes, s_bytes)) = signature.split_first_chunk::<32>() else {
            return false;
        };
        let Ok(s_bytes) = <[u8; 32]>::try_from(s_bytes) else {
            return false;
        };
        let Some(s) = Option::<Scalar>::from(Scalar::from_canonical_bytes(s_bytes)) else {
            return false;
        };
        let Some(r) = decode_point(r_bytes) else {
            return false;
        };
        let mut hash = Sha512::new();
        hash.update(r_bytes);
        hash.update(self.bytes);
        hash.update(message);
        let k = Scalar::from_bytes_mod_order_wide(&hash.finalize().into());
        // S·B − k·A − R, of small order for a valid signature.
        (EdwardsPoint::vartime_double_scalar_mul_basepoint(&k, &self.minus_a, &s) - r).is_small_order()
    }
}

/// Whether `signature` is the signature of `message` by the key `public` (decoded each time).
pub fn verify(public: &[u8; 32], message: &[u8], signature: &[u8; 64]) -> bool {
    PublicKey::decode(public).is_some_and(|key| key.verify(message, signature))
}

/// The public key of a 32-byte seed (RFC 8032), or `None` for the all-zero seed (refused as a
/// key, as before).
pub fn public_of_seed(seed: &[u8; 32]) -> Option<[u8; 32]> {
    if seed.iter().all(|&b| b == 0) {
        return None;
    }
    Some(ed25519_dalek::SigningKey::from_bytes(seed).verifying_key().to_bytes())
}

/// A point from its encoding: canonical (`y` below 2^255 − 19), on the curve, not of small order.
fn decode_point(bytes: &[u8; 32]) -> Option<EdwardsPoint> {
    if !canonical_y(bytes) {
        return None;
    }
    let point = CompressedEdwardsY(*bytes).decompress()?;
    (!point.is_small_order()).then_some(point)
}

/// `y` (the encoding without its sign bit) below p = 2^255 − 19, i.e. not one of the 19
/// encodings p..2^255 − 1 (ed25519-compact refused those; curve25519-dalek reduces them).
fn canonical_y(bytes: &[u8; 32]) -> bool {
    let [first, middle @ .., last] = bytes;
    !(*last & 0x7f == 0x7f && middle.iter().all(|&b| b == 0xff) && *first >= 0xed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(seed: u8) -> ed25519_compact::KeyPair {
        ed25519_compact::KeyPair::from_seed(ed25519_compact::Seed::new([seed; 32]))
    }

    #[test]
    fn verifies_what_ed25519_compact_signs_and_nothing_else() {
        let kp = pair(7);
        let message = b"example.com wants you to sign in";
        let signature = *kp.sk.sign(message, None);
        assert!(verify(&kp.pk, message, &signature));
        assert!(!verify(&kp.pk, b"example.org wants you to sign in", &signature));
        assert!(!verify(&pair(8).pk, message, &signature));
        for i in 0..64 {
            let mut bad = signature;
            bad[i] ^= 1;
            assert!(!verify(&kp.pk, message, &bad), "byte {i}");
        }
        assert_eq!(public_of_seed(&[7; 32]), Some(*kp.pk));
        assert_eq!(public_of_seed(&[0; 32]), None);
    }

    #[test]
    fn a_decoded_key_verifies_again() {
        let kp = pair(9);
        let key = PublicKey::decode(&kp.pk).unwrap();
        for n in 0..3u8 {
            let message = [n; 300];
            assert!(key.verify(&message, &kp.sk.sign(message, None)));
        }
    }

    #[test]
    fn non_canonical_s_is_refused() {
        let kp = pair(7);
        let message = b"m";
        let signature = *kp.sk.sign(message, None);
        // S + L: the same scalar, not canonical.
        const L: [u8; 32] = [
            0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14, 0, 0, 0, 0,
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        ];
        let mut bad = signature;
        let mut carry = 0u16;
        for i in 0..32 {
            let sum = bad[32 + i] as u16 + L[i] as u16 + carry;
            bad[32 + i] = sum as u8;
            carry = sum >> 8;
        }
        assert!(verify(&kp.pk, message, &signature));
        assert!(!verify(&kp.pk, message, &bad));
    }

    #[test]
    fn small_order_and_non_canonical_points_are_refused_as_ed25519_compact_refuses_them() {
        // The identity, the point of order 2, and y = 2^255 − 19 + 1 (the identity, not canonical).
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let mut order2 = [0xffu8; 32];
        order2[0] = 0xec;
        order2[31] = 0x7f;
        let mut non_canonical = [0xffu8; 32];
        non_canonical[0] = 0xee;
        non_canonical[31] = 0x7f;
        for bytes in [identity, order2, non_canonical] {
            assert!(PublicKey::decode(&bytes).is_none());
            assert!(ed25519_compact::PublicKey::new(bytes).validate().is_err());
        }
        // Every non-canonical y (p..2^255 − 1), with either sign: refused by both.
        for low in 0xedu8..=0xff {
            for sign in [0u8, 0x80] {
                let mut bytes = [0xffu8; 32];
                bytes[0] = low;
                bytes[31] = 0x7f | sign;
                assert!(PublicKey::decode(&bytes).is_none(), "{low:x} {sign:x}");
                assert!(ed25519_compact::PublicKey::new(bytes).validate().is_err());
            }
        }
        // R = identity, S = 0 under the identity key: classic Ed25519's universal forgery.
        let mut forgery = [0u8; 64];
        forgery[0] = 1;
        assert!(!verify(&identity, b"anything", &forgery));
    }
}

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

use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
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
    SigningKey::from_seed(seed).map(|key| key.public)
}

/// A signing key expanded from its 32-byte seed (RFC 8032 §5.1.5), for EdDSA passes.
///
/// Signed here rather than by ed25519-dalek, whose signing multiplies by the basepoint through
/// curve25519-dalek's 30 KB table of basepoint multiples once its precomputed tables are on (they
/// are, for verification's 8 KB table: Cargo.toml). Both products below are curve25519-dalek's
/// constant-time variable-base multiplication, the one ed25519-dalek itself used without tables,
/// so a secret scalar never picks a branch or an address. Signatures are RFC 8032's, byte for
/// byte (the tests compare them with its vectors and with ed25519-compact's).
pub struct SigningKey {
    scalar: Scalar,
    prefix: [u8; 32],
    public: [u8; 32],
}

impl SigningKey {
    /// The key of `seed`, or `None` for the all-zero seed.
    pub fn from_seed(seed: &[u8; 32]) -> Option<Self> {
        if seed.iter().all(|&b| b == 0) {
            return None;
        }
        let hash: [u8; 64] = Sha512::digest(seed).into();
        let (secret, prefix) = hash.split_first_chunk::<32>()?;
        let mut secret = *secret;
        // Clamped: a multiple of the cofactor, with the highest bit (254) set.
        let [first, .., last] = &mut secret;
        *first &= 248;
        *last &= 127;
        *last |= 64;
        let scalar = Scalar::from_bytes_mod_order(secret);
        let public = (ED25519_BASEPOINT_POINT * scalar).compress().to_bytes();
        Some(Self { scalar, prefix: <[u8; 32]>::try_from(prefix).ok()?, public })
    }

    /// The key's public half.
    pub fn public(&self) -> &[u8; 32] {
        &self.public
    }

    /// `R || S`: the deterministic signature of `message`.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        let r = Scalar::from_bytes_mod_order_wide(
            &Sha512::new().chain_update(self.prefix).chain_update(message).finalize().into(),
        );
        let big_r = (ED25519_BASEPOINT_POINT * r).compress().to_bytes();
        let k = Scalar::from_bytes_mod_order_wide(
            &Sha512::new().chain_update(big_r).chain_update(self.public).chain_update(message).finalize().into(),
        );
        let s = k * self.scalar + r;
        let mut signature = [0u8; 64];
        let (left, right) = signature.split_at_mut(32);
        left.copy_from_slice(&big_r);
        right.copy_from_slice(s.as_bytes());
        signature
    }
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

    fn unhex<const N: usize>(hex: &str) -> [u8; N] {
        let bytes: Vec<u8> =
            (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
        bytes.try_into().unwrap()
    }

    #[test]
    fn signs_as_rfc_8032_section_7_1() {
        // TEST 1 (empty message) and TEST 2 (one byte).
        for (seed, public, message, signature) in [
            (
                "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
                "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
                &b""[..],
                "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
            ),
            (
                "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
                "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
                &[0x72][..],
                "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
            ),
        ] {
            let key = SigningKey::from_seed(&unhex::<32>(seed)).unwrap();
            assert_eq!(key.public(), &unhex::<32>(public));
            assert_eq!(key.sign(message), unhex::<64>(signature));
            assert!(verify(key.public(), message, &key.sign(message)));
        }
    }

    #[test]
    fn signs_what_ed25519_compact_signs_for_any_seed_and_message() {
        for n in 1..=40u8 {
            let seed = [n.wrapping_mul(37) ^ 0x5a; 32];
            let message: Vec<u8> = (0..n as usize * 13).map(|i| (i as u8).wrapping_mul(n)).collect();
            let oracle = ed25519_compact::KeyPair::from_seed(ed25519_compact::Seed::new(seed));
            let key = SigningKey::from_seed(&seed).unwrap();
            assert_eq!(key.public(), &*oracle.pk, "seed {n}");
            assert_eq!(key.sign(&message), *oracle.sk.sign(&message, None), "seed {n}");
        }
        assert!(SigningKey::from_seed(&[0; 32]).is_none());
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

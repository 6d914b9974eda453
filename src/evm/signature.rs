//! 65-byte secp256k1 signatures `r || s || v` and recovery of the signer's address.
//!
//! Accepted as the official stack accepts them: `v` is 27/28 or 0/1 (viem's `recoverAddress`),
//! `r` and `s` in `1..n`, and `s` in the lower half of the order, as the USDC contract's
//! `ECRecover` requires (a high-`s` signature verifies off-chain but its settlement reverts, so
//! it is refused here before any callout). The address is the last 20 bytes of keccak-256 of
//! the recovered public key's 64 coordinate bytes.

use k256::elliptic_curve::ops::{LinearCombination, Reduce};
use k256::elliptic_curve::point::DecompressPoint;
use k256::elliptic_curve::scalar::IsHigh;
use k256::elliptic_curve::sec1::ToEncodedPoint;
use k256::elliptic_curve::subtle::Choice;
use k256::elliptic_curve::PrimeField;
use k256::{AffinePoint, FieldBytes, ProjectivePoint, Scalar};

use super::address::Address;
use super::hex;
use super::keccak::keccak256;

/// Why a signature recovers no address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignatureError {
    /// Not `0x` + 130 hex digits.
    Encoding,
    /// `v` is not 0, 1, 27 or 28.
    RecoveryId,
    /// `r` or `s` is zero or not below the group order.
    Scalar,
    /// `s` is in the upper half of the group order (a malleated signature).
    HighS,
    /// No public key is recovered from this hash and signature.
    Recovery,
}

/// A parsed 65-byte signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecoverableSignature {
    r: Scalar,
    s: Scalar,
    y_odd: bool,
}

/// A scalar in `1..n` from 32 big-endian bytes.
fn scalar(bytes: &[u8]) -> Option<Scalar> {
    let bytes: [u8; 32] = bytes.try_into().ok()?;
    let scalar = Option::<Scalar>::from(Scalar::from_repr(FieldBytes::from(bytes)))?;
    (!bool::from(scalar.is_zero())).then_some(scalar)
}

impl RecoverableSignature {
    /// From the wire's `0x` + 130 hex digits.
    pub fn parse_hex(text: &str) -> Result<Self, SignatureError> {
        let bytes = hex::decode_fixed::<65>(text).ok_or(SignatureError::Encoding)?;
        Self::from_bytes(&bytes)
    }

    /// From `r || s || v`.
    pub fn from_bytes(bytes: &[u8; 65]) -> Result<Self, SignatureError> {
        let y_odd = match bytes.get(64) {
            Some(27 | 0) => false,
            Some(28 | 1) => true,
            _ => return Err(SignatureError::RecoveryId),
        };
        let r = bytes.get(..32).and_then(scalar).ok_or(SignatureError::Scalar)?;
        let s = bytes.get(32..64).and_then(scalar).ok_or(SignatureError::Scalar)?;
        if bool::from(s.is_high()) {
            return Err(SignatureError::HighS);
        }
        Ok(Self { r, s, y_odd })
    }

    /// The address whose key made this signature over the 32-byte `hash`:
    /// Q = r⁻¹ (s·R − z·G), R the curve point with x = r and the parity `v` names.
    pub fn recover(&self, hash: &[u8; 32]) -> Result<Address, SignatureError> {
        let z = <Scalar as Reduce<k256::U256>>::reduce_bytes(&FieldBytes::from(*hash));
        let big_r = AffinePoint::decompress(&self.r.to_repr(), Choice::from(u8::from(self.y_odd)));
        let big_r = Option::<AffinePoint>::from(big_r).ok_or(SignatureError::Recovery)?;
        let r_inv = Option::<Scalar>::from(self.r.invert()).ok_or(SignatureError::Recovery)?;
        let u1 = -(r_inv * z);
        let u2 = r_inv * self.s;
        let q = ProjectivePoint::lincomb(&ProjectivePoint::GENERATOR, &u1, &ProjectivePoint::from(big_r), &u2);
        let q = q.to_affine();
        if q == AffinePoint::IDENTITY {
            return Err(SignatureError::Recovery);
        }
        Ok(address_of_point(&q))
    }
}

/// The address of a public key point: the last 20 bytes of keccak-256 of `X || Y`.
pub fn address_of_point(point: &AffinePoint) -> Address {
    let encoded = point.to_encoded_point(false);
    let xy = encoded.as_bytes().get(1..).unwrap_or_default();
    let hash = keccak256(&[xy]);
    let mut address = [0u8; 20];
    if let Some(tail) = hash.get(12..) {
        address.copy_from_slice(tail);
    }
    Address(address)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k256::ecdsa::{Signature, SigningKey};

    fn address_of(key: &k256::ecdsa::VerifyingKey) -> Address {
        address_of_point(key.as_affine())
    }

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_slice(&[seed; 32]).unwrap()
    }

    fn sign(key: &SigningKey, hash: &[u8; 32], v_offset: u8) -> [u8; 65] {
        let (signature, recovery) = key.sign_prehash_recoverable(hash).unwrap();
        let mut out = [0u8; 65];
        out[..64].copy_from_slice(&signature.to_bytes());
        out[64] = recovery.to_byte() + v_offset;
        out
    }

    #[test]
    fn recovers_the_signer_with_v_27_28_or_0_1() {
        let signer = key(7);
        let hash = keccak256(&[b"a message"]);
        for offset in [27, 0] {
            let signature = RecoverableSignature::from_bytes(&sign(&signer, &hash, offset)).unwrap();
            assert_eq!(signature.recover(&hash), Ok(address_of(signer.verifying_key())));
        }
    }

    #[test]
    fn another_hash_recovers_another_address() {
        let signer = key(7);
        let hash = keccak256(&[b"a message"]);
        let signature = RecoverableSignature::from_bytes(&sign(&signer, &hash, 27)).unwrap();
        let other = keccak256(&[b"another message"]);
        assert_ne!(signature.recover(&other), Ok(address_of(signer.verifying_key())));
    }

    #[test]
    fn refuses_high_s_other_v_and_zero_scalars() {
        let signer = key(7);
        let hash = keccak256(&[b"a message"]);
        let good = sign(&signer, &hash, 27);
        // s' = n - s, v flipped: the same point, the malleated twin.
        let parsed = Signature::from_slice(&good[..64]).unwrap();
        let (r, s) = parsed.split_scalars();
        let high = Signature::from_scalars(r, -*s).unwrap();
        let mut twin = good;
        twin[..64].copy_from_slice(&high.to_bytes());
        twin[64] = if good[64] == 27 { 28 } else { 27 };
        assert_eq!(RecoverableSignature::from_bytes(&twin), Err(SignatureError::HighS));

        for v in [2, 26, 29, 255] {
            let mut bad = good;
            bad[64] = v;
            assert_eq!(RecoverableSignature::from_bytes(&bad), Err(SignatureError::RecoveryId));
        }
        let mut zero_r = good;
        zero_r[..32].fill(0);
        assert_eq!(RecoverableSignature::from_bytes(&zero_r), Err(SignatureError::Scalar));
        let mut big_s = good;
        big_s[32..64].fill(0xff);
        assert_eq!(RecoverableSignature::from_bytes(&big_s), Err(SignatureError::Scalar));
    }

    #[test]
    fn refuses_bad_encodings() {
        assert_eq!(RecoverableSignature::parse_hex("0x1234"), Err(SignatureError::Encoding));
        let long = format!("0x{}", "11".repeat(66));
        assert_eq!(RecoverableSignature::parse_hex(&long), Err(SignatureError::Encoding));
    }

    /// The recovery here against k256's own ECDSA recovery (which also verifies the signature
    /// with the key it recovers): the same address for real signatures, and the same verdict
    /// for arbitrary `r`, `s`, `v`.
    #[test]
    fn recovers_what_k256_ecdsa_recovers() {
        use k256::ecdsa::{RecoveryId, VerifyingKey};
        for seed in 1u8..=40 {
            let signer = key(seed);
            let hash = keccak256(&[&[seed], b"differential"]);
            let bytes = sign(&signer, &hash, 27);
            let ours = RecoverableSignature::from_bytes(&bytes).unwrap().recover(&hash);
            assert_eq!(ours, Ok(address_of(signer.verifying_key())), "seed {seed}");

            // Arbitrary scalars: whatever both accept must recover the same key.
            let mut junk = [0u8; 65];
            junk[..32].copy_from_slice(&keccak256(&[b"r", &[seed]]));
            junk[32..64].copy_from_slice(&keccak256(&[b"s", &[seed]]));
            junk[64] = 27 + seed % 2;
            let Ok(theirs_sig) = Signature::from_slice(&junk[..64]) else { continue };
            let theirs =
                VerifyingKey::recover_from_prehash(&hash, &theirs_sig, RecoveryId::from_byte(seed % 2).unwrap())
                    .map(|k| address_of(&k));
            match RecoverableSignature::from_bytes(&junk) {
                Ok(sig) => assert_eq!(sig.recover(&hash).ok(), theirs.ok(), "seed {seed}"),
                Err(e) => assert_eq!(e, SignatureError::HighS, "seed {seed}"),
            }
        }
    }

    #[test]
    fn an_r_that_is_no_curve_x_recovers_nothing() {
        // x = 5 is not the x coordinate of a secp256k1 point (5^3 + 7 = 132 is no square mod p).
        let mut bytes = [0u8; 65];
        bytes[31] = 5;
        bytes[63] = 1;
        bytes[64] = 27;
        let signature = RecoverableSignature::from_bytes(&bytes).unwrap();
        assert_eq!(signature.recover(&[1u8; 32]), Err(SignatureError::Recovery));
    }
}

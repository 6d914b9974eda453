//! Minting a pass.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use super::claims::{PassClaims, MAX_TOKEN_LEN};
use super::keys::KeyRing;

/// Why [`sign`] could not mint a pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignError {
    /// The ring holds only public keys.
    NoSigningKey,
    /// The claims could not be serialized.
    Serialize,
    /// The crypto backend failed.
    Crypto,
    /// The token would exceed [`MAX_TOKEN_LEN`], so [`verify`](super::verify()) would never accept it.
    TooLarge,
}

impl fmt::Display for SignError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SignError::NoSigningKey => "no key of the ring can sign",
            SignError::Serialize => "claims could not be serialized",
            SignError::Crypto => "signing failed",
            SignError::TooLarge => "token would exceed the size bound",
        })
    }
}

impl std::error::Error for SignError {}

/// Mints a pass with the ring's signing key. Byte-compatible with Node `jsonwebtoken`
/// for the same key and claims (the header and claims JSON are written in its order).
pub fn sign(ring: &KeyRing, claims: &PassClaims) -> Result<String, SignError> {
    let key = ring.signing_key().ok_or(SignError::NoSigningKey)?;
    let signer = key.signing.as_ref().ok_or(SignError::NoSigningKey)?;
    let payload = serde_json::to_vec(claims).map_err(|_| SignError::Serialize)?;
    let mut token = String::with_capacity(signer.header_b64.len() + 2 + payload.len().div_ceil(3) * 4 + 86);
    token.push_str(&signer.header_b64);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
    let signature =
        jsonwebtoken::crypto::sign(token.as_bytes(), &signer.encoding, key.alg).map_err(|_| SignError::Crypto)?;
    token.push('.');
    token.push_str(&signature);
    if token.len() > MAX_TOKEN_LEN {
        return Err(SignError::TooLarge);
    }
    Ok(token)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::token::testkit::*;
    use crate::token::{verify, Rejection};
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    #[test]
    fn reference_vector_byte_for_byte() {
        let r = ring(vec![hs(None, SECRET)]);
        assert_eq!(sign(&r, &claims()).unwrap(), VECTOR);
        assert_eq!(verify(&r, &policy(), VECTOR.as_bytes(), IAT + 10), Ok(claims()));
    }

    #[test]
    fn header_carries_kid_last() {
        let r = ring(vec![hs(Some("k\"1"), SECRET)]);
        let t = sign(&r, &claims()).unwrap();
        let head = URL_SAFE_NO_PAD.decode(t.split('.').next().unwrap()).unwrap();
        assert_eq!(head, br#"{"alg":"HS256","typ":"JWT","kid":"k\"1"}"#);
        assert_eq!(verify(&r, &policy(), t.as_bytes(), IAT), Ok(claims()));
        let r = ring(vec![ed_seed(Some("ed"), SEED_A)]);
        let t = sign(&r, &claims()).unwrap();
        let head = URL_SAFE_NO_PAD.decode(t.split('.').next().unwrap()).unwrap();
        assert_eq!(head, br#"{"alg":"EdDSA","typ":"JWT","kid":"ed"}"#);
    }

    #[test]
    fn aud_is_serialized_last_and_checked() {
        let r = ring(vec![hs(None, SECRET)]);
        let mut c = claims();
        c.aud = Some("api.example.com".to_string());
        let t = sign(&r, &c).unwrap();
        let payload = URL_SAFE_NO_PAD.decode(t.split('.').nth(1).unwrap()).unwrap();
        assert!(payload.ends_with(br#""iss":"x402-access-pass","aud":"api.example.com"}"#));
        let mut p = policy();
        p.audience = Some("api.example.com".to_string());
        assert_eq!(verify(&r, &p, t.as_bytes(), IAT), Ok(c.clone()));
        p.audience = Some("other".to_string());
        assert_eq!(verify(&r, &p, t.as_bytes(), IAT), Err(Rejection::WrongAudience));
        // Audience configured, token without aud.
        p.audience = Some("api.example.com".to_string());
        assert_eq!(verify(&r, &p, VECTOR.as_bytes(), IAT), Err(Rejection::WrongAudience));
        // Array form (RFC 7519).
        let t = hs_token(HS_HEADER, &payload_with("aud", Some(r#"["x","api.example.com"]"#)), SECRET);
        assert_eq!(verify(&r, &p, t.as_bytes(), IAT).unwrap().aud, c.aud);
        let t = hs_token(HS_HEADER, &payload_with("aud", Some(r#"["x"]"#)), SECRET);
        assert_eq!(verify(&r, &p, t.as_bytes(), IAT), Err(Rejection::WrongAudience));
        let t = hs_token(HS_HEADER, &payload_with("aud", Some("7")), SECRET);
        assert_eq!(verify(&r, &p, t.as_bytes(), IAT), Err(Rejection::WrongAudience));
        // No audience configured: aud is not checked.
        assert!(verify(&r, &policy(), t.as_bytes(), IAT).is_ok());
    }

    #[test]
    fn eddsa_round_trip_and_public_only_ring() {
        let signer = ring(vec![ed_seed(None, SEED_A)]);
        let t = sign(&signer, &claims()).unwrap();
        assert_eq!(verify(&signer, &policy(), t.as_bytes(), IAT), Ok(claims()));
        let validator = ring(vec![ed_pub(None, SEED_A)]);
        assert!(!validator.can_sign());
        assert_eq!(sign(&validator, &claims()), Err(SignError::NoSigningKey));
        assert_eq!(verify(&validator, &policy(), t.as_bytes(), IAT), Ok(claims()));
        // Independent implementation agrees (PKCS#8 built right, same public key).
        let mut parts = t.rsplitn(2, '.');
        let sig = URL_SAFE_NO_PAD.decode(parts.next().unwrap()).unwrap();
        let input = parts.next().unwrap();
        ed25519_compact::PublicKey::new(public_of(SEED_A))
            .verify(input, &ed25519_compact::Signature::from_slice(&sig).unwrap())
            .unwrap();
        // Another key does not verify it.
        let other = ring(vec![ed_pub(None, SEED_B)]);
        assert_eq!(verify(&other, &policy(), t.as_bytes(), IAT), Err(Rejection::BadSignature));
    }

    #[test]
    fn sign_refuses_oversized_tokens() {
        let r = ring(vec![hs(None, SECRET)]);
        let mut c = claims();
        c.tier = "x".repeat(MAX_TOKEN_LEN);
        assert_eq!(sign(&r, &c), Err(SignError::TooLarge));
    }
}

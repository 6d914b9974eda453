//! Keys, claims and token builders the token tests share.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::Value;

use super::{verify, KeyMaterial, KeyRing, KeySpec, PassClaims, Rejection, VerifyPolicy, SUBJECT};

pub(super) const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

pub(super) const VECTOR: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ4NDAyLWFjY2Vzcy1wYXNzIiwidGllciI6IjFoIiwiZHVyYXRpb24iOjM2MDAsImlhdCI6MTc2NzIyNTYwMCwiZXhwIjoxNzY3MjI5MjAwLCJwYXllciI6IkJKUHNQSFVUeXU4bjNNSmVtSDFqR1pyZzhhbXdzdmh1TXZQZUpzZmlyYUNCIiwibmV0d29yayI6InNvbGFuYTo1ZXlrdDRVc0Z2OFA4TkpkVFJFcFkxdnpxS3FaS3ZkcCIsImlzcyI6Ing0MDItYWNjZXNzLXBhc3MifQ.XkGUco-yWvnrOj7U6jOKCJBq_FDha0MBA7cR4eUrEOc";

pub(super) const IAT: u64 = 1_767_225_600;

pub(super) const EXP: u64 = 1_767_229_200;

pub(super) const SEED_A: [u8; 32] = [7; 32];

pub(super) const SEED_B: [u8; 32] = [9; 32];

pub(super) fn claims() -> PassClaims {
    PassClaims {
        sub: SUBJECT.to_string(),
        tier: "1h".to_string(),
        duration: 3600,
        iat: IAT,
        exp: EXP,
        payer: "BJPsPHUTyu8n3MJemH1jGZrg8amwsvhuMvPeJsfiraCB".to_string(),
        network: "solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp".to_string(),
        iss: "x402-access-pass".to_string(),
        aud: None,
    }
}

pub(super) fn policy() -> VerifyPolicy {
    VerifyPolicy {
        issuer: "x402-access-pass".to_string(),
        audience: None,
        leeway_seconds: 0,
        max_duration_seconds: 2_592_000,
    }
}

pub(super) fn hs(kid: Option<&str>, secret: &[u8]) -> KeySpec {
    KeySpec { kid: kid.map(str::to_string), material: KeyMaterial::Hs256Secret(secret.to_vec()) }
}

pub(super) fn ed_seed(kid: Option<&str>, seed: [u8; 32]) -> KeySpec {
    KeySpec { kid: kid.map(str::to_string), material: KeyMaterial::EdDsaSeed(seed) }
}

pub(super) fn public_of(seed: [u8; 32]) -> [u8; 32] {
    *ed25519_compact::KeyPair::from_seed(ed25519_compact::Seed::new(seed)).pk
}

pub(super) fn ed_pub(kid: Option<&str>, seed: [u8; 32]) -> KeySpec {
    KeySpec { kid: kid.map(str::to_string), material: KeyMaterial::EdDsaPublic(public_of(seed)) }
}

pub(super) fn ring(keys: Vec<KeySpec>) -> KeyRing {
    KeyRing::new(keys).unwrap()
}

pub(super) fn b64(s: &str) -> String {
    URL_SAFE_NO_PAD.encode(s)
}

/// A token with arbitrary header and claims JSON, HMAC'd with `secret`.
pub(super) fn hs_token(header: &str, payload: &str, secret: &[u8]) -> String {
    let input = format!("{}.{}", b64(header), b64(payload));
    let sig =
        jsonwebtoken::crypto::sign(input.as_bytes(), &EncodingKey::from_secret(secret), Algorithm::HS256).unwrap();
    format!("{input}.{sig}")
}

pub(super) const HS_HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

/// The vector's claims with `field` replaced by raw JSON `value` (or removed when None).
pub(super) fn payload_with(field: &str, value: Option<&str>) -> String {
    let mut v: serde_json::Map<String, Value> =
        serde_json::from_str(&serde_json::to_string(&claims()).unwrap()).unwrap();
    match value {
        Some(raw) => {
            v.insert(field.to_string(), serde_json::from_str(raw).unwrap());
        }
        None => {
            v.remove(field);
        }
    }
    serde_json::to_string(&v).unwrap()
}

pub(super) fn check(token: &str, now: u64) -> Result<PassClaims, Rejection> {
    verify(&ring(vec![hs(None, SECRET)]), &policy(), token.as_bytes(), now)
}

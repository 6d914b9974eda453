//! The key ring: the configured keys, validated once at configuration time and
//! pre-processed for signing and verifying.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};

use crate::jwt_crypto::ED25519_PKCS8_PREFIX;

/// Longest `kid` a key may have.
const MAX_KID_LEN: usize = 256;
/// Minimum HS256 secret length (SPEC §2).
const MIN_HS256_SECRET: usize = 32;

/// Key material of one ring entry.
pub enum KeyMaterial {
    /// HS256 shared secret (at least 32 bytes); signs and verifies.
    Hs256Secret(Vec<u8>),
    /// Ed25519 private key (32-byte seed); signs and verifies.
    EdDsaSeed([u8; 32]),
    /// Ed25519 public key; verifies only (sidecars that never sell).
    EdDsaPublic([u8; 32]),
}

impl fmt::Debug for KeyMaterial {
    /// Never prints key bytes (secrets must not reach logs, SPEC §10).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyMaterial::Hs256Secret(_) => "Hs256Secret([redacted])",
            KeyMaterial::EdDsaSeed(_) => "EdDsaSeed([redacted])",
            KeyMaterial::EdDsaPublic(_) => "EdDsaPublic(..)",
        })
    }
}

/// One configured key: optional `kid` (goes in the JWS header) and its material.
#[derive(Debug)]
pub struct KeySpec {
    pub kid: Option<String>,
    pub material: KeyMaterial,
}

pub(super) struct RingKey {
    pub(super) kid: Option<String>,
    pub(super) alg: Algorithm,
    pub(super) decoding: DecodingKey,
    /// `Some` for keys that can sign.
    pub(super) signing: Option<Signer>,
}

pub(super) struct Signer {
    pub(super) encoding: EncodingKey,
    /// base64url of the exact JWS header this key signs with.
    pub(super) header_b64: String,
}

/// Validated keys. The first key that can sign, signs; every key verifies.
pub struct KeyRing {
    keys: Vec<RingKey>,
    signer: Option<usize>,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing").field("keys", &self.keys.len()).field("signer", &self.signer).finish()
    }
}

impl KeyRing {
    /// Validates the keys and precomputes everything signing and verifying need.
    /// Errors name the key and the problem, e.g. `keys[1]: HS256 secret must be at least 32 bytes`.
    pub fn new(keys: Vec<KeySpec>) -> Result<KeyRing, String> {
        // Every sign/verify goes through a ring, so installing the backend here covers them all.
        crate::jwt_crypto::install();
        if keys.is_empty() {
            return Err("keys: at least one key is required".to_string());
        }
        let mut ring: Vec<RingKey> = Vec::with_capacity(keys.len());
        for (i, spec) in keys.into_iter().enumerate() {
            if let Some(kid) = &spec.kid {
                if kid.is_empty() {
                    return Err(format!("keys[{i}]: kid must not be empty"));
                }
                if kid.len() > MAX_KID_LEN {
                    return Err(format!("keys[{i}]: kid must be at most {MAX_KID_LEN} bytes"));
                }
                if ring.iter().any(|k| k.kid.as_deref() == Some(kid.as_str())) {
                    return Err(format!("keys[{i}]: duplicate kid {kid:?}"));
                }
            }
            let key = match spec.material {
                KeyMaterial::Hs256Secret(secret) => {
                    if secret.len() < MIN_HS256_SECRET {
                        return Err(format!("keys[{i}]: HS256 secret must be at least {MIN_HS256_SECRET} bytes"));
                    }
                    RingKey {
                        alg: Algorithm::HS256,
                        decoding: DecodingKey::from_secret(&secret),
                        signing: Some(Signer {
                            encoding: EncodingKey::from_secret(&secret),
                            header_b64: header_b64(Algorithm::HS256, spec.kid.as_deref())
                                .map_err(|e| format!("keys[{i}]: {e}"))?,
                        }),
                        kid: spec.kid,
                    }
                }
                KeyMaterial::EdDsaSeed(seed) => {
                    let pair = ed25519_compact::KeyPair::try_from_seed(ed25519_compact::Seed::new(seed))
                        .map_err(|_| format!("keys[{i}]: EdDSA private key must not be all zeros"))?;
                    let mut der = [0u8; 48];
                    let (prefix, rest) = der.split_at_mut(ED25519_PKCS8_PREFIX.len());
                    prefix.copy_from_slice(&ED25519_PKCS8_PREFIX);
                    rest.copy_from_slice(&seed);
                    let encoding = EncodingKey::from_ed_der(&der);
                    der.fill(0);
                    RingKey {
                        alg: Algorithm::EdDSA,
                        // The backend (crate::jwt_crypto) takes the raw 32-byte public key here.
                        decoding: DecodingKey::from_ed_der(&pair.pk[..]),
                        signing: Some(Signer {
                            encoding,
                            header_b64: header_b64(Algorithm::EdDSA, spec.kid.as_deref())
                                .map_err(|e| format!("keys[{i}]: {e}"))?,
                        }),
                        kid: spec.kid,
                    }
                }
                KeyMaterial::EdDsaPublic(pk) => {
                    // Canonical encoding of a point that is not of small order: a weak
                    // key (e.g. the identity) would let anyone forge signatures.
                    ed25519_compact::PublicKey::new(pk)
                        .validate()
                        .map_err(|_| format!("keys[{i}]: EdDSA public key is not a valid Ed25519 key"))?;
                    RingKey {
                        alg: Algorithm::EdDSA,
                        decoding: DecodingKey::from_ed_der(&pk),
                        signing: None,
                        kid: spec.kid,
                    }
                }
            };
            self_test(&key).map_err(|e| format!("keys[{i}]: {e}"))?;
            ring.push(key);
        }
        let signer = ring.iter().position(|k| k.signing.is_some());
        Ok(KeyRing { keys: ring, signer })
    }

    /// True when the ring holds a key that can sign (HS256 secret or EdDSA seed).
    pub fn can_sign(&self) -> bool {
        self.signer.is_some()
    }

    /// `kid` of the signing key, if it has one.
    pub fn signing_kid(&self) -> Option<&str> {
        self.signing_key().and_then(|k| k.kid.as_deref())
    }

    /// Number of keys in the ring.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Never true: an empty ring is rejected by [`KeyRing::new`].
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The keys, in configuration order (verification tries them in this order).
    pub(super) fn keys(&self) -> &[RingKey] {
        &self.keys
    }

    pub(super) fn signing_key(&self) -> Option<&RingKey> {
        self.signer.and_then(|i| self.keys.get(i))
    }
}

/// The exact header Node `jsonwebtoken` writes: `alg` first, then `typ`, then `kid`.
fn header_b64(alg: Algorithm, kid: Option<&str>) -> Result<String, String> {
    let mut json = String::with_capacity(48 + kid.map_or(0, str::len));
    json.push_str(match alg {
        Algorithm::EdDSA => r#"{"alg":"EdDSA","typ":"JWT""#,
        _ => r#"{"alg":"HS256","typ":"JWT""#,
    });
    if let Some(kid) = kid {
        json.push_str(r#","kid":"#);
        json.push_str(&serde_json::to_string(kid).map_err(|e| format!("kid: {e}"))?);
    }
    json.push('}');
    Ok(URL_SAFE_NO_PAD.encode(json))
}

/// Configuration-time check that the backend accepts the key, so a bad key fails
/// `on_configure` instead of the first purchase or request.
fn self_test(key: &RingKey) -> Result<(), String> {
    const PROBE: &[u8] = b"x402-access-pass key check";
    match &key.signing {
        Some(signer) => {
            let sig = jsonwebtoken::crypto::sign(PROBE, &signer.encoding, key.alg)
                .map_err(|e| format!("key rejected by the signer: {e}"))?;
            match jsonwebtoken::crypto::verify(&sig, PROBE, &key.decoding, key.alg) {
                Ok(true) => Ok(()),
                _ => Err("key failed its sign/verify self-test".to_string()),
            }
        }
        None => {
            // 64 zero bytes: a well-formed signature that never verifies. Err means
            // the backend rejected the key itself.
            const ZERO_SIG: &str =
                "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
            match jsonwebtoken::crypto::verify(ZERO_SIG, PROBE, &key.decoding, key.alg) {
                Ok(_) => Ok(()),
                Err(e) => Err(format!("key rejected by the verifier: {e}")),
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::token::testkit::*;

    #[test]
    fn key_ring_validation() {
        let err = |keys| KeyRing::new(keys).unwrap_err();
        assert!(err(vec![]).contains("at least one key"));
        assert_eq!(err(vec![hs(None, SECRET), hs(None, b"short")]), "keys[1]: HS256 secret must be at least 32 bytes");
        assert!(err(vec![hs(Some("a"), SECRET), ed_seed(Some("a"), SEED_A)]).starts_with("keys[1]: duplicate kid"));
        assert!(err(vec![hs(Some(""), SECRET)]).starts_with("keys[0]: kid"));
        assert!(err(vec![hs(Some(&"k".repeat(257)), SECRET)]).starts_with("keys[0]: kid"));
        assert!(err(vec![ed_seed(None, [0; 32])]).starts_with("keys[0]: EdDSA private key"));
        // Identity point (small order) and a non-point.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let weak = KeySpec { kid: None, material: KeyMaterial::EdDsaPublic(identity) };
        assert!(err(vec![weak]).starts_with("keys[0]: EdDSA public key"));
        let bad = KeySpec { kid: None, material: KeyMaterial::EdDsaPublic([0xff; 32]) };
        assert!(err(vec![bad]).starts_with("keys[0]: EdDSA public key"));
        // Key bytes never show in Debug.
        let dbg = format!("{:?}", hs(None, SECRET));
        assert!(!dbg.contains("0123"), "{dbg}");
        // The first key that can sign, signs.
        let r = ring(vec![ed_pub(Some("v"), SEED_B), hs(Some("h"), SECRET), ed_seed(Some("e"), SEED_A)]);
        assert!(r.can_sign());
        assert_eq!(r.signing_kid(), Some("h"));
        assert_eq!(r.len(), 3);
    }
}

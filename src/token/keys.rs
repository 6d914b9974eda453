//! The key ring: the configured keys, validated once at configuration time and
//! pre-processed for signing and verifying.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};

use crate::jwt_crypto::ED25519_PKCS8_PREFIX;

/// Longest `kid` a key may have.
pub const MAX_KID_LEN: usize = 256;
/// Minimum HS256 secret length (docs/behaviour.md §2).
pub const MIN_HS256_SECRET: usize = 32;

/// Why [`KeyRing::new`] refused the keys. Every key rule is checked here, and only here;
/// the configuration names the field each problem came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    /// No key at all: nothing could verify a pass.
    NoKeys,
    /// The key at `index` (in the order given) is unusable.
    Key { index: usize, problem: KeyProblem },
}

/// What is wrong with one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyProblem {
    /// `kid` is the empty string.
    EmptyKid,
    /// `kid` is longer than [`MAX_KID_LEN`] bytes.
    KidTooLong,
    /// `kid` is already the kid of the key at `first`.
    DuplicateKid { first: usize },
    /// HS256 secret shorter than [`MIN_HS256_SECRET`] bytes.
    ShortSecret,
    /// EdDSA seed of 32 zero bytes.
    ZeroSeed,
    /// EdDSA public key that is not a canonical point of large order.
    WeakPublicKey,
    /// The signature backend refused the key (its configuration-time self-test).
    Rejected(String),
}

impl KeyProblem {
    /// True for a problem with the key's `kid`, false for one with its material.
    pub fn is_about_kid(&self) -> bool {
        matches!(self, KeyProblem::EmptyKid | KeyProblem::KidTooLong | KeyProblem::DuplicateKid { .. })
    }
}

impl fmt::Display for KeyProblem {
    /// Said of the member at fault: the `kid` for a kid problem, the key material otherwise.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyProblem::EmptyKid => f.write_str("must not be empty"),
            KeyProblem::KidTooLong => write!(f, "must be at most {MAX_KID_LEN} bytes"),
            KeyProblem::DuplicateKid { first } => write!(f, "duplicate kid (keys[{first}] has the same one)"),
            KeyProblem::ShortSecret => write!(f, "HS256 secret must be at least {MIN_HS256_SECRET} bytes"),
            KeyProblem::ZeroSeed => f.write_str("EdDSA private key must not be all zeros"),
            KeyProblem::WeakPublicKey => f.write_str("EdDSA public key is not a valid Ed25519 key"),
            KeyProblem::Rejected(why) => f.write_str(why),
        }
    }
}

impl fmt::Display for KeyError {
    /// `keys: ...` or `keys[i]: ...` (`keys[i].kid: ...` for a kid problem).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::NoKeys => f.write_str("keys: at least one key is required"),
            KeyError::Key { index, problem } if problem.is_about_kid() => write!(f, "keys[{index}].kid: {problem}"),
            KeyError::Key { index, problem } => write!(f, "keys[{index}]: {problem}"),
        }
    }
}

impl std::error::Error for KeyError {}

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
    /// Never prints key bytes (secrets must not reach logs, docs/behaviour.md §10).
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
    /// The first problem found is returned, with the index of the key it is about.
    pub fn new(keys: Vec<KeySpec>) -> Result<KeyRing, KeyError> {
        // Every sign/verify goes through a ring, so installing the backend here covers them all.
        crate::jwt_crypto::install();
        if keys.is_empty() {
            return Err(KeyError::NoKeys);
        }
        let mut ring: Vec<RingKey> = Vec::with_capacity(keys.len());
        for (index, spec) in keys.into_iter().enumerate() {
            let key = ring_key(spec, &ring).map_err(|problem| KeyError::Key { index, problem })?;
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

/// Checks one key against the keys before it and precomputes what it needs.
fn ring_key(spec: KeySpec, before: &[RingKey]) -> Result<RingKey, KeyProblem> {
    if let Some(kid) = &spec.kid {
        if kid.is_empty() {
            return Err(KeyProblem::EmptyKid);
        }
        if kid.len() > MAX_KID_LEN {
            return Err(KeyProblem::KidTooLong);
        }
        if let Some(first) = before.iter().position(|k| k.kid.as_deref() == Some(kid.as_str())) {
            return Err(KeyProblem::DuplicateKid { first });
        }
    }
    let key = match spec.material {
        KeyMaterial::Hs256Secret(secret) => {
            if secret.len() < MIN_HS256_SECRET {
                return Err(KeyProblem::ShortSecret);
            }
            RingKey {
                alg: Algorithm::HS256,
                decoding: DecodingKey::from_secret(&secret),
                signing: Some(Signer {
                    encoding: EncodingKey::from_secret(&secret),
                    header_b64: header_b64(Algorithm::HS256, spec.kid.as_deref())?,
                }),
                kid: spec.kid,
            }
        }
        KeyMaterial::EdDsaSeed(seed) => {
            let public = crate::ed25519::public_of_seed(&seed).ok_or(KeyProblem::ZeroSeed)?;
            let mut der = [0u8; 48];
            let (prefix, rest) = der.split_at_mut(ED25519_PKCS8_PREFIX.len());
            prefix.copy_from_slice(&ED25519_PKCS8_PREFIX);
            rest.copy_from_slice(&seed);
            let encoding = EncodingKey::from_ed_der(&der);
            der.fill(0);
            RingKey {
                alg: Algorithm::EdDSA,
                // The backend (crate::jwt_crypto) takes the raw 32-byte public key here.
                decoding: DecodingKey::from_ed_der(&public),
                signing: Some(Signer { encoding, header_b64: header_b64(Algorithm::EdDSA, spec.kid.as_deref())? }),
                kid: spec.kid,
            }
        }
        KeyMaterial::EdDsaPublic(pk) => {
            // Canonical encoding of a point that is not of small order: a weak
            // key (e.g. the identity) would let anyone forge signatures.
            crate::ed25519::PublicKey::decode(&pk).ok_or(KeyProblem::WeakPublicKey)?;
            RingKey { alg: Algorithm::EdDSA, decoding: DecodingKey::from_ed_der(&pk), signing: None, kid: spec.kid }
        }
    };
    self_test(&key)?;
    Ok(key)
}

/// The exact header Node `jsonwebtoken` writes: `alg` first, then `typ`, then `kid`.
fn header_b64(alg: Algorithm, kid: Option<&str>) -> Result<String, KeyProblem> {
    let mut json = String::with_capacity(48 + kid.map_or(0, str::len));
    json.push_str(match alg {
        Algorithm::EdDSA => r#"{"alg":"EdDSA","typ":"JWT""#,
        _ => r#"{"alg":"HS256","typ":"JWT""#,
    });
    if let Some(kid) = kid {
        json.push_str(r#","kid":"#);
        json.push_str(&serde_json::to_string(kid).map_err(|e| KeyProblem::Rejected(format!("kid: {e}")))?);
    }
    json.push('}');
    Ok(URL_SAFE_NO_PAD.encode(json))
}

/// Configuration-time check that the backend accepts the key, so a bad key fails
/// `on_configure` instead of the first purchase or request.
fn self_test(key: &RingKey) -> Result<(), KeyProblem> {
    const PROBE: &[u8] = b"x402-access-pass key check";
    match &key.signing {
        Some(signer) => {
            let sig = jsonwebtoken::crypto::sign(PROBE, &signer.encoding, key.alg)
                .map_err(|e| KeyProblem::Rejected(format!("key rejected by the signer: {e}")))?;
            match jsonwebtoken::crypto::verify(&sig, PROBE, &key.decoding, key.alg) {
                Ok(true) => Ok(()),
                _ => Err(KeyProblem::Rejected("key failed its sign/verify self-test".to_string())),
            }
        }
        None => {
            // 64 zero bytes: a well-formed signature that never verifies. Err means
            // the backend rejected the key itself.
            const ZERO_SIG: &str =
                "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
            match jsonwebtoken::crypto::verify(ZERO_SIG, PROBE, &key.decoding, key.alg) {
                Ok(_) => Ok(()),
                Err(e) => Err(KeyProblem::Rejected(format!("key rejected by the verifier: {e}"))),
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::token::testkit::*;

    fn problem(keys: Vec<KeySpec>) -> (usize, KeyProblem) {
        match KeyRing::new(keys) {
            Err(KeyError::Key { index, problem }) => (index, problem),
            other => panic!("expected a key problem, got {other:?}"),
        }
    }

    #[test]
    fn a_ring_needs_a_key() {
        assert_eq!(KeyRing::new(vec![]).unwrap_err(), KeyError::NoKeys);
        assert_eq!(KeyError::NoKeys.to_string(), "keys: at least one key is required");
    }

    #[test]
    fn an_hs256_secret_has_at_least_32_bytes() {
        assert_eq!(problem(vec![hs(None, SECRET), hs(None, b"short")]), (1, KeyProblem::ShortSecret));
        assert_eq!(problem(vec![hs(None, &SECRET[..31])]), (0, KeyProblem::ShortSecret));
        assert!(KeyRing::new(vec![hs(None, &SECRET[..32])]).is_ok());
        let e = KeyRing::new(vec![hs(None, SECRET), hs(None, b"short")]).unwrap_err();
        assert_eq!(e.to_string(), "keys[1]: HS256 secret must be at least 32 bytes");
    }

    #[test]
    fn a_kid_is_not_empty_not_too_long_and_not_repeated() {
        assert_eq!(problem(vec![hs(Some(""), SECRET)]), (0, KeyProblem::EmptyKid));
        assert_eq!(problem(vec![hs(Some(&"k".repeat(MAX_KID_LEN + 1)), SECRET)]), (0, KeyProblem::KidTooLong));
        assert!(KeyRing::new(vec![hs(Some(&"k".repeat(MAX_KID_LEN)), SECRET)]).is_ok());
        let dup = vec![hs(Some("a"), SECRET), hs(Some("b"), SECRET), ed_seed(Some("a"), SEED_A)];
        assert_eq!(problem(dup), (2, KeyProblem::DuplicateKid { first: 0 }));
        // Keys without a kid are not duplicates of each other.
        assert!(KeyRing::new(vec![hs(None, SECRET), ed_seed(None, SEED_A)]).is_ok());
        let say = |problem| KeyError::Key { index: 2, problem }.to_string();
        assert_eq!(say(KeyProblem::EmptyKid), "keys[2].kid: must not be empty");
        assert_eq!(say(KeyProblem::KidTooLong), "keys[2].kid: must be at most 256 bytes");
        assert_eq!(say(KeyProblem::DuplicateKid { first: 0 }), "keys[2].kid: duplicate kid (keys[0] has the same one)");
    }

    #[test]
    fn an_eddsa_seed_is_not_all_zeros() {
        assert_eq!(problem(vec![ed_seed(None, [0; 32])]), (0, KeyProblem::ZeroSeed));
        let e = KeyRing::new(vec![ed_seed(None, [0; 32])]).unwrap_err();
        assert_eq!(e.to_string(), "keys[0]: EdDSA private key must not be all zeros");
    }

    #[test]
    fn an_eddsa_public_key_is_a_point_of_large_order() {
        // Identity point (small order) and a non-canonical encoding.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let weak = KeySpec { kid: None, material: KeyMaterial::EdDsaPublic(identity) };
        assert_eq!(problem(vec![weak]), (0, KeyProblem::WeakPublicKey));
        let bad = KeySpec { kid: None, material: KeyMaterial::EdDsaPublic([0xff; 32]) };
        assert_eq!(problem(vec![bad]), (0, KeyProblem::WeakPublicKey));
        let e = KeyError::Key { index: 0, problem: KeyProblem::WeakPublicKey };
        assert_eq!(e.to_string(), "keys[0]: EdDSA public key is not a valid Ed25519 key");
    }

    #[test]
    fn the_first_key_that_can_sign_signs_and_key_bytes_never_show() {
        let dbg = format!("{:?}", hs(None, SECRET));
        assert!(!dbg.contains("0123"), "{dbg}");
        let r = ring(vec![ed_pub(Some("v"), SEED_B), hs(Some("h"), SECRET), ed_seed(Some("e"), SEED_A)]);
        assert!(r.can_sign());
        assert_eq!(r.signing_kid(), Some("h"));
        assert_eq!(r.len(), 3);
    }
}

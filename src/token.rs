//! The pass token (SPEC §7): a compact JWS, signed with HS256 or EdDSA (Ed25519).
//!
//! * [`KeyRing`] holds the configured keys, validated and pre-processed once at
//!   configuration time (jsonwebtoken `EncodingKey`/`DecodingKey`, the encoded JWS
//!   header of the signing key).
//! * [`sign`] mints a pass byte-compatible with the Express reference (Node `jsonwebtoken`).
//! * [`verify`] checks a presented pass against every rule of §7. It never panics,
//!   bounds every input, and checks the signature (jsonwebtoken with the backend of
//!   [`crate::jwt_crypto`]: constant-time HMAC comparison, Ed25519 via ed25519-compact)
//!   before it parses the claims.
//! * [`PassCache`] / [`verify_cached`]: a bounded per-worker cache of verified passes,
//!   so a repeat token costs one SHA-256 instead of a signature check and JSON parsing,
//!   and still expires on time.

use std::borrow::Cow;
use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `sub` of every pass.
pub const SUBJECT: &str = "x402-access-pass";

/// Longest token [`verify`] accepts (and [`sign`] produces). Our passes are ~450 bytes.
pub const MAX_TOKEN_LEN: usize = 4096;

/// Longest base64url header segment accepted (our headers are ~40 characters, or
/// ~390 with a 256-byte `kid`).
const MAX_HEADER_SEGMENT: usize = 1024;
/// Decoded header bound: 3/4 of [`MAX_HEADER_SEGMENT`].
const MAX_HEADER_JSON: usize = MAX_HEADER_SEGMENT / 4 * 3;
/// Decoded payload bound: a payload segment is shorter than [`MAX_TOKEN_LEN`].
const MAX_PAYLOAD_JSON: usize = MAX_TOKEN_LEN / 4 * 3;
/// Longest `kid` a key may have.
const MAX_KID_LEN: usize = 256;
/// Minimum HS256 secret length (SPEC §2).
const MIN_HS256_SECRET: usize = 32;

/// PKCS#8 v1 DER prefix of an Ed25519 private key; the 32-byte seed follows.
pub const ED25519_PKCS8_PREFIX: [u8; 16] =
    [0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];

// ---------------------------------------------------------------------------------------------
// Key ring
// ---------------------------------------------------------------------------------------------

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

struct RingKey {
    kid: Option<String>,
    alg: Algorithm,
    decoding: DecodingKey,
    /// `Some` for keys that can sign.
    signing: Option<Signer>,
}

struct Signer {
    encoding: EncodingKey,
    /// base64url of the exact JWS header this key signs with.
    header_b64: String,
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

    fn signing_key(&self) -> Option<&RingKey> {
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

// ---------------------------------------------------------------------------------------------
// Claims and signing
// ---------------------------------------------------------------------------------------------

/// Claims of a pass, in the order the Express reference writes them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PassClaims {
    pub sub: String,
    pub tier: String,
    pub duration: u64,
    pub iat: u64,
    pub exp: u64,
    pub payer: String,
    pub network: String,
    pub iss: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
}

/// Why [`sign`] could not mint a pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignError {
    /// The ring holds only public keys.
    NoSigningKey,
    /// The claims could not be serialized.
    Serialize,
    /// The crypto backend failed.
    Crypto,
    /// The token would exceed [`MAX_TOKEN_LEN`], so [`verify`] would never accept it.
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

// ---------------------------------------------------------------------------------------------
// Verification
// ---------------------------------------------------------------------------------------------

/// What a pass is checked against (from the plugin configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyPolicy {
    /// Required `iss`.
    pub issuer: String,
    /// Required `aud`, when set.
    pub audience: Option<String>,
    /// Clock skew allowed on `exp` and `iat`.
    pub leeway_seconds: u64,
    /// Longest pass this configuration sells.
    pub max_duration_seconds: u64,
}

/// Why a presented token is not a valid pass. Every rejection leads to the challenge (402).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rejection {
    /// `Authorization` is not `Bearer <token>`.
    NotBearer,
    /// Not three segments, bad base64url, bad JSON, a claim of the wrong type.
    Malformed,
    /// `none`, an unknown alg, or not the alg of the selected key.
    AlgorithmNotAllowed,
    /// The header `kid` names no key of the ring.
    UnknownKid,
    /// No key of the ring verifies the signature.
    BadSignature,
    WrongSubject,
    WrongIssuer,
    WrongAudience,
    /// `exp` absent or not a non-negative integer.
    MissingExpiry,
    Expired,
    IssuedInFuture,
    /// `exp - iat != duration`, or `iat`/`duration` missing or not non-negative integers.
    BadDuration,
    /// `duration` longer than the longest pass this configuration sells.
    TooLong,
    /// Token over [`MAX_TOKEN_LEN`] (or a header over its own bound).
    TooLarge,
}

impl Rejection {
    /// Every rejection, e.g. to create one counter per reason up front.
    pub const ALL: [Rejection; 14] = [
        Rejection::NotBearer,
        Rejection::Malformed,
        Rejection::AlgorithmNotAllowed,
        Rejection::UnknownKid,
        Rejection::BadSignature,
        Rejection::WrongSubject,
        Rejection::WrongIssuer,
        Rejection::WrongAudience,
        Rejection::MissingExpiry,
        Rejection::Expired,
        Rejection::IssuedInFuture,
        Rejection::BadDuration,
        Rejection::TooLong,
        Rejection::TooLarge,
    ];

    /// snake_case label for metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Rejection::NotBearer => "not_bearer",
            Rejection::Malformed => "malformed",
            Rejection::AlgorithmNotAllowed => "algorithm_not_allowed",
            Rejection::UnknownKid => "unknown_kid",
            Rejection::BadSignature => "bad_signature",
            Rejection::WrongSubject => "wrong_subject",
            Rejection::WrongIssuer => "wrong_issuer",
            Rejection::WrongAudience => "wrong_audience",
            Rejection::MissingExpiry => "missing_expiry",
            Rejection::Expired => "expired",
            Rejection::IssuedInFuture => "issued_in_future",
            Rejection::BadDuration => "bad_duration",
            Rejection::TooLong => "too_long",
            Rejection::TooLarge => "too_large",
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The token of an `Authorization` value: scheme `Bearer` (case-insensitive), one or
/// more spaces or tabs, then the token (trailing whitespace trimmed). Works on raw
/// bytes, so a non-UTF-8 header cannot trap the VM. `None` for any other shape.
pub fn bearer_token(authorization: &[u8]) -> Option<&[u8]> {
    let value = authorization.trim_ascii();
    let (scheme, rest) = value.split_at_checked(6)?;
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return None;
    }
    if !matches!(rest.first(), Some(b' ' | b'\t')) {
        return None;
    }
    // `value` is trimmed, so `rest` does not end with whitespace.
    let token = rest.trim_ascii_start();
    if token.is_empty() {
        None
    } else {
        Some(token)
    }
}

#[derive(Deserialize)]
struct RawHeader<'a> {
    #[serde(borrow)]
    alg: Cow<'a, str>,
    #[serde(borrow, default)]
    kid: Option<Cow<'a, str>>,
    /// We implement no header extension, so one marked critical must be refused
    /// (RFC 7515 §4.1.11).
    #[serde(default)]
    crit: Option<IgnoredAny>,
    // `typ` and other members are ignored, as Node `jsonwebtoken` does.
}

/// Claims as found in a token; `Value` where §7 needs to tell "absent" or "wrong type"
/// apart from "wrong value". Owned strings move into [`PassClaims`] without copies.
/// A duplicated member is a JSON error (serde rejects duplicate fields).
#[derive(Deserialize)]
struct RawClaims {
    #[serde(default)]
    sub: Option<Value>,
    tier: String,
    #[serde(default)]
    duration: Option<Value>,
    #[serde(default)]
    iat: Option<Value>,
    #[serde(default)]
    exp: Option<Value>,
    payer: String,
    network: String,
    #[serde(default)]
    iss: Option<Value>,
    #[serde(default)]
    aud: Option<Value>,
}

/// `Some(n)` only for a JSON integer in `0..=u64::MAX` (floats, strings, negatives,
/// and integers beyond u64, which serde_json parses as floats, give `None`).
fn as_u64(v: Option<&Value>) -> Option<u64> {
    v.and_then(Value::as_u64)
}

fn into_string(v: Option<Value>) -> Option<String> {
    match v {
        Some(Value::String(s)) => Some(s),
        _ => None,
    }
}

/// Checks a token against every rule of SPEC §7 and returns its claims.
///
/// Order: size, shape, header (`alg`, `kid`), signature, then the claims, so a forgery
/// is rejected before any claims JSON is parsed. `aud` may be a string or (RFC 7519)
/// an array of strings; with an audience configured it must equal it / contain it, and
/// the returned `aud` is then that audience. Without one, a string `aud` is returned as
/// is and anything else is ignored.
pub fn verify(ring: &KeyRing, policy: &VerifyPolicy, token: &[u8], now: u64) -> Result<PassClaims, Rejection> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(Rejection::TooLarge);
    }
    let mut parts = token.splitn(4, |&b| b == b'.');
    let (Some(header_seg), Some(payload_seg), Some(sig_seg), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Rejection::Malformed);
    };
    let message = token.get(..header_seg.len() + 1 + payload_seg.len()).ok_or(Rejection::Malformed)?;
    let signature = std::str::from_utf8(sig_seg).map_err(|_| Rejection::Malformed)?;

    // Header.
    if header_seg.len() > MAX_HEADER_SEGMENT {
        return Err(Rejection::TooLarge);
    }
    let mut header_buf = [0u8; MAX_HEADER_JSON];
    let header_json = b64_decode_into(header_seg, &mut header_buf)?;
    let header: RawHeader<'_> = serde_json::from_slice(header_json).map_err(|_| Rejection::Malformed)?;
    if header.crit.is_some() {
        return Err(Rejection::Malformed);
    }
    let alg = match header.alg.as_ref() {
        "HS256" => Algorithm::HS256,
        "EdDSA" => Algorithm::EdDSA,
        _ => return Err(Rejection::AlgorithmNotAllowed),
    };

    // Key selection and signature.
    match header.kid.as_deref() {
        Some(kid) => {
            let key = ring.keys.iter().find(|k| k.kid.as_deref() == Some(kid)).ok_or(Rejection::UnknownKid)?;
            if key.alg != alg {
                return Err(Rejection::AlgorithmNotAllowed);
            }
            if !check_signature(signature, message, key)? {
                return Err(Rejection::BadSignature);
            }
        }
        None => {
            let mut candidates = ring.keys.iter().filter(|k| k.alg == alg).peekable();
            if candidates.peek().is_none() {
                return Err(Rejection::AlgorithmNotAllowed);
            }
            let mut valid = false;
            for key in candidates {
                if check_signature(signature, message, key)? {
                    valid = true;
                    break;
                }
            }
            if !valid {
                return Err(Rejection::BadSignature);
            }
        }
    }

    // Claims (authentic from here on).
    let mut payload_buf = [0u8; MAX_PAYLOAD_JSON];
    let payload_json = b64_decode_into(payload_seg, &mut payload_buf)?;
    let raw: RawClaims = serde_json::from_slice(payload_json).map_err(|_| Rejection::Malformed)?;
    check_claims(raw, policy, now)
}

/// `Ok(true)` valid, `Ok(false)` not by this key, `Err` signature not base64url.
fn check_signature(signature: &str, message: &[u8], key: &RingKey) -> Result<bool, Rejection> {
    // The key was validated by the self-test, so an error can only come from decoding
    // the signature segment.
    jsonwebtoken::crypto::verify(signature, message, &key.decoding, key.alg).map_err(|_| Rejection::Malformed)
}

fn b64_decode_into<'b>(segment: &[u8], buf: &'b mut [u8]) -> Result<&'b [u8], Rejection> {
    let n = URL_SAFE_NO_PAD.decode_slice(segment, buf).map_err(|_| Rejection::Malformed)?;
    buf.get(..n).ok_or(Rejection::Malformed)
}

fn check_claims(raw: RawClaims, policy: &VerifyPolicy, now: u64) -> Result<PassClaims, Rejection> {
    let sub = into_string(raw.sub).filter(|s| s == SUBJECT).ok_or(Rejection::WrongSubject)?;
    let iss = into_string(raw.iss).filter(|s| *s == policy.issuer).ok_or(Rejection::WrongIssuer)?;
    let aud = match (&policy.audience, raw.aud) {
        (None, aud) => into_string(aud),
        (Some(want), Some(Value::String(got))) if got == *want => Some(got),
        (Some(want), Some(Value::Array(list))) if list.iter().any(|v| v.as_str() == Some(want.as_str())) => {
            Some(want.clone())
        }
        (Some(_), _) => return Err(Rejection::WrongAudience),
    };
    let exp = as_u64(raw.exp.as_ref()).ok_or(Rejection::MissingExpiry)?;
    if now > exp.saturating_add(policy.leeway_seconds) {
        return Err(Rejection::Expired);
    }
    let iat = as_u64(raw.iat.as_ref()).ok_or(Rejection::BadDuration)?;
    if iat > now.saturating_add(policy.leeway_seconds) {
        return Err(Rejection::IssuedInFuture);
    }
    let duration = as_u64(raw.duration.as_ref()).ok_or(Rejection::BadDuration)?;
    if exp.checked_sub(iat) != Some(duration) {
        return Err(Rejection::BadDuration);
    }
    if duration > policy.max_duration_seconds {
        return Err(Rejection::TooLong);
    }
    Ok(PassClaims { sub, tier: raw.tier, duration, iat, exp, payer: raw.payer, network: raw.network, iss, aud })
}

// ---------------------------------------------------------------------------------------------
// Cache of verified passes
// ---------------------------------------------------------------------------------------------

/// Ways per set of [`PassCache`].
const WAYS: usize = 4;

struct CacheEntry {
    /// The whole token: a hit must be this exact token, so a tampered copy of a
    /// cached pass (same signature, other claims) is verified, and refused.
    token: Box<[u8]>,
    claims: PassClaims,
}

/// Bounded per-worker cache of verified passes (SPEC §7 "Line rate").
///
/// Design: a fixed array of `capacity` slots, 4-way set-associative. The set comes
/// from the first characters of the token's signature segment (a MAC or signature:
/// nobody can steer it without a valid pass), and a hit compares the whole token.
/// Hashing the whole token with SHA-256 instead was 90 % of a cached request's
/// instructions. Every operation is O(1) (at most 4 comparisons), memory is bounded
/// per entry (tokens over [`MAX_TOKEN_LEN`] are never cached; ours are ~450 bytes),
/// and nothing needs OS randomness. Only verified tokens are inserted. When a set is
/// full, the entry that expires first (so an expired one, if any) makes room: a set
/// conflict can evict before the whole cache is full, which only costs a re-verify.
/// The comparison is not constant time: it reveals nothing usable without the token.
///
/// A cached pass is served without re-checking its signature, issuer, audience or
/// duration bound: build a new cache whenever the key ring or the policy changes
/// (`on_configure`). Expiry is re-checked on every hit.
pub struct PassCache {
    slots: Vec<Option<CacheEntry>>,
    len: usize,
}

impl fmt::Debug for PassCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PassCache").field("capacity", &self.slots.len()).field("len", &self.len).finish()
    }
}

/// Set selector of a token: the first 8 characters of its signature segment (48
/// bits of a MAC or signature), mixed so that every bit reaches the low bits a
/// modulo keeps.
fn selector(token: &[u8]) -> u64 {
    let start = token.iter().rposition(|&b| b == b'.').map_or(0, |dot| dot + 1);
    let mut bytes = [0u8; 8];
    for (out, b) in bytes.iter_mut().zip(token.iter().skip(start)) {
        *out = *b;
    }
    let mixed = u64::from_le_bytes(bytes).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    mixed ^ (mixed >> 29)
}

impl PassCache {
    /// A cache of at most `capacity` passes (at least 1).
    pub fn new(capacity: usize) -> Self {
        let mut slots = Vec::new();
        slots.resize_with(capacity.max(1), || None);
        PassCache { slots, len: 0 }
    }

    /// Claims of a cached pass still valid at `now` (`now <= exp + leeway`). An expired
    /// entry is removed and `None` returned: a cached pass still expires on time.
    pub fn get(&mut self, token: &[u8], now: u64, leeway: u64) -> Option<&PassClaims> {
        if token.len() > MAX_TOKEN_LEN {
            return None;
        }
        let index = self.find(token, now, leeway)?;
        self.claims_at(index)
    }

    /// Caches the claims of a verified token. Tokens over [`MAX_TOKEN_LEN`] are never
    /// cached. Only call this with the result of a successful [`verify`].
    pub fn insert(&mut self, token: &[u8], claims: PassClaims) {
        if token.len() > MAX_TOKEN_LEN {
            return;
        }
        let _ = self.insert_token(token, claims);
    }

    /// Number of cached passes (expired ones included until they are looked up or evicted).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Maximum number of cached passes.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Drops every entry (e.g. after the key ring changed).
    pub fn clear(&mut self) {
        self.slots.iter_mut().for_each(|s| *s = None);
        self.len = 0;
    }

    /// Slot range of the set a token maps to.
    fn set_range(&self, token: &[u8]) -> std::ops::Range<usize> {
        let hash = selector(token);
        let capacity = self.slots.len();
        let sets = capacity.div_ceil(WAYS).max(1);
        // `sets` fits in u64 and the remainder is below it, so both casts are lossless.
        let set = (hash % sets as u64) as usize;
        let start = set.saturating_mul(WAYS);
        start..start.saturating_add(WAYS).min(capacity)
    }

    /// Index of the live entry for `token`; removes it if it has expired.
    fn find(&mut self, token: &[u8], now: u64, leeway: u64) -> Option<usize> {
        let range = self.set_range(token);
        let start = range.start;
        let set = self.slots.get_mut(range)?;
        let way = set.iter().position(|s| s.as_ref().is_some_and(|e| *e.token == *token))?;
        let slot = set.get_mut(way)?;
        let exp = slot.as_ref().map(|e| e.claims.exp)?;
        if now > exp.saturating_add(leeway) {
            *slot = None;
            self.len = self.len.saturating_sub(1);
            return None;
        }
        Some(start + way)
    }

    fn claims_at(&self, index: usize) -> Option<&PassClaims> {
        self.slots.get(index).and_then(Option::as_ref).map(|e| &e.claims)
    }

    /// Stores the entry in its set: in place of the same token, else in a free slot,
    /// else in place of the entry that expires first.
    fn insert_token(&mut self, token: &[u8], claims: PassClaims) -> Option<&PassClaims> {
        let range = self.set_range(token);
        let set = self.slots.get_mut(range)?;
        let way = set
            .iter()
            .position(|s| s.as_ref().is_some_and(|e| *e.token == *token))
            .or_else(|| set.iter().position(Option::is_none))
            .or_else(|| {
                set.iter().enumerate().min_by_key(|(_, s)| s.as_ref().map_or(0, |e| e.claims.exp)).map(|(i, _)| i)
            })?;
        let slot = set.get_mut(way)?;
        if slot.is_none() {
            self.len += 1;
        }
        let entry = slot.insert(CacheEntry { token: token.into(), claims });
        Some(&entry.claims)
    }
}

/// [`PassCache::get`], else [`verify`] and cache the result. A repeat token costs a
/// byte comparison: no hashing, no signature check, no JSON parsing. Returns a reference into the cache
/// (the filter only reads the claims to set headers).
pub fn verify_cached<'c>(
    cache: &'c mut PassCache,
    ring: &KeyRing,
    policy: &VerifyPolicy,
    token: &[u8],
    now: u64,
) -> Result<&'c PassClaims, Rejection> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(Rejection::TooLarge);
    }
    if let Some(index) = cache.find(token, now, policy.leeway_seconds) {
        // `find` returned the index of a live entry, so `claims_at` is `Some`.
        return cache.claims_at(index).ok_or(Rejection::Malformed);
    }
    let claims = verify(ring, policy, token, now)?;
    // The cache has at least one slot, so insertion always finds one; `Malformed` is
    // only a type-level fallback.
    cache.insert_token(token, claims).ok_or(Rejection::Malformed)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    const VECTOR: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ4NDAyLWFjY2Vzcy1wYXNzIiwidGllciI6IjFoIiwiZHVyYXRpb24iOjM2MDAsImlhdCI6MTc2NzIyNTYwMCwiZXhwIjoxNzY3MjI5MjAwLCJwYXllciI6IkJKUHNQSFVUeXU4bjNNSmVtSDFqR1pyZzhhbXdzdmh1TXZQZUpzZmlyYUNCIiwibmV0d29yayI6InNvbGFuYTo1ZXlrdDRVc0Z2OFA4TkpkVFJFcFkxdnpxS3FaS3ZkcCIsImlzcyI6Ing0MDItYWNjZXNzLXBhc3MifQ.XkGUco-yWvnrOj7U6jOKCJBq_FDha0MBA7cR4eUrEOc";
    const IAT: u64 = 1_767_225_600;
    const EXP: u64 = 1_767_229_200;
    const SEED_A: [u8; 32] = [7; 32];
    const SEED_B: [u8; 32] = [9; 32];

    fn claims() -> PassClaims {
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

    fn policy() -> VerifyPolicy {
        VerifyPolicy {
            issuer: "x402-access-pass".to_string(),
            audience: None,
            leeway_seconds: 0,
            max_duration_seconds: 2_592_000,
        }
    }

    fn hs(kid: Option<&str>, secret: &[u8]) -> KeySpec {
        KeySpec { kid: kid.map(str::to_string), material: KeyMaterial::Hs256Secret(secret.to_vec()) }
    }

    fn ed_seed(kid: Option<&str>, seed: [u8; 32]) -> KeySpec {
        KeySpec { kid: kid.map(str::to_string), material: KeyMaterial::EdDsaSeed(seed) }
    }

    fn public_of(seed: [u8; 32]) -> [u8; 32] {
        *ed25519_compact::KeyPair::from_seed(ed25519_compact::Seed::new(seed)).pk
    }

    fn ed_pub(kid: Option<&str>, seed: [u8; 32]) -> KeySpec {
        KeySpec { kid: kid.map(str::to_string), material: KeyMaterial::EdDsaPublic(public_of(seed)) }
    }

    fn ring(keys: Vec<KeySpec>) -> KeyRing {
        KeyRing::new(keys).unwrap()
    }

    fn b64(s: &str) -> String {
        URL_SAFE_NO_PAD.encode(s)
    }

    /// A token with arbitrary header and claims JSON, HMAC'd with `secret`.
    fn hs_token(header: &str, payload: &str, secret: &[u8]) -> String {
        let input = format!("{}.{}", b64(header), b64(payload));
        let sig =
            jsonwebtoken::crypto::sign(input.as_bytes(), &EncodingKey::from_secret(secret), Algorithm::HS256).unwrap();
        format!("{input}.{sig}")
    }

    const HS_HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

    /// The vector's claims with `field` replaced by raw JSON `value` (or removed when None).
    fn payload_with(field: &str, value: Option<&str>) -> String {
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

    fn check(token: &str, now: u64) -> Result<PassClaims, Rejection> {
        verify(&ring(vec![hs(None, SECRET)]), &policy(), token.as_bytes(), now)
    }

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

    #[test]
    fn kid_selects_the_key_and_rotation_keeps_old_passes() {
        let old = ring(vec![hs(Some("2025"), SECRET)]);
        let old_token = sign(&old, &claims()).unwrap();
        let new_secret = b"fedcba9876543210fedcba9876543210";
        let rotated = ring(vec![hs(Some("2026"), new_secret), hs(Some("2025"), SECRET)]);
        let new_token = sign(&rotated, &claims()).unwrap();
        assert_eq!(rotated.signing_kid(), Some("2026"));
        assert_eq!(verify(&rotated, &policy(), old_token.as_bytes(), IAT), Ok(claims()));
        assert_eq!(verify(&rotated, &policy(), new_token.as_bytes(), IAT), Ok(claims()));
        // Unknown kid.
        assert_eq!(verify(&old, &policy(), new_token.as_bytes(), IAT), Err(Rejection::UnknownKid));
        // kid present but pointing at a key that did not sign: bad signature, no fallback.
        let t = hs_token(r#"{"alg":"HS256","typ":"JWT","kid":"2026"}"#, &payload_with("tier", Some("\"1h\"")), SECRET);
        assert_eq!(verify(&rotated, &policy(), t.as_bytes(), IAT), Err(Rejection::BadSignature));
        // No kid: every key of the alg is tried (reference tokens carry no kid).
        assert_eq!(verify(&rotated, &policy(), VECTOR.as_bytes(), IAT), Ok(claims()));
        // Mixed ring: EdDSA tokens without kid find the EdDSA key.
        let mixed = ring(vec![hs(None, new_secret), ed_pub(None, SEED_B), ed_pub(None, SEED_A)]);
        let ed_token = sign(&ring(vec![ed_seed(None, SEED_A)]), &claims()).unwrap();
        assert_eq!(verify(&mixed, &policy(), ed_token.as_bytes(), IAT), Ok(claims()));
        assert_eq!(verify(&mixed, &policy(), VECTOR.as_bytes(), IAT), Err(Rejection::BadSignature));
    }

    #[test]
    fn algorithm_rules() {
        let r = ring(vec![hs(None, SECRET)]);
        let p = serde_json::to_string(&claims()).unwrap();
        // alg none, with and without a signature.
        let none = format!("{}.{}.", b64(r#"{"alg":"none","typ":"JWT"}"#), b64(&p));
        assert_eq!(verify(&r, &policy(), none.as_bytes(), IAT), Err(Rejection::AlgorithmNotAllowed));
        for alg in ["none", "None", "HS384", "HS512", "RS256", "ES256", "eddsa", "hs256", ""] {
            let t = hs_token(&format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#), &p, SECRET);
            assert_eq!(verify(&r, &policy(), t.as_bytes(), IAT), Err(Rejection::AlgorithmNotAllowed), "{alg}");
        }
        let t = hs_token(r#"{"typ":"JWT"}"#, &p, SECRET);
        assert_eq!(verify(&r, &policy(), t.as_bytes(), IAT), Err(Rejection::Malformed));
        let t = hs_token(r#"{"alg":"HS256","crit":["exp"]}"#, &p, SECRET);
        assert_eq!(verify(&r, &policy(), t.as_bytes(), IAT), Err(Rejection::Malformed));
        let t = hs_token(r#"{"alg":"HS256","alg":"HS256"}"#, &p, SECRET);
        assert_eq!(verify(&r, &policy(), t.as_bytes(), IAT), Err(Rejection::Malformed));
        // No typ is fine.
        let t = hs_token(r#"{"alg":"HS256"}"#, &p, SECRET);
        assert_eq!(verify(&r, &policy(), t.as_bytes(), IAT), Ok(claims()));
    }

    #[test]
    fn no_hs_eddsa_confusion() {
        let pk = public_of(SEED_A);
        let p = serde_json::to_string(&claims()).unwrap();
        let ed_ring = ring(vec![ed_pub(Some("ed"), SEED_A)]);
        // HS256 token HMAC'd with the public key bytes as the secret.
        let forged = hs_token(HS_HEADER, &p, &pk);
        assert_eq!(verify(&ed_ring, &policy(), forged.as_bytes(), IAT), Err(Rejection::AlgorithmNotAllowed));
        let forged = hs_token(r#"{"alg":"HS256","typ":"JWT","kid":"ed"}"#, &p, &pk);
        assert_eq!(verify(&ed_ring, &policy(), forged.as_bytes(), IAT), Err(Rejection::AlgorithmNotAllowed));
        // Also with the base64url of the public key as the secret (a common "PEM-ish" confusion).
        let forged = hs_token(HS_HEADER, &p, URL_SAFE_NO_PAD.encode(pk).as_bytes());
        assert_eq!(verify(&ed_ring, &policy(), forged.as_bytes(), IAT), Err(Rejection::AlgorithmNotAllowed));
        // EdDSA token against an HS256-only ring, and against a kid naming an HS key.
        let ed_token = sign(&ring(vec![ed_seed(None, SEED_A)]), &claims()).unwrap();
        let hs_ring = ring(vec![hs(Some("hs"), SECRET)]);
        assert_eq!(verify(&hs_ring, &policy(), ed_token.as_bytes(), IAT), Err(Rejection::AlgorithmNotAllowed));
        let ed_token = sign(&ring(vec![ed_seed(Some("hs"), SEED_A)]), &claims()).unwrap();
        assert_eq!(verify(&hs_ring, &policy(), ed_token.as_bytes(), IAT), Err(Rejection::AlgorithmNotAllowed));
    }

    #[test]
    fn tampering_and_shape() {
        let (h, rest) = VECTOR.split_once('.').unwrap();
        let (pl, sig) = rest.split_once('.').unwrap();
        // Payload changed (tier 1h -> 1d), original signature.
        let mut c = claims();
        c.tier = "1d".to_string();
        let t = format!("{h}.{}.{sig}", b64(&serde_json::to_string(&c).unwrap()));
        assert_eq!(check(&t, IAT), Err(Rejection::BadSignature));
        // Signature changed in its first char / cut / emptied / extended.
        let flipped = format!("{h}.{pl}.Y{}", &sig[1..]);
        assert_eq!(check(&flipped, IAT), Err(Rejection::BadSignature));
        assert_eq!(check(&format!("{h}.{pl}.{}", &sig[..42]), IAT), Err(Rejection::Malformed));
        assert_eq!(check(&format!("{h}.{pl}.{}", &sig[..40]), IAT), Err(Rejection::BadSignature));
        assert_eq!(check(&format!("{h}.{pl}."), IAT), Err(Rejection::BadSignature));
        assert_eq!(check(&format!("{h}.{pl}.{sig}AAAA"), IAT), Err(Rejection::BadSignature));
        // Non-canonical last char (nonzero trailing bits) and padding.
        let last = sig.chars().last().unwrap();
        assert_eq!(last, 'c');
        assert_eq!(check(&format!("{h}.{pl}.{}d", &sig[..42]), IAT), Err(Rejection::Malformed));
        assert_eq!(check(&format!("{VECTOR}="), IAT), Err(Rejection::Malformed));
        // Segments.
        assert_eq!(check(&format!("{h}.{pl}"), IAT), Err(Rejection::Malformed));
        assert_eq!(check(&format!("{VECTOR}."), IAT), Err(Rejection::Malformed));
        assert_eq!(check(&format!("{VECTOR}.{sig}"), IAT), Err(Rejection::Malformed));
        assert_eq!(check(h, IAT), Err(Rejection::Malformed));
        assert_eq!(check("", IAT), Err(Rejection::Malformed));
        assert_eq!(check("..", IAT), Err(Rejection::Malformed));
        assert_eq!(check(&format!(".{pl}.{sig}"), IAT), Err(Rejection::Malformed));
        // Header not base64url / not JSON object.
        assert_eq!(check(&format!("{h}!.{pl}.{sig}"), IAT), Err(Rejection::Malformed));
        assert_eq!(check(&format!("{}.{pl}.{sig}", b64("[1]")), IAT), Err(Rejection::Malformed));
        // Payload valid b64 but not JSON, correctly signed.
        let t = hs_token(HS_HEADER, "not json", SECRET);
        assert_eq!(check(&t, IAT), Err(Rejection::Malformed));
        let t = hs_token(HS_HEADER, &payload_with("tier", Some("1")), SECRET);
        assert_eq!(check(&t, IAT), Err(Rejection::Malformed));
        let t = hs_token(HS_HEADER, &payload_with("payer", None), SECRET);
        assert_eq!(check(&t, IAT), Err(Rejection::Malformed));
        // Duplicate claim.
        let dup = payload_with("tier", Some("\"1h\"")).replacen('{', r#"{"exp":99999999999,"#, 1);
        let t = hs_token(HS_HEADER, &dup, SECRET);
        assert_eq!(check(&t, IAT), Err(Rejection::Malformed));
        // Size bounds.
        let big = "a".repeat(MAX_TOKEN_LEN + 1);
        assert_eq!(check(&big, IAT), Err(Rejection::TooLarge));
        let big_header = format!("{}.{pl}.{sig}", "a".repeat(MAX_HEADER_SEGMENT + 1));
        assert_eq!(check(&big_header, IAT), Err(Rejection::TooLarge));
        // Non-UTF-8 bytes.
        let r = ring(vec![hs(None, SECRET)]);
        let mut raw = VECTOR.as_bytes().to_vec();
        raw.push(0xff);
        assert_eq!(verify(&r, &policy(), &raw, IAT), Err(Rejection::Malformed));
    }

    #[test]
    fn claim_rules() {
        let t = |field: &str, value: Option<&str>| hs_token(HS_HEADER, &payload_with(field, value), SECRET);
        assert_eq!(check(&t("sub", Some("\"other\"")), IAT), Err(Rejection::WrongSubject));
        assert_eq!(check(&t("sub", None), IAT), Err(Rejection::WrongSubject));
        assert_eq!(check(&t("sub", Some("1")), IAT), Err(Rejection::WrongSubject));
        assert_eq!(check(&t("iss", Some("\"evil\"")), IAT), Err(Rejection::WrongIssuer));
        assert_eq!(check(&t("iss", None), IAT), Err(Rejection::WrongIssuer));
        for bad in [
            None,
            Some("\"1767229200\""),
            Some("1767229200.0"),
            Some("1.7672292e9"),
            Some("-1"),
            Some("18446744073709551616"),
            Some("null"),
            Some("[1767229200]"),
        ] {
            assert_eq!(check(&t("exp", bad), IAT), Err(Rejection::MissingExpiry), "{bad:?}");
        }
        for bad in [None, Some("\"1767225600\""), Some("1767225600.5"), Some("-5")] {
            assert_eq!(check(&t("iat", bad), IAT), Err(Rejection::BadDuration), "iat {bad:?}");
            assert_eq!(check(&t("duration", bad), IAT), Err(Rejection::BadDuration), "duration {bad:?}");
        }
        assert_eq!(check(&t("duration", Some("3599")), IAT), Err(Rejection::BadDuration));
        // exp before iat.
        let mut c = claims();
        c.iat = EXP + 1;
        c.duration = 0;
        let r = ring(vec![hs(None, SECRET)]);
        let tok = sign(&r, &c).unwrap();
        assert_eq!(verify(&r, &policy(), tok.as_bytes(), EXP + 1), Err(Rejection::Expired));
        let mut p = policy();
        p.leeway_seconds = 10;
        assert_eq!(verify(&r, &p, tok.as_bytes(), EXP + 1), Err(Rejection::BadDuration));
        // u64::MAX exp: no overflow with leeway.
        let mut c = claims();
        c.exp = u64::MAX;
        c.duration = u64::MAX - IAT;
        let tok = sign(&r, &c).unwrap();
        p.max_duration_seconds = u64::MAX;
        assert_eq!(verify(&r, &p, tok.as_bytes(), u64::MAX), Ok(c));
    }

    #[test]
    fn time_rules() {
        // Exactly at exp is still valid; one second after is not.
        assert!(check(VECTOR, EXP).is_ok());
        assert_eq!(check(VECTOR, EXP + 1), Err(Rejection::Expired));
        assert_eq!(check(VECTOR, u64::MAX), Err(Rejection::Expired));
        let r = ring(vec![hs(None, SECRET)]);
        let mut p = policy();
        p.leeway_seconds = 30;
        assert!(verify(&r, &p, VECTOR.as_bytes(), EXP + 30).is_ok());
        assert_eq!(verify(&r, &p, VECTOR.as_bytes(), EXP + 31), Err(Rejection::Expired));
        // iat in the future.
        assert_eq!(check(VECTOR, IAT - 1), Err(Rejection::IssuedInFuture));
        assert!(verify(&r, &p, VECTOR.as_bytes(), IAT - 30).is_ok());
        assert_eq!(verify(&r, &p, VECTOR.as_bytes(), IAT - 31), Err(Rejection::IssuedInFuture));
        assert_eq!(check(VECTOR, 0), Err(Rejection::IssuedInFuture));
        // Duration bound.
        p.max_duration_seconds = 3600;
        assert!(verify(&r, &p, VECTOR.as_bytes(), IAT).is_ok());
        p.max_duration_seconds = 3599;
        assert_eq!(verify(&r, &p, VECTOR.as_bytes(), IAT), Err(Rejection::TooLong));
    }

    #[test]
    fn bearer_parsing() {
        assert_eq!(bearer_token(b"Bearer abc"), Some(&b"abc"[..]));
        assert_eq!(bearer_token(b"bearer abc"), Some(&b"abc"[..]));
        assert_eq!(bearer_token(b"BEARER abc"), Some(&b"abc"[..]));
        assert_eq!(bearer_token(b"BeArEr    abc"), Some(&b"abc"[..]));
        assert_eq!(bearer_token(b"Bearer\tabc"), Some(&b"abc"[..]));
        assert_eq!(bearer_token(b"Bearer \t abc \t "), Some(&b"abc"[..]));
        assert_eq!(bearer_token(b"  Bearer abc"), Some(&b"abc"[..]));
        assert_eq!(bearer_token(b"Bearer"), None);
        assert_eq!(bearer_token(b"Bearer "), None);
        assert_eq!(bearer_token(b"Bearer   \t "), None);
        assert_eq!(bearer_token(b"Bearerabc"), None);
        assert_eq!(bearer_token(b"Basic abc"), None);
        assert_eq!(bearer_token(b"Bear abc"), None);
        assert_eq!(bearer_token(b""), None);
        assert_eq!(bearer_token(b"Bearer \xff\xfe"), Some(&b"\xff\xfe"[..]));
        assert_eq!(bearer_token(b"B\xc3\xa9arer abc"), None);
        assert_eq!(bearer_token("Béarer abc".as_bytes()), None);
        let header = format!("Bearer {VECTOR}");
        assert_eq!(check_bytes(bearer_token(header.as_bytes()).unwrap()), Ok(claims()));
    }

    fn check_bytes(token: &[u8]) -> Result<PassClaims, Rejection> {
        verify(&ring(vec![hs(None, SECRET)]), &policy(), token, IAT)
    }

    #[test]
    fn rejection_labels() {
        let labels: Vec<&str> = Rejection::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(labels[4], "bad_signature");
        for l in &labels {
            assert!(l.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "{l}");
        }
        let mut unique = labels.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), labels.len());
    }

    /// xorshift64*: deterministic noise for the no-panic tests.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
    }

    #[test]
    fn never_panics() {
        let ed = ring(vec![hs(Some("h"), SECRET), hs(None, SECRET), ed_pub(None, SEED_A), ed_seed(Some("e"), SEED_B)]);
        let ed_token = sign(&ring(vec![ed_seed(None, SEED_A)]), &claims()).unwrap();
        let mut p = policy();
        p.audience = Some("a".to_string());
        let mut cache = PassCache::new(8);
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.";
        for _ in 0..3000 {
            let len = (rng.next() % 600) as usize;
            let raw: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            let b64ish: Vec<u8> = (0..len).map(|_| alphabet[(rng.next() % 65) as usize]).collect();
            for t in [&raw, &b64ish] {
                let _ = verify(&ed, &p, t, IAT);
                let _ = verify_cached(&mut cache, &ed, &policy(), t, IAT);
                let _ = bearer_token(t);
            }
        }
        for tok in [VECTOR, ed_token.as_str()] {
            let bytes = tok.as_bytes();
            for cut in 0..=bytes.len() {
                let _ = verify(&ed, &policy(), &bytes[..cut], IAT);
                let _ = verify(&ed, &policy(), &bytes[cut..], IAT);
            }
            for i in 0..bytes.len() {
                let mut m = bytes.to_vec();
                m[i] ^= 1 << (rng.next() % 8);
                let r = verify(&ed, &policy(), &m, IAT);
                assert!(r.is_err() || m == bytes, "flip at {i} accepted");
            }
        }
        // Deeply nested JSON in a signed payload never overflows the stack: an unknown
        // member is skipped iteratively, a claim parsed as a Value hits serde_json's
        // recursion limit.
        let deep = format!("{}{}", "[".repeat(1200), "]".repeat(1200));
        let unknown = payload_with("tier", Some("\"1h\"")).replacen('{', &format!(r#"{{"x":{deep},"#), 1);
        let t = hs_token(HS_HEADER, &unknown, SECRET);
        assert!(t.len() <= MAX_TOKEN_LEN);
        assert_eq!(check(&t, IAT), Ok(claims()));
        let in_aud = payload_with("tier", Some("\"1h\"")).replacen('{', &format!(r#"{{"aud":{deep},"#), 1);
        let t = hs_token(HS_HEADER, &in_aud, SECRET);
        assert_eq!(check(&t, IAT), Err(Rejection::Malformed));
        let t = format!("{}.e30.AAAA", b64(&format!(r#"{{"alg":"HS256","x":{}}}"#, &deep[..1000])));
        assert_eq!(check(&t, IAT), Err(Rejection::TooLarge));
    }

    #[test]
    fn sign_refuses_oversized_tokens() {
        let r = ring(vec![hs(None, SECRET)]);
        let mut c = claims();
        c.tier = "x".repeat(MAX_TOKEN_LEN);
        assert_eq!(sign(&r, &c), Err(SignError::TooLarge));
    }

    #[test]
    fn cache_hit_skips_crypto() {
        let r = ring(vec![hs(None, SECRET)]);
        let mut cache = PassCache::new(16);
        assert!(cache.get(VECTOR.as_bytes(), IAT, 0).is_none());
        assert_eq!(verify_cached(&mut cache, &r, &policy(), VECTOR.as_bytes(), IAT), Ok(&claims()));
        assert_eq!(cache.len(), 1);
        // A ring that could not verify the token: the hit never reaches crypto.
        let other = ring(vec![hs(None, b"fedcba9876543210fedcba9876543210")]);
        assert_eq!(verify_cached(&mut cache, &other, &policy(), VECTOR.as_bytes(), IAT + 5), Ok(&claims()));
        assert_eq!(cache.get(VECTOR.as_bytes(), IAT, 0), Some(&claims()));
        assert_eq!(cache.len(), 1);
        // Rejections are not cached; a different token is a miss.
        let tampered = VECTOR.replacen(".XkG", ".XkH", 1);
        assert_eq!(verify_cached(&mut cache, &r, &policy(), tampered.as_bytes(), IAT), Err(Rejection::BadSignature));
        assert_eq!(cache.len(), 1);
        assert_eq!(verify_cached(&mut cache, &r, &policy(), &[b'a'; MAX_TOKEN_LEN + 1], IAT), Err(Rejection::TooLarge));
        // Eddsa too.
        let ed = ring(vec![ed_seed(None, SEED_A)]);
        let t = sign(&ed, &claims()).unwrap();
        assert_eq!(verify_cached(&mut cache, &ed, &policy(), t.as_bytes(), IAT), Ok(&claims()));
        assert_eq!(cache.len(), 2);
        cache.clear();
        assert!(cache.is_empty());
    }

    #[test]
    fn cache_expires_on_time() {
        let r = ring(vec![hs(None, SECRET)]);
        let mut cache = PassCache::new(4);
        verify_cached(&mut cache, &r, &policy(), VECTOR.as_bytes(), IAT).unwrap();
        assert!(cache.get(VECTOR.as_bytes(), EXP, 0).is_some());
        assert!(cache.get(VECTOR.as_bytes(), EXP + 1, 5).is_some());
        assert_eq!(verify_cached(&mut cache, &r, &policy(), VECTOR.as_bytes(), EXP), Ok(&claims()));
        // Past exp: rejected even though it is cached, and the entry is gone.
        assert_eq!(verify_cached(&mut cache, &r, &policy(), VECTOR.as_bytes(), EXP + 1), Err(Rejection::Expired));
        assert_eq!(cache.len(), 0);
        cache.insert(VECTOR.as_bytes(), claims());
        assert_eq!(cache.len(), 1);
        assert!(cache.get(VECTOR.as_bytes(), EXP + 1, 0).is_none());
        assert_eq!(cache.len(), 0);
        // Oversized tokens are never cached.
        cache.insert(&[b'a'; MAX_TOKEN_LEN + 1], claims());
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn a_tampered_copy_of_a_cached_pass_is_not_served_from_the_cache() {
        let ring =
            KeyRing::new(vec![KeySpec { kid: None, material: KeyMaterial::Hs256Secret(SECRET.to_vec()) }]).unwrap();
        let policy = VerifyPolicy {
            issuer: "x402-access-pass".into(),
            audience: None,
            leeway_seconds: 0,
            max_duration_seconds: 86_400,
        };
        let mut cache = PassCache::new(64);
        assert_eq!(verify_cached(&mut cache, &ring, &policy, VECTOR.as_bytes(), IAT).unwrap().tier, "1h");
        // Same header and signature, other claims: a cache keyed by the signature alone
        // would serve it; it must be verified, and refused.
        let mut parts: Vec<&str> = VECTOR.split('.').collect();
        let mut tampered_claims = claims();
        tampered_claims.tier = "24h".into();
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&tampered_claims).unwrap());
        parts[1] = &payload;
        let tampered = parts.join(".");
        assert_eq!(verify_cached(&mut cache, &ring, &policy, tampered.as_bytes(), IAT), Err(Rejection::BadSignature));
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn cache_is_bounded() {
        for capacity in [0usize, 1, 3, 4, 5, 64] {
            let mut cache = PassCache::new(capacity);
            assert_eq!(cache.capacity(), capacity.max(1));
            for i in 0..500u64 {
                let mut c = claims();
                c.exp = EXP + i;
                // Signatures look random; vary the leading characters like they do.
                let token = format!("header.payload.{:08x}-{i}", i.wrapping_mul(2_654_435_761) as u32);
                cache.insert(token.as_bytes(), c.clone());
                assert!(cache.len() <= cache.capacity());
                // The latest insert is always retrievable.
                assert_eq!(cache.get(token.as_bytes(), IAT, 0), Some(&c));
            }
            // Filled up (500 inserts into at most 64 slots, uniform sets).
            assert_eq!(cache.len(), cache.capacity(), "capacity {capacity}");
            // Re-inserting the same token does not grow it.
            let before = cache.len();
            let last = format!("header.payload.{:08x}-499", 499u64.wrapping_mul(2_654_435_761) as u32);
            cache.insert(last.as_bytes(), claims());
            assert_eq!(cache.len(), before);
        }
        // Within a full set, the entry expiring first (an expired one) is evicted first.
        let mut cache = PassCache::new(4); // a single set
        for (i, exp) in [(0, EXP), (1, IAT), (2, EXP), (3, EXP)] {
            let mut c = claims();
            c.exp = exp;
            cache.insert(format!("h.p.t{i}").as_bytes(), c);
        }
        cache.insert(b"h.p.t4", claims());
        assert_eq!(cache.len(), 4);
        assert!(cache.get(b"h.p.t1", IAT, 0).is_none());
        for t in ["h.p.t0", "h.p.t2", "h.p.t3", "h.p.t4"] {
            assert!(cache.get(t.as_bytes(), IAT, 0).is_some(), "{t}");
        }
    }
}

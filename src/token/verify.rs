//! Checking a presented pass.

use std::borrow::Cow;
use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::Algorithm;
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::Value;

use super::claims::{PassClaims, MAX_TOKEN_LEN, SUBJECT};
use super::keys::{KeyRing, RingKey};

/// Longest base64url header segment accepted (our headers are ~40 characters, or
/// ~390 with a 256-byte `kid`).
const MAX_HEADER_SEGMENT: usize = 1024;
/// Decoded header bound: 3/4 of [`MAX_HEADER_SEGMENT`].
const MAX_HEADER_JSON: usize = MAX_HEADER_SEGMENT / 4 * 3;
/// Decoded payload bound: a payload segment is shorter than [`MAX_TOKEN_LEN`].
const MAX_PAYLOAD_JSON: usize = MAX_TOKEN_LEN / 4 * 3;

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

/// Checks a token against every rule of docs/behaviour.md §7 and returns its claims.
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
            let key = ring.keys().iter().find(|k| k.kid.as_deref() == Some(kid)).ok_or(Rejection::UnknownKid)?;
            if key.alg != alg {
                return Err(Rejection::AlgorithmNotAllowed);
            }
            if !check_signature(signature, message, key)? {
                return Err(Rejection::BadSignature);
            }
        }
        None => {
            let mut candidates = ring.keys().iter().filter(|k| k.alg == alg).peekable();
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::token::testkit::*;
    use crate::token::{bearer_token, sign, verify_cached, PassCache};

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
}

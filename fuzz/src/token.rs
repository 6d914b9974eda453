//! Pass verification with a fixed key ring: an EdDSA key (`kid` `ed1`), an HS256
//! key (`kid` `hs1`) and a kid-less HS256 secret; audience `fuzz-api`, leeway 5 s,
//! passes of at most 30 days.
//!
//! Two kinds of input:
//! * `S<k><header JSON>\0<claims JSON>`: the harness signs header and claims
//!   itself, so the fuzzer explores everything after the signature check.
//!   `k % 5` picks the signature: 0 the EdDSA key, 1 the `hs1` secret, 2 the
//!   kid-less secret, 3 HMAC keyed with the EdDSA *public* key (the classic
//!   algorithm-confusion forgery), 4 a secret the ring does not hold.
//!   Kinds 3 and 4 MUST never verify.
//! * anything else: an `Authorization` value (`token::bearer_token`), and the
//!   same bytes as a bare token.
//!
//! Whatever verifies satisfies every rule of docs/behaviour.md §7 at the fixed clock, and
//! the cached path answers exactly what `verify` answers.

use std::sync::OnceLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey};
use x402_access_pass::config::Config;
use x402_access_pass::token::{self, PassCache, PassClaims, Rejection, ED25519_PKCS8_PREFIX, SUBJECT};

use crate::{fixed_config, ED_SEED, NOW, SECRET_A, SECRET_B};

pub const AUDIENCE: &str = "fuzz-api";
pub const LEEWAY: u64 = 5;
const FOREIGN_SECRET: &str = "not-a-key-of-the-ring-0123456789abcdef";

pub fn config_json() -> String {
    format!(
        r#"{{"payTo": "GRzLBcpDz3XkKQ1y2dmbezuXYRTUJ3vNueDNkma32unv",
  "network": "solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1",
  "tiers": {{"5m": "0.05", "1h": "0.50", "24h": "2.00"}}, "ratePerHour": "0.50",
  "keys": [{{"kid": "ed1", "alg": "EdDSA", "privateKeyEnv": "PASS_KEY"}},
           {{"kid": "hs1", "alg": "HS256", "secret": "{SECRET_A}"}}],
  "secret": "{SECRET_B}", "audience": "{AUDIENCE}", "leewaySeconds": {LEEWAY}}}"#
    )
}

pub fn config() -> &'static Config {
    static CONFIG_CELL: OnceLock<Config> = OnceLock::new();
    CONFIG_CELL.get_or_init(|| fixed_config(&config_json()))
}

pub fn run(data: &[u8]) {
    let config = config();
    match data {
        [b'S', kind, rest @ ..] => {
            let (header, claims) = match rest.iter().position(|&b| b == 0) {
                Some(i) => (&rest[..i], &rest[i + 1..]),
                None => (&br#"{"alg":"HS256","typ":"JWT","kid":"hs1"}"#[..], rest),
            };
            let kind = kind % 5;
            let token = signed(kind, header, claims);
            let result = check(config, &token);
            if kind >= 3 {
                assert!(result.is_err(), "a forgery of kind {kind} verified: {}", String::from_utf8_lossy(&token));
            }
        }
        _ => {
            if let Some(bearer) = token::bearer_token(data) {
                assert!(!bearer.is_empty());
                assert!(data.windows(bearer.len()).any(|w| w == bearer));
                let _ = check(config, bearer);
            }
            let _ = check(config, data);
        }
    }
}

/// `verify`, `verify_cached` twice (a miss, then a hit): the same answer, and
/// claims that satisfy the policy.
fn check(config: &Config, token: &[u8]) -> Result<PassClaims, Rejection> {
    let result = token::verify(&config.keys, &config.verify_policy, token, NOW);
    let mut cache = PassCache::new(4);
    for _ in 0..2 {
        let cached = token::verify_cached(&mut cache, &config.keys, &config.verify_policy, token, NOW).cloned();
        assert_eq!(cached, result, "the cache answers differently from verify");
    }
    if let Ok(claims) = &result {
        let policy = &config.verify_policy;
        assert!(token.len() <= token::MAX_TOKEN_LEN);
        assert_eq!(claims.sub, SUBJECT);
        assert_eq!(claims.iss, policy.issuer);
        assert_eq!(claims.aud.as_deref(), Some(AUDIENCE));
        assert!(NOW <= claims.exp.saturating_add(policy.leeway_seconds), "expired pass accepted: {claims:?}");
        assert!(claims.iat <= NOW + policy.leeway_seconds, "pass from the future accepted: {claims:?}");
        assert_eq!(claims.exp.checked_sub(claims.iat), Some(claims.duration), "{claims:?}");
        assert!(claims.duration <= policy.max_duration_seconds, "overlong pass accepted: {claims:?}");
        // A pass that verifies still verifies later in its window and never after it.
        let last = claims.exp.saturating_add(policy.leeway_seconds);
        assert_eq!(token::verify(&config.keys, policy, token, last).as_ref(), Ok(claims));
        if let Some(after) = claims.exp.checked_add(policy.leeway_seconds + 1) {
            assert_eq!(token::verify(&config.keys, policy, token, after), Err(Rejection::Expired));
        }
    }
    result
}

/// `b64url(header).b64url(claims).signature`, signed as `kind` says.
pub fn signed(kind: u8, header: &[u8], claims: &[u8]) -> Vec<u8> {
    let mut token = URL_SAFE_NO_PAD.encode(header);
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(claims));
    let (key, alg) = match kind {
        0 => {
            let der = [&ED25519_PKCS8_PREFIX[..], &ED_SEED[..]].concat();
            (EncodingKey::from_ed_der(&der), Algorithm::EdDSA)
        }
        1 => (EncodingKey::from_secret(SECRET_A.as_bytes()), Algorithm::HS256),
        2 => (EncodingKey::from_secret(SECRET_B.as_bytes()), Algorithm::HS256),
        3 => {
            let pair = ed25519_compact::KeyPair::from_seed(ed25519_compact::Seed::new(ED_SEED));
            (EncodingKey::from_secret(&pair.pk[..]), Algorithm::HS256)
        }
        _ => (EncodingKey::from_secret(FOREIGN_SECRET.as_bytes()), Algorithm::HS256),
    };
    // The filter's backend: it is installed by the first key ring, which may come after this.
    x402_access_pass::jwt_crypto::install();
    let signature = jsonwebtoken::crypto::sign(token.as_bytes(), &key, alg).expect("the harness keys sign");
    token.push('.');
    token.push_str(&signature);
    token.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(iat: u64, duration: u64) -> String {
        format!(
            r#"{{"sub":"x402-access-pass","tier":"1h","duration":{duration},"iat":{iat},"exp":{},"payer":"P","network":"n","iss":"x402-access-pass","aud":"{AUDIENCE}"}}"#,
            iat + duration
        )
    }

    #[test]
    fn each_ring_key_verifies_its_own_passes_and_forgeries_never_do() {
        let c = claims(NOW - 60, 3_600);
        let cases: [(u8, &str, bool); 7] = [
            (0, r#"{"alg":"EdDSA","typ":"JWT","kid":"ed1"}"#, true),
            (1, r#"{"alg":"HS256","typ":"JWT","kid":"hs1"}"#, true),
            (1, r#"{"alg":"HS256","typ":"JWT"}"#, true),
            (2, r#"{"alg":"HS256","typ":"JWT"}"#, true),
            (2, r#"{"alg":"HS256","typ":"JWT","kid":"hs1"}"#, false),
            (3, r#"{"alg":"HS256","typ":"JWT","kid":"ed1"}"#, false),
            (4, r#"{"alg":"HS256","typ":"JWT"}"#, false),
        ];
        for (kind, header, ok) in cases {
            let token = signed(kind, header.as_bytes(), c.as_bytes());
            assert_eq!(check(config(), &token).is_ok(), ok, "kind {kind} header {header}");
            let mut input = vec![b'S', kind];
            input.extend_from_slice(header.as_bytes());
            input.push(0);
            input.extend_from_slice(c.as_bytes());
            run(&input);
        }
    }
}

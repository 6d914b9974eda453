//! The order of decisions for one request (docs/behaviour.md §3), host-agnostic: the
//! proxy-wasm layer supplies the headers, this decides what happens.

use crate::config::{Claim, Config};
use crate::payment::Wire;
use crate::token::{self, PassCache, PassClaims, Rejection};

/// Request headers as raw bytes, read lazily: the hot path (a valid pass)
/// reads only `:method` and `authorization`.
pub trait RequestHeaders {
    fn header(&self, name: &str) -> Option<Vec<u8>>;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision<'a> {
    /// Not protected, or bypassed: continue untouched.
    Untouched,
    /// A CORS preflight: answer 204.
    Preflight,
    /// A valid pass: forward with these headers set (and `authorization`
    /// removed unless configured otherwise).
    Forward { claim_headers: Vec<(&'a str, String)> },
    /// A payment to process, in the header (and x402 version) `wire`; `rejected` says why a token
    /// that came with it failed.
    Purchase { payment: Vec<u8>, wire: Wire, rejected: Option<Rejection> },
    /// Neither a valid pass nor a payment: the 402 challenge.
    Challenge { rejected: Option<Rejection> },
}

pub fn decide<'a>(
    config: &'a Config,
    cache: &mut PassCache,
    now: u64,
    path: &[u8],
    headers: &dyn RequestHeaders,
) -> Decision<'a> {
    if !config.applies_to(path) {
        return Decision::Untouched;
    }
    if headers.header(":method").as_deref() == Some(b"OPTIONS")
        && headers.header("access-control-request-method").is_some()
    {
        return Decision::Preflight;
    }
    let mut rejected = None;
    if let Some(authorization) = headers.header("authorization") {
        match token::bearer_token(&authorization) {
            Some(bearer) => match token::verify_cached(cache, &config.keys, &config.verify_policy, bearer, now) {
                // The token wins even when a payment is also present: nobody pays twice.
                Ok(claims) => return Decision::Forward { claim_headers: claim_headers(config, claims) },
                Err(rejection) => rejected = Some(rejection),
            },
            None => rejected = Some(Rejection::NotBearer),
        }
    }
    // `PAYMENT-SIGNATURE` (x402 v2) wins over `X-PAYMENT` (v1) when a request carries both: only
    // it is processed, and the other is never charged (docs/behaviour.md §20).
    for wire in [Wire::V2, Wire::V1] {
        if let Some(payment) = headers.header(wire.request_header()) {
            return Decision::Purchase { payment, wire, rejected };
        }
    }
    Decision::Challenge { rejected }
}

/// The `claimHeaders` values for a pass; the client's own copies are replaced. Names are
/// borrowed from the configuration.
pub fn claim_headers<'a>(config: &'a Config, claims: &PassClaims) -> Vec<(&'a str, String)> {
    config
        .claim_headers
        .iter()
        .map(|(name, claim)| {
            let value = match claim {
                Claim::Tier => claims.tier.clone(),
                Claim::Payer => claims.payer.clone(),
                Claim::Expires => claims.exp.to_string(),
                Claim::IssuedAt => claims.iat.to_string(),
                Claim::Duration => claims.duration.to_string(),
                Claim::Network => claims.network.clone(),
                Claim::Issuer => claims.iss.clone(),
                Claim::Subject => claims.sub.clone(),
            };
            (name.as_str(), value)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const SECRET: &str = "unit-test-secret-0123456789abcdef0123";

    struct Headers(HashMap<&'static str, Vec<u8>>);
    impl RequestHeaders for Headers {
        fn header(&self, name: &str) -> Option<Vec<u8>> {
            self.0.get(name).cloned()
        }
    }

    fn headers(pairs: &[(&'static str, &[u8])]) -> Headers {
        Headers(pairs.iter().map(|(k, v)| (*k, v.to_vec())).collect())
    }

    fn config() -> Config {
        let json = serde_json::json!({
            "payTo": "GRzLBcpDz3XkKQ1y2dmbezuXYRTUJ3vNueDNkma32unv", "secret": SECRET,
            "tiers": {"1h": "0.50"}, "protect": [{"prefix": "/api/"}], "bypass": [{"prefix": "/api/public/"}],
        });
        Config::parse(json.to_string().as_bytes(), &|_| None).unwrap()
    }

    fn valid_token(c: &Config, now: u64) -> String {
        let claims = PassClaims {
            sub: token::SUBJECT.into(),
            tier: "1h".into(),
            duration: 3_600,
            iat: now,
            exp: now + 3_600,
            payer: "Buyer".into(),
            network: c.network.clone(),
            iss: c.issuer.clone(),
            aud: None,
        };
        token::sign(&c.keys, &claims).unwrap()
    }

    fn run<'a>(c: &'a Config, path: &str, h: &Headers) -> Decision<'a> {
        decide(c, &mut PassCache::new(16), 1_000, path.as_bytes(), h)
    }

    #[test]
    fn unprotected_and_bypassed_paths_are_untouched() {
        let c = config();
        assert_eq!(run(&c, "/health", &headers(&[])), Decision::Untouched);
        assert_eq!(run(&c, "/api/public/x", &headers(&[])), Decision::Untouched);
    }

    #[test]
    fn a_preflight_is_never_a_challenge() {
        let c = config();
        let h = headers(&[(":method", b"OPTIONS"), ("access-control-request-method", b"GET")]);
        assert_eq!(run(&c, "/api/data", &h), Decision::Preflight);
        // a plain OPTIONS is an ordinary request
        let h = headers(&[(":method", b"OPTIONS")]);
        assert_eq!(run(&c, "/api/data", &h), Decision::Challenge { rejected: None });
    }

    #[test]
    fn a_valid_pass_wins_even_over_a_payment() {
        let c = config();
        let auth = format!("Bearer {}", valid_token(&c, 1_000));
        let h = headers(&[(":method", b"GET"), ("authorization", auth.as_bytes()), ("payment-signature", b"x")]);
        let Decision::Forward { claim_headers } = run(&c, "/api/data", &h) else { panic!("not forwarded") };
        assert_eq!(
            claim_headers,
            vec![
                ("x-access-pass-tier", "1h".to_owned()),
                ("x-access-pass-payer", "Buyer".to_owned()),
                ("x-access-pass-expires", "4600".to_owned()),
                ("x-access-pass-network", c.network.clone()),
            ]
        );
    }

    #[test]
    fn a_bad_token_falls_through_to_payment_or_challenge() {
        let c = config();
        let h = headers(&[(":method", b"GET"), ("authorization", b"Bearer a.b.c"), ("payment-signature", b"x")]);
        assert!(matches!(run(&c, "/api/data", &h), Decision::Purchase { wire: Wire::V2, rejected: Some(_), .. }));
        let h = headers(&[(":method", b"GET"), ("authorization", b"Basic Zm9vOmJhcg==")]);
        assert_eq!(run(&c, "/api/data", &h), Decision::Challenge { rejected: Some(Rejection::NotBearer) });
        let h = headers(&[(":method", b"GET"), ("authorization", b"Bearer \xff\xfe")]);
        assert!(matches!(run(&c, "/api/data", &h), Decision::Challenge { rejected: Some(_) }));
    }

    #[test]
    fn a_v1_payment_in_x_payment_is_a_purchase_and_payment_signature_wins_over_it() {
        let c = config();
        let h = headers(&[(":method", b"GET"), ("x-payment", b"v1")]);
        assert_eq!(
            run(&c, "/api/data", &h),
            Decision::Purchase { payment: b"v1".to_vec(), wire: Wire::V1, rejected: None }
        );
        let h = headers(&[(":method", b"GET"), ("x-payment", b"v1"), ("payment-signature", b"v2")]);
        assert_eq!(
            run(&c, "/api/data", &h),
            Decision::Purchase { payment: b"v2".to_vec(), wire: Wire::V2, rejected: None }
        );
        // A valid pass still wins over a v1 payment: nobody pays twice.
        let auth = format!("Bearer {}", valid_token(&c, 1_000));
        let h = headers(&[(":method", b"GET"), ("authorization", auth.as_bytes()), ("x-payment", b"v1")]);
        assert!(matches!(run(&c, "/api/data", &h), Decision::Forward { .. }));
    }
}

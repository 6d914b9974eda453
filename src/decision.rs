//! The order of decisions for one request (docs/behaviour.md §3 and §16.4), host-agnostic:
//! the proxy-wasm layer supplies the headers, this decides what happens. A valid Bearer pass;
//! else a verified `SIGN-IN-WITH-X` whose payer holds an entitlement; else a payment; else the
//! challenge.

use crate::config::{Claim, Config};
use crate::entitlements::Entitlement;
use crate::payment::Wire;
use crate::response::Response;
use crate::siwx::{self, SignerKeys};
use crate::token::{self, PassCache, PassClaims, Rejection};

/// Request headers as raw bytes (the filter reads them from Envoy in one host call,
/// `header_map::HeaderMap`). The hot path (a valid pass) looks up only `:method` and
/// `authorization`.
pub trait RequestHeaders {
    fn header(&self, name: &str) -> Option<&[u8]>;
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
    /// A `SIGN-IN-WITH-X` came without a valid pass (docs/behaviour.md §16): `Ok(payer)` when it
    /// verified, and the request is forwarded if the ledger holds an entitlement for that payer
    /// ([`honour`]); else why not. When it is not honoured, `otherwise` (a purchase or the
    /// challenge) follows, as if the header had not come.
    SignIn { outcome: Result<String, siwx::Reason>, otherwise: Box<Decision<'a>> },
}

/// `now_ms`: the clock in milliseconds (a signed-in message is timed to the millisecond);
/// `cache` and `signers`: the worker's verified passes and decoded signer keys.
pub fn decide<'a>(
    config: &'a Config,
    cache: &mut PassCache,
    signers: &mut SignerKeys,
    now_ms: u64,
    path: &[u8],
    headers: &dyn RequestHeaders,
) -> Decision<'a> {
    let now = now_ms / 1_000;
    if !config.applies_to(path) {
        return Decision::Untouched;
    }
    if headers.header(":method") == Some(b"OPTIONS") && headers.header("access-control-request-method").is_some() {
        return Decision::Preflight;
    }
    let mut rejected = None;
    if let Some(authorization) = headers.header("authorization") {
        match token::bearer_token(authorization) {
            Some(bearer) => match token::verify_cached(cache, &config.keys, &config.verify_policy, bearer, now) {
                // The token wins even when a payment is also present: nobody pays twice.
                Ok(claims) => return Decision::Forward { claim_headers: claim_headers(config, claims) },
                Err(rejection) => rejected = Some(rejection),
            },
            None => rejected = Some(Rejection::NotBearer),
        }
    }
    let otherwise = payment_or_challenge(headers, rejected);
    match (&config.siwx, config.siwx.as_ref().and_then(|_| headers.header(siwx::HEADER))) {
        (Some(settings), Some(raw)) => {
            let leeway = config.verify_policy.leeway_seconds;
            let outcome = siwx::check(settings, &config.networks, signers, leeway, raw, now_ms);
            Decision::SignIn { outcome, otherwise: Box::new(otherwise) }
        }
        _ => otherwise,
    }
}

/// A verified sign-in, once the ledger answered: the claim headers to forward with when `payer`
/// holds an entitlement on one of this seller's networks (as its pass would be honoured) that is
/// honoured at `now` (`now <= exp + leeway`).
pub fn honour<'a>(
    config: &'a Config,
    payer: &str,
    entitlement: Option<&Entitlement>,
    now: u64,
) -> Option<Vec<(&'a str, String)>> {
    let entitlement = entitlement.filter(|e| {
        config.networks.iter().any(|n| n.network == e.network) && e.honoured(now, config.verify_policy.leeway_seconds)
    })?;
    Some(claim_headers(config, &entitlement.claims(config, payer)))
}

/// 503 `ledger_unavailable` (docs/behaviour.md §19): a sign-in whose entitlement could not be
/// looked up is never answered 402, which would charge a buyer who already paid.
pub fn ledger_unavailable() -> Response {
    Response {
        status: 503,
        headers: vec![
            ("content-type", "application/json".to_owned()),
            ("cache-control", "no-store".to_owned()),
            ("retry-after", "1".to_owned()),
        ],
        body: br#"{"error":"Entitlements are unavailable, try again shortly","reason":"ledger_unavailable"}"#.to_vec(),
    }
}

/// A payment, else the challenge. `PAYMENT-SIGNATURE` (x402 v2) wins over `X-PAYMENT` (v1) when a
/// request carries both: only it is processed, and the other is never charged (docs/behaviour.md
/// §20).
fn payment_or_challenge<'a>(headers: &dyn RequestHeaders, rejected: Option<Rejection>) -> Decision<'a> {
    for wire in [Wire::V2, Wire::V1] {
        if let Some(payment) = headers.header(wire.request_header()) {
            return Decision::Purchase { payment: payment.to_vec(), wire, rejected };
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
        fn header(&self, name: &str) -> Option<&[u8]> {
            self.0.get(name).map(Vec::as_slice)
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
        decide(c, &mut PassCache::new(16), &mut SignerKeys::new(4), 1_000_000, path.as_bytes(), h)
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
    fn a_preflight_is_answered_whatever_pass_comes_with_it() {
        // Why a valid pass still costs the `:method` read (docs/behaviour.md §3): the preflight
        // comes first in the order of decisions, even for an `OPTIONS` carrying a valid pass.
        let c = config();
        let auth = format!("Bearer {}", valid_token(&c, 1_000));
        for auth in [auth.as_bytes(), b"Bearer a.b.c", b"Basic Zm9vOmJhcg=="] {
            let h =
                headers(&[(":method", b"OPTIONS"), ("access-control-request-method", b"GET"), ("authorization", auth)]);
            assert_eq!(run(&c, "/api/data", &h), Decision::Preflight);
        }
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

    const VECTORS: &str = include_str!("../tests/vectors/siwx/siwx.json");

    /// Sells on devnet at https://api.example.com, where the vectors' payloads were signed.
    fn siwx_config() -> Config {
        let json = serde_json::json!({
            "payTo": "GRzLBcpDz3XkKQ1y2dmbezuXYRTUJ3vNueDNkma32unv", "secret": SECRET,
            "network": crate::config::DEVNET, "tiers": {"1h": "0.50"}, "protect": [{"prefix": "/api/"}],
            "siwx": {"origins": ["https://api.example.com"]},
        });
        Config::parse(json.to_string().as_bytes(), &|_| None).unwrap()
    }

    fn vector(name: &str) -> (Vec<u8>, u64, String) {
        let v: serde_json::Value = serde_json::from_str(VECTORS).unwrap();
        let case = v["cases"].as_array().unwrap().iter().find(|c| c["name"] == name).unwrap().clone();
        let header = case["header"].as_str().unwrap().as_bytes().to_vec();
        (header, case["now"].as_u64().unwrap(), case["payload"]["address"].as_str().unwrap().to_owned())
    }

    #[test]
    fn a_valid_pass_wins_over_a_sign_in_and_a_sign_in_over_a_payment() {
        let c = siwx_config();
        let (siwx, now_ms, payer) = vector("valid");
        let auth = format!("Bearer {}", valid_token(&c, now_ms / 1_000));
        let h = headers(&[(":method", b"GET"), ("authorization", auth.as_bytes()), ("sign-in-with-x", &siwx)]);
        let decided = decide(&c, &mut PassCache::new(16), &mut SignerKeys::new(4), now_ms, b"/api/data", &h);
        assert!(matches!(decided, Decision::Forward { .. }), "{decided:?}");
        let h = headers(&[(":method", b"GET"), ("sign-in-with-x", &siwx), ("payment-signature", b"x")]);
        let Decision::SignIn { outcome, otherwise } =
            decide(&c, &mut PassCache::new(16), &mut SignerKeys::new(4), now_ms, b"/api/data", &h)
        else {
            panic!("not a sign-in")
        };
        assert_eq!(outcome, Ok(payer));
        assert!(matches!(*otherwise, Decision::Purchase { .. }));
    }

    #[test]
    fn a_bad_sign_in_carries_its_reason_and_then_the_challenge() {
        let c = siwx_config();
        let (siwx, now_ms, _) = vector("signed-for-another-site");
        for (raw, reason) in [(&siwx[..], siwx::Reason::Domain), (b"\xff\xfe", siwx::Reason::Malformed)] {
            let h = headers(&[(":method", b"GET"), ("sign-in-with-x", raw)]);
            let decided = decide(&c, &mut PassCache::new(16), &mut SignerKeys::new(4), now_ms, b"/api/data", &h);
            assert_eq!(
                decided,
                Decision::SignIn { outcome: Err(reason), otherwise: Box::new(Decision::Challenge { rejected: None }) }
            );
        }
        // SIWX off: the header is not even read.
        let (siwx, now_ms, _) = vector("valid");
        let h = headers(&[(":method", b"GET"), ("sign-in-with-x", &siwx)]);
        assert_eq!(
            decide(&config(), &mut PassCache::new(16), &mut SignerKeys::new(4), now_ms, b"/api/data", &h),
            Decision::Challenge { rejected: None }
        );
    }

    #[test]
    fn an_entitlement_is_honoured_until_exp_and_leeway_with_its_own_claims() {
        let c = siwx_config();
        let e = Entitlement { tier: "1h".into(), iat: 1_000, exp: 4_600, network: c.network.clone() };
        let claims = honour(&c, "Buyer", Some(&e), 4_600).unwrap();
        assert_eq!(
            claims,
            vec![
                ("x-access-pass-tier", "1h".to_owned()),
                ("x-access-pass-payer", "Buyer".to_owned()),
                ("x-access-pass-expires", "4600".to_owned()),
                ("x-access-pass-network", c.network.clone()),
            ]
        );
        assert_eq!(honour(&c, "Buyer", Some(&e), 4_601), None, "past exp");
        assert_eq!(honour(&c, "Buyer", None, 2_000), None, "never paid");
        let elsewhere = Entitlement { network: crate::config::MAINNET.into(), ..e };
        assert_eq!(honour(&c, "Buyer", Some(&elsewhere), 2_000), None, "another network's pass");
    }

    /// docs/behaviour.md §21: a seller on several networks honours an entitlement bought on any of
    /// them (as it honours the pass itself), with the network it was bought on in the claims.
    #[test]
    fn an_entitlement_bought_on_any_of_the_sellers_networks_is_honoured() {
        let json = serde_json::json!({
            "networks": [{"network": crate::config::DEVNET, "payTo": "GRzLBcpDz3XkKQ1y2dmbezuXYRTUJ3vNueDNkma32unv"},
                         {"network": "eip155:84532", "payTo": "0x3325a78425F17a7E487Eb5666b2bFd93aBb06c70"}],
            "secret": SECRET, "tiers": {"1h": "0.50"},
        });
        let c = Config::parse(json.to_string().as_bytes(), &|_| None).unwrap();
        let payer = "0x1a642f0e3c3af545e7acbd38b07251b3990914f1";
        let e = Entitlement { tier: "1h".into(), iat: 1_000, exp: 4_600, network: "eip155:84532".into() };
        let claims = honour(&c, payer, Some(&e), 2_000).unwrap();
        assert!(claims.contains(&("x-access-pass-network", "eip155:84532".to_owned())), "{claims:?}");
        let elsewhere = Entitlement { network: "eip155:8453".into(), ..e };
        assert_eq!(honour(&c, payer, Some(&elsewhere), 2_000), None, "a network this seller does not sell on");
        assert_eq!(crate::entitlements::key_of("0x1A642f0E3c3aF545E7AcBD38b07251B3990914F1"), payer);
        assert_eq!(crate::entitlements::key_of("Buyer"), "Buyer");
    }
}

//! `Config::parse` on arbitrary bytes; for every configuration it accepts,
//! everything that configuration drives:
//!
//! * path rules, CORS, the challenge (JSON and HTML) and a refusal, the preflight;
//! * the candidates of the default request and of the duration and tier bounds:
//!   never empty, the default pass last, every price above zero;
//! * **every pass the configuration can sell verifies under that same
//!   configuration** (claims as `purchase::claims` makes them, signed with the
//!   ring, then `token::verify`), and is no longer than the longest pass sold.

use x402_access_pass::challenge::Challenge;
use x402_access_pass::config::Config;
use x402_access_pass::offer::{self, Offer};
use x402_access_pass::payment::{CheckedPayment, Payment};
use x402_access_pass::purchase::{self, IssuedPass, Receipt};
use x402_access_pass::response;
use x402_access_pass::token::{self, SignError};

use crate::{env, NOW};

const FEE_PAYER: &str = "9hSR6S7WPtxmTojgo6GG3k4yDPecgJY292j7xrsUGWBu";
const PAYER: &str = "AKnL4NNf3DGWZJS6cPknBuEGnVsV4A4m5tgebLHaRSZ9";

pub fn run(data: &[u8]) {
    let Ok(config) = Config::parse(data, &env) else { return };

    for path in [&b"/"[..], b"/api/data?tier=1h", b"/api/public/x", b"/health", b"\xff/api/\x00"] {
        let _ = config.applies_to(path);
    }
    let _ = config.allow_origin(Some(b"https://app.example"));
    let _ = config.allow_origin(Some(b"\xff\xfe"));
    let _ = config.allow_origin(None);
    let _ = response::preflight(&config, Some(b"https://app.example"));

    let default = offer::default_offer(&config);
    let mut paths = vec!["/api/data".to_owned()];
    for seconds in [config.min_duration_seconds, config.max_duration_seconds] {
        paths.push(format!("/api/data?duration={seconds}"));
    }
    paths.extend(config.tiers.iter().take(4).map(|t| format!("/api/data?tier={}", t.id)));
    for path in &paths {
        let offers = offer::candidates(&config, path.as_bytes());
        assert!(!offers.is_empty(), "no candidate for {path}");
        assert_eq!(offers.last(), default.as_ref(), "the default pass is not the last candidate of {path}");
        for o in offers.iter().take(3) {
            check_offer(&config, o, path);
        }
    }
}

fn check_offer(config: &Config, o: &Offer, path: &str) {
    assert!(o.atomic > 0, "{path}: {o:?} is free");
    assert!(o.seconds > 0, "{path}: {o:?} lasts no time");
    assert!(
        o.seconds <= config.verify_policy.max_duration_seconds,
        "{path}: {o:?} is longer than the longest pass the configuration accepts ({})",
        config.verify_policy.max_duration_seconds
    );
    assert_eq!(offer::offer_paid_for(config, path.as_bytes(), o.atomic).map(|p| p.atomic), Some(o.atomic));

    let challenge = Challenge::new(config, o, format!("http://example{path}"), FEE_PAYER);
    let answer = challenge.response(config, false);
    assert_eq!(answer.status, 402);
    assert!(serde_json::from_slice::<serde_json::Value>(&answer.body).is_ok(), "the 402 body is not JSON");
    let _ = challenge.response(config, true);
    let _ = challenge.refusal(config, "Payment verification failed", "amount_mismatch");

    if !config.keys.can_sign() {
        return;
    }
    let checked = CheckedPayment {
        payment: Payment {
            wire: x402_access_pass::payment::Wire::V2,
            payload: serde_json::Value::Null,
            scheme: "exact".to_owned(),
            network: config.network.clone(),
            asset: config.asset.address.clone(),
            pay_to: config.pay_to.clone(),
            amount: Some(o.atomic_string()),
            transaction: Vec::new(),
        },
        offer: o.clone(),
        message_hash: [0; 32],
        payer: PAYER.to_owned(),
        network: config.networks.iter().position(|n| n.network == config.network).unwrap_or_default(),
        price: o.atomic,
    };
    let claims = purchase::claims(config, &checked, NOW);
    let pass = match token::sign(&config.keys, &claims) {
        Ok(pass) => pass,
        // A pass over the size bound (a kilobytes-long issuer or audience): never issued.
        Err(SignError::TooLarge) => return,
        Err(e) => panic!("{path}: could not sign {claims:?}: {e}"),
    };
    match token::verify(&config.keys, &config.verify_policy, pass.as_bytes(), NOW) {
        Ok(verified) => assert_eq!(verified, claims),
        Err(rejection) => panic!("{path}: the pass sold for {o:?} is refused by its own filter: {rejection}"),
    }
    let receipt = Receipt::new(&IssuedPass { token: pass, claims }, "tx", &config.network);
    assert_eq!(receipt.response(x402_access_pass::payment::Wire::V2).status, 200);
}

//! What a purchase answers (docs/behaviour.md §6.4–§6.6): the pass claims for a checked
//! payment, the 200 receipt that a replay re-serves byte for byte, and the
//! failure answers.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::payment::{CheckedPayment, Wire};
use crate::response::Response;
use crate::token::{PassClaims, SUBJECT};

/// Seconds a client should wait before retrying after a facilitator problem.
const RETRY_AFTER_SECONDS: &str = "2";

/// The claims of the pass a checked payment buys, issued now.
pub fn claims(config: &Config, checked: &CheckedPayment, now: u64) -> PassClaims {
    PassClaims {
        sub: SUBJECT.to_owned(),
        tier: checked.offer.tier.clone(),
        duration: checked.offer.seconds,
        iat: now,
        exp: now.saturating_add(checked.offer.seconds),
        payer: checked.payer.clone(),
        // The network paid on (docs/behaviour.md §21).
        network: checked.payment.network.clone(),
        iss: config.issuer.clone(),
        aud: config.audience.clone(),
    }
}

/// A signed pass, kept with the purchase until its settlement is known.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedPass {
    pub token: String,
    pub claims: PassClaims,
}

/// The 200 answer to a settled purchase, kept so that the same payment sent
/// again within the replay window gets exactly the same answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    pub token: String,
    pub payment_response: String,
    pub body: String,
    /// The pass's claims: a paid request sent again is forwarded with them (docs/behaviour.md
    /// §15). Absent from records written before paid requests existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claims: Option<Box<PassClaims>>,
}

impl Receipt {
    /// `transaction` is the settled transaction id (empty when a recovered
    /// settlement did not say it).
    pub fn new(pass: &IssuedPass, transaction: &str, network: &str) -> Receipt {
        // Structs rather than `json!`, to keep the field order of the reference.
        #[derive(Serialize)]
        struct PaymentResponse<'a> {
            success: bool,
            transaction: &'a str,
            network: &'a str,
            payer: &'a str,
        }
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct AccessPass<'a> {
            token: &'a str,
            tier: &'a str,
            duration: String,
            duration_seconds: u64,
            expires_at: String,
            usage: &'static str,
        }
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Body<'a> {
            access_pass: AccessPass<'a>,
            transaction: &'a str,
            payer: &'a str,
        }
        let claims = &pass.claims;
        let payment_response = PaymentResponse { success: true, transaction, network, payer: &claims.payer };
        let body = Body {
            access_pass: AccessPass {
                token: &pass.token,
                tier: &claims.tier,
                duration: crate::pricing::label(claims.duration),
                duration_seconds: claims.duration,
                expires_at: iso8601(claims.exp),
                usage: "Include on subsequent requests as: Authorization: Bearer <token>",
            },
            transaction,
            payer: &claims.payer,
        };
        Receipt {
            token: pass.token.clone(),
            payment_response: BASE64.encode(serde_json::to_vec(&payment_response).unwrap_or_default()),
            body: serde_json::to_string(&body).unwrap_or_default(),
            claims: Some(Box::new(pass.claims.clone())),
        }
    }

    /// The 200, its settlement in the response header of the payment's x402 version
    /// (`PAYMENT-RESPONSE`, or `X-PAYMENT-RESPONSE` for v1, docs/behaviour.md §20).
    pub fn response(&self, wire: Wire) -> Response {
        Response {
            status: 200,
            headers: vec![
                ("access-pass", self.token.clone()),
                (wire.response_header(), self.payment_response.clone()),
                ("content-type", "application/json".to_owned()),
                ("cache-control", "no-store".to_owned()),
            ],
            body: self.body.clone().into_bytes(),
        }
    }
}

/// 409: the same payment is being processed by another request right now.
pub fn in_progress() -> Response {
    Response::error(409, "Payment in progress", "payment_in_progress", None).with_header("retry-after", "1")
}

/// 409: this payment identifier was first used for another request (docs/behaviour.md §17.5).
pub fn identifier_conflict() -> Response {
    Response::error(409, "Payment identifier already used for another request", "payment_identifier_conflict", None)
}

/// 502: `/verify` could not be asked; nothing was charged.
pub fn facilitator_unavailable(reason: &str) -> Response {
    Response::error(502, "Facilitator unavailable", reason, None).with_header("retry-after", RETRY_AFTER_SECONDS)
}

/// 500: the pass could not be signed (a key problem of this filter). Checked before `/settle`,
/// so nothing was charged.
pub fn pass_signing_failed() -> Response {
    Response::error(500, "Access pass could not be issued", "pass_signing_failed", None)
}

/// 503: `/settle` did not answer; the money may have moved, so the same
/// payment must be sent again to recover its pass.
pub fn settlement_unknown() -> Response {
    Response::error(
        503,
        "Settlement outcome unknown",
        "settlement_unknown",
        Some("Send the same payment again: it will be settled at most once."),
    )
    .with_header("retry-after", RETRY_AFTER_SECONDS)
}

/// 503 `ledger_unavailable` (docs/behaviour.md §19): the ledger could not be read or written
/// before any money moved, so nothing was charged and the same payment may be sent again.
pub fn ledger_unavailable() -> Response {
    Response::error(
        503,
        "Ledger unavailable",
        "ledger_unavailable",
        Some("Nothing was charged: send the same payment again shortly."),
    )
    .with_header("retry-after", RETRY_AFTER_SECONDS)
}

/// 503: the facilitator's fee payer is not known yet, so no valid challenge
/// can be issued (a 402 without `extra.feePayer` would be unpayable).
pub fn fee_payer_unknown() -> Response {
    Response::error(503, "Facilitator unavailable", "fee_payer_unknown", None)
        .with_header("retry-after", RETRY_AFTER_SECONDS)
}

/// `2026-11-25T18:37:56.000Z` for a Unix time in seconds.
pub fn iso8601(unix_seconds: u64) -> String {
    let (year, month, day) = crate::siwx::time::civil_from_days(unix_seconds / 86_400);
    let secs = unix_seconds % 86_400;
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.000Z", secs / 3_600, secs % 3_600 / 60, secs % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_is_iso8601_utc_with_milliseconds() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(1_767_229_200), "2026-01-01T01:00:00.000Z");
        assert_eq!(iso8601(1_795_631_876), "2026-11-25T18:37:56.000Z");
        assert_eq!(iso8601(951_782_400), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn the_receipt_carries_the_pass_in_header_and_body() {
        let pass = IssuedPass {
            token: "a.b.c".into(),
            claims: PassClaims {
                sub: SUBJECT.into(),
                tier: "1h".into(),
                duration: 3_600,
                iat: 1_767_225_600,
                exp: 1_767_229_200,
                payer: "Buyer".into(),
                network: "solana:n".into(),
                iss: "x402-access-pass".into(),
                aud: None,
            },
        };
        let r = Receipt::new(&pass, "5mYP", "solana:n").response(Wire::V2);
        assert_eq!(r.status, 200);
        assert_eq!(r.header("access-pass"), Some("a.b.c"));
        let pr = BASE64.decode(r.header("payment-response").unwrap()).unwrap();
        assert_eq!(pr, br#"{"success":true,"transaction":"5mYP","network":"solana:n","payer":"Buyer"}"#);
        assert!(String::from_utf8(r.body.clone())
            .unwrap()
            .starts_with(r#"{"accessPass":{"token":"a.b.c","tier":"1h","#));
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["accessPass"]["tier"], "1h");
        assert_eq!(body["accessPass"]["duration"], "1 hour");
        assert_eq!(body["accessPass"]["durationSeconds"], 3_600);
        assert_eq!(body["accessPass"]["expiresAt"], "2026-01-01T01:00:00.000Z");
        assert_eq!(body["transaction"], "5mYP");
        assert_eq!(body["payer"], "Buyer");
    }
}

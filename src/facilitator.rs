//! The facilitator's wire format (docs/behaviour.md §9): what the filter sends to `/verify`
//! and `/settle`, and how it reads `/supported`, `/verify` and `/settle` answers.

use serde::Deserialize;
use serde_json::Value;

use crate::challenge::{PaymentRequirements, Resource};
use crate::payment::Wire;

/// What a callout came back with, as the proxy-wasm layer saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CalloutResult<'a> {
    Response {
        status: u32,
        body: &'a [u8],
    },
    /// No answer within `facilitatorTimeoutMs`.
    TimedOut,
    /// Reset, refused or no response headers at all.
    Failed,
}

/// A facilitator that did not answer usably.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unavailable {
    Timeout,
    Status(u32),
    BadResponse,
}

impl Unavailable {
    pub fn reason(self) -> String {
        match self {
            Unavailable::Timeout => "facilitator_timeout".to_owned(),
            Unavailable::Status(status) => format!("facilitator_error_{status}"),
            Unavailable::BadResponse => "facilitator_bad_response".to_owned(),
        }
    }
}

/// Whether a callout answer was Envoy's own timeout. Envoy reports it as a local 504, or with no
/// headers at all; only the time it took tells it from a 504 of the facilitator.
pub fn timed_out(status: Option<u32>, elapsed_ms: u64, timeout_ms: u64) -> bool {
    let near_timeout = elapsed_ms.saturating_mul(100) >= timeout_ms.saturating_mul(95);
    near_timeout && matches!(status, None | Some(504))
}

/// The 2xx body of a callout, or why there is none.
fn body_of(result: CalloutResult<'_>) -> Result<&[u8], Unavailable> {
    match result {
        CalloutResult::Response { status, body } if (200..300).contains(&status) => Ok(body),
        CalloutResult::Response { status, .. } => Err(Unavailable::Status(status)),
        CalloutResult::TimedOut => Err(Unavailable::Timeout),
        // Envoy answers a refused or reset upstream with a 503 of its own.
        CalloutResult::Failed => Err(Unavailable::Status(503)),
    }
}

/// Body of `/verify` and `/settle`: the buyer's payload as decoded, and the server's own
/// requirements for the pass it pays (never the client's echo), in the payment's x402 version:
/// v2 requirements, or for a v1 payment (`X-PAYMENT`, docs/behaviour.md §20) the v1 form of the same
/// requirements, with `resource` the request's URL.
pub fn request_body(
    payment_payload: &Value,
    wire: Wire,
    requirements: &PaymentRequirements,
    resource: &Resource,
) -> Vec<u8> {
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Body<'a, R> {
        x402_version: u64,
        payment_payload: &'a Value,
        payment_requirements: R,
    }
    let x402_version = wire.version();
    let body = match wire {
        Wire::V2 => serde_json::to_vec(&Body { x402_version, payment_payload, payment_requirements: requirements }),
        Wire::V1 => {
            serde_json::to_vec(&Body { x402_version, payment_payload, payment_requirements: requirements.v1(resource) })
        }
    };
    body.unwrap_or_default()
}

/// A reason string from the facilitator, bounded and reduced to a safe
/// alphabet before it is echoed to a client or used as a metric name.
pub fn sanitize_reason(reason: &str) -> String {
    let cleaned: String = reason
        .chars()
        .take(96)
        .map(|c| if c.is_ascii_alphanumeric() || c == '_' { c.to_ascii_lowercase() } else { '_' })
        .collect();
    if cleaned.is_empty() {
        "unknown".to_owned()
    } else {
        cleaned
    }
}

/// `GET /supported`: the fee payer of the `exact` v2 kind for `network`.
pub fn fee_payer_from_supported(result: CalloutResult<'_>, network: &str) -> Result<String, Unavailable> {
    #[derive(Deserialize)]
    struct Supported {
        kinds: Vec<Kind>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Kind {
        x402_version: Option<u64>,
        scheme: Option<String>,
        network: Option<String>,
        extra: Option<Extra>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Extra {
        fee_payer: Option<String>,
    }
    let body = body_of(result)?;
    let supported: Supported = serde_json::from_slice(body).map_err(|_| Unavailable::BadResponse)?;
    supported
        .kinds
        .into_iter()
        .find(|k| {
            k.x402_version == Some(2) && k.scheme.as_deref() == Some("exact") && k.network.as_deref() == Some(network)
        })
        .and_then(|k| k.extra?.fee_payer)
        .filter(|fp| crate::solana::decode_pubkey(fp).is_some())
        .ok_or(Unavailable::BadResponse)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verification {
    Valid,
    Invalid { reason: String },
    Unavailable(Unavailable),
}

pub fn read_verify(result: CalloutResult<'_>) -> Verification {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct VerifyResponse {
        is_valid: bool,
        invalid_reason: Option<String>,
    }
    let body = match body_of(result) {
        Ok(body) => body,
        Err(e) => return Verification::Unavailable(e),
    };
    match serde_json::from_slice::<VerifyResponse>(body) {
        Ok(VerifyResponse { is_valid: true, .. }) => Verification::Valid,
        Ok(VerifyResponse { is_valid: false, invalid_reason }) => {
            Verification::Invalid { reason: sanitize_reason(invalid_reason.as_deref().unwrap_or("invalid_payment")) }
        }
        Err(_) => Verification::Unavailable(Unavailable::BadResponse),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settlement {
    /// Settled: `transaction` is a well-formed transaction id (docs/behaviour.md §17.3).
    Settled { transaction: String },
    /// `success:false`, with its sanitized `errorReason` (`settle_outcome` says what it means).
    Failed { reason: String },
    /// No definite answer: the money may have moved, and the outcome must be worked out.
    Unknown(Unavailable),
}

/// Reads a `/settle` answer for a payment of `payer` on `network`. A definite answer is only
/// believed when it is well formed: on success a transaction id that is a Solana signature, and
/// `network` and `payer`, when present, those of the payment; anything else is unknown. A
/// non-2xx answer whose body is a readable `success:false` is that refusal, as the reference
/// server reads it (@x402/core 2.27.0 `SettleError`).
pub fn read_settle(result: CalloutResult<'_>, network: &str, payer: &str) -> Settlement {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct SettleResponse {
        success: bool,
        transaction: Option<String>,
        network: Option<String>,
        error_reason: Option<String>,
        payer: Option<String>,
    }
    let (status, body) = match result {
        CalloutResult::Response { status, body } => (status, body),
        other => return Settlement::Unknown(body_of(other).err().unwrap_or(Unavailable::BadResponse)),
    };
    let ok = (200..300).contains(&status);
    let unavailable = if ok { Unavailable::BadResponse } else { Unavailable::Status(status) };
    let Ok(answer) = serde_json::from_slice::<SettleResponse>(body) else {
        return Settlement::Unknown(unavailable);
    };
    // An EVM payer is an address, the same in any letter case (docs/behaviour.md §21).
    let evm = is_evm(network);
    let same_payer = |c: &str| c == payer || (evm && c.eq_ignore_ascii_case(payer));
    let same = |claimed: &Option<String>, ours: &str| claimed.as_deref().is_none_or(|c| c == ours);
    if !same(&answer.network, network) || !answer.payer.as_deref().is_none_or(same_payer) {
        return Settlement::Unknown(Unavailable::BadResponse);
    }
    match answer {
        SettleResponse { success: true, transaction: Some(transaction), .. }
            if ok && is_transaction_id(evm, &transaction) =>
        {
            Settlement::Settled { transaction }
        }
        SettleResponse { success: false, error_reason, .. } => {
            Settlement::Failed { reason: sanitize_reason(error_reason.as_deref().unwrap_or("settlement_failed")) }
        }
        _ => Settlement::Unknown(unavailable),
    }
}

/// Whether `network` (CAIP-2, or its v1 name) is an EVM network.
fn is_evm(network: &str) -> bool {
    network.starts_with("eip155:") || crate::challenge::network_of_v1(network).is_some_and(|n| n.starts_with("eip155:"))
}

/// A settled transaction's id: a Solana signature (base58 of 64 bytes), or on an EVM network a
/// transaction hash (`0x` + 32 bytes of hex).
fn is_transaction_id(evm: bool, transaction: &str) -> bool {
    match evm {
        true => crate::evm::hex::decode_fixed::<32>(transaction).is_some(),
        false => crate::solana::is_signature(transaction),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEVNET: &str = "solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1";

    fn ok(body: &str) -> CalloutResult<'_> {
        CalloutResult::Response { status: 200, body: body.as_bytes() }
    }

    #[test]
    fn supported_gives_the_fee_payer_of_the_exact_v2_kind_for_the_network() {
        let body = r#"{"kinds":[{"x402Version":1,"scheme":"exact","network":"solana-devnet","extra":{"feePayer":"GyGKxMyg1p9SsHfm15MkNUu1u9TN2JtTspcdmrtGUdse"}},
            {"x402Version":2,"scheme":"exact","network":"solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1","extra":{"feePayer":"9hSR6S7WPtxmTojgo6GG3k4yDPecgJY292j7xrsUGWBu"}}],"extensions":[],"signers":{}}"#;
        assert_eq!(fee_payer_from_supported(ok(body), DEVNET).unwrap(), "9hSR6S7WPtxmTojgo6GG3k4yDPecgJY292j7xrsUGWBu");
        assert_eq!(fee_payer_from_supported(ok(body), "solana:other"), Err(Unavailable::BadResponse));
        assert_eq!(fee_payer_from_supported(ok("nope"), DEVNET), Err(Unavailable::BadResponse));
        assert_eq!(fee_payer_from_supported(CalloutResult::TimedOut, DEVNET), Err(Unavailable::Timeout));
    }

    #[test]
    fn verify_answers_map_to_outcomes() {
        assert_eq!(read_verify(ok(r#"{"isValid":true,"payer":"x"}"#)), Verification::Valid);
        assert_eq!(
            read_verify(ok(r#"{"isValid":false,"invalidReason":"invalid_exact_svm_payload_amount_mismatch"}"#)),
            Verification::Invalid { reason: "invalid_exact_svm_payload_amount_mismatch".into() }
        );
        assert_eq!(read_verify(ok("not json{")), Verification::Unavailable(Unavailable::BadResponse));
        assert_eq!(read_verify(ok(r#"{"isValid":"yes"}"#)), Verification::Unavailable(Unavailable::BadResponse));
        assert_eq!(
            read_verify(CalloutResult::Response { status: 500, body: b"" }),
            Verification::Unavailable(Unavailable::Status(500))
        );
        assert_eq!(Unavailable::Status(500).reason(), "facilitator_error_500");
        assert_eq!(read_verify(CalloutResult::Failed), Verification::Unavailable(Unavailable::Status(503)));
    }

    const PAYER: &str = "AKnL4NNf3DGWZJS6cPknBuEGnVsV4A4m5tgebLHaRSZ9";

    fn settle(body: &str) -> Settlement {
        read_settle(ok(body), DEVNET, PAYER)
    }

    #[test]
    fn a_settled_answer_is_believed_only_when_well_formed() {
        // A transaction id: base58 of a 64-byte signature.
        let tx = crate::solana::encode_base58(&[7; 64]);
        let tx = tx.as_str();
        assert!(crate::solana::is_signature(tx) && !crate::solana::is_signature(&tx[1..]));
        let answer = format!(r#"{{"success":true,"transaction":"{tx}","network":"{DEVNET}","payer":"{PAYER}"}}"#);
        assert_eq!(settle(&answer), Settlement::Settled { transaction: tx.into() });
        assert_eq!(
            settle(&format!(r#"{{"success":true,"transaction":"{tx}"}}"#)),
            Settlement::Settled { transaction: tx.into() }
        );
        let malformed = [
            r#"{"success":true,"transaction":"5mYP"}"#.to_owned(),
            r#"{"success":true}"#.to_owned(),
            format!(r#"{{"success":true,"transaction":"{tx}\nx402-access-pass: purchase settled"}}"#),
            format!(r#"{{"success":true,"transaction":"{tx}","network":"solana:other"}}"#),
            format!(r#"{{"success":true,"transaction":"{tx}","payer":"{DEVNET}"}}"#),
            "{".to_owned(),
        ];
        for body in malformed {
            assert_eq!(settle(&body), Settlement::Unknown(Unavailable::BadResponse), "{body}");
        }
    }

    /// docs/behaviour.md §21: on an EVM network the transaction id is a `0x` + 32-byte hash, and the
    /// payer is the same address in any letter case.
    #[test]
    fn an_evm_settlement_is_a_0x_hash_and_its_payer_is_read_in_any_case() {
        let payer = "0x1a642f0E3c3aF545E7AcBD38b07251B3990914F1";
        let hash = format!("0x{}", "ab".repeat(32));
        for network in ["eip155:84532", "base-sepolia"] {
            let read = |body: &str| read_settle(ok(body), network, payer);
            let answer = |tx: &str, who: &str| {
                format!(r#"{{"success":true,"transaction":"{tx}","network":"{network}","payer":"{who}"}}"#)
            };
            assert_eq!(read(&answer(&hash, payer)), Settlement::Settled { transaction: hash.clone() });
            assert_eq!(read(&answer(&hash, &payer.to_lowercase())), Settlement::Settled { transaction: hash.clone() });
            let solana_tx = crate::solana::encode_base58(&[7; 64]);
            for bad in [solana_tx.as_str(), &hash[..64], "0xzz", &format!("{hash}00")] {
                assert_eq!(read(&answer(bad, payer)), Settlement::Unknown(Unavailable::BadResponse), "{bad}");
            }
            let other = "0x5050A4F4b3f9338C3472dcC01A87C76A144b3c9c";
            assert_eq!(read(&answer(&hash, other)), Settlement::Unknown(Unavailable::BadResponse));
        }
        // A 0x hash is no Solana transaction id, and a Solana payer's case matters.
        assert_eq!(
            settle(&format!(r#"{{"success":true,"transaction":"{hash}"}}"#)),
            Settlement::Unknown(Unavailable::BadResponse)
        );
        let lower = PAYER.to_lowercase();
        assert_eq!(
            settle(&format!(
                r#"{{"success":true,"transaction":"{}","payer":"{lower}"}}"#,
                crate::solana::encode_base58(&[7; 64])
            )),
            Settlement::Unknown(Unavailable::BadResponse)
        );
    }

    #[test]
    fn a_refusal_is_read_whatever_the_status_and_anything_else_is_unknown() {
        assert_eq!(
            settle(r#"{"success":false,"errorReason":"duplicate_settlement","transaction":""}"#),
            Settlement::Failed { reason: "duplicate_settlement".into() }
        );
        let refused = br#"{"success":false,"errorReason":"insufficient_funds","transaction":""}"#;
        assert_eq!(
            read_settle(CalloutResult::Response { status: 400, body: refused }, DEVNET, PAYER),
            Settlement::Failed { reason: "insufficient_funds".into() }
        );
        assert_eq!(
            read_settle(CalloutResult::Response { status: 500, body: b"oops" }, DEVNET, PAYER),
            Settlement::Unknown(Unavailable::Status(500))
        );
        let tx = crate::solana::encode_base58(&[7; 64]);
        let success_but_502 = format!(r#"{{"success":true,"transaction":"{tx}"}}"#);
        assert_eq!(
            read_settle(CalloutResult::Response { status: 502, body: success_but_502.as_bytes() }, DEVNET, PAYER),
            Settlement::Unknown(Unavailable::Status(502))
        );
        assert_eq!(read_settle(CalloutResult::TimedOut, DEVNET, PAYER), Settlement::Unknown(Unavailable::Timeout));
        assert_eq!(read_settle(CalloutResult::Failed, DEVNET, PAYER), Settlement::Unknown(Unavailable::Status(503)));
    }

    #[test]
    fn only_a_504_or_no_answer_near_the_deadline_is_a_timeout() {
        assert!(timed_out(None, 1_950, 2_000));
        assert!(timed_out(Some(504), 2_000, 2_000));
        assert!(!timed_out(Some(504), 100, 2_000), "the facilitator's own 504");
        assert!(!timed_out(None, 100, 2_000), "a reset: failed, not timed out");
        assert!(!timed_out(Some(200), 2_100, 2_000));
        assert!(timed_out(None, u64::MAX, u64::MAX));
    }

    #[test]
    fn reasons_from_the_facilitator_are_tamed() {
        assert_eq!(sanitize_reason("bad <script>\n"), "bad__script__");
        assert_eq!(sanitize_reason(""), "unknown");
        assert_eq!(sanitize_reason(&"x".repeat(500)).len(), 96);
    }
}

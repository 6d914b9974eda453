//! What a `/settle` refusal means for the money (docs/behaviour.md §17.2): one table of the
//! reasons x402 facilitators send, each with where it comes from.
//!
//! Only a settlement the facilitator did not and will not broadcast may be answered with a 402:
//! anything that may have moved the buyer's money is worked out (retried) until it is known.

/// How the checkout treats a `success:false` answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The transaction may have been broadcast: unknown, ask again.
    MayHaveLanded,
    /// Already processed or settled: for a payment this filter holds a record of, it landed.
    AlreadySettled,
    /// Refused before broadcast: the buyer was not charged.
    Refused,
    /// Not in the table: asked again once; the same answer twice is a refusal.
    Unrecognized,
}

/// How a reason is matched.
#[derive(Clone, Copy)]
enum Match {
    Exact(&'static str),
    Suffix(&'static str),
    Prefix(&'static str),
}

/// Reasons as `facilitator::sanitize_reason` leaves them (lower case, `[a-z0-9_]`), first match
/// wins: the table is read top down.
const REASONS: &[(Match, Failure, &str)] = &[
    // x402 #3214: the SVM facilitator broadcast the transaction and could not confirm it yet; it
    // keeps it in its pending store and confirms it when asked again (@x402/svm 2.27.0).
    (Match::Exact("settlement_pending"), Failure::MayHaveLanded, "@x402/svm 2.27.0 ErrSettlementPending"),
    // Submitted, not confirmed in time / the RPC node failed after submitting (x402 SVM
    // facilitators before the pending store: `settle_exact_svm_transaction_confirmation_timed_out`).
    (Match::Suffix("transaction_confirmation_timed_out"), Failure::MayHaveLanded, "x402 SVM facilitators"),
    (Match::Suffix("node_failure"), Failure::MayHaveLanded, "x402 SVM facilitators"),
    (Match::Exact("unexpected_settle_error"), Failure::MayHaveLanded, "x402 facilitators (catch-all)"),
    // The same payment settled before, or is being settled (the settlement cache) right now.
    (Match::Exact("duplicate_settlement"), Failure::AlreadySettled, "@x402/svm 2.27.0 ErrDuplicateSettlement"),
    // EIP-3009: the authorization's nonce is used, i.e. the transfer happened.
    (
        Match::Exact("invalid_exact_evm_nonce_already_used"),
        Failure::AlreadySettled,
        "@x402/evm 2.27.0 ErrEip3009NonceAlreadyUsed",
    ),
    (
        Match::Suffix("already_processed"),
        Failure::AlreadySettled,
        "Solana RPC AlreadyProcessed, as facilitators relay it",
    ),
    // Refused before broadcast, or failed on chain (no transfer): verification reasons re-checked
    // at settle time, a failed send, simulation, funds.
    (Match::Prefix("invalid_"), Failure::Refused, "x402 verification reasons (@x402/svm, @x402/evm 2.27.0)"),
    (Match::Exact("insufficient_funds"), Failure::Refused, "x402 facilitators"),
    (Match::Exact("transaction_failed"), Failure::Refused, "@x402/svm 2.27.0 (v1 facilitator)"),
    (Match::Exact("transaction_simulation_failed"), Failure::Refused, "x402 facilitators"),
    (Match::Exact("verification_failed"), Failure::Refused, "@x402/svm 2.27.0 (v1 facilitator)"),
    (Match::Exact("settle_failed"), Failure::Refused, "@x402/core 2.27.0 payment status"),
    (
        Match::Exact("post_settlement_transfer_not_confirmed"),
        Failure::Refused,
        "@x402/svm 2.27.0 (smart wallets: no transfer)",
    ),
];

/// The class of a sanitized `errorReason`.
pub fn classify(reason: &str) -> Failure {
    REASONS
        .iter()
        .find(|(pattern, _, _)| match pattern {
            Match::Exact(s) => reason == *s,
            Match::Suffix(s) => reason.ends_with(s),
            Match::Prefix(s) => reason.starts_with(s),
        })
        .map_or(Failure::Unrecognized, |(_, failure, _)| *failure)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_that_may_have_moved_money_are_never_refusals() {
        for reason in [
            "settlement_pending",
            "settle_exact_svm_transaction_confirmation_timed_out",
            "settle_exact_svm_node_failure",
            "unexpected_settle_error",
        ] {
            assert_eq!(classify(reason), Failure::MayHaveLanded, "{reason}");
        }
    }

    #[test]
    fn already_processed_reasons_of_svm_and_evm() {
        for reason in [
            "duplicate_settlement",
            "invalid_exact_evm_nonce_already_used",
            "settle_exact_svm_transaction_already_processed",
        ] {
            assert_eq!(classify(reason), Failure::AlreadySettled, "{reason}");
        }
    }

    #[test]
    fn pre_broadcast_reasons_are_refusals_and_the_rest_unrecognized() {
        for reason in [
            "invalid_exact_svm_payload_amount_mismatch",
            "invalid_exact_svm_transaction_failed",
            "invalid_exact_evm_transaction_failed__execution_reverted",
            "insufficient_funds",
            "transaction_failed",
        ] {
            assert_eq!(classify(reason), Failure::Refused, "{reason}");
        }
        assert_eq!(classify("the_moon_is_full"), Failure::Unrecognized);
        assert_eq!(classify(""), Failure::Unrecognized);
    }
}

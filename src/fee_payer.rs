//! Whether a request can go on with the facilitator's fee payer (docs/behaviour.md §9): a 402
//! without `extra.feePayer` could never be paid, so a request that needs it before it is known
//! asks `GET /supported` itself (its wait bounded by the callout timeout), unless that failed
//! moments ago: then it is answered `503 fee_payer_unknown` at once, rather than every request
//! asking a facilitator that is down. The proxy-wasm layer does what [`next`] says.

/// After a failed `/supported`, requests wait this long before asking again.
pub const RETRY_MS: u64 = 1_000;

/// What a request that needs the fee payer does now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Known: go on with it.
    Go(String),
    /// Unknown: ask `GET /supported` and go on when it answers (or answer 503 if it cannot).
    Ask,
    /// Unknown, and `/supported` failed less than [`RETRY_MS`] ago: `503 fee_payer_unknown`.
    Unavailable,
}

/// `known`: the fee payer if known; `failed_at_ms`: when `/supported` last failed (0: never).
/// The clock is read only when the fee payer is unknown: not on every challenge.
pub fn next(known: Option<&str>, failed_at_ms: u64, now_ms: impl FnOnce() -> u64) -> Next {
    match known {
        Some(fee_payer) => Next::Go(fee_payer.to_owned()),
        None if now_ms().saturating_sub(failed_at_ms) < RETRY_MS => Next::Unavailable,
        None => Next::Ask,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_known_fee_payer_goes_on_without_reading_the_clock() {
        let clock = || -> u64 { panic!("the clock was read") };
        assert_eq!(next(Some("FeePayer"), 0, clock), Next::Go("FeePayer".to_owned()));
    }

    #[test]
    fn an_unknown_fee_payer_is_asked_for_unless_that_just_failed() {
        assert_eq!(next(None, 0, || 1_800_000_000_000), Next::Ask, "never failed");
        let failed = 1_800_000_000_000;
        assert_eq!(next(None, failed, || failed + RETRY_MS - 1), Next::Unavailable);
        assert_eq!(next(None, failed, || failed + RETRY_MS), Next::Ask);
        // A clock that went backwards is not a reason to ask a facilitator that is down.
        assert_eq!(next(None, failed, || failed - 5), Next::Unavailable);
    }
}

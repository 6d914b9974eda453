//! Every branch of the purchase flow, driven by a scripted host: the real local ledger over an
//! in-memory shared store (with Envoy's compare-and-swap), and scripted facilitator answers. The
//! payment is the golden vector's, built by the official x402 packages (tests/vectors/).

use std::cell::Cell;

use super::*;
use crate::ledger::memory::MemoryStore;
use crate::ledger::{Ledger, LocalLedger};
use crate::replay::Policy;

const VECTORS: &str = include_str!("../../tests/vectors/x402-svm-exact.json");
const NOW: u64 = 1_800_000_000;
/// A transaction id: base58 of a 64-byte signature (0x07 * 64).
const TX: &str = "99eUso3aSbE9tqGSTXzo3TLfKb9RkMTURrHKQ1K7Zh3BbeqPevr5E1iCbpTjqHuTFLtfxTTD5ekfVuZFzQyEQf8";
const POLICY: Policy = Policy { replay_window_seconds: 600, stale_after_seconds: 9 };
const SETTLED: &str = r#"{"success":true,"transaction":"99eUso3aSbE9tqGSTXzo3TLfKb9RkMTURrHKQ1K7Zh3BbeqPevr5E1iCbpTjqHuTFLtfxTTD5ekfVuZFzQyEQf8","network":"solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1"}"#;
const VALID: &str = r#"{"isValid":true,"payer":"p"}"#;

fn vectors() -> serde_json::Value {
    serde_json::from_str(VECTORS).unwrap()
}

/// Sells the vector's payment (1000 atomic = the 5-minute tier) on devnet to its merchant.
fn config() -> Config {
    let json = r#"{"payTo":"GyGKxMyg1p9SsHfm15MkNUu1u9TN2JtTspcdmrtGUdse","network":"solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1",
        "tiers":{"5m":"0.001","1h":"0.50"},"secret":"checkout-test-secret-0123456789abcdef0123","protect":[{"prefix":"/"}]}"#;
    match Config::parse(json.as_bytes(), &|_| None) {
        Ok(config) => config,
        Err(e) => panic!("{e}"),
    }
}

fn header() -> Vec<u8> {
    vectors()["paymentSignatureHeader"]["PAYMENT-SIGNATURE"].as_str().unwrap().as_bytes().to_vec()
}

fn fee_payer() -> String {
    vectors()["keys"]["feePayer"].as_str().unwrap().to_owned()
}

fn challenge(config: &Config) -> Challenge {
    let offer = crate::offer::candidates(config, b"/weather").into_iter().next().unwrap();
    Challenge::new(config, &offer, "http://api.test/weather".to_owned(), &fee_payer())
}

/// A facilitator answer, as the proxy-wasm layer would hand it over.
#[derive(Clone, Copy)]
enum Reply {
    Ok(&'static str),
    Status(u32),
    /// A non-2xx status with a body.
    StatusBody(u32, &'static str),
    TimedOut,
    /// Reset, refused, or the callout could not be started.
    Failed,
}

impl Reply {
    fn result(self) -> CalloutResult<'static> {
        match self {
            Reply::Ok(body) => CalloutResult::Response { status: 200, body: body.as_bytes() },
            Reply::Status(status) => CalloutResult::Response { status, body: b"" },
            Reply::StatusBody(status, body) => CalloutResult::Response { status, body: body.as_bytes() },
            Reply::TimedOut => CalloutResult::TimedOut,
            Reply::Failed => CalloutResult::Failed,
        }
    }
}

/// A ledger that fails its `fail_at`-th operation (counting from 1), as a full or broken store.
struct FlakyLedger<'a> {
    inner: LocalLedger<'a, MemoryStore>,
    ops: Cell<usize>,
    fail_at: usize,
}

impl Ledger for FlakyLedger<'_> {
    fn run(&self, op: &LedgerOp, now: u64) -> LedgerAnswer {
        self.ops.set(self.ops.get() + 1);
        if self.ops.get() == self.fail_at {
            return LedgerAnswer::Unavailable;
        }
        self.inner.run(op, now)
    }
}

struct Run {
    finish: Finish,
    calls: Vec<Endpoint>,
    /// The waits between callouts, in milliseconds.
    waits: Vec<u64>,
}

/// Drives one purchase at `now` (seconds); each callout takes `CALLOUT_MS` of the clock.
fn drive(ledger: &dyn Ledger, config: &Config, header: &[u8], now: u64, replies: &[(Endpoint, Reply)]) -> Run {
    drive_with(ledger, config, header, now, replies, None)
}

/// As `drive`, answering every `/settle` past the scripted ones with `then`.
fn drive_with(
    ledger: &dyn Ledger,
    config: &Config,
    header: &[u8],
    now: u64,
    replies: &[(Endpoint, Reply)],
    then: Option<Reply>,
) -> Run {
    let mut calls = Vec::new();
    let mut waits = Vec::new();
    let mut clock_ms = now * 1_000;
    let (mut checkout, mut step) = match Checkout::begin(config, b"/weather", header, challenge(config), &fee_payer()) {
        Ok(started) => started,
        Err(finish) => return Run { finish, calls, waits },
    };
    let mut replies = replies.iter();
    for _ in 0..200 {
        step = match step {
            Step::Ledger(op) => checkout.on_ledger(config, ledger.run(&op, clock_ms / 1_000), clock_ms),
            Step::Callout(endpoint) => {
                let (expected, reply) = match (replies.next(), then) {
                    (Some((expected, reply)), _) => (*expected, *reply),
                    (None, Some(reply)) => (Endpoint::Settle, reply),
                    (None, None) => panic!("unscripted callout to {endpoint:?}"),
                };
                assert_eq!(endpoint, expected, "callouts so far: {calls:?}");
                calls.push(endpoint);
                clock_ms += CALLOUT_MS;
                checkout.on_callout(config, reply.result(), clock_ms)
            }
            Step::Wait(ms) => {
                waits.push(ms);
                clock_ms += ms;
                checkout.on_wake(config, clock_ms)
            }
            Step::Finish(finish) => {
                assert!(replies.next().is_none(), "scripted callouts left over after {calls:?}");
                return Run { finish, calls, waits };
            }
        };
    }
    panic!("the purchase did not finish in 200 steps");
}

struct Seller {
    config: Config,
    store: MemoryStore,
}

impl Seller {
    fn new() -> Seller {
        Seller::with_config(config())
    }

    /// `settleDeadlineMs`: 0 never asks `/settle` twice in one request.
    fn with_deadline(ms: u64) -> Seller {
        let mut config = config();
        config.settle_deadline_ms = ms;
        Seller::with_config(config)
    }

    fn with_config(config: Config) -> Seller {
        let seller = Seller { config, store: MemoryStore::default() };
        crate::ledger::create_buckets(&seller.store);
        seller
    }

    fn ledger(&self) -> LocalLedger<'_, MemoryStore> {
        LocalLedger { store: &self.store, policy: POLICY }
    }

    fn buy(&self, now: u64, replies: &[(Endpoint, Reply)]) -> Run {
        drive(&self.ledger(), &self.config, &header(), now, replies)
    }

    fn entry(&self, now: u64) -> Option<Entry> {
        let hash = Checkout::begin(&self.config, b"/weather", &header(), challenge(&self.config), &fee_payer())
            .map(|(checkout, _)| checkout.checked().message_hash)
            .unwrap_or_else(|_| panic!("the vector passes the local checks"));
        let at = PurchaseKey::of(&hash);
        self.ledger().update(at.bucket, now, |b| b.get(&at.key).cloned()).unwrap()
    }
}

fn reason(response: &Response) -> String {
    let body: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
    body["reason"].as_str().unwrap_or_default().to_owned()
}

fn failed(reason: &str) -> Count {
    Count::PurchasesFailed(reason.to_owned())
}

const CALLOUT_MS: u64 = 50;

const VERIFY_OK: (Endpoint, Reply) = (Endpoint::Verify, Reply::Ok(VALID));
const SETTLE_OK: (Endpoint, Reply) = (Endpoint::Settle, Reply::Ok(SETTLED));

#[test]
fn a_fresh_payment_is_verified_signed_settled_and_recorded() {
    let seller = Seller::new();
    let run = seller.buy(NOW, &[VERIFY_OK, SETTLE_OK]);
    assert_eq!(run.calls, [Endpoint::Verify, Endpoint::Settle]);
    let response = &run.finish.response;
    assert_eq!(response.status, 200);
    let token = response.header("access-pass").unwrap();
    let claims = token::verify(&seller.config.keys, &seller.config.verify_policy, token.as_bytes(), NOW).unwrap();
    assert_eq!((claims.tier.as_str(), claims.iat, claims.exp), ("5m", NOW, NOW + 300));
    assert_eq!(
        run.finish.counts,
        [Count::PurchasesSucceeded, Count::SettledAtomic { tier: "5m".to_owned(), atomic: 1000 }]
    );
    let log = run.finish.log.unwrap();
    assert!(
        log.starts_with("x402-access-pass: purchase settled payer=") && log.ends_with(&format!("transaction={TX}")),
        "{log}"
    );
    assert!(matches!(seller.entry(NOW), Some(Entry::Settled { at: NOW, .. })));
}

#[test]
fn the_same_payment_again_is_the_same_answer_and_no_callout() {
    let seller = Seller::new();
    let first = seller.buy(NOW, &[VERIFY_OK, SETTLE_OK]);
    let again = seller.buy(NOW + 600, &[]);
    assert_eq!(again.finish.response, first.finish.response);
    assert_eq!(again.finish.counts, [Count::ReplaysServed]);
    // Past the replay window: refused, never settled again.
    let late = seller.buy(NOW + 601, &[]);
    assert_eq!((late.finish.response.status, reason(&late.finish.response).as_str()), (402, "duplicate_payment"));
    assert!(late.finish.response.header("payment-required").is_some());
}

#[test]
fn while_the_payment_is_in_flight_elsewhere_the_answer_is_409() {
    let seller = Seller::new();
    seller.buy(NOW, &[(Endpoint::Verify, Reply::TimedOut)]); // a verify problem forgets: fresh again
    let hash = seller.entry(NOW);
    assert_eq!(hash, None);
    // Another request claims it and is still verifying.
    let (checkout, step) =
        Checkout::begin(&seller.config, b"/weather", &header(), challenge(&seller.config), &fee_payer()).ok().unwrap();
    let Step::Ledger(claim) = step else { panic!("a claim first") };
    assert_eq!(seller.ledger().run(&claim, NOW), LedgerAnswer::Claimed(Claim::Fresh));
    drop(checkout);
    let run = seller.buy(NOW + 1, &[]);
    assert_eq!(run.finish.response.status, 409);
    assert_eq!(run.finish.response.header("retry-after"), Some("1"));
    assert_eq!(run.finish.counts, [failed("payment_in_progress")]);
    // Abandoned (its worker died): taken over once stale, and verified afresh.
    let run = seller.buy(NOW + POLICY.stale_after_seconds, &[VERIFY_OK, SETTLE_OK]);
    assert_eq!(run.finish.response.status, 200);
}

#[test]
fn a_payment_refused_locally_never_reaches_the_facilitator_or_the_ledger() {
    let seller = Seller::new();
    let writes = seller.store.writes.get();
    for bad in [&b"not base64 at all"[..], b"e30=", b""] {
        let run = drive(&seller.ledger(), &seller.config, bad, NOW, &[]);
        assert!(run.calls.is_empty());
        assert_eq!(
            (run.finish.response.status, reason(&run.finish.response).as_str()),
            (402, "invalid_payment_header")
        );
        assert_eq!(run.finish.counts, [failed("invalid_payment_header")]);
        assert!(run.finish.log.unwrap().contains("reason=invalid_payment_header"));
    }
    assert_eq!(seller.store.writes.get(), writes);
}

#[test]
fn a_payment_the_facilitator_finds_invalid_is_402_and_may_be_sent_again() {
    let seller = Seller::new();
    let invalid = Reply::Ok(r#"{"isValid":false,"invalidReason":"invalid_exact_svm_payload_amount_mismatch"}"#);
    let run = seller.buy(NOW, &[(Endpoint::Verify, invalid)]);
    assert_eq!(run.finish.response.status, 402);
    assert_eq!(reason(&run.finish.response), "invalid_exact_svm_payload_amount_mismatch");
    assert!(run.finish.response.header("payment-required").is_some());
    assert_eq!(seller.entry(NOW), None, "nothing was charged: forgotten");
    assert_eq!(seller.buy(NOW, &[VERIFY_OK, SETTLE_OK]).finish.response.status, 200);
}

#[test]
fn a_facilitator_that_cannot_verify_is_502_and_nothing_is_charged() {
    for (reply, expected, count) in [
        (Reply::TimedOut, "facilitator_timeout", Count::FacilitatorTimeouts),
        (Reply::Status(500), "facilitator_error_500", Count::FacilitatorErrors),
        (Reply::Failed, "facilitator_error_503", Count::FacilitatorErrors),
        (Reply::Ok("{\"isValid\":"), "facilitator_bad_response", Count::FacilitatorErrors),
    ] {
        let seller = Seller::new();
        let run = seller.buy(NOW, &[(Endpoint::Verify, reply)]);
        assert_eq!((run.finish.response.status, reason(&run.finish.response)), (502, expected.to_owned()));
        assert!(run.finish.response.header("retry-after").is_some());
        assert_eq!(run.finish.counts, [count, failed(expected)]);
        assert_eq!(seller.entry(NOW), None);
    }
}

#[test]
fn a_refused_settlement_is_402_and_forgotten() {
    let seller = Seller::new();
    let refused = Reply::Ok(r#"{"success":false,"errorReason":"insufficient_funds","transaction":""}"#);
    let run = seller.buy(NOW, &[VERIFY_OK, (Endpoint::Settle, refused)]);
    assert_eq!((run.finish.response.status, reason(&run.finish.response).as_str()), (402, "insufficient_funds"));
    let body: serde_json::Value = serde_json::from_slice(&run.finish.response.body).unwrap();
    assert_eq!(body["error"], "Payment settlement failed");
    assert_eq!(seller.entry(NOW), None);
}

#[test]
fn an_unknown_settlement_keeps_its_pass_and_the_same_payment_recovers_it() {
    for lost in [Reply::TimedOut, Reply::Status(502), Reply::Failed, Reply::Ok("{\"success\":tr")] {
        let seller = Seller::with_deadline(0);
        let run = seller.buy(NOW, &[VERIFY_OK, (Endpoint::Settle, lost)]);
        assert_eq!((run.finish.response.status, reason(&run.finish.response).as_str()), (503, "settlement_unknown"));
        assert!(run.finish.response.header("retry-after").is_some());
        assert_eq!(run.finish.counts.get(1), Some(&Count::SettlementsUnknown));
        let Some(Entry::Unknown { pass, .. }) = seller.entry(NOW) else { panic!("kept as unknown") };
        // The same payment 63 s later: settled again (a facilitator settles it at most once), never
        // verified anew, and its pass lasts its full five minutes from now (docs/behaviour.md §17.4).
        let again = seller.buy(NOW + 63, &[SETTLE_OK]);
        assert_eq!(again.finish.response.status, 200);
        let token = again.finish.response.header("access-pass").unwrap();
        assert_ne!(token, pass.token);
        let claims =
            token::verify(&seller.config.keys, &seller.config.verify_policy, token.as_bytes(), NOW + 63).unwrap();
        assert_eq!(
            (claims.iat, claims.exp, claims.tier.as_str(), claims.payer.as_str()),
            (NOW + 63, NOW + 363, "5m", pass.claims.payer.as_str())
        );
        assert!(again.finish.counts.contains(&Count::SettlementsRecovered));
        assert!(matches!(seller.entry(NOW + 63), Some(Entry::Settled { .. })));
    }
}

#[test]
fn duplicate_settlement_means_landed_only_for_a_payment_this_filter_left_unknown() {
    let duplicate = Reply::Ok(r#"{"success":false,"errorReason":"duplicate_settlement","transaction":""}"#);
    let seller = Seller::with_deadline(0);
    seller.buy(NOW, &[VERIFY_OK, (Endpoint::Settle, Reply::TimedOut)]);
    let recovered = seller.buy(NOW + 1, &[(Endpoint::Settle, duplicate)]);
    assert_eq!(recovered.finish.response.status, 200);
    assert!(recovered.finish.log.unwrap().contains("transaction=(recovered: settled earlier)"));

    let fresh = Seller::new();
    let run = fresh.buy(NOW, &[VERIFY_OK, (Endpoint::Settle, duplicate)]);
    assert_eq!((run.finish.response.status, reason(&run.finish.response).as_str()), (402, "duplicate_settlement"));
}

#[test]
fn a_ledger_that_cannot_claim_answers_503_before_any_callout() {
    let seller = Seller::new();
    let flaky = FlakyLedger { inner: seller.ledger(), ops: Cell::new(0), fail_at: 1 };
    let run = drive(&flaky, &seller.config, &header(), NOW, &[]);
    assert_eq!((run.finish.response.status, reason(&run.finish.response).as_str()), (503, "settlement_unknown"));
    assert_eq!(run.finish.counts, [failed("store_unavailable")]);
}

#[test]
fn a_pass_that_cannot_be_held_as_pending_is_never_settled() {
    let seller = Seller::new();
    // 1 claim, 2 pending (fails), 3 forget.
    let flaky = FlakyLedger { inner: seller.ledger(), ops: Cell::new(0), fail_at: 2 };
    let run = drive(&flaky, &seller.config, &header(), NOW, &[VERIFY_OK]);
    assert_eq!(run.calls, [Endpoint::Verify]);
    assert_eq!((run.finish.response.status, reason(&run.finish.response).as_str()), (503, "settlement_unknown"));
    assert_eq!(seller.entry(NOW), None, "forgotten: the payment may be sent again");
}

#[test]
fn losing_compare_and_swap_races_changes_nothing_for_the_buyer() {
    let seller = Seller::new();
    seller.store.conflicts.set(5);
    let run = seller.buy(NOW, &[VERIFY_OK, SETTLE_OK]);
    assert_eq!(run.finish.response.status, 200);
    assert!(matches!(seller.entry(NOW), Some(Entry::Settled { .. })));
}

#[test]
fn an_answer_the_flow_did_not_ask_for_is_503_and_keeps_the_ledger() {
    let seller = Seller::new();
    let (mut checkout, _claim) =
        Checkout::begin(&seller.config, b"/weather", &header(), challenge(&seller.config), &fee_payer()).ok().unwrap();
    let step = checkout.on_callout(&seller.config, Reply::Ok(SETTLED).result(), NOW);
    let Step::Finish(finish) = step else { panic!("finished") };
    assert_eq!(finish.response.status, 503);
}

#[test]
fn a_filter_with_verify_only_keys_sells_nothing() {
    let seller = Seller::new();
    assert_eq!(refuse_without_signing_key(&seller.config), None);
    let json = r#"{"payTo":"GyGKxMyg1p9SsHfm15MkNUu1u9TN2JtTspcdmrtGUdse","network":"solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1",
        "tiers":{"5m":"0.001"},"keys":[{"kid":"e","alg":"EdDSA","publicKey":"11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="}]}"#;
    let Ok(sidecar) = Config::parse(json.as_bytes(), &|_| None) else { panic!("a verify-only config") };
    let finish = refuse_without_signing_key(&sidecar).unwrap();
    assert_eq!((finish.response.status, reason(&finish.response).as_str()), (503, "sales_disabled"));
    assert_eq!(finish.counts, [failed("sales_disabled")]);
}

fn settle(reply: Reply) -> (Endpoint, Reply) {
    (Endpoint::Settle, reply)
}

const PENDING: Reply = Reply::Ok(
    r#"{"success":false,"errorReason":"settlement_pending","transaction":"","network":"solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1"}"#,
);

#[test]
fn a_lost_settle_answer_is_asked_again_inside_the_request_and_the_buyer_leaves_with_the_pass() {
    for lost in [Reply::TimedOut, Reply::Status(502), Reply::Failed, Reply::Ok("{\"success\":tr"), PENDING] {
        let seller = Seller::new();
        let run = seller.buy(NOW, &[VERIFY_OK, settle(lost), SETTLE_OK]);
        assert_eq!(run.calls, [Endpoint::Verify, Endpoint::Settle, Endpoint::Settle]);
        assert_eq!(run.waits, [200]);
        assert_eq!(run.finish.response.status, 200, "{:?}", run.finish.log);
        assert!(run.finish.counts.contains(&Count::SettleRetries(1)));
        assert!(run.finish.counts.contains(&Count::SettlementsRecovered));
        assert!(run.finish.counts.contains(&Count::SettledAtomic { tier: "5m".to_owned(), atomic: 1000 }));
        assert!(matches!(seller.entry(NOW + 1), Some(Entry::Settled { .. })));
    }
}

#[test]
fn settlement_pending_waits_longer_each_time_until_it_settles() {
    let seller = Seller::new();
    let run = seller.buy(NOW, &[VERIFY_OK, settle(PENDING), settle(PENDING), settle(PENDING), SETTLE_OK]);
    assert_eq!(run.waits, [200, 400, 800]);
    assert_eq!(run.finish.response.status, 200);
    // Its pass counts from when it is handed out, not from the first attempt.
    let token = run.finish.response.header("access-pass").unwrap();
    let claims = token::verify(&seller.config.keys, &seller.config.verify_policy, token.as_bytes(), NOW + 2).unwrap();
    assert_eq!(claims.exp - claims.iat, 300);
    assert_eq!(claims.iat, (NOW * 1_000 + 5 * CALLOUT_MS + 1_400) / 1_000);
}

#[test]
fn past_the_deadline_the_answer_is_503_and_the_pass_is_kept_for_the_same_payment() {
    let seller = Seller::new();
    let run = drive_with(&seller.ledger(), &seller.config, &header(), NOW, &[VERIFY_OK], Some(Reply::TimedOut));
    assert_eq!((run.finish.response.status, reason(&run.finish.response).as_str()), (503, "settlement_unknown"));
    // Waits double to 2 s; no wait is started that would end past the 20 s deadline.
    assert_eq!(run.waits[..5], [200, 400, 800, 1_600, 2_000]);
    let settles = run.calls.iter().filter(|c| **c == Endpoint::Settle).count() as u64;
    let spent: u64 = run.waits.iter().sum::<u64>() + settles * CALLOUT_MS;
    assert!(
        spent < 20_000 + 2 * CALLOUT_MS && spent + 2_000 >= 20_000 - CALLOUT_MS,
        "{spent} ms over {settles} attempts"
    );
    assert!(run.finish.counts.contains(&Count::SettleRetries(settles - 1)));
    assert!(run.finish.counts.contains(&Count::SettlementsUnknown));
    let log = run.finish.log.unwrap();
    assert!(log.contains(&format!("after {settles} attempt(s)")), "{log}");
    assert!(matches!(seller.entry(NOW + 30), Some(Entry::Unknown { .. })));
}

#[test]
fn already_processed_after_an_unknown_attempt_means_it_landed() {
    for already in [
        r#"{"success":false,"errorReason":"duplicate_settlement","transaction":""}"#,
        r#"{"success":false,"errorReason":"settle_exact_svm_transaction_already_processed","transaction":""}"#,
    ] {
        let seller = Seller::new();
        let confirmation = Reply::Ok(
            r#"{"success":false,"errorReason":"settle_exact_svm_transaction_confirmation_timed_out","transaction":""}"#,
        );
        let run = seller.buy(NOW, &[VERIFY_OK, settle(confirmation), settle(Reply::Ok(already))]);
        assert_eq!(run.finish.response.status, 200, "{already}");
        assert!(run.finish.counts.contains(&Count::SettlementsRecovered));
    }
}

#[test]
fn an_unrecognized_refusal_is_asked_once_more_and_the_same_twice_is_a_refusal() {
    let odd = Reply::Ok(r#"{"success":false,"errorReason":"Facilitator: the moon is full","transaction":""}"#);
    let seller = Seller::new();
    let run = seller.buy(NOW, &[VERIFY_OK, settle(odd), SETTLE_OK]);
    assert_eq!(run.finish.response.status, 200);

    let seller = Seller::new();
    let run = seller.buy(NOW, &[VERIFY_OK, settle(odd), settle(odd)]);
    assert_eq!(run.finish.response.status, 402);
    assert_eq!(reason(&run.finish.response), "facilitator__the_moon_is_full");
    assert_eq!(seller.entry(NOW + 1), None);
}

#[test]
fn a_refusal_sent_with_http_400_is_a_refusal_at_once() {
    let seller = Seller::new();
    let refused = Reply::StatusBody(400, r#"{"success":false,"errorReason":"insufficient_funds","transaction":""}"#);
    let run = seller.buy(NOW, &[VERIFY_OK, settle(refused)]);
    assert_eq!((run.finish.response.status, reason(&run.finish.response).as_str()), (402, "insufficient_funds"));
    assert!(run.waits.is_empty());
    assert_eq!(seller.entry(NOW), None);
}

#[test]
fn a_malformed_success_is_not_believed_and_never_reaches_the_log() {
    let forged = Reply::Ok(
        r#"{"success":true,"transaction":"5mYP\nx402-access-pass: purchase settled payer=x tier=24h","network":"solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1"}"#,
    );
    let other_network = Reply::Ok(
        r#"{"success":true,"transaction":"99eUso3aSbE9tqGSTXzo3TLfKb9RkMTURrHKQ1K7Zh3BbeqPevr5E1iCbpTjqHuTFLtfxTTD5ekfVuZFzQyEQf8","network":"solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp"}"#,
    );
    let seller = Seller::with_deadline(0);
    for bad in [forged, other_network] {
        let seller_run = seller.buy(NOW, &[VERIFY_OK, settle(bad)]);
        assert_eq!(seller_run.finish.response.status, 503);
        let log = seller_run.finish.log.unwrap();
        assert!(!log.contains('\n') && !log.contains("5mYP"), "{log}");
        // The payment stays unknown; clean up for the next variant.
        seller.ledger().run(&LedgerOp::Forget(PurchaseKey::of(&message_hash(&seller))), NOW);
    }
    let seller = Seller::new();
    let run = seller.buy(NOW, &[VERIFY_OK, settle(forged), SETTLE_OK]);
    assert_eq!(run.finish.response.status, 200);
    assert!(run.finish.log.unwrap().ends_with(&format!("transaction={TX} recovered after 2 attempt(s) here")));
}

fn message_hash(seller: &Seller) -> [u8; 32] {
    match Checkout::begin(&seller.config, b"/weather", &header(), challenge(&seller.config), &fee_payer()) {
        Ok((checkout, _)) => checkout.checked().message_hash,
        Err(_) => panic!("the vector passes the local checks"),
    }
}

/// The payer's entitlement (docs/behaviour.md §16.3), as a later `SIGN-IN-WITH-X` finds it.
fn entitlement_of(seller: &Seller, payer: &str) -> Option<crate::entitlements::Entitlement> {
    match seller.ledger().run(&LedgerOp::Entitlement(payer.to_owned()), NOW) {
        LedgerAnswer::Entitled(found) => found,
        other => panic!("{other:?}"),
    }
}

fn payer_of(seller: &Seller) -> String {
    Checkout::begin(&seller.config, b"/weather", &header(), challenge(&seller.config), &fee_payer())
        .map(|(checkout, _)| checkout.checked().payer.clone())
        .unwrap_or_else(|_| panic!("the vector passes the local checks"))
}

#[test]
fn a_settled_purchase_entitles_its_payer_and_a_refused_one_does_not() {
    let refused = Seller::new();
    let payer = payer_of(&refused);
    refused.buy(NOW, &[VERIFY_OK, (Endpoint::Settle, Reply::Ok(r#"{"success":false,"errorReason":"insufficient_funds","transaction":"","network":"solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1"}"#))]);
    assert_eq!(entitlement_of(&refused, &payer), None, "no money moved: no entitlement");

    let seller = Seller::new();
    let run = seller.buy(NOW, &[VERIFY_OK, SETTLE_OK]);
    assert_eq!(run.finish.response.status, 200);
    let entitlement = entitlement_of(&seller, &payer).expect("an entitlement from the moment the settlement is known");
    assert_eq!((entitlement.tier.as_str(), entitlement.iat, entitlement.exp), ("5m", NOW, NOW + 300));
    assert_eq!(entitlement.network, seller.config.network);
}

#[test]
fn a_recovered_settlement_entitles_its_payer_for_the_pass_signed_anew() {
    let seller = Seller::with_deadline(0);
    let payer = payer_of(&seller);
    let first = seller.buy(NOW, &[VERIFY_OK, (Endpoint::Settle, Reply::TimedOut)]);
    assert_eq!(first.finish.response.status, 503);
    assert_eq!(entitlement_of(&seller, &payer), None, "unknown: not yet");
    let again = seller.buy(NOW + 30, &[SETTLE_OK]);
    assert_eq!(again.finish.response.status, 200);
    let entitlement = entitlement_of(&seller, &payer).unwrap();
    assert_eq!((entitlement.iat, entitlement.exp), (NOW + 30, NOW + 330));
}

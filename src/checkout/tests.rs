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
    drive_with(ledger, config, PART_ONE, header, now, replies, None)
}

/// As `drive`, answering every `/settle` past the scripted ones with `then`.
fn drive_with(
    ledger: &dyn Ledger,
    config: &Config,
    path: &[u8],
    header: &[u8],
    now: u64,
    replies: &[(Endpoint, Reply)],
    then: Option<Reply>,
) -> Run {
    drive_wire(ledger, config, path, Wire::V2, header, now, replies, then)
}

/// As `drive_with`, for a payment in the header of `wire`.
#[allow(clippy::too_many_arguments)]
fn drive_wire(
    ledger: &dyn Ledger,
    config: &Config,
    path: &[u8],
    wire: Wire,
    header: &[u8],
    now: u64,
    replies: &[(Endpoint, Reply)],
    then: Option<Reply>,
) -> Run {
    let mut calls = Vec::new();
    let mut waits = Vec::new();
    let mut clock_ms = now * 1_000;
    let (mut checkout, mut step) =
        match Checkout::begin(config, b"GET", path, wire, header, challenge(config), &fee_payer(), || now * 1_000) {
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
        let hash = Checkout::begin(
            &self.config,
            b"GET",
            PART_ONE,
            Wire::V2,
            &header(),
            challenge(&self.config),
            &fee_payer(),
            || 0,
        )
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

/// A Part I purchase: the request names its pass (docs/behaviour.md §6), the filter answers.
const PART_ONE: &[u8] = b"/weather?tier=5m";
/// A paid request: the same payment on a request that names no pass (docs/behaviour.md §15).
const PAID: &[u8] = b"/weather?city=Lisbon";

impl Finish {
    /// The filter's own answer; a test expecting one fails on a forward.
    fn local(&self) -> &Response {
        match &self.answer {
            Answer::Local(response) => response,
            Answer::Forward(forward) => panic!("forwarded upstream, not answered: {forward:?}"),
        }
    }

    /// The paid request's forward; a test expecting one fails on a local answer.
    fn forwarded(&self) -> &Forward {
        match &self.answer {
            Answer::Forward(forward) => forward,
            Answer::Local(response) => {
                panic!("answered {} {}", response.status, String::from_utf8_lossy(&response.body))
            }
        }
    }
}

const VERIFY_OK: (Endpoint, Reply) = (Endpoint::Verify, Reply::Ok(VALID));
const SETTLE_OK: (Endpoint, Reply) = (Endpoint::Settle, Reply::Ok(SETTLED));

#[test]
fn a_fresh_payment_is_verified_signed_settled_and_recorded() {
    let seller = Seller::new();
    let run = seller.buy(NOW, &[VERIFY_OK, SETTLE_OK]);
    assert_eq!(run.calls, [Endpoint::Verify, Endpoint::Settle]);
    let response = &run.finish.local();
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
    assert_eq!(again.finish.local(), first.finish.local());
    assert_eq!(again.finish.counts, [Count::ReplaysServed]);
    // Past the replay window: refused, never settled again.
    let late = seller.buy(NOW + 601, &[]);
    assert_eq!((late.finish.local().status, reason(late.finish.local()).as_str()), (402, "duplicate_payment"));
    assert!(late.finish.local().header("payment-required").is_some());
}

#[test]
fn while_the_payment_is_in_flight_elsewhere_the_answer_is_409() {
    let seller = Seller::new();
    seller.buy(NOW, &[(Endpoint::Verify, Reply::TimedOut)]); // a verify problem forgets: fresh again
    let hash = seller.entry(NOW);
    assert_eq!(hash, None);
    // Another request claims it and is still verifying.
    let (checkout, step) = Checkout::begin(
        &seller.config,
        b"GET",
        PART_ONE,
        Wire::V2,
        &header(),
        challenge(&seller.config),
        &fee_payer(),
        || 0,
    )
    .ok()
    .unwrap();
    let Step::Ledger(claim) = step else { panic!("a claim first") };
    assert_eq!(seller.ledger().run(&claim, NOW), LedgerAnswer::Claimed(Claim::Fresh));
    drop(checkout);
    let run = seller.buy(NOW + 1, &[]);
    assert_eq!(run.finish.local().status, 409);
    assert_eq!(run.finish.local().header("retry-after"), Some("1"));
    assert_eq!(run.finish.counts, [failed("payment_in_progress")]);
    // Abandoned (its worker died): taken over once stale, and verified afresh.
    let run = seller.buy(NOW + POLICY.stale_after_seconds, &[VERIFY_OK, SETTLE_OK]);
    assert_eq!(run.finish.local().status, 200);
}

#[test]
fn a_payment_refused_locally_never_reaches_the_facilitator_or_the_ledger() {
    let seller = Seller::new();
    let writes = seller.store.writes.get();
    for bad in [&b"not base64 at all"[..], b"e30=", b""] {
        let run = drive(&seller.ledger(), &seller.config, bad, NOW, &[]);
        assert!(run.calls.is_empty());
        assert_eq!((run.finish.local().status, reason(run.finish.local()).as_str()), (402, "invalid_payment_header"));
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
    assert_eq!(run.finish.local().status, 402);
    assert_eq!(reason(run.finish.local()), "invalid_exact_svm_payload_amount_mismatch");
    assert!(run.finish.local().header("payment-required").is_some());
    assert_eq!(seller.entry(NOW), None, "nothing was charged: forgotten");
    assert_eq!(seller.buy(NOW, &[VERIFY_OK, SETTLE_OK]).finish.local().status, 200);
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
        assert_eq!((run.finish.local().status, reason(run.finish.local())), (502, expected.to_owned()));
        assert!(run.finish.local().header("retry-after").is_some());
        assert_eq!(run.finish.counts, [count, failed(expected)]);
        assert_eq!(seller.entry(NOW), None);
    }
}

#[test]
fn a_refused_settlement_is_402_and_forgotten() {
    let seller = Seller::new();
    let refused = Reply::Ok(r#"{"success":false,"errorReason":"insufficient_funds","transaction":""}"#);
    let run = seller.buy(NOW, &[VERIFY_OK, (Endpoint::Settle, refused)]);
    assert_eq!((run.finish.local().status, reason(run.finish.local()).as_str()), (402, "insufficient_funds"));
    let body: serde_json::Value = serde_json::from_slice(&run.finish.local().body).unwrap();
    assert_eq!(body["error"], "Payment settlement failed");
    assert_eq!(seller.entry(NOW), None);
}

#[test]
fn an_unknown_settlement_keeps_its_pass_and_the_same_payment_recovers_it() {
    for lost in [Reply::TimedOut, Reply::Status(502), Reply::Failed, Reply::Ok("{\"success\":tr")] {
        let seller = Seller::with_deadline(0);
        let run = seller.buy(NOW, &[VERIFY_OK, (Endpoint::Settle, lost)]);
        assert_eq!((run.finish.local().status, reason(run.finish.local()).as_str()), (503, "settlement_unknown"));
        assert!(run.finish.local().header("retry-after").is_some());
        assert_eq!(run.finish.counts.get(1), Some(&Count::SettlementsUnknown));
        let Some(Entry::Unknown { pass, .. }) = seller.entry(NOW) else { panic!("kept as unknown") };
        // The same payment 63 s later: settled again (a facilitator settles it at most once), never
        // verified anew, and its pass lasts its full five minutes from now (docs/behaviour.md §17.4).
        let again = seller.buy(NOW + 63, &[SETTLE_OK]);
        assert_eq!(again.finish.local().status, 200);
        let token = again.finish.local().header("access-pass").unwrap();
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
    assert_eq!(recovered.finish.local().status, 200);
    assert!(recovered.finish.log.unwrap().contains("transaction=(recovered: settled earlier)"));

    let fresh = Seller::new();
    let run = fresh.buy(NOW, &[VERIFY_OK, (Endpoint::Settle, duplicate)]);
    assert_eq!((run.finish.local().status, reason(run.finish.local()).as_str()), (402, "duplicate_settlement"));
}

#[test]
fn a_ledger_that_cannot_claim_answers_503_before_any_callout() {
    let seller = Seller::new();
    let flaky = FlakyLedger { inner: seller.ledger(), ops: Cell::new(0), fail_at: 1 };
    let run = drive(&flaky, &seller.config, &header(), NOW, &[]);
    assert_eq!((run.finish.local().status, reason(run.finish.local()).as_str()), (503, "ledger_unavailable"));
    assert_eq!(run.finish.local().header("retry-after"), Some("2"));
    assert_eq!(run.finish.counts, [failed("ledger_unavailable")]);
}

#[test]
fn a_pass_that_cannot_be_held_as_pending_is_never_settled() {
    let seller = Seller::new();
    // 1 claim, 2 pending (fails), 3 forget.
    let flaky = FlakyLedger { inner: seller.ledger(), ops: Cell::new(0), fail_at: 2 };
    let run = drive(&flaky, &seller.config, &header(), NOW, &[VERIFY_OK]);
    assert_eq!(run.calls, [Endpoint::Verify]);
    assert_eq!((run.finish.local().status, reason(run.finish.local()).as_str()), (503, "ledger_unavailable"));
    assert_eq!(run.finish.counts, [failed("ledger_unavailable")]);
    assert_eq!(seller.entry(NOW), None, "forgotten: the payment may be sent again");
}

/// A ledger that records every op it runs.
struct Recording<'a> {
    inner: LocalLedger<'a, MemoryStore>,
    ops: std::cell::RefCell<Vec<LedgerOp>>,
}

impl Ledger for Recording<'_> {
    fn run(&self, op: &LedgerOp, now: u64) -> LedgerAnswer {
        self.ops.borrow_mut().push(op.clone());
        self.inner.run(op, now)
    }
}

#[test]
fn a_settlement_and_its_entitlement_are_one_ledger_op_then_the_answer() {
    let seller = Seller::new();
    let payer = payer_of(&seller);
    let recording = Recording { inner: seller.ledger(), ops: Default::default() };
    let run = drive(&recording, &seller.config, &header(), NOW, &[VERIFY_OK, SETTLE_OK]);
    assert_eq!(run.finish.local().status, 200);
    let ops = recording.ops.into_inner();
    let [LedgerOp::Claim(_), LedgerOp::Put(_, pending), LedgerOp::PutEntitled { at, entry, payer: entitled, entitlement }] =
        ops.as_slice()
    else {
        panic!("claim, pending pass, settlement with its entitlement: {ops:?}")
    };
    assert!(matches!(**pending, Entry::Pending { pass: Some(_), .. }));
    assert_eq!(*at, PurchaseKey::of(&message_hash(&seller)));
    assert!(matches!(**entry, Entry::Settled { at: NOW, .. }));
    assert_eq!((entitled.as_str(), entitlement.exp), (payer.as_str(), NOW + 300));
    assert!(ops[2].records_money_moved(), "kept and written again if the ledger cannot take it");
    // Refused or unknown: no entitlement rides along.
    for settle in [
        (Endpoint::Settle, Reply::TimedOut),
        (Endpoint::Settle, Reply::Ok(r#"{"success":false,"errorReason":"insufficient_funds","transaction":""}"#)),
    ] {
        let seller = Seller::with_deadline(0);
        let recording = Recording { inner: seller.ledger(), ops: Default::default() };
        drive(&recording, &seller.config, &header(), NOW, &[VERIFY_OK, settle]);
        let ops = recording.ops.into_inner();
        assert!(ops.iter().all(|op| op.entitles().is_none()), "{ops:?}");
    }
}

#[test]
fn a_settlement_the_ledger_cannot_record_still_answers_with_the_pass() {
    let seller = Seller::new();
    // 1 claim, 2 pending, 3 the settlement and its entitlement (fails).
    let flaky = FlakyLedger { inner: seller.ledger(), ops: Cell::new(0), fail_at: 3 };
    let run = drive(&flaky, &seller.config, &header(), NOW, &[VERIFY_OK, SETTLE_OK]);
    assert_eq!(run.finish.local().status, 200);
    assert!(run.finish.counts.contains(&Count::PurchasesSucceeded));
    assert_eq!(flaky.ops.get(), 3, "nothing after it: the answer leaves");
}

#[test]
fn losing_compare_and_swap_races_changes_nothing_for_the_buyer() {
    let seller = Seller::new();
    seller.store.conflicts.set(5);
    let run = seller.buy(NOW, &[VERIFY_OK, SETTLE_OK]);
    assert_eq!(run.finish.local().status, 200);
    assert!(matches!(seller.entry(NOW), Some(Entry::Settled { .. })));
}

#[test]
fn an_answer_the_flow_did_not_ask_for_is_503_and_keeps_the_ledger() {
    let seller = Seller::new();
    let (mut checkout, _claim) = Checkout::begin(
        &seller.config,
        b"GET",
        PART_ONE,
        Wire::V2,
        &header(),
        challenge(&seller.config),
        &fee_payer(),
        || 0,
    )
    .ok()
    .unwrap();
    let step = checkout.on_callout(&seller.config, Reply::Ok(SETTLED).result(), NOW);
    let Step::Finish(finish) = step else { panic!("finished") };
    assert_eq!(finish.local().status, 503);
}

#[test]
fn a_filter_with_verify_only_keys_sells_nothing() {
    let seller = Seller::new();
    assert_eq!(refuse_without_signing_key(&seller.config), None);
    let json = r#"{"payTo":"GyGKxMyg1p9SsHfm15MkNUu1u9TN2JtTspcdmrtGUdse","network":"solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1",
        "tiers":{"5m":"0.001"},"keys":[{"kid":"e","alg":"EdDSA","publicKey":"11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="}]}"#;
    let Ok(sidecar) = Config::parse(json.as_bytes(), &|_| None) else { panic!("a verify-only config") };
    let finish = refuse_without_signing_key(&sidecar).unwrap();
    assert_eq!((finish.local().status, reason(finish.local()).as_str()), (503, "sales_disabled"));
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
        assert_eq!(run.finish.local().status, 200, "{:?}", run.finish.log);
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
    assert_eq!(run.finish.local().status, 200);
    // Its pass counts from when it is handed out, not from the first attempt.
    let token = run.finish.local().header("access-pass").unwrap();
    let claims = token::verify(&seller.config.keys, &seller.config.verify_policy, token.as_bytes(), NOW + 2).unwrap();
    assert_eq!(claims.exp - claims.iat, 300);
    assert_eq!(claims.iat, (NOW * 1_000 + 5 * CALLOUT_MS + 1_400) / 1_000);
}

#[test]
fn past_the_deadline_the_answer_is_503_and_the_pass_is_kept_for_the_same_payment() {
    let seller = Seller::new();
    let run =
        drive_with(&seller.ledger(), &seller.config, PART_ONE, &header(), NOW, &[VERIFY_OK], Some(Reply::TimedOut));
    assert_eq!((run.finish.local().status, reason(run.finish.local()).as_str()), (503, "settlement_unknown"));
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
        assert_eq!(run.finish.local().status, 200, "{already}");
        assert!(run.finish.counts.contains(&Count::SettlementsRecovered));
    }
}

#[test]
fn an_unrecognized_refusal_is_asked_once_more_and_the_same_twice_is_a_refusal() {
    let odd = Reply::Ok(r#"{"success":false,"errorReason":"Facilitator: the moon is full","transaction":""}"#);
    let seller = Seller::new();
    let run = seller.buy(NOW, &[VERIFY_OK, settle(odd), SETTLE_OK]);
    assert_eq!(run.finish.local().status, 200);

    let seller = Seller::new();
    let run = seller.buy(NOW, &[VERIFY_OK, settle(odd), settle(odd)]);
    assert_eq!(run.finish.local().status, 402);
    assert_eq!(reason(run.finish.local()), "facilitator__the_moon_is_full");
    assert_eq!(seller.entry(NOW + 1), None);
}

#[test]
fn a_refusal_sent_with_http_400_is_a_refusal_at_once() {
    let seller = Seller::new();
    let refused = Reply::StatusBody(400, r#"{"success":false,"errorReason":"insufficient_funds","transaction":""}"#);
    let run = seller.buy(NOW, &[VERIFY_OK, settle(refused)]);
    assert_eq!((run.finish.local().status, reason(run.finish.local()).as_str()), (402, "insufficient_funds"));
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
        assert_eq!(seller_run.finish.local().status, 503);
        let log = seller_run.finish.log.unwrap();
        assert!(!log.contains('\n') && !log.contains("5mYP"), "{log}");
        // The payment stays unknown; clean up for the next variant.
        seller.ledger().run(&LedgerOp::Forget(PurchaseKey::of(&message_hash(&seller))), NOW);
    }
    let seller = Seller::new();
    let run = seller.buy(NOW, &[VERIFY_OK, settle(forged), SETTLE_OK]);
    assert_eq!(run.finish.local().status, 200);
    assert!(run.finish.log.unwrap().ends_with(&format!("transaction={TX} recovered after 2 attempt(s) here")));
}

fn message_hash(seller: &Seller) -> [u8; 32] {
    match Checkout::begin(
        &seller.config,
        b"GET",
        PART_ONE,
        Wire::V2,
        &header(),
        challenge(&seller.config),
        &fee_payer(),
        || 0,
    ) {
        Ok((checkout, _)) => checkout.checked().message_hash,
        Err(_) => panic!("the vector passes the local checks"),
    }
}

// Paid requests (docs/behaviour.md §15): the same purchase, ending in the buyer's own request
// forwarded upstream with the new pass.

impl Seller {
    /// The vector's payment on a request that names no pass.
    fn pay(&self, now: u64, replies: &[(Endpoint, Reply)]) -> Run {
        drive_with(&self.ledger(), &self.config, PAID, &header(), now, replies, None)
    }
}

fn decoded_payment_response(forward: &Forward) -> serde_json::Value {
    use base64::Engine as _;
    let (_, value) = forward.response_headers.iter().find(|(name, _)| *name == "payment-response").unwrap();
    let json = base64::engine::general_purpose::STANDARD.decode(value).unwrap();
    serde_json::from_slice(&json).unwrap()
}

fn response_header<'a>(forward: &'a Forward, name: &str) -> &'a str {
    forward.response_headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str()).unwrap()
}

#[test]
fn a_paid_request_that_settles_is_forwarded_with_its_new_pass() {
    let seller = Seller::new();
    let run = seller.pay(NOW, &[VERIFY_OK, SETTLE_OK]);
    assert_eq!(run.calls, [Endpoint::Verify, Endpoint::Settle]);
    let forward = run.finish.forwarded();
    assert_eq!(forward.remove_request_headers, ["payment-signature", "x-payment", "sign-in-with-x", "authorization"]);
    let token = response_header(forward, "access-pass");
    let claims = token::verify(&seller.config.keys, &seller.config.verify_policy, token.as_bytes(), NOW).unwrap();
    assert_eq!((claims.tier.as_str(), claims.iat, claims.exp), ("5m", NOW, NOW + 300));
    let expires = (NOW + 300).to_string();
    let set: Vec<(&str, &str)> =
        forward.set_request_headers.iter().map(|(name, value)| (name.as_str(), value.as_str())).collect();
    assert_eq!(
        set,
        [
            ("x-access-pass-tier", "5m"),
            ("x-access-pass-payer", claims.payer.as_str()),
            ("x-access-pass-expires", expires.as_str()),
            ("x-access-pass-network", "solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1"),
        ]
    );
    assert_eq!(
        decoded_payment_response(forward),
        serde_json::json!({"success": true, "transaction": TX, "network": seller.config.network, "payer": claims.payer})
    );
    assert_eq!(
        run.finish.counts,
        [
            Count::PurchasesSucceeded,
            Count::SettledAtomic { tier: "5m".to_owned(), atomic: 1000 },
            Count::PaidRequestsForwarded
        ]
    );
    let log = run.finish.log.unwrap();
    assert!(log.starts_with("x402-access-pass: paid request settled payer="), "{log}");
    assert!(log.ends_with(&format!("transaction={TX} forwarded upstream")), "{log}");
    assert!(matches!(seller.entry(NOW), Some(Entry::Settled { at: NOW, .. })));
}

#[test]
fn the_same_paid_request_again_is_forwarded_again_with_the_same_pass_and_never_settled_twice() {
    let seller = Seller::new();
    let first = seller.pay(NOW, &[VERIFY_OK, SETTLE_OK]);
    let again = seller.pay(NOW + 600, &[]);
    assert!(again.calls.is_empty());
    assert_eq!(again.finish.forwarded(), first.finish.forwarded());
    assert_eq!(again.finish.counts, [Count::ReplaysServed, Count::PaidRequestsForwarded]);
    assert!(again.finish.log.unwrap().contains("paid request replayed"));
    // Sent as a Part I purchase, the same payment gets the receipt of that same pass.
    let part_one = seller.buy(NOW + 600, &[]);
    assert_eq!(
        part_one.finish.local().header("access-pass"),
        Some(response_header(first.finish.forwarded(), "access-pass"))
    );
    // Past the replay window: refused, never settled again, never forwarded.
    let late = seller.pay(NOW + 601, &[]);
    assert_eq!((late.finish.local().status, reason(late.finish.local()).as_str()), (402, "duplicate_payment"));
}

#[test]
fn a_receipt_recorded_without_its_claims_is_served_as_a_purchase() {
    let seller = Seller::new();
    let first = seller.pay(NOW, &[VERIFY_OK, SETTLE_OK]);
    let at = PurchaseKey::of(&message_hash(&seller));
    let Some(Entry::Settled { at: settled_at, mut receipt }) = seller.entry(NOW) else { panic!("settled") };
    receipt.claims = None;
    seller.ledger().run(&LedgerOp::Put(at, Box::new(Entry::Settled { at: settled_at, receipt })), NOW);
    let again = seller.pay(NOW + 1, &[]);
    assert_eq!(
        again.finish.local().header("access-pass"),
        Some(response_header(first.finish.forwarded(), "access-pass"))
    );
}

#[test]
fn a_paid_request_whose_payment_is_refused_is_answered_as_a_purchase_would_be() {
    let seller = Seller::new();
    let invalid = Reply::Ok(r#"{"isValid":false,"invalidReason":"invalid_exact_svm_payload_amount_mismatch"}"#);
    let run = seller.pay(NOW, &[(Endpoint::Verify, invalid)]);
    assert_eq!(run.finish.local().status, 402);
    assert!(run.finish.local().header("payment-required").is_some());
    let refused = Reply::Ok(r#"{"success":false,"errorReason":"insufficient_funds","transaction":""}"#);
    let run = seller.pay(NOW, &[VERIFY_OK, (Endpoint::Settle, refused)]);
    assert_eq!((run.finish.local().status, reason(run.finish.local()).as_str()), (402, "insufficient_funds"));
    assert!(!run.finish.counts.contains(&Count::PaidRequestsForwarded));
    assert_eq!(seller.entry(NOW), None);
    let run = seller.pay(NOW, &[(Endpoint::Verify, Reply::TimedOut)]);
    assert_eq!((run.finish.local().status, reason(run.finish.local()).as_str()), (502, "facilitator_timeout"));
    let garbage = drive_with(&seller.ledger(), &seller.config, PAID, b"e30=", NOW, &[], None);
    assert_eq!(reason(garbage.finish.local()), "invalid_payment_header");
}

#[test]
fn a_paid_request_left_unknown_is_503_and_the_same_payment_again_is_forwarded() {
    let seller = Seller::with_deadline(0);
    let run = seller.pay(NOW, &[VERIFY_OK, (Endpoint::Settle, Reply::TimedOut)]);
    assert_eq!((run.finish.local().status, reason(run.finish.local()).as_str()), (503, "settlement_unknown"));
    assert!(matches!(seller.entry(NOW), Some(Entry::Unknown { .. })));
    // While another request works it out: 409, as for a purchase.
    let (_, claim) = Checkout::begin(
        &seller.config,
        b"GET",
        PAID,
        Wire::V2,
        &header(),
        challenge(&seller.config),
        &fee_payer(),
        || 0,
    )
    .ok()
    .unwrap();
    let Step::Ledger(claim) = claim else { panic!("a claim first") };
    assert!(matches!(seller.ledger().run(&claim, NOW + 1), LedgerAnswer::Claimed(Claim::Recover(_))));
    let busy = seller.pay(NOW + 2, &[]);
    assert_eq!((busy.finish.local().status, reason(busy.finish.local()).as_str()), (409, "payment_in_progress"));
    // The recovering request went away; once stale, the same payment settles and is forwarded.
    let later = NOW + 1 + POLICY.stale_after_seconds;
    let again = seller.pay(later, &[SETTLE_OK]);
    let token = response_header(again.finish.forwarded(), "access-pass");
    let claims = token::verify(&seller.config.keys, &seller.config.verify_policy, token.as_bytes(), later).unwrap();
    assert_eq!(claims.iat, later, "a recovered pass lasts its full duration from now");
    assert!(again.finish.counts.contains(&Count::SettlementsRecovered));
    assert!(again.finish.counts.contains(&Count::PaidRequestsForwarded));
}

#[test]
fn a_request_naming_its_pass_or_a_seller_without_pay_and_serve_gets_the_purchase_answer() {
    for path in [&b"/weather?tier=5m"[..], b"/weather?duration=300&tier=5m", b"/weather?city=x&tier=5m"] {
        let seller = Seller::new();
        let run = drive_with(&seller.ledger(), &seller.config, path, &header(), NOW, &[VERIFY_OK, SETTLE_OK], None);
        assert_eq!(run.finish.local().status, 200);
        assert!(!run.finish.counts.contains(&Count::PaidRequestsForwarded));
    }
    let mut config = config();
    config.pay_and_serve = false;
    let part_one_only = Seller::with_config(config);
    let run = part_one_only.pay(NOW, &[VERIFY_OK, SETTLE_OK]);
    assert_eq!(run.finish.local().status, 200);
    assert!(run.finish.log.unwrap().starts_with("x402-access-pass: purchase settled"));
}

#[test]
fn a_seller_that_forwards_authorization_keeps_it_on_a_paid_request() {
    let mut config = config();
    config.forward_authorization = true;
    let seller = Seller::with_config(config);
    let run = seller.pay(NOW, &[VERIFY_OK, SETTLE_OK]);
    assert_eq!(run.finish.forwarded().remove_request_headers, ["payment-signature", "x-payment", "sign-in-with-x"]);
}

#[test]
fn a_pass_that_cannot_be_signed_is_500_pass_signing_failed_and_nothing_is_settled() {
    // A verify-only key ring: the filter refuses sales up front (sales_disabled); driven past that
    // check, signing fails after /verify and before any /settle.
    let json = r#"{"payTo":"GyGKxMyg1p9SsHfm15MkNUu1u9TN2JtTspcdmrtGUdse","network":"solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1",
        "tiers":{"5m":"0.001"},"keys":[{"kid":"e","alg":"EdDSA","publicKey":"11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="}]}"#;
    let Ok(sidecar) = Config::parse(json.as_bytes(), &|_| None) else { panic!("a verify-only config") };
    let seller = Seller::with_config(sidecar);
    for path in [PART_ONE, PAID] {
        let run = drive_with(&seller.ledger(), &seller.config, path, &header(), NOW, &[VERIFY_OK], None);
        assert_eq!(run.calls, [Endpoint::Verify], "never settled");
        assert_eq!((run.finish.local().status, reason(run.finish.local()).as_str()), (500, "pass_signing_failed"));
        assert_eq!(run.finish.counts, [failed("pass_signing_failed")]);
        assert!(run.finish.log.as_deref().unwrap().contains("reason=pass_signing_failed"));
        assert_eq!(seller.entry(NOW), None, "forgotten: nothing was charged");
    }
}

// Payment identifiers (docs/behaviour.md §17.5). The one signed payment of the vectors stands
// for "this payment"; "another payment" holding the same id is written into the ledger as the
// filter would have recorded it.

const ID: &str = "pay_7d5d747be160e280504c099d984bcfe0";
const OTHER: &str = "0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f";

/// The vector's payment with `extensions["payment-identifier"].info.id` set, as the official
/// client's `appendPaymentIdentifierToExtensions` leaves it (the transaction is unchanged).
fn header_with_id(id: &str) -> Vec<u8> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut payload: serde_json::Value = serde_json::from_slice(&b64.decode(header()).unwrap()).unwrap();
    payload["extensions"] = serde_json::json!({"payment-identifier": {"info": {"required": false, "id": id}}});
    b64.encode(serde_json::to_vec(&payload).unwrap()).into_bytes()
}

impl Seller {
    fn pay_with_id(&self, now: u64, path: &[u8], replies: &[(Endpoint, Reply)]) -> Run {
        drive_with(&self.ledger(), &self.config, path, &header_with_id(ID), now, replies, None)
    }

    /// Another payment holds `ID` for `GET path` since `since`, in state `entry` (if any).
    fn another_payment_holds_the_id(&self, path: &[u8], since: u64, entry: Option<Entry>) {
        let first = PurchaseKey { bucket: 15, key: OTHER.to_owned() };
        let id = PurchaseKey::of_identifier(ID);
        let binding = Entry::Identifier(since, request_fingerprint(b"GET", path), first.bucket, first.key.clone());
        assert_eq!(self.ledger().run(&LedgerOp::Put(id, Box::new(binding)), since), LedgerAnswer::Done);
        if let Some(entry) = entry {
            assert_eq!(self.ledger().run(&LedgerOp::Put(first, Box::new(entry)), since), LedgerAnswer::Done);
        }
    }

    fn id_entry(&self, now: u64) -> Option<Entry> {
        let id = PurchaseKey::of_identifier(ID);
        self.ledger().update(id.bucket, now, |b| b.get(&id.key).cloned()).unwrap()
    }
}

fn settled_receipt_of_another_payment(seller: &Seller) -> Receipt {
    let claims = purchase::claims(
        &seller.config,
        &Checkout::begin(
            &seller.config,
            b"GET",
            PAID,
            Wire::V2,
            &header(),
            challenge(&seller.config),
            &fee_payer(),
            || 0,
        )
        .ok()
        .unwrap()
        .0
        .checked,
        NOW,
    );
    let token = token::sign(&seller.config.keys, &claims).unwrap();
    Receipt::new(&IssuedPass { token, claims }, TX, &seller.config.network)
}

#[test]
fn a_payment_with_an_identifier_is_bound_to_it_and_bought_as_usual() {
    let seller = Seller::new();
    let run = seller.pay_with_id(NOW, PAID, &[VERIFY_OK, SETTLE_OK]);
    assert_eq!(run.calls, [Endpoint::Verify, Endpoint::Settle]);
    run.finish.forwarded();
    let Some(Entry::Identifier(_, request, _, payment)) = seller.id_entry(NOW) else { panic!("bound") };
    assert_eq!((request, payment), (request_fingerprint(b"GET", PAID), PurchaseKey::of(&message_hash(&seller)).key));
    // The same payment with the same id again: the usual replay, never settled twice.
    let again = seller.pay_with_id(NOW + 1, PAID, &[]);
    assert_eq!(again.finish.forwarded(), run.finish.forwarded());
}

#[test]
fn another_payment_with_a_settled_first_payment_of_its_identifier_gets_that_outcome_and_is_never_settled() {
    let seller = Seller::new();
    let receipt = settled_receipt_of_another_payment(&seller);
    seller.another_payment_holds_the_id(PAID, NOW, Some(Entry::Settled { at: NOW, receipt: receipt.clone() }));
    let run = seller.pay_with_id(NOW + 5, PAID, &[]);
    assert!(run.calls.is_empty(), "no callout: {:?}", run.calls);
    let forward = run.finish.forwarded();
    assert_eq!(response_header(forward, "access-pass"), receipt.token);
    assert_eq!(response_header(forward, "payment-response"), receipt.payment_response);
    assert_eq!(run.finish.counts, [Count::ReplaysServed, Count::PaidRequestsForwarded]);
    assert_eq!(seller.entry(NOW + 5), None, "this payment was never claimed");
    // As a Part I purchase, the first payment's 200 again.
    let seller = Seller::new();
    seller.another_payment_holds_the_id(PART_ONE, NOW, Some(Entry::Settled { at: NOW, receipt: receipt.clone() }));
    let run = seller.pay_with_id(NOW + 5, PART_ONE, &[]);
    assert_eq!(run.finish.local(), &receipt.response(Wire::V2));
}

#[test]
fn while_the_first_payment_of_an_identifier_is_pending_or_unknown_another_gets_409() {
    let pass = settled_receipt_of_another_payment(&Seller::new());
    let issued = IssuedPass { token: pass.token.clone(), claims: *pass.claims.clone().unwrap() };
    for entry in [Entry::Pending { since: NOW, pass: None }, Entry::Unknown { since: NOW, pass: issued }] {
        let seller = Seller::new();
        seller.another_payment_holds_the_id(PAID, NOW, Some(entry));
        let run = seller.pay_with_id(NOW + 1, PAID, &[]);
        assert!(run.calls.is_empty());
        assert_eq!((run.finish.local().status, reason(run.finish.local()).as_str()), (409, "payment_in_progress"));
        assert_eq!(run.finish.local().header("retry-after"), Some("1"));
        assert_eq!(seller.entry(NOW + 1), None);
    }
}

#[test]
fn an_identifier_used_for_another_request_is_409_payment_identifier_conflict() {
    let seller = Seller::new();
    seller.another_payment_holds_the_id(b"/weather?city=Oslo", NOW, None);
    let run = seller.pay_with_id(NOW + 1, PAID, &[]);
    assert_eq!((run.finish.local().status, reason(run.finish.local()).as_str()), (409, "payment_identifier_conflict"));
    assert_eq!(run.finish.counts, [failed("payment_identifier_conflict")]);
    // The same payment with the same id for another method is another request too.
    let seller = Seller::new();
    seller.pay_with_id(NOW, PAID, &[VERIFY_OK, SETTLE_OK]);
    let (mut checkout, step) = Checkout::begin(
        &seller.config,
        b"POST",
        PAID,
        Wire::V2,
        &header_with_id(ID),
        challenge(&seller.config),
        &fee_payer(),
        || 0,
    )
    .ok()
    .unwrap();
    let Step::Ledger(op) = step else { panic!("the identifier first") };
    let Step::Finish(finish) = checkout.on_ledger(&seller.config, seller.ledger().run(&op, NOW), NOW * 1_000) else {
        panic!("answered at once")
    };
    assert_eq!(reason(finish.local()), "payment_identifier_conflict");
}

#[test]
fn an_identifier_whose_first_payment_is_spent_is_a_duplicate() {
    let seller = Seller::new();
    seller.another_payment_holds_the_id(PAID, NOW, Some(Entry::Spent { at: NOW }));
    let run = seller.pay_with_id(NOW + 700, PAID, &[]);
    assert_eq!((run.finish.local().status, reason(run.finish.local()).as_str()), (402, "duplicate_payment"));
}

#[test]
fn an_identifier_held_by_a_payment_never_recorded_is_409_then_taken_over_once_abandoned() {
    let seller = Seller::new();
    seller.another_payment_holds_the_id(PAID, NOW, None);
    let early = seller.pay_with_id(NOW + 1, PAID, &[]);
    assert_eq!(reason(early.finish.local()), "payment_in_progress");
    let late = seller.pay_with_id(NOW + POLICY.stale_after_seconds, PAID, &[VERIFY_OK, SETTLE_OK]);
    late.finish.forwarded();
    let Some(Entry::Identifier(_, _, _, payment)) = seller.id_entry(NOW + 20) else { panic!("bound") };
    assert_eq!(payment, PurchaseKey::of(&message_hash(&seller)).key);
}

#[test]
fn a_payment_dropped_without_a_charge_lets_its_identifier_go() {
    let seller = Seller::new();
    let invalid = Reply::Ok(r#"{"isValid":false,"invalidReason":"insufficient_funds"}"#);
    let run = seller.pay_with_id(NOW, PAID, &[(Endpoint::Verify, invalid)]);
    assert_eq!(run.finish.local().status, 402);
    assert_eq!(seller.id_entry(NOW), None, "released: the buyer may pay again with the same id");
    assert_eq!(seller.entry(NOW), None);
    // A settlement left unknown keeps it: the money may have moved.
    let seller = Seller::with_deadline(0);
    seller.pay_with_id(NOW, PAID, &[VERIFY_OK, (Endpoint::Settle, Reply::TimedOut)]);
    assert!(matches!(seller.id_entry(NOW), Some(Entry::Identifier(..))));
}

#[test]
fn a_malformed_identifier_is_refused_before_any_callout_or_ledger_write() {
    let seller = Seller::new();
    let writes = seller.store.writes.get();
    for bad in ["short", "pay_abc!@#defghijklmnop"] {
        let run = drive_with(&seller.ledger(), &seller.config, PAID, &header_with_id(bad), NOW, &[], None);
        assert_eq!(
            (run.finish.local().status, reason(run.finish.local()).as_str()),
            (402, "invalid_payment_identifier")
        );
        assert!(run.calls.is_empty());
    }
    assert_eq!(seller.store.writes.get(), writes);
}

#[test]
fn a_paid_request_with_a_body_larger_than_envoys_buffer_is_413_before_anything() {
    let mut config = config();
    config.max_paid_body_bytes = 1_000;
    let refused = refuse_large_body(&config, PAID, Some(b"1001")).unwrap();
    assert_eq!((refused.local().status, reason(refused.local()).as_str()), (413, "payload_too_large"));
    assert_eq!(refused.counts, [failed("payload_too_large")]);
    for (path, length) in [
        (PAID, Some(&b"1000"[..])),
        (PAID, Some(b" 12 ")),
        (PAID, None),
        (PAID, Some(b"not a number")),
        (PAID, Some(b"\xff")),
        // A purchase never forwards its body.
        (PART_ONE, Some(b"5000000")),
    ] {
        assert_eq!(refuse_large_body(&config, path, length), None, "{length:?}");
    }
    config.pay_and_serve = false;
    assert_eq!(refuse_large_body(&config, PAID, Some(b"5000000")), None);
}

// Legacy x402 v1 buyers (docs/behaviour.md §20): the vector's v1 payment in `X-PAYMENT`, settled
// with v1 bodies, answered with `X-PAYMENT-RESPONSE`.

const SETTLED_V1: &str = r#"{"success":true,"transaction":"99eUso3aSbE9tqGSTXzo3TLfKb9RkMTURrHKQ1K7Zh3BbeqPevr5E1iCbpTjqHuTFLtfxTTD5ekfVuZFzQyEQf8","network":"solana-devnet"}"#;
const SETTLE_V1_OK: (Endpoint, Reply) = (Endpoint::Settle, Reply::Ok(SETTLED_V1));

fn x_payment() -> Vec<u8> {
    vectors()["v1"]["xPaymentHeader"].as_str().unwrap().as_bytes().to_vec()
}

impl Seller {
    fn pay_v1(&self, now: u64, path: &[u8], replies: &[(Endpoint, Reply)]) -> Run {
        drive_wire(&self.ledger(), &self.config, path, Wire::V1, &x_payment(), now, replies, None)
    }
}

#[test]
fn a_v1_payment_asks_the_facilitator_in_v1_with_the_v1_form_of_the_servers_requirements() {
    let seller = Seller::new();
    let (checkout, step) = Checkout::begin(
        &seller.config,
        b"GET",
        PAID,
        Wire::V1,
        &x_payment(),
        challenge(&seller.config),
        &fee_payer(),
        || 0,
    )
    .ok()
    .unwrap();
    assert!(matches!(step, Step::Ledger(LedgerOp::Claim(_))));
    let body: serde_json::Value = serde_json::from_slice(checkout.body()).unwrap();
    let v1 = &vectors()["v1"];
    assert_eq!(body["x402Version"], 1);
    assert_eq!(body["paymentPayload"], v1["payload"], "the buyer's payload as it came");
    let requirements = &body["paymentRequirements"];
    for member in ["scheme", "network", "maxAmountRequired", "mimeType", "payTo", "maxTimeoutSeconds", "asset"] {
        assert_eq!(requirements[member], v1["requirements"][member], "{member}");
    }
    assert_eq!(requirements["resource"], "http://api.test/weather");
    assert_eq!(requirements["extra"]["feePayer"], v1["requirements"]["extra"]["feePayer"]);
    // Keyed by the same transaction message as any payment: a v1 payment is replayed, never
    // settled twice.
    assert_eq!(checkout.checked().payer, v1["verify"]["payer"].as_str().unwrap());
}

#[test]
fn a_v1_paid_request_is_forwarded_with_x_payment_response_and_its_pass() {
    let seller = Seller::new();
    let run = seller.pay_v1(NOW, PAID, &[VERIFY_OK, SETTLE_V1_OK]);
    assert_eq!(run.calls, [Endpoint::Verify, Endpoint::Settle]);
    let forward = run.finish.forwarded();
    assert_eq!(forward.remove_request_headers, ["payment-signature", "x-payment", "sign-in-with-x", "authorization"]);
    assert!(forward.response_headers.iter().all(|(name, _)| *name != "payment-response"));
    let token = response_header(forward, "access-pass");
    let claims = token::verify(&seller.config.keys, &seller.config.verify_policy, token.as_bytes(), NOW).unwrap();
    assert_eq!((claims.tier.as_str(), claims.network.as_str()), ("5m", seller.config.network.as_str()));
    use base64::Engine as _;
    let settled =
        base64::engine::general_purpose::STANDARD.decode(response_header(forward, "x-payment-response")).unwrap();
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&settled).unwrap(),
        serde_json::json!({"success": true, "transaction": TX, "network": "solana-devnet", "payer": claims.payer})
    );
    // The same v1 payment again: forwarded again with the same pass, never settled twice.
    let again = seller.pay_v1(NOW + 1, PAID, &[]);
    assert!(again.calls.is_empty());
    assert_eq!(again.finish.forwarded(), forward);
}

#[test]
fn a_v1_purchase_naming_its_pass_is_answered_200_with_x_payment_response() {
    let seller = Seller::new();
    let run = seller.pay_v1(NOW, PART_ONE, &[VERIFY_OK, SETTLE_V1_OK]);
    let answer = run.finish.local();
    assert_eq!(answer.status, 200);
    assert!(answer.header("x-payment-response").is_some() && answer.header("payment-response").is_none());
    assert!(answer.header("access-pass").is_some());
    // The v1 payment names no amount: its transfer pays the 5-minute price, so a request that asks
    // for the hour gets the 5-minute pass it paid for, never the hour.
    let run = Seller::new().pay_v1(NOW, b"/weather?tier=1h", &[VERIFY_OK, SETTLE_V1_OK]);
    let body: serde_json::Value = serde_json::from_slice(&run.finish.local().body).unwrap();
    assert_eq!(
        (body["accessPass"]["tier"].as_str(), body["accessPass"]["durationSeconds"].as_u64()),
        (Some("5m"), Some(300))
    );
    // A seller whose prices the transfer pays none of refuses it before any callout.
    let mut config = config();
    config.tiers.retain(|t| t.id == "1h");
    let run = Seller::with_config(config).pay_v1(NOW, PAID, &[]);
    assert_eq!((run.finish.local().status, reason(run.finish.local()).as_str()), (402, "amount_mismatch"));
}

#[test]
fn a_v1_settle_answer_must_name_the_v1_network_paid_on() {
    // A v1 facilitator names the network by its v1 name; the CAIP-2 id in a v1 answer is not the
    // network paid on: unknown, retried, never believed.
    let seller = Seller::with_deadline(0);
    let run = seller.pay_v1(NOW, PAID, &[VERIFY_OK, SETTLE_OK]);
    assert_eq!((run.finish.local().status, reason(run.finish.local()).as_str()), (503, "settlement_unknown"));
}

#[test]
fn a_v1_payload_in_payment_signature_or_a_v2_payload_in_x_payment_is_refused_and_never_charged() {
    let seller = Seller::new();
    let v1_as_v2 = drive_wire(&seller.ledger(), &seller.config, PAID, Wire::V2, &x_payment(), NOW, &[], None);
    assert_eq!(
        (v1_as_v2.finish.local().status, reason(v1_as_v2.finish.local()).as_str()),
        (402, "invalid_payment_header")
    );
    assert!(v1_as_v2.calls.is_empty());
    let v2_as_v1 = drive_wire(&seller.ledger(), &seller.config, PAID, Wire::V1, &header(), NOW, &[], None);
    assert_eq!(
        (v2_as_v1.finish.local().status, reason(v2_as_v1.finish.local()).as_str()),
        (402, "invalid_payment_header")
    );
    assert!(v2_as_v1.calls.is_empty());
    assert_eq!(seller.entry(NOW), None);
}

#[test]
fn a_v1_network_name_for_another_network_or_no_network_is_refused() {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    for network in ["solana", "base-sepolia", "solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1", "devnet", ""] {
        let mut payload = vectors()["v1"]["payload"].clone();
        payload["network"] = network.into();
        let header = b64.encode(serde_json::to_vec(&payload).unwrap());
        let seller = Seller::new();
        let run = drive_wire(&seller.ledger(), &seller.config, PAID, Wire::V1, header.as_bytes(), NOW, &[], None);
        assert_eq!(
            (run.finish.local().status, reason(run.finish.local()).as_str()),
            (402, "network_mismatch"),
            "{network}"
        );
        assert!(run.calls.is_empty());
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
    Checkout::begin(
        &seller.config,
        b"GET",
        b"/weather?tier=5m",
        Wire::V2,
        &header(),
        challenge(&seller.config),
        &fee_payer(),
        || 0,
    )
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
    assert_eq!(run.finish.local().status, 200);
    let entitlement = entitlement_of(&seller, &payer).expect("an entitlement from the moment the settlement is known");
    assert_eq!((entitlement.tier.as_str(), entitlement.iat, entitlement.exp), ("5m", NOW, NOW + 300));
    assert_eq!(entitlement.network, seller.config.network);

    // A paid request (docs/behaviour.md §15) entitles its payer the same way: that is how a
    // standard client comes back with SIGN-IN-WITH-X.
    let paid = Seller::new();
    paid.pay(NOW, &[VERIFY_OK, SETTLE_OK]).finish.forwarded();
    assert_eq!(entitlement_of(&paid, &payer).map(|e| e.exp), Some(NOW + 300));
}

#[test]
fn a_recovered_settlement_entitles_its_payer_for_the_pass_signed_anew() {
    let seller = Seller::with_deadline(0);
    let payer = payer_of(&seller);
    let first = seller.buy(NOW, &[VERIFY_OK, (Endpoint::Settle, Reply::TimedOut)]);
    assert_eq!(first.finish.local().status, 503);
    assert_eq!(entitlement_of(&seller, &payer), None, "unknown: not yet");
    let again = seller.buy(NOW + 30, &[SETTLE_OK]);
    assert_eq!(again.finish.local().status, 200);
    let entitlement = entitlement_of(&seller, &payer).unwrap();
    assert_eq!((entitlement.iat, entitlement.exp), (NOW + 30, NOW + 330));
}

/// docs/behaviour.md §21: an EVM payment (the official client's, on Base Sepolia, from
/// tests/vectors/evm) goes the same way: verified, signed, settled, recorded, replayed; the
/// facilitator gets the EVM entry's own requirements; the pass names the network paid on; the
/// payer's entitlement is kept under its lower-case address.
mod evm {
    use base64::Engine as _;

    use super::*;

    const EVM_VECTORS: &str = include_str!("../../tests/vectors/evm/exact.json");
    const EVM_TX: &str = "0xabababababababababababababababababababababababababababababababab";

    fn vectors() -> serde_json::Value {
        serde_json::from_str(EVM_VECTORS).unwrap()
    }

    fn evm_now() -> u64 {
        vectors()["baseSepolia"]["now"].as_u64().unwrap()
    }

    fn header() -> Vec<u8> {
        vectors()["baseSepolia"]["paymentSignatureHeader"].as_str().unwrap().as_bytes().to_vec()
    }

    fn payer() -> String {
        vectors()["keys"]["payer"]["address"].as_str().unwrap().to_owned()
    }

    fn seller() -> Seller {
        let json = serde_json::json!({
            "networks": [{"network": "solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1", "payTo": "GyGKxMyg1p9SsHfm15MkNUu1u9TN2JtTspcdmrtGUdse"},
                         {"network": "eip155:84532", "payTo": vectors()["keys"]["merchant"]["address"]}],
            "tiers": {"5m": "0.001", "1h": "0.50"}, "secret": "checkout-test-secret-0123456789abcdef0123",
            "protect": [{"prefix": "/"}],
        });
        Seller::with_config(Config::parse(json.to_string().as_bytes(), &|_| None).unwrap())
    }

    fn settled() -> &'static str {
        // The official facilitator's answer names the payer as the authorization does (EIP-55).
        Box::leak(
            format!(r#"{{"success":true,"transaction":"{EVM_TX}","network":"eip155:84532","payer":"{}"}}"#, payer())
                .into_boxed_str(),
        )
    }

    #[test]
    fn an_evm_payment_is_verified_settled_recorded_and_replayed_with_its_own_requirements() {
        let seller = seller();
        let now = evm_now();
        let (checkout, _) = Checkout::begin(
            &seller.config,
            b"GET",
            PART_ONE,
            Wire::V2,
            &header(),
            challenge(&seller.config),
            &fee_payer(),
            || now * 1_000,
        )
        .unwrap_or_else(|_| panic!("the vector passes the local checks"));
        let body: serde_json::Value = serde_json::from_slice(checkout.body()).unwrap();
        assert_eq!(
            body["paymentRequirements"],
            serde_json::json!({"scheme": "exact", "network": "eip155:84532", "amount": "1000", "maxAmountRequired": "1000",
                "asset": "0x036CbD53842c5426634e7929541eC2318f3dCF7e", "payTo": vectors()["keys"]["merchant"]["address"],
                "maxTimeoutSeconds": 60, "extra": {"name": "USDC", "version": "2"}})
        );
        assert_eq!(body["paymentPayload"], vectors()["baseSepolia"]["paymentPayload"]);

        let settle = (Endpoint::Settle, Reply::Ok(settled()));
        let run = drive(&seller.ledger(), &seller.config, &header(), now, &[VERIFY_OK, settle]);
        let response = run.finish.local();
        assert_eq!(response.status, 200, "{}", String::from_utf8_lossy(&response.body));
        let token = response.header("access-pass").unwrap();
        let claims = token::verify(&seller.config.keys, &seller.config.verify_policy, token.as_bytes(), now).unwrap();
        assert_eq!(
            (claims.network.as_str(), claims.payer.clone(), claims.tier.as_str()),
            ("eip155:84532", payer(), "5m")
        );
        let receipt: serde_json::Value = serde_json::from_slice(
            &base64::engine::general_purpose::STANDARD.decode(response.header("payment-response").unwrap()).unwrap(),
        )
        .unwrap();
        assert_eq!(receipt["transaction"], EVM_TX);
        assert_eq!(receipt["network"], "eip155:84532");
        assert!(run.finish.log.as_deref().unwrap_or_default().contains("network=eip155:84532"));

        // The entitlement is kept under the lower-case address, where an EVM sign-in looks.
        let lower = payer().to_lowercase();
        match seller.ledger().run(&LedgerOp::Entitlement(lower), now) {
            LedgerAnswer::Entitled(Some(e)) => assert_eq!(e.network, "eip155:84532"),
            other => panic!("no entitlement under the lower-case address: {other:?}"),
        }

        // The same authorization again: the same answer, no callout.
        let again = drive(&seller.ledger(), &seller.config, &header(), now + 10, &[]);
        assert_eq!(again.finish.local(), response);
        assert_eq!(again.finish.counts, [Count::ReplaysServed]);
    }

    #[test]
    fn an_evm_settle_answer_with_a_solana_transaction_id_is_not_believed() {
        let seller = seller();
        let now = evm_now();
        let solana_tx = Box::leak(
            format!(r#"{{"success":true,"transaction":"{TX}","network":"eip155:84532","payer":"{}"}}"#, payer())
                .into_boxed_str(),
        );
        let run = drive_with(
            &seller.ledger(),
            &seller.config,
            PART_ONE,
            &header(),
            now,
            &[VERIFY_OK],
            Some(Reply::Ok(solana_tx)),
        );
        let response = run.finish.local();
        assert_eq!((response.status, reason(response).as_str()), (503, "settlement_unknown"));
    }

    #[test]
    fn an_expired_evm_payment_never_reaches_the_facilitator_or_the_ledger() {
        let seller = seller();
        let valid_before: u64 = vectors()["baseSepolia"]["paymentPayload"]["payload"]["authorization"]["validBefore"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let run = drive(&seller.ledger(), &seller.config, &header(), valid_before, &[]);
        assert!(run.calls.is_empty());
        let response = run.finish.local();
        assert_eq!((response.status, reason(response).as_str()), (402, "invalid_authorization"));
        assert_eq!(
            seller.ledger().run(&LedgerOp::Entitlement(payer().to_lowercase()), valid_before),
            LedgerAnswer::Entitled(None)
        );
    }
}

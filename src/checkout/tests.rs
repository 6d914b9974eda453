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
const POLICY: Policy = Policy { replay_window_seconds: 600, stale_after_seconds: 9 };
const SETTLED: &str = r#"{"success":true,"transaction":"5mYPtx","network":"solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1","payer":"p"}"#;
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
    TimedOut,
    /// Reset, refused, or the callout could not be started.
    Failed,
}

impl Reply {
    fn result(self) -> CalloutResult<'static> {
        match self {
            Reply::Ok(body) => CalloutResult::Response { status: 200, body: body.as_bytes() },
            Reply::Status(status) => CalloutResult::Response { status, body: b"" },
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
}

fn drive(ledger: &dyn Ledger, config: &Config, header: &[u8], now: u64, replies: &[(Endpoint, Reply)]) -> Run {
    let mut calls = Vec::new();
    let (mut checkout, mut step) = match Checkout::begin(config, b"/weather", header, challenge(config), &fee_payer()) {
        Ok(started) => started,
        Err(finish) => return Run { finish, calls },
    };
    let mut replies = replies.iter();
    for _ in 0..32 {
        step = match step {
            Step::Ledger(op) => checkout.on_ledger(config, ledger.run(&op, now)),
            Step::Callout(endpoint) => {
                let Some((expected, reply)) = replies.next() else { panic!("unscripted callout to {endpoint:?}") };
                assert_eq!(endpoint, *expected, "callouts so far: {calls:?}");
                assert_eq!(checkout.body(), checkout.body());
                calls.push(endpoint);
                checkout.on_callout(config, reply.result(), now)
            }
            Step::Finish(finish) => {
                assert!(replies.next().is_none(), "scripted callouts left over after {calls:?}");
                return Run { finish, calls };
            }
        };
    }
    panic!("the purchase did not finish in 32 steps");
}

struct Seller {
    config: Config,
    store: MemoryStore,
}

impl Seller {
    fn new() -> Seller {
        let seller = Seller { config: config(), store: MemoryStore::default() };
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
    assert_eq!(run.finish.counts, [Count::PurchasesSucceeded, Count::SettledAtomic { tier: "5m".to_owned(), atomic: 1000 }]);
    let log = run.finish.log.unwrap();
    assert!(log.starts_with("x402-access-pass: purchase settled payer=") && log.ends_with("transaction=5mYPtx"), "{log}");
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
    seller.buy(NOW, &[(Endpoint::Verify, Reply::TimedOut)]); // forgets: fresh again
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
        assert_eq!((run.finish.response.status, reason(&run.finish.response).as_str()), (402, "invalid_payment_header"));
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
        let seller = Seller::new();
        let run = seller.buy(NOW, &[VERIFY_OK, (Endpoint::Settle, lost)]);
        assert_eq!((run.finish.response.status, reason(&run.finish.response).as_str()), (503, "settlement_unknown"));
        assert!(run.finish.response.header("retry-after").is_some());
        assert_eq!(run.finish.counts.get(1), Some(&Count::SettlementsUnknown));
        let Some(Entry::Unknown { pass, .. }) = seller.entry(NOW) else { panic!("kept as unknown") };
        // The same payment again: settled again (the facilitator settles it at most once), never verified anew.
        let again = seller.buy(NOW + 5, &[SETTLE_OK]);
        assert_eq!(again.finish.response.status, 200);
        assert_eq!(again.finish.response.header("access-pass"), Some(pass.token.as_str()));
        assert!(matches!(seller.entry(NOW + 5), Some(Entry::Settled { .. })));
    }
}

#[test]
fn duplicate_settlement_means_landed_only_for_a_payment_this_filter_left_unknown() {
    let duplicate = Reply::Ok(r#"{"success":false,"errorReason":"duplicate_settlement","transaction":""}"#);
    let seller = Seller::new();
    seller.buy(NOW, &[VERIFY_OK, (Endpoint::Settle, Reply::TimedOut)]);
    let recovered = seller.buy(NOW + 1, &[(Endpoint::Settle, duplicate)]);
    assert_eq!(recovered.finish.response.status, 200);
    assert!(recovered.finish.log.unwrap().ends_with("transaction=(recovered: settled earlier)"));

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

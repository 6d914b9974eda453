//! The HTTP context of one request: asks the core what to do and does it.

use std::cell::Cell;
use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;

use crate::challenge::{self, Challenge};
use crate::config::AllowedOrigins;
use crate::decision::{self, Decision, RequestHeaders};
use crate::facilitator::{self, Settlement, Unavailable, Verification};
use crate::offer;
use crate::payment::{self, CheckedPayment};
use crate::purchase::{self, IssuedPass, Receipt};
use crate::replay::{self, Claim, Entry};
use crate::response::{self, Response};
use crate::token::{self, Rejection};

use super::host;
use super::root::Worker;
use super::store;

/// After a failed `/supported`, requests wait this long before asking again.
const FEE_PAYER_RETRY_MS: u64 = 1_000;

/// Request headers straight from Envoy, as bytes. Remembers whether `:method` was `HEAD`, so
/// that answering the request does not read it again.
#[derive(Default)]
struct EnvoyHeaders {
    head: Cell<bool>,
}

impl RequestHeaders for EnvoyHeaders {
    fn header(&self, name: &str) -> Option<Vec<u8>> {
        let value = host::request_header(name);
        if name == ":method" {
            self.head.set(value.as_deref() == Some(b"HEAD"));
        }
        value
    }
}

/// A payment being bought, between callouts.
struct Purchase {
    checked: CheckedPayment,
    challenge: Challenge,
    /// The `/verify` and `/settle` body (the same for both).
    body: Vec<u8>,
    bucket: usize,
    key: String,
}

/// What the request does once the fee payer is known.
enum Then {
    Challenge,
    Purchase(Vec<u8>),
}

/// The callout this request is paused on, if any.
enum Waiting {
    Nothing,
    FeePayer { token: u32, started: u64, then: Then },
    Verify { token: u32, started: u64, purchase: Box<Purchase> },
    Settle { token: u32, started: u64, purchase: Box<Purchase>, pass: IssuedPass, recovering: bool },
}

pub struct Request {
    /// `None` when the configuration was refused: every request then fails closed.
    worker: Option<Rc<Worker>>,
    path: Vec<u8>,
    /// A protected request that went upstream: its response gets CORS headers.
    forwarded: bool,
    /// The filter answers this request itself: nothing of it may go upstream.
    answering: bool,
    /// `Origin`, read in the request phase (Envoy refuses request-header reads
    /// once the request went upstream) and only when origins are a list.
    origin: Option<Vec<u8>>,
    /// A `HEAD` request: the filter's answers carry no body.
    head: bool,
    waiting: Waiting,
}

impl Request {
    pub fn new(worker: Option<Rc<Worker>>) -> Request {
        Request {
            worker,
            path: Vec::new(),
            forwarded: false,
            answering: false,
            origin: None,
            head: false,
            waiting: Waiting::Nothing,
        }
    }

    /// Sends a local answer with the CORS headers of a protected request (without its body to
    /// a `HEAD`). By reference: remembered challenges are sent as they are.
    fn respond(&self, worker: &Worker, answer: &Response) {
        let cors = response::cors_headers(&worker.config, self.origin.as_deref());
        host::send_with(answer, &cors, self.head);
    }

    /// `resource.url` of this request's challenge.
    fn resource_url(&self) -> String {
        challenge::resource_url(
            host::request_header("x-forwarded-proto").as_deref(),
            host::request_header(":scheme").as_deref(),
            &host::request_header(":authority").unwrap_or_default(),
            &self.path,
        )
    }

    /// The challenge for this request: priced at its first candidate.
    fn challenge(&self, worker: &Worker, fee_payer: &str, url: String) -> Option<Challenge> {
        let offer = offer::candidates(&worker.config, &self.path).into_iter().next()?;
        Some(Challenge::new(&worker.config, &offer, url, fee_payer))
    }

    /// Runs `then` now if the fee payer is known, else asks the facilitator and
    /// runs it when the answer comes (bounded by the callout timeout).
    fn with_fee_payer(&mut self, worker: &Rc<Worker>, then: Then) -> Action {
        let known = worker.fee_payer.borrow().clone();
        // The clock is read only when the fee payer is unknown: not on every challenge.
        let recently_failed =
            || host::now_millis().saturating_sub(worker.fee_payer_failed_at_ms.get()) < FEE_PAYER_RETRY_MS;
        match known {
            Some(fee_payer) => self.run(worker, &fee_payer, then),
            None if recently_failed() => self.fee_payer_unknown(worker),
            None => match host::dispatch(&worker.config.facilitator, "GET", "/supported", None) {
                Some(token) => {
                    self.waiting = Waiting::FeePayer { token, started: host::now_millis(), then };
                    Action::Pause
                }
                None => self.fee_payer_unknown(worker),
            },
        }
    }

    fn fee_payer_unknown(&self, worker: &Worker) -> Action {
        worker.metrics.inc(worker.metrics.fee_payer_unavailable);
        self.respond(worker, &purchase::fee_payer_unknown());
        Action::Pause
    }

    fn run(&mut self, worker: &Rc<Worker>, fee_payer: &str, then: Then) -> Action {
        let url = self.resource_url();
        match then {
            Then::Challenge => {
                let html = host::request_header("accept")
                    .is_some_and(|accept| accept.windows(9).any(|w| w.eq_ignore_ascii_case(b"text/html")));
                let mut challenges = worker.challenges.borrow_mut();
                let build = || Some(self.challenge(worker, fee_payer, url.clone())?.response(&worker.config, html));
                match challenges.get_or_build(&url, fee_payer, html, build) {
                    Some(answer) => {
                        worker.metrics.inc(worker.metrics.challenges_issued);
                        self.respond(worker, answer);
                        Action::Pause
                    }
                    None => {
                        drop(challenges);
                        self.fee_payer_unknown(worker)
                    }
                }
            }
            Then::Purchase(header) => match self.challenge(worker, fee_payer, url) {
                Some(challenge) => self.purchase(worker, fee_payer, challenge, &header),
                None => self.fee_payer_unknown(worker),
            },
        }
    }

    /// SPEC §6: decode, bind and check locally, claim the payment, then verify
    /// (or, for a payment whose settlement is unknown, settle again).
    fn purchase(&mut self, worker: &Rc<Worker>, fee_payer: &str, challenge: Challenge, header: &[u8]) -> Action {
        let config = &worker.config;
        let checked = match payment::decode_header(header).and_then(|p| payment::check(config, &self.path, p)) {
            Ok(checked) => checked,
            Err(refusal) => {
                log_outcome("refused", None, &format!("reason={}", refusal.reason()));
                return self.refuse(worker, &challenge, "Payment verification failed", refusal.reason());
            }
        };
        let requirements = challenge::requirements(config, &checked.offer, fee_payer);
        let body = facilitator::request_body(&checked.payment.payload, &requirements);
        let (bucket, key) = replay::locate(&checked.message_hash);
        let now = host::now_seconds();
        let policy = worker.replay_policy();
        let Some(claim) = store::update(bucket, now, policy, |b| b.claim(&key, now, policy)) else {
            worker.metrics.inc_reason("purchases_failed", "store_unavailable");
            self.respond(worker, &purchase::settlement_unknown());
            return Action::Pause;
        };
        let purchase = Box::new(Purchase { checked, challenge, body, bucket, key });
        match claim {
            Claim::Fresh => match host::dispatch(&config.facilitator, "POST", "/verify", Some(&purchase.body)) {
                Some(token) => {
                    self.waiting = Waiting::Verify { token, started: host::now_millis(), purchase };
                    Action::Pause
                }
                None => {
                    self.forget(worker, &purchase);
                    self.facilitator_unavailable(worker, Unavailable::Status(503))
                }
            },
            Claim::InProgress => {
                log_outcome("in progress elsewhere", Some(&purchase.checked), "status=409");
                worker.metrics.inc_reason("purchases_failed", "payment_in_progress");
                self.respond(worker, &purchase::in_progress());
                Action::Pause
            }
            Claim::Replay(receipt) => {
                log_outcome("replayed", Some(&purchase.checked), "the same pass was served again");
                worker.metrics.inc(worker.metrics.replays_served);
                self.respond(worker, &receipt.response());
                Action::Pause
            }
            Claim::Duplicate => {
                log_outcome("refused", Some(&purchase.checked), "reason=duplicate_payment");
                self.refuse(worker, &purchase.challenge, "Payment verification failed", "duplicate_payment")
            }
            Claim::Recover(pass) => self.settle(worker, purchase, pass, true),
        }
    }

    fn refuse(&self, worker: &Worker, challenge: &Challenge, error: &str, reason: &str) -> Action {
        worker.metrics.inc_reason("purchases_failed", reason);
        self.respond(worker, &challenge.refusal(&worker.config, error, reason));
        Action::Pause
    }

    fn facilitator_unavailable(&self, worker: &Worker, problem: Unavailable) -> Action {
        count_unavailable(worker, problem);
        worker.metrics.inc_reason("purchases_failed", &problem.reason());
        self.respond(worker, &purchase::facilitator_unavailable(&problem.reason()));
        Action::Pause
    }

    /// Drops the purchase's entry: nothing was charged, the payment may be retried.
    fn forget(&self, worker: &Worker, purchase: &Purchase) {
        let now = host::now_seconds();
        store::update(purchase.bucket, now, worker.replay_policy(), |b| b.remove(&purchase.key));
    }

    fn record(&self, worker: &Worker, purchase: &Purchase, entry: Entry) -> bool {
        let now = host::now_seconds();
        store::update(purchase.bucket, now, worker.replay_policy(), |b| b.set(&purchase.key, entry.clone())).is_some()
    }

    fn verified(&mut self, worker: &Rc<Worker>, purchase: Box<Purchase>, verification: Verification) {
        match verification {
            Verification::Valid => {
                // Sign now, before any money moves: nothing can fail after settling.
                let claims = purchase::claims(&worker.config, &purchase.checked, host::now_seconds());
                let pass = match token::sign(&worker.config.keys, &claims) {
                    Ok(token) => IssuedPass { token, claims },
                    Err(problem) => {
                        log::error!("x402-access-pass: could not sign a pass: {problem}");
                        self.forget(worker, &purchase);
                        self.facilitator_unavailable(worker, Unavailable::BadResponse);
                        return;
                    }
                };
                let pending = Entry::Pending { since: host::now_seconds(), pass: Some(pass.clone()) };
                if !self.record(worker, &purchase, pending) {
                    self.forget(worker, &purchase);
                    self.respond(worker, &purchase::settlement_unknown());
                    return;
                }
                self.settle(worker, purchase, pass, false);
            }
            Verification::Invalid { reason } => {
                self.forget(worker, &purchase);
                log_outcome("refused by the facilitator", Some(&purchase.checked), &format!("reason={reason}"));
                self.refuse(worker, &purchase.challenge, "Payment verification failed", &reason);
            }
            Verification::Unavailable(problem) => {
                log_outcome("not verified", Some(&purchase.checked), &format!("reason={}", problem.reason()));
                self.forget(worker, &purchase);
                self.facilitator_unavailable(worker, problem);
            }
        }
    }

    fn settle(&mut self, worker: &Rc<Worker>, purchase: Box<Purchase>, pass: IssuedPass, recovering: bool) -> Action {
        match host::dispatch(&worker.config.facilitator, "POST", "/settle", Some(&purchase.body)) {
            Some(token) => {
                self.waiting = Waiting::Settle { token, started: host::now_millis(), purchase, pass, recovering };
            }
            None => self.settled(worker, purchase, pass, recovering, Settlement::Unknown(Unavailable::Status(503))),
        }
        Action::Pause
    }

    fn settled(&mut self, worker: &Rc<Worker>, purchase: Box<Purchase>, pass: IssuedPass, recovering: bool, settlement: Settlement) {
        let transaction = match settlement {
            Settlement::Settled { transaction, .. } => transaction,
            // We left it unknown ourselves, and it landed meanwhile.
            Settlement::Failed { reason } if recovering && reason == "duplicate_settlement" => String::new(),
            Settlement::Failed { reason } => {
                self.forget(worker, &purchase);
                log_outcome("settlement failed", Some(&purchase.checked), &format!("reason={reason}"));
                self.refuse(worker, &purchase.challenge, "Payment settlement failed", &reason);
                return;
            }
            Settlement::Unknown(problem) => {
                count_unavailable(worker, problem);
                worker.metrics.inc(worker.metrics.settlements_unknown);
                let unknown = Entry::Unknown { since: host::now_seconds(), pass: pass.clone() };
                self.record(worker, &purchase, unknown);
                log_outcome(
                    "settlement unknown",
                    Some(&purchase.checked),
                    &format!("reason={}; the same payment sent again settles or recovers it", problem.reason()),
                );
                self.respond(worker, &purchase::settlement_unknown());
                return;
            }
        };
        let receipt = Receipt::new(&pass, &transaction, &worker.config.network);
        self.record(worker, &purchase, Entry::Settled { at: host::now_seconds(), receipt: receipt.clone() });
        worker.metrics.inc(worker.metrics.purchases_succeeded);
        worker.metrics.add(worker.metrics.settled_atomic, purchase.checked.offer.atomic);
        let offer = &purchase.checked.offer;
        worker.metrics.settled_by_tier(&offer.tier, offer.atomic);
        let detail = match transaction.as_str() {
            "" => "transaction=(recovered: settled earlier)".to_owned(),
            tx => format!("transaction={tx}"),
        };
        log_outcome("settled", Some(&purchase.checked), &detail);
        self.respond(worker, &receipt.response());
    }
}

/// The one log line of a purchase outcome (SPEC §10): never a secret, never a whole token.
fn log_outcome(outcome: &str, checked: Option<&CheckedPayment>, detail: &str) {
    match checked {
        Some(c) => log::info!(
            "x402-access-pass: purchase {outcome} payer={} tier={} amount={} {detail}",
            c.payer,
            c.offer.tier,
            c.offer.atomic
        ),
        None => log::info!("x402-access-pass: purchase {outcome} {detail}"),
    }
}

fn count_unavailable(worker: &Worker, problem: Unavailable) {
    match problem {
        Unavailable::Timeout => worker.metrics.inc(worker.metrics.facilitator_timeouts),
        _ => worker.metrics.inc(worker.metrics.facilitator_errors),
    }
}

fn count_rejection(worker: &Worker, rejected: Option<Rejection>) {
    if let Some(rejection) = rejected {
        worker.metrics.inc_reason("tokens_rejected", rejection.as_str());
    }
}

impl Context for Request {
    fn on_http_call_response(&mut self, token: u32, num_headers: usize, body_size: usize, _trailers: usize) {
        let Some(worker) = self.worker.clone() else { return };
        let timeout = worker.config.facilitator.timeout_ms;
        match std::mem::replace(&mut self.waiting, Waiting::Nothing) {
            Waiting::FeePayer { token: expected, started, then } if expected == token => {
                let answer = host::Delivered::read(num_headers, body_size, started, timeout);
                if worker.learn_fee_payer(answer.result()) {
                    let fee_payer = worker.fee_payer.borrow().clone().unwrap_or_default();
                    if let Action::Continue = self.run(&worker, &fee_payer, then) {
                        let _ = proxy_wasm::hostcalls::resume_http_request();
                    }
                } else {
                    self.fee_payer_unknown(&worker);
                }
            }
            Waiting::Verify { token: expected, started, purchase } if expected == token => {
                let answer = host::Delivered::read(num_headers, body_size, started, timeout);
                self.verified(&worker, purchase, facilitator::read_verify(answer.result()));
            }
            Waiting::Settle { token: expected, started, purchase, pass, recovering } if expected == token => {
                let answer = host::Delivered::read(num_headers, body_size, started, timeout);
                self.settled(&worker, purchase, pass, recovering, facilitator::read_settle(answer.result()));
            }
            other => self.waiting = other,
        }
    }
}

impl HttpContext for Request {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let Some(worker) = self.worker.clone() else {
            // A refused configuration never lets a request through unpaid.
            host::send(&Response::json(
                503,
                &serde_json::json!({"error": "Access pass filter not configured", "reason": "filter_misconfigured"}),
            ));
            return Action::Pause;
        };
        let Some(path) = host::request_header(":path") else { return Action::Continue };
        // Unprotected and bypassed paths cost one host call: no clock, no other header.
        if !worker.config.applies_to(&path) {
            return Action::Continue;
        }
        self.answering = true;
        if let AllowedOrigins::List(_) = worker.config.allowed_origins {
            self.origin = host::request_header("origin");
        }
        let headers = EnvoyHeaders::default();
        let decision = {
            let mut cache = worker.cache.borrow_mut();
            decision::decide(&worker.config, &mut cache, host::now_seconds(), &path, &headers)
        };
        self.head = headers.head.get();
        if matches!(decision, Decision::Untouched | Decision::Forward { .. }) {
            self.answering = false;
        }
        match decision {
            Decision::Untouched => Action::Continue,
            Decision::Forward { claim_headers } => {
                for (name, value) in &claim_headers {
                    host::set_request_header(name, value);
                }
                if !worker.config.forward_authorization {
                    host::remove_request_header("authorization");
                }
                worker.metrics.inc(worker.metrics.passes_accepted);
                self.forwarded = true;
                Action::Continue
            }
            Decision::Preflight => {
                worker.metrics.inc(worker.metrics.preflights_answered);
                host::send(&response::preflight(&worker.config, self.origin.as_deref()));
                Action::Pause
            }
            Decision::Purchase { rejected, .. } if !worker.config.keys.can_sign() => {
                count_rejection(&worker, rejected);
                log_outcome("refused", None, "reason=sales_disabled (this filter holds verify-only keys)");
                worker.metrics.inc_reason("purchases_failed", "sales_disabled");
                let answer = Response::json(
                    503,
                    &serde_json::json!({"error": "Passes are not sold here", "reason": "sales_disabled"}),
                );
                self.respond(&worker, &answer);
                Action::Pause
            }
            Decision::Purchase { payment, rejected } => {
                count_rejection(&worker, rejected);
                self.path = path;
                self.with_fee_payer(&worker, Then::Purchase(payment))
            }
            Decision::Challenge { rejected } => {
                count_rejection(&worker, rejected);
                self.path = path;
                self.with_fee_payer(&worker, Then::Challenge)
            }
        }
    }

    // While a purchase waits for the facilitator, a body (or trailers) must not
    // resume the request. Envoy already stops all iteration when headers pause;
    // this keeps that true on hosts that stop only the headers.
    fn on_http_request_body(&mut self, _body_size: usize, _end_of_stream: bool) -> Action {
        if self.answering {
            Action::Pause
        } else {
            Action::Continue
        }
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        if self.answering {
            Action::Pause
        } else {
            Action::Continue
        }
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if self.forwarded {
            if let Some(worker) = &self.worker {
                for (name, value) in response::cors_headers(&worker.config, self.origin.as_deref()) {
                    host::set_response_header(name, value);
                }
            }
        }
        Action::Continue
    }
}

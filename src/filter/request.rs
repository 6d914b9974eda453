//! The HTTP context of one request: asks the core what to do and does it.

use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;

use crate::challenge::{self, Challenge};
use crate::checkout::{self, Answer, Checkout, Finish};
use crate::config::AllowedOrigins;
use crate::decision::{self, Decision};
use crate::fee_payer;
use crate::header_map::HeaderMap;
use crate::ledger::{Ledger, LedgerAnswer, LedgerOp};
use crate::offer;
use crate::payment::Wire;
use crate::purchase;
use crate::response::{self, Response};
use crate::token::Rejection;

use super::flows::{self, Flow, PaidSlot};
use super::host;
use super::shared_ledger::{LedgerCall, Next};
use super::store;
use super::worker::Worker;

/// What the request does once the fee payer is known.
enum Then {
    Challenge,
    Purchase(Wire, Vec<u8>),
}

/// The callout this request is paused on, if any.
enum Waiting {
    Nothing,
    FeePayer {
        token: u32,
        started: u64,
        then: Then,
    },
    /// A verified sign-in's entitlement, read from the shared ledger (docs/behaviour.md §19);
    /// `otherwise` follows when the payer holds none.
    Entitlement {
        token: u32,
        started: u64,
        timeout_ms: u64,
        read: Box<LedgerCall>,
        signed_in: SignedIn,
    },
}

/// A verified sign-in waiting for the ledger: who, and what the request does if they hold
/// no entitlement.
struct SignedIn {
    payer: String,
    path: Vec<u8>,
    otherwise: Decision<'static>,
}

pub struct Request {
    /// Envoy's id of this request's context: a purchase answers it by this id.
    context_id: u32,
    /// `None` when the configuration was refused: every request then fails closed.
    worker: Option<Rc<Worker>>,
    path: Vec<u8>,
    /// A protected request's headers, read from Envoy in one host call; empty for others.
    headers: HeaderMap,
    /// A protected request that went upstream: its response gets CORS headers.
    forwarded: bool,
    /// The filter answers this request itself: nothing of it may go upstream.
    answering: bool,
    /// A `HEAD` request: the filter's answers carry no body.
    head: bool,
    waiting: Waiting,
    /// Made when a purchase begins (no allocation on the hot path), filled when this request was
    /// paid for and forwarded (docs/behaviour.md §15): the headers its upstream answer gets.
    paid: Option<PaidSlot>,
}

impl Request {
    pub fn new(worker: Option<Rc<Worker>>, context_id: u32) -> Request {
        Request {
            context_id,
            worker,
            path: Vec::new(),
            headers: HeaderMap::default(),
            forwarded: false,
            answering: false,
            head: false,
            waiting: Waiting::Nothing,
            paid: None,
        }
    }

    /// Sends a local answer with the CORS headers of a protected request (without its body to
    /// a `HEAD`). By reference: remembered challenges are sent as they are.
    fn respond(&self, worker: &Worker, answer: &Response) {
        let cors = response::cors_headers(&worker.config, self.origin(worker));
        host::send_with(answer, &cors, self.head);
    }

    /// `Origin`, when the allowed origins are a list (with `*` it changes nothing), as read in the
    /// request phase with the other headers (Envoy refuses request-header reads once the request
    /// went upstream).
    fn origin(&self, worker: &Worker) -> Option<&[u8]> {
        match worker.config.allowed_origins {
            AllowedOrigins::List(_) => self.headers.get("origin"),
            AllowedOrigins::Any => None,
        }
    }

    /// `resource.url` of this request's challenge.
    fn resource_url(&self) -> String {
        challenge::resource_url(
            self.headers.get("x-forwarded-proto"),
            self.headers.get(":scheme"),
            self.headers.get(":authority").unwrap_or_default(),
            &self.path,
        )
    }

    /// The challenge for this request: priced at its first candidate.
    fn challenge(&self, worker: &Worker, fee_payer: &str, url: String) -> Option<Challenge> {
        let offer = offer::candidates(&worker.config, &self.path).into_iter().next()?;
        Some(Challenge::new(&worker.config, &offer, url, fee_payer).with_sign_in(&worker.config, host::now_millis))
    }

    /// Runs `then` with the fee payer as the core says (`fee_payer::next`): now if it is known,
    /// else when `/supported` answers (bounded by the callout timeout), or answers 503.
    fn with_fee_payer(&mut self, worker: &Rc<Worker>, then: Then) -> Action {
        let next = fee_payer::next(
            worker.fee_payer.borrow().as_deref(),
            worker.fee_payer_failed_at_ms.get(),
            host::now_millis,
        );
        match next {
            fee_payer::Next::Go(fee_payer) => self.run(worker, &fee_payer, then),
            fee_payer::Next::Unavailable => self.fee_payer_unknown(worker),
            fee_payer::Next::Ask => match host::dispatch(&worker.config.facilitator, "GET", "/supported", None) {
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
                let html = self
                    .headers
                    .get("accept")
                    .is_some_and(|accept| accept.windows(9).any(|w| w.eq_ignore_ascii_case(b"text/html")));
                // A challenge that declares Sign-In-With-X is remembered for a few seconds only.
                let declares = worker.config.siwx.as_ref().is_some_and(|s| s.origin_of(&url).is_some());
                let now_ms = declares.then(host::now_millis);
                let cors = response::cors_headers(&worker.config, self.origin(worker));
                let mut challenges = worker.challenges.borrow_mut();
                let build = || Some(self.challenge(worker, fee_payer, url.clone())?.response(&worker.config, html));
                match challenges.get_or_build(&url, fee_payer, html, now_ms, &cors, build) {
                    Some(remembered) => {
                        worker.metrics.inc(worker.metrics.challenges_issued);
                        // As `respond` sends it, its headers serialized once (src/challenge_cache.rs).
                        host::send_serialized(remembered.response, remembered.headers, self.head);
                        Action::Pause
                    }
                    None => {
                        drop(challenges);
                        self.fee_payer_unknown(worker)
                    }
                }
            }
            Then::Purchase(wire, header) => match self.challenge(worker, fee_payer, url) {
                Some(challenge) => self.purchase(worker, fee_payer, challenge, wire, &header),
                None => self.fee_payer_unknown(worker),
            },
        }
    }

    /// A purchase (docs/behaviour.md §6) or a paid request (§15): the core's checkout decides,
    /// the worker's flows execute it, and answer or forward this request when it is done.
    /// `Continue` when the flow forwarded it at once (a paid request sent again).
    fn purchase(
        &mut self,
        worker: &Rc<Worker>,
        fee_payer: &str,
        challenge: Challenge,
        wire: Wire,
        header: &[u8],
    ) -> Action {
        let method = self.headers.get(":method").unwrap_or_default();
        match Checkout::begin(&worker.config, method, &self.path, wire, header, challenge, fee_payer, host::now_millis)
        {
            Ok((checkout, step)) => {
                let flow = Flow {
                    context_id: self.context_id,
                    checkout: Box::new(checkout),
                    origin: self.origin(worker).map(<[u8]>::to_vec),
                    head: self.head,
                    inline: true,
                    paid: Rc::clone(self.paid.get_or_insert_with(PaidSlot::default)),
                };
                flows::execute(worker, flow, step);
                if self.is_paid() {
                    return Action::Continue;
                }
            }
            Err(finish) => self.finish(worker, finish),
        }
        Action::Pause
    }

    /// This request was paid for and goes upstream.
    fn is_paid(&self) -> bool {
        self.paid.as_ref().is_some_and(|slot| slot.borrow().is_some())
    }

    /// Whether the body (or trailers) must wait: the filter answers this request itself, or has
    /// not yet decided to forward it.
    fn holding(&self) -> Action {
        if self.answering && !self.is_paid() {
            Action::Pause
        } else {
            Action::Continue
        }
    }

    /// Counts, logs and answers an answer the checkout gave before any purchase began.
    fn finish(&self, worker: &Worker, finish: Finish) {
        for count in &finish.counts {
            flows::count_checkout(worker, count);
        }
        if let Some(line) = &finish.log {
            log::info!("{line}");
        }
        match &finish.answer {
            Answer::Local(response) => self.respond(worker, response),
            // Only a settled purchase forwards; nothing is settled before a flow begins.
            Answer::Forward(_) => {
                log::error!("x402-access-pass: a purchase forwarded before it began");
                self.respond(worker, &purchase::settlement_unknown());
            }
        }
    }
}

impl Request {
    /// A `SIGN-IN-WITH-X` (docs/behaviour.md §16.3): a verified payer holding an entitlement is
    /// forwarded like a valid pass; otherwise the request goes on with `otherwise`, as if the
    /// header had not come. With the shared ledger, an entitlement not in this worker's cache is
    /// read from etcd first, the request paused meanwhile.
    fn sign_in(
        &mut self,
        worker: &Rc<Worker>,
        outcome: Result<String, crate::siwx::Reason>,
        path: Vec<u8>,
        otherwise: Decision<'_>,
    ) -> Action {
        let payer = match outcome {
            Ok(payer) => payer,
            Err(reason) => {
                worker.metrics.inc_reason("siwx_rejected", reason.as_str());
                return self.proceed(worker, path, otherwise);
            }
        };
        let now = host::now_seconds();
        let Some(etcd) = worker.config.ledger.etcd() else {
            let answer = store::local_ledger(worker.replay_policy()).run(&LedgerOp::Entitlement(payer.clone()), now);
            if answer == LedgerAnswer::Unavailable {
                worker.metrics.inc(worker.metrics.ledger_errors);
            }
            return self.entitled(worker, SignedIn { payer, path, otherwise: detach(otherwise) }, answer);
        };
        let leeway = worker.config.verify_policy.leeway_seconds;
        let cached = worker.entitlements.borrow().get(&payer, now, leeway).cloned();
        if let Some(entitlement) = cached {
            let signed_in = SignedIn { payer, path, otherwise: detach(otherwise) };
            return self.entitled(worker, signed_in, LedgerAnswer::Entitled(Some(entitlement)));
        }
        let (read, next) = LedgerCall::start(worker, etcd, LedgerOp::Entitlement(payer.clone()), false);
        let signed_in = SignedIn { payer, path, otherwise: detach(otherwise) };
        self.reading(worker, Box::new(read), next, signed_in)
    }

    /// Waits for the ledger's next answer, or acts on its last.
    fn reading(&mut self, worker: &Rc<Worker>, read: Box<LedgerCall>, next: Next, signed_in: SignedIn) -> Action {
        match next {
            Next::Sent { token, timeout_ms } => {
                let started = host::now_millis();
                self.waiting = Waiting::Entitlement { token, started, timeout_ms, read, signed_in };
                Action::Pause
            }
            Next::Answered(answer) => self.entitled(worker, signed_in, answer),
        }
    }

    /// The ledger answered a verified sign-in: forward it, go on as if it had not come, or 503
    /// `ledger_unavailable` (never a 402, which would charge a buyer who already paid).
    fn entitled(&mut self, worker: &Rc<Worker>, signed_in: SignedIn, answer: LedgerAnswer) -> Action {
        let SignedIn { payer, path, otherwise } = signed_in;
        let found = match answer {
            LedgerAnswer::Entitled(found) => found,
            _ => {
                self.respond(worker, &decision::ledger_unavailable());
                return Action::Pause;
            }
        };
        let now = host::now_seconds();
        let Some(claim_headers) = decision::honour(&worker.config, &payer, found.as_ref(), now) else {
            worker.metrics.inc_reason("siwx_rejected", crate::siwx::Reason::NoEntitlement.as_str());
            return self.proceed(worker, path, otherwise);
        };
        for (name, value) in &claim_headers {
            host::set_request_header(name, value);
        }
        if !worker.config.forward_authorization {
            host::remove_request_header("authorization");
        }
        host::remove_request_header(crate::siwx::HEADER);
        worker.metrics.inc(worker.metrics.siwx_accepted);
        self.answering = false;
        self.forwarded = true;
        Action::Continue
    }
}

impl Request {
    /// Does what the core decided for a protected request (the sign-in, if any, is settled).
    fn proceed(&mut self, worker: &Rc<Worker>, path: Vec<u8>, decision: Decision<'_>) -> Action {
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
                host::send(&response::preflight(&worker.config, self.origin(worker)));
                Action::Pause
            }
            Decision::Purchase { payment, wire, rejected } => {
                count_rejection(worker, rejected);
                let length = self.headers.get("content-length");
                let refusal = checkout::refuse_without_signing_key(&worker.config)
                    .or_else(|| checkout::refuse_large_body(&worker.config, &path, length));
                if let Some(refusal) = refusal {
                    self.finish(worker, refusal);
                    return Action::Pause;
                }
                self.path = path;
                self.with_fee_payer(worker, Then::Purchase(wire, payment))
            }
            Decision::Challenge { rejected } => {
                count_rejection(worker, rejected);
                self.path = path;
                self.with_fee_payer(worker, Then::Challenge)
            }
            // Settled by `sign_in` before this (a sign-in never holds another); never forwarded
            // unchecked.
            Decision::SignIn { .. } => {
                self.path = path;
                self.with_fee_payer(worker, Then::Challenge)
            }
        }
    }
}

/// A decision that holds nothing borrowed, to wait with: what follows an unanswered sign-in is a
/// purchase or the challenge, never a forward.
fn detach(decision: Decision<'_>) -> Decision<'static> {
    match decision {
        Decision::Untouched => Decision::Untouched,
        Decision::Preflight => Decision::Preflight,
        Decision::Purchase { payment, wire, rejected } => Decision::Purchase { payment, wire, rejected },
        Decision::Challenge { rejected } => Decision::Challenge { rejected },
        Decision::Forward { .. } | Decision::SignIn { .. } => Decision::Challenge { rejected: None },
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
            Waiting::Entitlement { token: expected, started, timeout_ms, mut read, signed_in } if expected == token => {
                let answer = host::Delivered::read(num_headers, body_size, started, timeout_ms);
                let Some(etcd) = worker.config.ledger.etcd() else { return };
                let next = read.on_reply(&worker, etcd, answer.result());
                if let Action::Continue = self.reading(&worker, read, next, signed_in) {
                    let _ = proxy_wasm::hostcalls::resume_http_request();
                }
            }
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
            other => {
                self.waiting = other;
                flows::answered(&worker, token, num_headers, body_size);
            }
        }
    }
}

impl HttpContext for Request {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let Some(worker) = self.worker.clone() else {
            // A refused configuration never lets a request through unpaid.
            host::send(&Response::error(503, "Access pass filter not configured", "filter_misconfigured", None));
            return Action::Pause;
        };
        // One host call for every header the decisions below may look at, `:path` among them
        // (src/header_map.rs): a bypassed path costs this one call, no clock, no other read, no
        // copy. A separate `:path` read first made every protected request pay two reads
        // (README, "Performance").
        let headers = host::request_headers();
        let Some(path) = headers.get(":path") else { return Action::Continue };
        if !worker.config.applies_to(path) {
            return Action::Continue;
        }
        let path = path.to_vec();
        self.answering = true;
        self.headers = headers;
        let decision = {
            let (mut cache, mut signers) = (worker.cache.borrow_mut(), worker.signers.borrow_mut());
            decision::decide(&worker.config, &mut cache, &mut signers, host::now_millis(), &path, &self.headers)
        };
        self.head = self.headers.get(":method") == Some(b"HEAD");
        match decision {
            Decision::SignIn { outcome, otherwise } => self.sign_in(&worker, outcome, path, *otherwise),
            decision => self.proceed(&worker, path, decision),
        }
    }

    // While a purchase waits for the facilitator, a body (or trailers) must not
    // resume the request. Envoy already stops all iteration when headers pause;
    // this keeps that true on hosts that stop only the headers.
    fn on_http_request_body(&mut self, _body_size: usize, _end_of_stream: bool) -> Action {
        self.holding()
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        self.holding()
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        // Read, not taken: the request's body may still be on its way (`holding`).
        let paid = self.paid.as_ref().map(|slot| slot.borrow());
        let paid = paid.as_ref().and_then(|headers| headers.as_ref());
        if self.forwarded || paid.is_some() {
            if let Some(worker) = &self.worker {
                for (name, value) in response::cors_headers(&worker.config, self.origin(worker)) {
                    if name == "vary" {
                        // The upstream may vary on its own headers too: add to its Vary, never replace it.
                        let vary = response::vary_with_origin(host::response_header("vary").as_deref());
                        host::set_response_header(name, &vary);
                    } else {
                        host::set_response_header(name, value);
                    }
                }
            }
        }
        // A paid request's answer (docs/behaviour.md §15): the upstream's status and body as
        // they are, plus the pass and the settlement, kept out of shared caches.
        if let Some(headers) = paid {
            for (name, value) in headers {
                host::set_response_header(name, value);
            }
            let cache_control = response::private_cache_control(host::response_header("cache-control").as_deref());
            host::set_response_header("cache-control", &cache_control);
        }
        Action::Continue
    }
}

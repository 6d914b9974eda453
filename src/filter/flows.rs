//! Purchases in flight, held by the worker rather than by their request: a purchase that waits
//! between two `/settle` attempts is woken by the root context's tick, which has no way into a
//! request context's own state (docs/behaviour.md §17.1). Whoever receives a callout's answer (the
//! request, or the root for callouts the tick made) hands it here; the answer goes back to the
//! request by its context id. Nothing here decides: the core's checkout does.

use std::cell::RefCell;
use std::rc::Rc;

use proxy_wasm::hostcalls;

use crate::checkout::{Answer, Checkout, Count, Finish, Forward, Step};
use crate::facilitator::CalloutResult;
use crate::ledger::{Ledger, LedgerAnswer};
use crate::response::{self, Response};

use super::host;
use super::shared_ledger::{LedgerCall, Next};
use super::store;
use super::worker::Worker;

/// More steps than a purchase takes between two waits (claim, verify, pending, settle, record).
const MAX_STEPS: usize = 16;
/// A callout whose answer never came (its request went away and Envoy cancelled it) is dropped
/// this long after its timeout. Its ledger record stays, as for a worker that died.
const LOST_CALLOUT_GRACE_MS: u64 = 10_000;

/// The response headers a paid request's upstream answer gets (`ACCESS-PASS`,
/// `PAYMENT-RESPONSE`), shared by the request and its flow: the flow fills it when it forwards
/// the request, the request reads it in `on_http_response_headers`. Whichever goes first drops
/// its half; nothing outlives both.
pub type PaidSlot = Rc<RefCell<Option<Vec<(&'static str, String)>>>>;

/// One purchase and the request it answers.
pub struct Flow {
    pub context_id: u32,
    pub checkout: Box<Checkout>,
    /// The request's `Origin` (CORS of the answer) and whether it was a `HEAD`.
    pub origin: Option<Vec<u8>>,
    pub head: bool,
    /// Running inside the request's own callback (its headers, or a callout it made): a
    /// forward then only sets the headers, and the callback lets the request continue.
    pub inline: bool,
    pub paid: PaidSlot,
}

/// What a callout in flight was made for.
enum Awaiting {
    /// The facilitator's answer, for the flow's checkout.
    Facilitator,
    /// etcd's answer to one call of a ledger operation (docs/fleet.md).
    Ledger(Box<LedgerCall>),
}

/// A callout in flight: its token, when it left and how long it may take, the purchase waiting
/// for it (`None`: a kept record written again, no buyer waits), and what it is for.
struct InFlight {
    token: u32,
    started: u64,
    timeout_ms: u64,
    flow: Option<Flow>,
    awaiting: Awaiting,
}

#[derive(Default)]
pub struct Flows {
    /// Waiting for a callout.
    calls: RefCell<Vec<InFlight>>,
    /// Waiting to be woken at a time (milliseconds).
    sleeping: RefCell<Vec<(u64, Flow)>>,
}

impl Flows {
    pub fn is_idle(&self) -> bool {
        self.calls.borrow().is_empty() && self.sleeping.borrow().is_empty()
    }
}

/// Runs the flow's steps until it waits (for a callout or a time) or finishes.
pub fn execute(worker: &Worker, mut flow: Flow, mut step: Step) {
    let config = &worker.config;
    for _ in 0..MAX_STEPS {
        step = match step {
            Step::Ledger(op) => match config.ledger.etcd() {
                None => {
                    let ledger = store::local_ledger(worker.replay_policy());
                    let answer = ledger.run(&op, host::now_seconds());
                    if let LedgerAnswer::Granted(delta) = answer {
                        worker.metrics.shift(worker.metrics.entitlements, delta);
                    }
                    flow.checkout.on_ledger(config, answer, host::now_millis())
                }
                Some(etcd) => {
                    let (call, next) = LedgerCall::start(worker, etcd, op, false);
                    match next {
                        Next::Sent { token, timeout_ms } => {
                            flow.inline = false;
                            let awaiting = Awaiting::Ledger(Box::new(call));
                            wait_for(
                                worker,
                                InFlight { token, started: host::now_millis(), timeout_ms, flow: Some(flow), awaiting },
                            );
                            return;
                        }
                        Next::Answered(answer) => flow.checkout.on_ledger(config, answer, host::now_millis()),
                    }
                }
            },
            Step::Callout(endpoint) => {
                match host::dispatch(&config.facilitator, "POST", endpoint.path(), Some(flow.checkout.body())) {
                    Some(token) => {
                        flow.inline = false;
                        let timeout_ms = config.facilitator.timeout_ms;
                        let started = host::now_millis();
                        let awaiting = Awaiting::Facilitator;
                        wait_for(worker, InFlight { token, started, timeout_ms, flow: Some(flow), awaiting });
                        return;
                    }
                    None => flow.checkout.on_callout(config, CalloutResult::Failed, host::now_millis()),
                }
            }
            Step::Wait(ms) => {
                let wake = host::now_millis().saturating_add(ms);
                flow.inline = false;
                worker.flows.sleeping.borrow_mut().push((wake, flow));
                return;
            }
            Step::Finish(finish) => return finish_flow(worker, &flow, finish),
        };
    }
    log::error!("x402-access-pass: a purchase did not finish in {MAX_STEPS} steps");
    respond(worker, &flow, &crate::purchase::settlement_unknown());
}

fn wait_for(worker: &Worker, call: InFlight) {
    worker.flows.calls.borrow_mut().push(call);
}

/// The answer to callout `token`, if it was a purchase's (or a kept record's); `false` when it
/// was not.
pub fn answered(worker: &Worker, token: u32, num_headers: usize, body_size: usize) -> bool {
    let found = {
        let mut calls = worker.flows.calls.borrow_mut();
        calls.iter().position(|call| call.token == token).map(|i| calls.swap_remove(i))
    };
    let Some(InFlight { started, timeout_ms, flow, awaiting, .. }) = found else { return false };
    let answer = host::Delivered::read(num_headers, body_size, started, timeout_ms);
    match awaiting {
        Awaiting::Facilitator => {
            if let Some(mut flow) = flow {
                let step = flow.checkout.on_callout(&worker.config, answer.result(), host::now_millis());
                execute(worker, flow, step);
            }
        }
        Awaiting::Ledger(mut call) => {
            let Some(etcd) = worker.config.ledger.etcd() else { return true };
            let next = call.on_reply(worker, etcd, answer.result());
            ledger_answered(worker, flow, call, next);
        }
    }
    true
}

/// A ledger operation went one step on: it waits again, or its answer goes to its purchase (or
/// ends a kept record's retry).
fn ledger_answered(worker: &Worker, flow: Option<Flow>, call: Box<LedgerCall>, next: Next) {
    match (next, flow) {
        (Next::Sent { token, timeout_ms }, flow) => {
            let awaiting = Awaiting::Ledger(call);
            wait_for(worker, InFlight { token, started: host::now_millis(), timeout_ms, flow, awaiting });
        }
        (Next::Answered(answer), Some(mut flow)) => {
            let step = flow.checkout.on_ledger(&worker.config, answer, host::now_millis());
            execute(worker, flow, step);
        }
        (Next::Answered(answer), None) => {
            worker.unsaved.borrow_mut().writing = false;
            if answer != LedgerAnswer::Unavailable {
                write_unsaved(worker);
            }
        }
    }
}

/// Offers the oldest kept record to the shared ledger again, one at a time (docs/behaviour.md
/// §19: lose nothing).
fn write_unsaved(worker: &Worker) {
    let Some(etcd) = worker.config.ledger.etcd() else { return };
    let op = {
        let mut unsaved = worker.unsaved.borrow_mut();
        if unsaved.writing || host::now_millis() < unsaved.next_ms {
            return;
        }
        let Some(op) = unsaved.queue.pop_front() else { return };
        unsaved.writing = true;
        op
    };
    let (call, next) = LedgerCall::start(worker, etcd, op, true);
    ledger_answered(worker, None, Box::new(call), next);
}

/// On the root's tick: wakes the flows whose wait is over, drops callouts that never came back,
/// and offers a kept record to the shared ledger again.
pub fn tick(worker: &Worker) {
    let now = host::now_millis();
    let due: Vec<Flow> = {
        let mut sleeping = worker.flows.sleeping.borrow_mut();
        let (due, waiting): (Vec<_>, Vec<_>) = sleeping.drain(..).partition(|(wake, _)| *wake <= now);
        *sleeping = waiting;
        due.into_iter().map(|(_, flow)| flow).collect()
    };
    for mut flow in due {
        let step = flow.checkout.on_wake(&worker.config, now);
        execute(worker, flow, step);
    }
    let lost: Vec<InFlight> = {
        let mut calls = worker.flows.calls.borrow_mut();
        let (lost, waiting): (Vec<_>, Vec<_>) = calls.drain(..).partition(|call| {
            now.saturating_sub(call.started) >= call.timeout_ms.saturating_add(LOST_CALLOUT_GRACE_MS)
        });
        *calls = waiting;
        lost
    };
    for call in lost {
        if let Some(flow) = &call.flow {
            log::warn!(
                "x402-access-pass: a purchase's callout never answered (request {} went away); the same payment sent again recovers it",
                flow.context_id
            );
        }
        if let Awaiting::Ledger(ledger_call) = call.awaiting {
            if ledger_call.is_retry() {
                worker.unsaved.borrow_mut().writing = false;
            }
            ledger_call.lost(worker);
        }
    }
    write_unsaved(worker);
}

fn finish_flow(worker: &Worker, flow: &Flow, finish: Finish) {
    for count in &finish.counts {
        count_checkout(worker, count);
    }
    if let Some(line) = &finish.log {
        log::info!("{line}");
    }
    match finish.answer {
        Answer::Local(response) => respond(worker, flow, &response),
        Answer::Forward(forward) => forward_upstream(worker, flow, forward),
    }
}

/// Sends a paid request on upstream (docs/behaviour.md §15): its headers as the checkout said,
/// the response headers left for the request to add, then the request resumed, from whichever
/// context runs the flow now. Inline, the request's own callback continues it instead.
fn forward_upstream(worker: &Worker, flow: &Flow, forward: Forward) {
    if !flow.inline && hostcalls::set_effective_context(flow.context_id).is_err() {
        log::info!(
            "x402-access-pass: the buyer's request went away before it could be forwarded; its pass is recorded"
        );
        return;
    }
    for name in &forward.remove_request_headers {
        host::remove_request_header(name);
    }
    for (name, value) in &forward.set_request_headers {
        host::set_request_header(name, value);
    }
    *flow.paid.borrow_mut() = Some(forward.response_headers);
    if !flow.inline {
        if let Err(status) = hostcalls::resume_http_request() {
            log::warn!("x402-access-pass: could not resume a paid request: {status:?}");
        }
        let _ = hostcalls::set_effective_context(worker.root_context_id);
    }
}

/// Answers the flow's request, from whichever context runs the flow now. A request that went
/// away gets nothing; what its purchase recorded stays.
fn respond(worker: &Worker, flow: &Flow, answer: &Response) {
    if hostcalls::set_effective_context(flow.context_id).is_err() {
        log::info!("x402-access-pass: the buyer's request went away before its purchase was answered");
        return;
    }
    let cors = response::cors_headers(&worker.config, flow.origin.as_deref());
    host::send_with(answer, &cors, flow.head);
    // Back to the root: a callout the tick makes next for another purchase must not belong to
    // this request (Envoy cancels a context's callouts when the context goes away).
    let _ = hostcalls::set_effective_context(worker.root_context_id);
}

pub fn count_checkout(worker: &Worker, count: &Count) {
    let m = &worker.metrics;
    match count {
        Count::PurchasesSucceeded => m.inc(m.purchases_succeeded),
        Count::SettledAtomic { tier, atomic } => {
            m.add(m.settled_atomic, *atomic);
            m.settled_by_tier(tier, *atomic);
        }
        Count::ReplaysServed => m.inc(m.replays_served),
        Count::PaidRequestsForwarded => m.inc(m.paid_requests_forwarded),
        Count::SettlementsUnknown => m.inc(m.settlements_unknown),
        Count::SettleRetries(n) => m.add(m.settle_retries, *n),
        Count::SettlementsRecovered => m.inc(m.settlements_recovered),
        Count::FacilitatorTimeouts => m.inc(m.facilitator_timeouts),
        Count::FacilitatorErrors => m.inc(m.facilitator_errors),
        Count::PurchasesFailed(reason) => m.inc_reason("purchases_failed", reason),
    }
}

//! The etcd ledger (docs/fleet.md, docs/behaviour.md §19) as the proxy-wasm layer runs it: each
//! call of an operation (`etcd::ledger`) is an HTTP callout to the ledger's cluster, each answer
//! goes back to the operation, and its end becomes the `LedgerAnswer` the purchase flow (or a
//! sign-in) waits for. What the layer adds is what only a host can do:
//!
//! - the operations share this worker's memory of etcd (leases granted, records last written:
//!   `etcd::memory`), held by the ledger's settings in the worker's configuration;
//! - cleanup calls an operation leaves, if any, go without waiting for an answer;
//! - every failure is counted (`ledger_errors`) and logged once, with its reason;
//! - **lose nothing**: a record of money that moved (`LedgerOp::records_money_moved`) that
//!   etcd could not take is kept in this Envoy's local ledger and queued, and the root's tick
//!   writes it to etcd again until etcd takes it. The buyer's answer never waits for that.
//! - entitlements read or recorded here are remembered for a few seconds (`entitlement_cache`).

use std::collections::VecDeque;

use crate::etcd::{self, Finished, Reply, Step};
use crate::ledger::settings::EtcdLedger;
use crate::ledger::{Ledger, LedgerAnswer, LedgerOp};

use super::host;
use super::store;
use super::worker::Worker;

/// Records kept for a later write at most; past this the oldest is given up (and logged).
const MAX_UNSAVED: usize = 10_000;
/// How often a record etcd refused is offered again while etcd keeps refusing.
pub const RETRY_EVERY_MS: u64 = 1_000;

/// What an operation does next.
pub enum Next {
    /// A call left: wait for its answer (`timeout_ms` bounds it).
    Sent {
        token: u32,
        timeout_ms: u64,
    },
    Answered(LedgerAnswer),
}

/// One ledger operation in flight.
pub struct LedgerCall {
    op: LedgerOp,
    running: etcd::ledger::Running,
    /// A record written again from the queue (no buyer waits for it).
    retry: bool,
}

/// The records of money that moved which etcd has not taken yet, oldest first.
#[derive(Default)]
pub struct Unsaved {
    pub queue: VecDeque<LedgerOp>,
    /// A retry is in flight.
    pub writing: bool,
    /// No retry before this time (milliseconds).
    pub next_ms: u64,
}

impl LedgerCall {
    /// Starts `op` on etcd. `retry`: `op` comes from the queue of unsaved records.
    pub fn start(worker: &Worker, ledger: &EtcdLedger, op: LedgerOp, retry: bool) -> (LedgerCall, Next) {
        let leeway = worker.config.verify_policy.leeway_seconds;
        let now_ms = host::now_millis();
        let (running, step) = etcd::ledger::start(&ledger.settings, worker.replay_policy(), leeway, &op, now_ms);
        let mut call = LedgerCall { op, running, retry };
        let next = call.advance(worker, ledger, step);
        (call, next)
    }

    pub fn is_retry(&self) -> bool {
        self.retry
    }

    /// What etcd answered to the last call.
    pub fn on_reply(&mut self, worker: &Worker, ledger: &EtcdLedger, reply: Reply<'_>) -> Next {
        let step = self.running.on_reply(reply, host::now_millis());
        self.advance(worker, ledger, step)
    }

    /// The answer never came (its request went away and Envoy cancelled the callout): a record
    /// of money that moved is queued all the same.
    pub fn lost(self, worker: &Worker) {
        if self.retry || self.op.records_money_moved() {
            keep_for_later(worker, self.op, self.retry);
        }
    }

    fn advance(&mut self, worker: &Worker, ledger: &EtcdLedger, mut step: Step<LedgerAnswer>) -> Next {
        // A refused dispatch is answered `Failed` at once, which always finishes the operation.
        for _ in 0..2 {
            match step {
                Step::Send(call) => match host::dispatch_ledger(ledger, &call) {
                    Some(token) => return Next::Sent { token, timeout_ms: call.timeout_ms },
                    None => step = self.running.on_reply(Reply::Failed, host::now_millis()),
                },
                Step::Finish(finished) => return Next::Answered(self.finish(worker, ledger, finished)),
            }
        }
        Next::Answered(self.finish(
            worker,
            ledger,
            Finished { result: Err(etcd::Unavailable::Failed), cleanup: Vec::new() },
        ))
    }

    fn finish(&mut self, worker: &Worker, ledger: &EtcdLedger, finished: Finished<LedgerAnswer>) -> LedgerAnswer {
        for call in &finished.cleanup {
            // Unanswered on purpose (none today: leases are shared, never revoked).
            let _ = host::dispatch_ledger(ledger, call);
        }
        let op = std::mem::replace(&mut self.op, LedgerOp::Entitlement(String::new()));
        match finished.result {
            Ok(answer) => {
                remember_entitlement(worker, &op, &answer);
                if self.retry {
                    log::info!("x402-access-pass: the shared ledger took a kept record: {}", op.describe());
                }
                answer
            }
            Err(problem) if self.retry => {
                log::debug!("x402-access-pass: the shared ledger still refuses a kept record: {}", problem.reason());
                keep_for_later(worker, op, true);
                LedgerAnswer::Unavailable
            }
            Err(problem) => {
                worker.metrics.inc(worker.metrics.ledger_errors);
                if !op.records_money_moved() {
                    log::warn!("x402-access-pass: the shared ledger could not {}: {}", op.describe(), problem.reason());
                    return LedgerAnswer::Unavailable;
                }
                log::warn!(
                    "x402-access-pass: the shared ledger could not {}: {}; kept in this Envoy and written again when etcd answers",
                    op.describe(),
                    problem.reason()
                );
                let local = store::local_ledger(worker.replay_policy()).run(&op, host::now_seconds());
                if let (LedgerAnswer::Granted(_), Some((payer, entitlement))) = (&local, op.entitles()) {
                    worker.entitlements.borrow_mut().insert(payer, entitlement.clone(), host::now_seconds());
                }
                keep_for_later(worker, op, false);
                // The money moved: the buyer's answer stands (the flow treats this as recorded).
                LedgerAnswer::Done
            }
        }
    }
}

/// An entitlement etcd holds (read, or just recorded) is served from this worker's cache for a
/// few seconds.
fn remember_entitlement(worker: &Worker, op: &LedgerOp, answer: &LedgerAnswer) {
    let now = host::now_seconds();
    match (op, answer) {
        (LedgerOp::Entitlement(payer), LedgerAnswer::Entitled(Some(entitlement))) => {
            worker.entitlements.borrow_mut().insert(payer, entitlement.clone(), now);
        }
        (op, LedgerAnswer::Granted(_)) => {
            if let Some((payer, entitlement)) = op.entitles() {
                worker.entitlements.borrow_mut().insert(payer, entitlement.clone(), now);
            }
        }
        _ => {}
    }
}

/// Queues `op` for the tick to write again: at the front when it was being retried (the
/// oldest first), at the back when new.
fn keep_for_later(worker: &Worker, op: LedgerOp, retried: bool) {
    let mut unsaved = worker.unsaved.borrow_mut();
    if retried {
        unsaved.next_ms = host::now_millis().saturating_add(RETRY_EVERY_MS);
        unsaved.queue.push_front(op);
    } else {
        unsaved.queue.push_back(op);
    }
    while unsaved.queue.len() > MAX_UNSAVED {
        if let Some(dropped) = unsaved.queue.pop_front() {
            log::error!(
                "x402-access-pass: {MAX_UNSAVED} records wait for the shared ledger; gave up one ({}): its payment sent again is still settled at most once",
                dropped.describe()
            );
        }
    }
}

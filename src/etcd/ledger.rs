//! The purchase flow's ledger operations (`ledger::LedgerOp`) run on etcd: each op becomes one
//! of this module's operations, and its result the `LedgerAnswer` the local ledger would give.
//! The checkout cannot tell the two ledgers apart; only the host knows that this one answers
//! by callout.

use crate::entitlements::Entitlement;
use crate::ledger::{LedgerAnswer, LedgerOp, PurchaseKey};
use crate::replay::Policy;

use super::entitlement::{self, Reading, Storing};
use super::forget::{self, Forget};
use super::payment_id::{self, Binding, Looking, Releasing};
use super::record::{Op, Record};
use super::settle::{self, Settling};
use super::{claim, keys, put, Finished, Reply, Settings, Step, Unavailable};

/// One ledger operation between its calls.
pub enum Running {
    Claim(Op<claim::Claiming>),
    Put(Op<put::Putting>),
    Forget(Forget),
    Bind(Op<Binding>),
    Release(Op<Releasing>),
    Look(Op<Looking>),
    Entitle(Op<Storing>),
    /// A settlement and its entitlement, in one transaction.
    Settle(Box<Settling>),
    Entitlement(Op<Reading>),
    /// Finished before its first call (a key no record can have).
    Over,
}

/// The etcd key of a purchase record or a payment identifier (`PurchaseKey::of_identifier`
/// keys start with `id:`).
fn key_of(settings: &Settings, at: &PurchaseKey) -> Option<keys::Key> {
    match at.key.strip_prefix("id:") {
        Some(id) => keys::payment_id(settings, id),
        None => keys::purchase(settings, &at.key),
    }
}

fn map<T>(step: Step<T>, answer: impl FnOnce(T) -> LedgerAnswer) -> Step<LedgerAnswer> {
    match step {
        Step::Send(call) => Step::Send(call),
        Step::Finish(Finished { result, cleanup }) => Step::Finish(Finished { result: result.map(answer), cleanup }),
    }
}

fn refused() -> (Running, Step<LedgerAnswer>) {
    (Running::Over, Step::Finish(Finished { result: Err(Unavailable::BadRecord), cleanup: Vec::new() }))
}

fn granted(_: entitlement::Stored) -> LedgerAnswer {
    // The local ledger counts the entitlements it holds; etcd's are the cluster's to count.
    LedgerAnswer::Granted(0)
}

/// Starts `op` at `now_ms`. `leeway_seconds`: how long past `exp` an entitlement is honoured
/// (its record lives that long).
pub fn start(
    settings: &Settings,
    policy: Policy,
    leeway_seconds: u64,
    op: &LedgerOp,
    now_ms: u64,
) -> (Running, Step<LedgerAnswer>) {
    let purchase = |at: &PurchaseKey| key_of(settings, at);
    match op {
        LedgerOp::Claim(at) => match purchase(at) {
            Some(key) => {
                let (op, step) = claim::claim(settings, key, policy, now_ms);
                (Running::Claim(op), map(step, LedgerAnswer::Claimed))
            }
            None => refused(),
        },
        LedgerOp::Put(at, entry) => match purchase(at) {
            Some(key) => {
                let (op, step) = put::put(settings, key, crate::replay::Entry::clone(entry), policy, now_ms);
                (Running::Put(op), map(step, |()| LedgerAnswer::Done))
            }
            None => refused(),
        },
        LedgerOp::Forget(at) => match purchase(at) {
            Some(key) => {
                let (op, step) = forget::forget(settings, key);
                (Running::Forget(op), map(step, |()| LedgerAnswer::Done))
            }
            None => refused(),
        },
        LedgerOp::ClaimId { id, request, payment, takeover } => match purchase(id) {
            Some(key) => {
                let binding = Binding {
                    request: request.clone(),
                    bucket: payment.bucket,
                    payment: payment.key.clone(),
                    takeover: takeover.clone(),
                    policy,
                };
                let (op, step) = payment_id::bind(settings, key, binding, now_ms);
                (Running::Bind(op), map(step, LedgerAnswer::Identified))
            }
            None => refused(),
        },
        LedgerOp::ReleaseId { id, payment } => match purchase(id) {
            Some(key) => {
                let (op, step) = payment_id::release(settings, key, payment.key.clone(), now_ms);
                (Running::Release(op), map(step, |()| LedgerAnswer::Done))
            }
            None => refused(),
        },
        LedgerOp::Look(at) => match purchase(at) {
            Some(key) => {
                let (op, step) = payment_id::look(settings, key, policy, now_ms);
                (Running::Look(op), map(step, LedgerAnswer::Looked))
            }
            None => refused(),
        },
        LedgerOp::Entitle { payer, entitlement } => {
            match entitlement::store(settings, payer, Entitlement::clone(entitlement), leeway_seconds, now_ms) {
                Some((op, step)) => (Running::Entitle(op), map(step, granted)),
                None => refused(),
            }
        }
        LedgerOp::PutEntitled { at, entry, payer, entitlement } => {
            let entry = crate::replay::Entry::clone(entry);
            let storing = entitlement::storing(settings, payer, Entitlement::clone(entitlement), leeway_seconds);
            match (purchase(at), storing) {
                (Some(key), Some(storing)) => {
                    let (op, step) = settle::settle(settings, key, entry, policy, storing, now_ms);
                    (Running::Settle(Box::new(op)), map(step, granted))
                }
                // No payer's key can hold this one (never a payer the payment checks let
                // through): the settlement alone, as a put; nothing claims an entitlement.
                (Some(key), None) => {
                    log::error!("x402-access-pass: an entitlement no ledger key can hold was not recorded in etcd");
                    let (op, step) = put::put(settings, key, entry, policy, now_ms);
                    (Running::Put(op), map(step, |()| LedgerAnswer::Done))
                }
                (None, _) => refused(),
            }
        }
        LedgerOp::Entitlement(payer) => match entitlement::read(settings, payer, now_ms) {
            Some((op, step)) => (Running::Entitlement(op), map(step, LedgerAnswer::Entitled)),
            None => refused(),
        },
    }
}

fn reply<R: Record>(
    op: &mut Op<R>,
    reply: Reply<'_>,
    now_ms: u64,
    answer: impl FnOnce(R::Output) -> LedgerAnswer,
) -> Step<LedgerAnswer> {
    map(op.on_reply(reply, now_ms), answer)
}

impl Running {
    /// The answer to the last [`Step::Send`].
    pub fn on_reply(&mut self, answer: Reply<'_>, now_ms: u64) -> Step<LedgerAnswer> {
        match self {
            Running::Claim(op) => reply(op, answer, now_ms, LedgerAnswer::Claimed),
            Running::Put(op) => reply(op, answer, now_ms, |()| LedgerAnswer::Done),
            Running::Forget(op) => map(op.on_reply(answer, now_ms), |()| LedgerAnswer::Done),
            Running::Bind(op) => reply(op, answer, now_ms, LedgerAnswer::Identified),
            Running::Release(op) => reply(op, answer, now_ms, |()| LedgerAnswer::Done),
            Running::Look(op) => reply(op, answer, now_ms, LedgerAnswer::Looked),
            Running::Entitle(op) => reply(op, answer, now_ms, granted),
            Running::Settle(op) => map(op.on_reply(answer, now_ms), granted),
            Running::Entitlement(op) => reply(op, answer, now_ms, LedgerAnswer::Entitled),
            // An answer nobody asked for (a host bug).
            Running::Over => Step::Finish(Finished { result: Err(Unavailable::Garbled), cleanup: Vec::new() }),
        }
    }
}

#[cfg(test)]
mod tests;

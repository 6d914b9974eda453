//! Payment ids in the shared ledger (docs/behaviour.md §17.5, docs/fleet.md): a payment that
//! carries a payment-identifier id is also keyed by it. The record is the local ledger's own
//! (`replay::Entry::Identifier`: when it was bound, the request it paid for, the payment that
//! holds it), and what a payment may do with it is decided by the local ledger's own rules
//! (`replay::Bucket::claim_id`, `release_id`, `first_outcome`) on the record etcd holds, so the
//! two ledgers cannot drift apart. Every change is a transaction comparing the revision read.

use crate::replay::{FirstOutcome, IdClaim, Policy};

use super::keys::Key;
use super::record::{self, Decision, Op, Record, Remove};
use super::wire::Kv;
use super::{Settings, Step};

/// An id being bound to a payment (the local ledger's `LedgerOp::ClaimId`).
pub struct Binding {
    pub request: String,
    /// The local bucket and key of the payment (`PurchaseKey`): what a later payment reads.
    pub bucket: usize,
    pub payment: String,
    /// The abandoned payment this one may take the id from.
    pub takeover: Option<String>,
    pub policy: Policy,
}

impl Record for Binding {
    type Output = IdClaim;

    fn decide(&mut self, current: Option<&Kv>, now: u64) -> Decision<IdClaim> {
        let (request, payment, takeover) = (&self.request, &self.payment, self.takeover.as_deref());
        record::decide_as_local(current, now, self.policy, |bucket| {
            bucket.claim_id(record::SLOT, request, self.bucket, payment, takeover, now, self.policy)
        })
    }
}

/// Binds the id at `key` (`keys::payment_id`), or learns who holds it.
pub fn bind(settings: &Settings, key: Key, binding: Binding, now_ms: u64) -> (Op<Binding>, Step<IdClaim>) {
    Op::create_first(settings, key, binding, now_ms)
}

/// An id let go by the payment that holds it (the local ledger's `LedgerOp::ReleaseId`).
pub struct Releasing {
    pub payment: String,
}

impl Record for Releasing {
    type Output = ();

    fn decide(&mut self, current: Option<&Kv>, _now: u64) -> Decision<()> {
        let (Some(kv), Ok((mut bucket, _))) = (current, record::held_bucket(current)) else {
            // Absent: nothing to let go. Unreadable: not ours to delete.
            return Decision::Finish(Ok(()));
        };
        bucket.release_id(record::SLOT, &self.payment);
        match bucket.is_empty() {
            true => Decision::Remove(Remove::of(kv, ())),
            false => Decision::Finish(Ok(())),
        }
    }
}

/// Lets the id at `key` go if `payment` holds it.
pub fn release(settings: &Settings, key: Key, payment: String, now_ms: u64) -> (Op<Releasing>, Step<()>) {
    Op::read_first(settings, key, Releasing { payment }, now_ms)
}

/// Where an id's first payment stands, read only (the local ledger's `LedgerOp::Look`).
pub struct Looking {
    pub policy: Policy,
}

impl Record for Looking {
    type Output = FirstOutcome;

    fn decide(&mut self, current: Option<&Kv>, now: u64) -> Decision<FirstOutcome> {
        Decision::Finish(
            record::held_bucket(current).map(|(bucket, _)| bucket.first_outcome(record::SLOT, now, self.policy)),
        )
    }
}

/// Reads the purchase at `key` (`keys::purchase`) as an id's first payment.
pub fn look(settings: &Settings, key: Key, policy: Policy, now_ms: u64) -> (Op<Looking>, Step<FirstOutcome>) {
    Op::read_first(settings, key, Looking { policy }, now_ms)
}

#[cfg(test)]
mod tests;

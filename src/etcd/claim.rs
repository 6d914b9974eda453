//! Claiming a payment in the shared ledger (docs/behaviour.md §6.5, docs/fleet.md): the same outcomes as
//! the local ledger's `replay::Bucket::claim`, decided by that very function on the record
//! etcd holds, and written with a compare on the record's revision, so two replicas can never
//! both start the same payment.
//!
//! A claim is never proposed before etcd answered a call of it through its quorum
//! (`record::Op::create_first`, docs/fleet.md). A worker that holds a lease for a fresh
//! pending's span reads the key first (a linearizable read) and decides on it; one that holds
//! none starts as a create (a lease as long as a fresh pending lives, then a transaction
//! comparing `create_revision == 0`), and when the record exists the same transaction reads it.
//! Two round trips for a new payment either way. On the record read, `Bucket::claim` decides:
//! in progress, replay and duplicate write nothing; a stale pending is taken over, a pass in
//! doubt is recovered, a settlement past its window turns spent, each by a transaction
//! comparing `mod_revision` with what was read.

use crate::replay::{Claim, Policy};

use super::keys::Key;
use super::record::{self, Decision, Op, Record};
use super::wire::Kv;
use super::{Settings, Step};

/// The record of one payment being claimed.
pub struct Claiming {
    policy: Policy,
}

impl Record for Claiming {
    type Output = Claim;

    fn decide(&mut self, current: Option<&Kv>, now: u64) -> Decision<Claim> {
        let policy = self.policy;
        record::decide_as_local(current, now, policy, |bucket| bucket.claim(record::SLOT, now, policy))
    }
}

/// Claims the payment at `key` (`keys::purchase`) at `now_ms`.
pub fn claim(settings: &Settings, key: Key, policy: Policy, now_ms: u64) -> (Op<Claiming>, Step<Claim>) {
    Op::create_first(settings, key, Claiming { policy }, now_ms)
}

#[cfg(test)]
mod tests;

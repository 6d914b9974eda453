//! Claiming a payment in the shared ledger (docs/behaviour.md §6.5, docs/fleet.md): the same outcomes as
//! the local ledger's `replay::Bucket::claim`, decided by that very function on the record
//! etcd holds, and written with a compare on the record's revision, so two replicas can never
//! both start the same payment.
//!
//! A new payment is the common case, so the claim starts as a create (a lease as long as a
//! fresh pending lives, then a transaction comparing `create_revision == 0`): two round trips.
//! When the record exists, the same transaction reads it and `Bucket::claim` decides: in
//! progress, replay and duplicate write nothing; a stale pending is taken over, a pass in doubt
//! is recovered, a settlement past its window turns spent, each by a transaction comparing
//! `mod_revision` with what was read.

use crate::replay::{Bucket, Claim, Policy};

use super::keys::Key;
use super::record::{self, Decision, Op, Record, Write};
use super::wire::Kv;
use super::{life, Settings, Step, Unavailable};

/// The record of one payment being claimed.
pub struct Claiming {
    policy: Policy,
}

/// The slot of the one-record bucket `Bucket::claim` decides on.
const SLOT: &str = "payment";

impl Record for Claiming {
    type Output = Claim;

    fn decide(&mut self, current: Option<&Kv>, now: u64) -> Decision<Claim> {
        let held = match current.map(|kv| record::decode_entry(&kv.value)) {
            None => None,
            Some(Some(entry)) => Some(entry),
            // Not a record this filter wrote: never guess about money.
            Some(None) => return Decision::Finish(Err(Unavailable::BadRecord)),
        };
        let mut bucket = Bucket::default();
        if let Some(entry) = &held {
            bucket.set(SLOT, entry.clone());
        }
        let claim = bucket.claim(SLOT, now, self.policy);
        match bucket.get(SLOT) {
            Some(next) if Some(next) != held.as_ref() => {
                let end = life::end(next, self.policy, now);
                let current_end = held.as_ref().map(|entry| life::end(entry, self.policy, now));
                Decision::Write(Write::over(current, current_end, record::encode_entry(next), end, claim))
            }
            _ => Decision::Finish(Ok(claim)),
        }
    }
}

/// Claims the payment at `key` (`keys::purchase`) at `now_ms`.
pub fn claim(settings: &Settings, key: Key, policy: Policy, now_ms: u64) -> (Op<Claiming>, Step<Claim>) {
    Op::create_first(settings, key, Claiming { policy }, now_ms)
}

#[cfg(test)]
mod tests;

//! Recording a purchase's new state in the shared ledger (the local ledger's `Bucket::set`):
//! read the record, then one transaction comparing its revision, under a lease as long as the
//! new state lives (`life`). The key keeps its lease when its life does not change (a
//! settlement turning spent); otherwise a new lease is granted and the old one revoked.

use crate::replay::{Entry, Policy};

use super::keys::Key;
use super::record::{self, Decision, Op, Record, Write};
use super::wire::Kv;
use super::{life, Settings, Step};

/// A purchase's new state, being written.
pub struct Putting {
    entry: Entry,
    policy: Policy,
}

impl Record for Putting {
    type Output = ();

    fn decide(&mut self, current: Option<&Kv>, now: u64) -> Decision<()> {
        let end = life::end(&self.entry, self.policy, now);
        // An unreadable record is written over; its life is unknown, so its lease is replaced.
        let current_end =
            current.and_then(|kv| record::decode_entry(&kv.value)).map(|entry| life::end(&entry, self.policy, now));
        Decision::Write(Write::over(current, current_end, record::encode_entry(&self.entry), end, ()))
    }
}

/// Records `entry` as the state of the purchase at `key`.
pub fn put(settings: &Settings, key: Key, entry: Entry, policy: Policy, now_ms: u64) -> (Op<Putting>, Step<()>) {
    Op::read_first(settings, key, Putting { entry, policy }, now_ms)
}

#[cfg(test)]
mod tests;

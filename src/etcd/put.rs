//! Recording a purchase's new state in the shared ledger (the local ledger's `Bucket::set`):
//! one transaction comparing the record's revision, under a lease as long as the new state
//! lives (`life`). The revision is the one this worker wrote or read last (its claim, its
//! pending pass: `memory`), else the record is read first. The key keeps its lease when its
//! life does not change (a settlement turning spent); otherwise it moves to a lease (shared)
//! ending with its new life.

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

impl Putting {
    pub fn new(entry: Entry, policy: Policy) -> Putting {
        Putting { entry, policy }
    }

    /// The write of this state over `current`: a put always writes (last writer wins).
    pub fn write(&self, current: Option<&Kv>, now: u64) -> Write<()> {
        let end = life::end(&self.entry, self.policy, now);
        // An unreadable record is written over; its life is unknown, so its lease is replaced.
        let current_end =
            current.and_then(|kv| record::decode_entry(&kv.value)).map(|entry| life::end(&entry, self.policy, now));
        Write::over(current, current_end, record::encode_entry(&self.entry), end, ())
    }
}

impl Record for Putting {
    type Output = ();

    fn decide(&mut self, current: Option<&Kv>, now: u64) -> Decision<()> {
        Decision::Write(self.write(current, now))
    }
}

/// Records `entry` as the state of the purchase at `key`.
pub fn put(settings: &Settings, key: Key, entry: Entry, policy: Policy, now_ms: u64) -> (Op<Putting>, Step<()>) {
    Op::known_first(settings, key, Putting::new(entry, policy), now_ms, false)
}

#[cfg(test)]
mod tests;

//! What every ledger operation keeps between its calls, whatever it writes (one record, or a
//! settlement and an entitlement in one transaction): the worker's memory of keys and leases,
//! the operation's clock and deadline, how many compares it has lost, and its one lease asked
//! for again. One place for these rules, so [`record`](super::record) and
//! [`settle`](super::settle) cannot drift apart on them.

use super::memory::{self, Memory};
use super::wire::{self, Kv, Lease};
use super::{life, Call, Settings, Unavailable, LONGEST_LEASE_SECONDS, MAX_ATTEMPTS};

pub struct Context {
    pub memory: Memory,
    /// The clock of the whole operation, in seconds (records hold seconds).
    pub now: u64,
    /// The clock of the answer being handled: what is left of the deadline.
    now_ms: u64,
    deadline_ms: u64,
    attempts: usize,
    /// The decision in hand was made on a guess or on memory, not on what etcd answered.
    pub assumed: bool,
    /// A lease found gone was replaced already (once per operation).
    regranted: bool,
}

impl Context {
    pub fn new(settings: &Settings, now_ms: u64) -> Context {
        Context {
            memory: settings.memory().clone(),
            now: now_ms / 1_000,
            now_ms,
            deadline_ms: now_ms.saturating_add(settings.timeout_ms()),
            attempts: 0,
            assumed: false,
            regranted: false,
        }
    }

    /// An answer arrived at `now_ms`.
    pub fn answered(&mut self, now_ms: u64) {
        self.now_ms = now_ms;
    }

    /// A compare was lost (another writer won, or the start from a guess or from memory was
    /// wrong): decide again, or give up as `Busy` after `MAX_ATTEMPTS` losses. A loss on a
    /// start that was assumed is not counted: it is the read the operation did not make.
    pub fn lost(&mut self) -> Result<(), Unavailable> {
        if std::mem::replace(&mut self.assumed, false) {
            return Ok(());
        }
        self.attempts += 1;
        if self.attempts >= MAX_ATTEMPTS {
            return Err(Unavailable::Busy);
        }
        Ok(())
    }

    /// A write was refused because a lease it named is gone (it ran out, or etcd lost it):
    /// whether to ask for one again, which an operation does once.
    pub fn regrant(&mut self, reply_says_gone: bool) -> bool {
        if self.regranted || !reply_says_gone {
            return false;
        }
        self.regranted = true;
        true
    }

    /// The lease grant for a record whose life ends at `end` (a short span this worker's other
    /// records ending then share, never past the longest lease: what the memory says a lease
    /// ends is when it ends), and when that lease ends.
    pub fn grant(&self, end: u64) -> Result<(Call, u64), Unavailable> {
        let ends = memory::lease_end(end, self.now).min(self.now.saturating_add(LONGEST_LEASE_SECONDS));
        let call = self.call(wire::LEASE_GRANT, wire::lease_grant(life::ttl(ends, self.now)))?;
        Ok((call, ends))
    }

    /// A call with what is left of the operation's time, or `Deadline` when nothing is.
    pub fn call(&self, path: &'static str, body: Vec<u8>) -> Result<Call, Unavailable> {
        match self.deadline_ms.saturating_sub(self.now_ms) {
            0 => Err(Unavailable::Deadline),
            timeout_ms => Ok(Call { path, body, timeout_ms }),
        }
    }
}

/// A conditional write of one key, without the result it gives: what the engines need, the same
/// for every kind of record.
pub struct Plan {
    pub expect: wire::Expect,
    pub value: Vec<u8>,
    /// When the new record's life ends (Unix seconds): its lease ends then, or a little later.
    pub end: u64,
    /// The key's current lease already ends then: keep it.
    pub keep_lease: bool,
    /// The lease of the record this write replaces (0: none): the one kept with `keep_lease`.
    pub replaces: i64,
    /// The record's `create_revision` (0: none yet).
    pub created: i64,
}

impl Plan {
    /// Whether `values` fit in etcd's records (`wire::MAX_VALUE_BYTES`); one log line when not.
    pub fn writable<'a>(values: impl IntoIterator<Item = &'a Plan>) -> Result<(), Unavailable> {
        let largest = values.into_iter().map(|plan| plan.value.len()).max().unwrap_or(0);
        if largest > wire::MAX_VALUE_BYTES {
            log::error!("x402-access-pass: a ledger record of {largest} bytes is too large to write");
            return Err(Unavailable::BadRecord);
        }
        Ok(())
    }

    /// The key once this write committed at `revision` under `lease` (`None`: a revision of 0,
    /// which etcd never gives a write, so nothing is known).
    pub fn written(self, revision: i64, lease: Lease) -> Option<Kv> {
        let kv = Kv {
            value: self.value,
            create_revision: if self.created == 0 { revision } else { self.created },
            mod_revision: revision,
            lease: match lease {
                Lease::Attach(id) => id,
                Lease::Keep => self.replaces,
            },
        };
        (revision > 0).then_some(kv)
    }
}

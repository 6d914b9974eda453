//! What one worker remembers of etcd between operations (docs/fleet.md, "Performance"), so that
//! a purchase's state changes are one transaction each rather than a read, a lease grant, a
//! transaction and a revocation:
//!
//! - **shared leases**: a lease granted for a record is kept and attached to every later record
//!   whose life ends in the same short span ([`slack`]: as long as the record's life, at most
//!   a minute). A lease ends at the end of its span, never before a record it holds: records are
//!   dropped by their lease at most [`slack`] late, never early. Leases are never revoked (a
//!   lease may hold other records); a record written over moves to its new lease, and a
//!   forgotten one is deleted. A transaction refused because its lease is gone (etcd restarted,
//!   or it ran out) forgets it, and the write asks for a new one, once.
//! - **known records**: what this worker last wrote or read at a key (its value, revision and
//!   lease). The next write of that key compares with that revision instead of reading the key
//!   first; when another writer changed it meanwhile, the compare fails, the same transaction
//!   reads the key, and the write decides again on what it holds: a hint, never trusted.
//!
//! Both are bounded, and both are only ever an optimisation: an empty memory gives the same
//! answers, with more round trips.

use std::sync::{Arc, Mutex, MutexGuard};

use super::wire::Kv;

/// Leases remembered at most (a worker needs a handful: one per kind of record and span).
pub const MAX_LEASES: usize = 64;
/// Records remembered at most: the purchases in flight on one worker, and then some.
pub const MAX_KNOWN: usize = 512;

/// How much longer than a record a shared lease may live: as long as the record's life
/// (`ttl`, seconds), between 1 s and 60 s. A record whose life is short (a claim's 25 s, a
/// spent payment's last seconds) is not kept for a minute more.
pub fn slack(ttl: u64) -> u64 {
    ttl.clamp(1, 60)
}

/// When a lease for a record living until `end` ends: `end` rounded up to its span, so that
/// records ending in one span share one lease.
pub fn lease_end(end: u64, now: u64) -> u64 {
    let span = slack(end.saturating_sub(now));
    end.div_ceil(span).saturating_mul(span)
}

#[derive(Debug, Default)]
struct Inner {
    /// (when it ends, id), as granted.
    leases: Vec<(u64, i64)>,
    /// (key, the record as last written or read there), the newest last.
    known: Vec<(Vec<u8>, Kv)>,
}

/// A worker's memory of etcd, shared by every operation it runs (a handle: clones share it).
#[derive(Debug, Clone, Default)]
pub struct Memory(Arc<Mutex<Inner>>);

impl Memory {
    fn inner(&self) -> MutexGuard<'_, Inner> {
        // A worker is one thread; a poisoned lock still holds only hints.
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A lease that outlives a record living until `end` by less than its [`slack`].
    pub fn lease_for(&self, end: u64, now: u64) -> Option<i64> {
        let span = slack(end.saturating_sub(now));
        let inner = self.inner();
        inner.leases.iter().find(|(ends, _)| *ends >= end && *ends - end < span).map(|(_, id)| *id)
    }

    /// A lease was granted, ending at `ends`; leases already over at `now` are forgotten.
    pub fn granted(&self, ends: u64, id: i64, now: u64) {
        let mut inner = self.inner();
        inner.leases.retain(|(at, _)| *at > now);
        if inner.leases.len() >= MAX_LEASES {
            // The one ending soonest goes.
            if let Some(first) = inner.leases.iter().enumerate().min_by_key(|(_, (at, _))| *at).map(|(i, _)| i) {
                inner.leases.swap_remove(first);
            }
        }
        inner.leases.push((ends, id));
    }

    /// etcd no longer has this lease.
    pub fn gone(&self, id: i64) {
        self.inner().leases.retain(|(_, held)| *held != id);
    }

    /// The record last written or read at `key`, if remembered.
    pub fn known(&self, key: &[u8]) -> Option<Kv> {
        self.inner().known.iter().rev().find(|(at, _)| at == key).map(|(_, kv)| kv.clone())
    }

    /// `key` holds `kv` now (`None`: absent, or unknown).
    pub fn learn(&self, key: &[u8], kv: Option<Kv>) {
        let mut inner = self.inner();
        inner.known.retain(|(at, _)| at != key);
        if let Some(kv) = kv {
            if inner.known.len() >= MAX_KNOWN {
                inner.known.remove(0);
            }
            inner.known.push((key.to_vec(), kv));
        }
    }

    #[cfg(test)]
    pub fn leases(&self) -> Vec<(u64, i64)> {
        self.inner().leases.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(revision: i64) -> Kv {
        Kv { value: b"v".to_vec(), create_revision: 1, mod_revision: revision, lease: 9 }
    }

    #[test]
    fn a_lease_ends_at_its_span_never_before_the_record_and_less_than_a_minute_after() {
        let now = 1_000_000;
        for life in [1, 2, 7, 8, 25, 100, 479, 480, 481, 4_200, 86_400, 31_622_400] {
            let end = now + life;
            let ends = lease_end(end, now);
            assert!(ends >= end, "{life}");
            assert!(ends - end < slack(life), "{life}");
            assert!(ends - end < 60, "{life}");
        }
        assert_eq!(slack(25), 25);
        assert_eq!(slack(3), 3);
        assert_eq!(slack(86_400), 60);
        // Records ending within one span share its end.
        assert_eq!(lease_end(now + 4_141, now), lease_end(now + 4_160, now));
    }

    #[test]
    fn a_lease_is_shared_by_records_ending_in_its_span_and_forgotten_when_gone_or_over() {
        let memory = Memory::default();
        let now = 1_000_000;
        let end = now + 4_200;
        assert_eq!(memory.lease_for(end, now), None);
        memory.granted(lease_end(end, now), 5, now);
        assert_eq!(memory.lease_for(end, now), Some(5));
        // A record ending a few seconds later (a later purchase) shares it, within the span.
        let ends = lease_end(end, now);
        assert_eq!(memory.lease_for(ends, now + 30), Some(5));
        // One ending after the lease, or long before it, does not.
        assert_eq!(memory.lease_for(ends + 1, now), None);
        assert_eq!(memory.lease_for(ends - 60, now), None);
        // A clone is the same memory.
        memory.clone().gone(5);
        assert_eq!(memory.lease_for(end, now), None);
        memory.granted(now + 10, 6, now);
        memory.granted(now + 100, 7, now + 20);
        assert_eq!(memory.leases(), [(now + 100, 7)]);
    }

    #[test]
    fn memory_is_bounded() {
        let memory = Memory::default();
        for i in 0..(MAX_LEASES as i64 + 10) {
            memory.granted(2_000 + i as u64, i, 1_000);
        }
        assert_eq!(memory.leases().len(), MAX_LEASES);
        assert!(memory.leases().iter().all(|(_, id)| *id >= 10), "the soonest ending went first");
        for i in 0..(MAX_KNOWN + 5) {
            memory.learn(format!("k{i}").as_bytes(), Some(kv(i as i64)));
        }
        assert_eq!(memory.known(b"k0"), None);
        assert_eq!(memory.known(format!("k{}", MAX_KNOWN + 4).as_bytes()), Some(kv(MAX_KNOWN as i64 + 4)));
        memory.learn(b"k10", Some(kv(99)));
        assert_eq!(memory.known(b"k10"), Some(kv(99)));
        memory.learn(b"k10", None);
        assert_eq!(memory.known(b"k10"), None);
    }
}

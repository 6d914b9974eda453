//! How long a purchase record lives in etcd: exactly as long as the local ledger keeps it.
//!
//! The local ledger's rule is `replay::Bucket::sweep` (a stale pending is dropped after
//! `stale_after_seconds`, a pass in doubt after `UNKNOWN_RETENTION_SECONDS`, a settlement turns
//! spent after its replay window and is dropped `SPENT_RETENTION_SECONDS` later). Rather than a
//! second copy of that table, which could drift from it, the end of a record's life is found
//! from the rule itself: the first second at which two sweeps in a row drop it (the first may
//! only turn a settlement into a spent payment). That is the end of the record's lease.

use crate::replay::{Bucket, Entry, Policy};

use super::LONGEST_LEASE_SECONDS;

fn kept_at(entry: &Entry, policy: Policy, at: u64) -> bool {
    let mut bucket = Bucket::default();
    bucket.set("k", entry.clone());
    bucket.sweep(at, policy);
    bucket.sweep(at, policy);
    !bucket.is_empty()
}

/// The first second (at or after `now`) at which the local ledger would no longer hold `entry`;
/// at most `now + LONGEST_LEASE_SECONDS`.
pub fn end(entry: &Entry, policy: Policy, now: u64) -> u64 {
    if !kept_at(entry, policy, now) {
        return now;
    }
    // Kept at `kept`, gone at `gone`: widen, then halve.
    let (mut kept, mut step) = (now, 1u64);
    let mut gone = loop {
        let probe = now.saturating_add(step);
        if step >= LONGEST_LEASE_SECONDS || probe == u64::MAX {
            return now.saturating_add(LONGEST_LEASE_SECONDS);
        }
        if !kept_at(entry, policy, probe) {
            break probe;
        }
        kept = probe;
        step = step.saturating_mul(2);
    };
    while gone - kept > 1 {
        let middle = kept + (gone - kept) / 2;
        if kept_at(entry, policy, middle) {
            kept = middle;
        } else {
            gone = middle;
        }
    }
    gone
}

/// The lease (seconds) for a record that lives until `end`: at least 1, at most the longest.
pub fn ttl(end: u64, now: u64) -> u64 {
    end.saturating_sub(now).clamp(1, LONGEST_LEASE_SECONDS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::etcd::sim::{pass, receipt, POLICY};
    use crate::replay::{SPENT_RETENTION_SECONDS, UNKNOWN_RETENTION_SECONDS};

    #[test]
    fn a_record_lives_as_long_as_the_local_ledger_keeps_it() {
        let now = 1_000;
        let pending = Entry::Pending { since: now, pass: None };
        assert_eq!(end(&pending, POLICY, now), now + POLICY.stale_after_seconds);
        let signed = Entry::Pending { since: now, pass: Some(pass()) };
        assert_eq!(end(&signed, POLICY, now), now + UNKNOWN_RETENTION_SECONDS);
        let unknown = Entry::Unknown { since: now - 10, pass: pass() };
        assert_eq!(end(&unknown, POLICY, now), now - 10 + UNKNOWN_RETENTION_SECONDS);
        let settled = Entry::Settled { at: now, receipt: receipt() };
        let spent_end = now + POLICY.replay_window_seconds + SPENT_RETENTION_SECONDS;
        assert_eq!(end(&settled, POLICY, now), spent_end);
        // Turning spent does not change when it goes: the lease can stay.
        assert_eq!(end(&Entry::Spent { at: now }, POLICY, now + 700), spent_end);
    }

    #[test]
    fn a_record_already_over_ends_now_and_leases_are_bounded() {
        let stale = Entry::Pending { since: 100, pass: None };
        assert_eq!(end(&stale, POLICY, 1_000), 1_000);
        assert_eq!(ttl(1_000, 1_000), 1);
        assert_eq!(ttl(1_025, 1_000), 25);
        assert_eq!(ttl(u64::MAX, 0), LONGEST_LEASE_SECONDS);
        // A policy that keeps settlements almost for ever is cut to the longest lease.
        let forever = Policy { replay_window_seconds: u64::MAX / 2, stale_after_seconds: 25 };
        let settled = Entry::Settled { at: 10, receipt: receipt() };
        assert_eq!(end(&settled, forever, 10), 10 + LONGEST_LEASE_SECONDS);
    }
}

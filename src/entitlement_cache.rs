//! The per-worker cache of entitlements read from the shared ledger (docs/behaviour.md §19): a
//! buyer who signs in on every request costs one etcd read every few seconds, not one per
//! request.
//!
//! Only entitlements that exist are cached. "No entitlement" is never remembered: a buyer who
//! just paid on another replica would be sent a 402 and pay again. A cached entitlement is
//! safe to serve for its few seconds because entitlements only grow (the latest-expiring pass
//! wins, nothing revokes one): the most another replica can know is a later `exp`, seen here
//! once the entry is read again. An entry no longer honoured is a miss, read again, since a
//! later pass may have been bought meanwhile.

use crate::entitlements::Entitlement;

/// How long an entitlement read from the ledger is served without reading it again.
pub const CACHE_SECONDS: u64 = 5;
/// Payers kept per worker at most; a full cache forgets what it can (see `make_room`).
pub const CAPACITY: usize = 4_096;

/// Sorted by payer (binary search), each with the second it was read.
#[derive(Debug, Default)]
pub struct EntitlementCache {
    entries: Vec<(String, Entitlement, u64)>,
}

impl EntitlementCache {
    /// The payer's entitlement as read at most [`CACHE_SECONDS`] ago, if still honoured at
    /// `now` with `leeway_seconds`.
    pub fn get(&self, payer: &str, now: u64, leeway_seconds: u64) -> Option<&Entitlement> {
        let index = self.entries.binary_search_by(|(p, _, _)| p.as_str().cmp(payer)).ok()?;
        let (_, entitlement, read_at) = self.entries.get(index)?;
        let fresh = now.saturating_sub(*read_at) < CACHE_SECONDS;
        (fresh && entitlement.honoured(now, leeway_seconds)).then_some(entitlement)
    }

    /// Remembers what the ledger said (or what this worker just recorded) at `now`; of two
    /// entitlements of one payer, the one expiring later stays.
    pub fn insert(&mut self, payer: &str, entitlement: Entitlement, now: u64) {
        match self.entries.binary_search_by(|(p, _, _)| p.as_str().cmp(payer)) {
            Ok(index) => {
                if let Some(entry) = self.entries.get_mut(index) {
                    if entitlement.exp >= entry.1.exp {
                        entry.1 = entitlement;
                    }
                    entry.2 = now;
                }
            }
            Err(index) => {
                if self.entries.len() >= CAPACITY {
                    self.make_room(now);
                    return self.insert(payer, entitlement, now);
                }
                self.entries.insert(index, (payer.to_owned(), entitlement, now));
            }
        }
    }

    /// Drops the stale entries, and when every entry is fresh, all of them: each costs one read
    /// of the ledger to learn again (no sorting code in the wasm for a cache this simple).
    fn make_room(&mut self, now: u64) {
        self.entries.retain(|(_, _, read_at)| now.saturating_sub(*read_at) < CACHE_SECONDS);
        if self.entries.len() >= CAPACITY {
            self.entries.clear();
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn until(exp: u64) -> Entitlement {
        Entitlement { tier: "1h".into(), iat: exp.saturating_sub(3_600), exp, network: "solana:devnet".into() }
    }

    #[test]
    fn an_entitlement_is_served_for_a_few_seconds_while_it_is_honoured() {
        let mut cache = EntitlementCache::default();
        assert_eq!(cache.get("payer", 100, 0), None);
        cache.insert("payer", until(200), 100);
        assert_eq!(cache.get("payer", 100 + CACHE_SECONDS - 1, 0), Some(&until(200)));
        assert_eq!(cache.get("payer", 100 + CACHE_SECONDS, 0), None, "read again after a few seconds");
        assert_eq!(cache.get("another", 101, 0), None);
        cache.insert("late", until(102), 100);
        assert_eq!(cache.get("late", 102, 0), Some(&until(102)));
        assert_eq!(cache.get("late", 103, 0), None, "no longer honoured: read again, a later pass may exist");
        assert_eq!(cache.get("late", 103, 1), Some(&until(102)), "within the leeway");
    }

    #[test]
    fn the_later_expiring_entitlement_stays() {
        let mut cache = EntitlementCache::default();
        cache.insert("payer", until(500), 100);
        cache.insert("payer", until(300), 101);
        assert_eq!(cache.get("payer", 101, 0), Some(&until(500)));
        cache.insert("payer", until(900), 102);
        assert_eq!(cache.get("payer", 102, 0), Some(&until(900)));
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn the_cache_is_bounded() {
        let mut cache = EntitlementCache::default();
        for i in 0..CAPACITY {
            cache.insert(&format!("payer{i}"), until(10_000), 100 + (i as u64 % 2));
        }
        assert_eq!(cache.len(), CAPACITY);
        cache.insert("one-more", until(10_000), 101);
        assert!(cache.len() <= CAPACITY, "{}", cache.len());
        assert!(cache.get("one-more", 101, 0).is_some());
        for i in 0..CAPACITY {
            cache.insert(&format!("later{i}"), until(10_000), 200);
        }
        assert!(cache.len() <= CAPACITY);
    }
}

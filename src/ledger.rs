//! The ledger: where purchases are remembered between requests (docs/behaviour.md §6.5).
//!
//! The purchase flow (`checkout`) never touches storage itself: it asks for a [`LedgerOp`] and is
//! handed a [`LedgerAnswer`], so a ledger that answers later (over a callout) fits the same flow
//! as one that answers at once. [`LocalLedger`] is the one-process ledger over Envoy's shared
//! data, reached through the small [`SharedStore`] interface; the compare-and-swap loop that makes
//! it safe across workers lives here, where it is tested natively.

pub mod settings;

use crate::entitlements::{self, Delta, Entitlement};
use crate::replay::{bucket_key, Bucket, Claim, Entry, FirstOutcome, IdClaim, Policy, BUCKETS};

/// Where one purchase lives: its bucket and its key inside the bucket (`replay::locate`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurchaseKey {
    pub bucket: usize,
    pub key: String,
}

impl PurchaseKey {
    pub fn of(message_hash: &[u8; 32]) -> PurchaseKey {
        let (bucket, key) = crate::replay::locate(message_hash);
        PurchaseKey { bucket, key }
    }

    /// Where a payment identifier lives (docs/behaviour.md §17.5): by the SHA-256 of the id,
    /// under keys of their own (`id:`), never those of a payment.
    pub fn of_identifier(id: &str) -> PurchaseKey {
        use sha2::Digest as _;
        let hash: [u8; 32] = sha2::Sha256::digest(id.as_bytes()).into();
        let (bucket, key) = crate::replay::locate(&hash);
        PurchaseKey { bucket, key: format!("id:{key}") }
    }
}

/// What the purchase flow asks of the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LedgerOp {
    /// Decide what this payment does now, and record it (`Bucket::claim`).
    Claim(PurchaseKey),
    /// Record the purchase's new state.
    Put(PurchaseKey, Box<Entry>),
    /// Drop the purchase: nothing was charged, the payment may be retried.
    Forget(PurchaseKey),
    /// Bind a payment identifier to this payment for this request, or say who holds it
    /// (`Bucket::claim_id`); `takeover`: the abandoned payment it may be taken from.
    ClaimId { id: PurchaseKey, request: String, payment: PurchaseKey, takeover: Option<String> },
    /// Let the identifier go if this payment holds it (the payment was dropped).
    ReleaseId { id: PurchaseKey, payment: PurchaseKey },
    /// Read where a payment stands, changing nothing.
    Look(PurchaseKey),
    /// The payer bought a pass: record what it entitles them to (docs/behaviour.md §16.3).
    Entitle { payer: String, entitlement: Entitlement },
    /// `Put` and then `Entitle`, as one op: the purchase's new state (a settlement) and the
    /// entitlement it gives its payer, both before the answer leaves. The local ledger runs the
    /// two in turn; the etcd ledger writes both in one transaction (docs/fleet.md).
    PutEntitled { at: PurchaseKey, entry: Box<Entry>, payer: String, entitlement: Entitlement },
    /// What this payer is entitled to, if anything.
    Entitlement(String),
}

impl LedgerOp {
    /// Whether this op records money that moved (or may have): a settlement, a settlement in
    /// doubt, or an entitlement. Such a record must never be lost when the ledger fails
    /// (docs/behaviour.md §19): it is kept and written again later.
    pub fn records_money_moved(&self) -> bool {
        match self {
            LedgerOp::Put(_, entry) => {
                matches!(**entry, Entry::Settled { .. } | Entry::Unknown { .. } | Entry::Spent { .. })
            }
            LedgerOp::Entitle { .. } | LedgerOp::PutEntitled { .. } => true,
            _ => false,
        }
    }

    /// The entitlement this op records, if it records one: (payer, entitlement).
    pub fn entitles(&self) -> Option<(&str, &Entitlement)> {
        match self {
            LedgerOp::Entitle { payer, entitlement } | LedgerOp::PutEntitled { payer, entitlement, .. } => {
                Some((payer, entitlement))
            }
            _ => None,
        }
    }

    /// What the op does, for a log line.
    pub fn describe(&self) -> &'static str {
        match self {
            LedgerOp::Claim(_) => "claim a payment",
            LedgerOp::Put(_, entry) => match **entry {
                Entry::Pending { .. } => "hold a pass as pending",
                Entry::Unknown { .. } => "record a settlement in doubt",
                Entry::Settled { .. } => "record a settlement",
                Entry::Spent { .. } => "record a spent payment",
                Entry::Identifier(..) => "record a payment identifier",
            },
            LedgerOp::Forget(_) => "forget a payment",
            LedgerOp::ClaimId { .. } => "bind a payment identifier",
            LedgerOp::ReleaseId { .. } => "release a payment identifier",
            LedgerOp::Look(_) => "read a payment identifier's first payment",
            LedgerOp::Entitle { .. } => "record an entitlement",
            LedgerOp::PutEntitled { .. } => "record a settlement and its entitlement",
            LedgerOp::Entitlement(_) => "read an entitlement",
        }
    }
}

/// The ledger's answer to one [`LedgerOp`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LedgerAnswer {
    Claimed(Claim),
    Identified(IdClaim),
    Looked(FirstOutcome),
    Done,
    /// An `Entitle` was recorded; the number of entitlements held changed by this much.
    Granted(Delta),
    /// The answer to `Entitlement`.
    Entitled(Option<Entitlement>),
    /// The ledger could not be read or written.
    Unavailable,
}

/// A ledger that answers at once. (A ledger that answers by callout is driven the same way by
/// the proxy-wasm layer: the flow only ever sees ops and answers.)
pub trait Ledger {
    fn run(&self, op: &LedgerOp, now: u64) -> LedgerAnswer;
}

/// The result of a conditional shared-data write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    Done,
    /// Someone else wrote the key since it was read: read again.
    CasMismatch,
    Failed,
}

/// Envoy's shared data, as the ledger needs it: one process, every worker. Only an existing key
/// can be compared-and-swapped; creating a key is unconditional.
pub trait SharedStore {
    /// The value and its compare-and-swap token; `None` when the store cannot be read.
    fn read(&self, key: &str) -> Option<(Option<Vec<u8>>, Option<u32>)>;
    fn write(&self, key: &str, value: &[u8], cas: Option<u32>) -> Write;
}

/// Compare-and-swap attempts before giving up on a busy bucket.
pub const MAX_ATTEMPTS: usize = 32;

/// The one-process ledger: purchases in `BUCKETS` pre-created shared-data keys (`replay`).
pub struct LocalLedger<'a, S: SharedStore> {
    pub store: &'a S,
    pub policy: Policy,
}

/// Creates the buckets of the local ledger that do not exist yet, purchases' and entitlements'.
/// Creation is the one write that cannot be a compare-and-swap; it happens at start-up, before
/// requests.
pub fn create_buckets(store: &impl SharedStore) {
    for index in 0..BUCKETS {
        let key = bucket_key(index);
        if let Some((None, None)) = store.read(&key) {
            let _ = store.write(&key, b"", None);
        }
    }
    entitlements::create_buckets(store);
}

impl<S: SharedStore> LocalLedger<'_, S> {
    /// Applies `change` to bucket `index` atomically (read, change, sweep, compare-and-swap,
    /// again on a conflict). `None` when the store is unusable or stayed busy.
    pub fn update<R>(&self, index: usize, now: u64, mut change: impl FnMut(&mut Bucket) -> R) -> Option<R> {
        let key = bucket_key(index);
        for _ in 0..MAX_ATTEMPTS {
            let (bytes, cas) = self.store.read(&key)?;
            let mut bucket = Bucket::decode(bytes.as_deref());
            let result = change(&mut bucket);
            bucket.sweep(now, self.policy);
            match self.store.write(&key, &bucket.encode(), cas) {
                Write::Done => return Some(result),
                Write::CasMismatch => continue,
                Write::Failed => {
                    log::error!("x402-access-pass: shared data write failed for purchase bucket {index}");
                    return None;
                }
            }
        }
        log::error!("x402-access-pass: purchase store bucket {index} stayed busy");
        None
    }

    /// Background sweep of one bucket; writes only when something expired.
    pub fn sweep(&self, index: usize, now: u64) {
        let key = bucket_key(index);
        let Some((bytes, cas)) = self.store.read(&key) else { return };
        let mut bucket = Bucket::decode(bytes.as_deref());
        if cas.is_some() && bucket.sweep(now, self.policy) {
            // A conflict means another worker wrote (and swept) it: nothing to redo.
            let _ = self.store.write(&key, &bucket.encode(), cas);
        }
    }
}

impl<S: SharedStore> Ledger for LocalLedger<'_, S> {
    fn run(&self, op: &LedgerOp, now: u64) -> LedgerAnswer {
        let policy = self.policy;
        let answer = match op {
            LedgerOp::Claim(at) => {
                self.update(at.bucket, now, |b| b.claim(&at.key, now, policy)).map(LedgerAnswer::Claimed)
            }
            LedgerOp::Put(at, entry) => {
                self.update(at.bucket, now, |b| b.set(&at.key, Entry::clone(entry))).map(|()| LedgerAnswer::Done)
            }
            LedgerOp::Forget(at) => self.update(at.bucket, now, |b| b.remove(&at.key)).map(|()| LedgerAnswer::Done),
            LedgerOp::ClaimId { id, request, payment, takeover } => self
                .update(id.bucket, now, |b| {
                    b.claim_id(&id.key, request, payment.bucket, &payment.key, takeover.as_deref(), now, policy)
                })
                .map(LedgerAnswer::Identified),
            LedgerOp::ReleaseId { id, payment } => {
                self.update(id.bucket, now, |b| b.release_id(&id.key, &payment.key)).map(|()| LedgerAnswer::Done)
            }
            LedgerOp::Look(at) => self.store.read(&bucket_key(at.bucket)).map(|(bytes, _)| {
                LedgerAnswer::Looked(Bucket::decode(bytes.as_deref()).first_outcome(&at.key, now, policy))
            }),
            LedgerOp::Entitle { payer, entitlement } => {
                entitlements::grant(self.store, payer, entitlement, now).map(LedgerAnswer::Granted)
            }
            // Exactly `Put` then `Entitle`: the entitlement is recorded whatever became of the
            // put, and the answer is the entitlement's (the gauge of entitlements moves with it).
            LedgerOp::PutEntitled { at, entry, payer, entitlement } => {
                let _ = self.update(at.bucket, now, |b| b.set(&at.key, Entry::clone(entry)));
                entitlements::grant(self.store, payer, entitlement, now).map(LedgerAnswer::Granted)
            }
            LedgerOp::Entitlement(payer) => entitlements::lookup(self.store, payer).ok().map(LedgerAnswer::Entitled),
        };
        answer.unwrap_or(LedgerAnswer::Unavailable)
    }
}

/// An in-memory [`SharedStore`] with Envoy's semantics (a CAS token per write, a mismatch when
/// the token is stale), for native tests. `conflicts` makes the next writes lose a race, as if
/// another worker had written first.
#[cfg(test)]
pub mod memory {
    use std::cell::{Cell, RefCell};
    use std::collections::HashMap;

    use super::{SharedStore, Write};

    #[derive(Default)]
    pub struct MemoryStore {
        data: RefCell<HashMap<String, (Vec<u8>, u32)>>,
        pub conflicts: Cell<usize>,
        pub broken: Cell<bool>,
        pub writes: Cell<usize>,
    }

    impl SharedStore for MemoryStore {
        fn read(&self, key: &str) -> Option<(Option<Vec<u8>>, Option<u32>)> {
            if self.broken.get() {
                return None;
            }
            Some(match self.data.borrow().get(key) {
                Some((value, cas)) => (Some(value.clone()), Some(*cas)),
                None => (None, None),
            })
        }

        fn write(&self, key: &str, value: &[u8], cas: Option<u32>) -> Write {
            if self.broken.get() {
                return Write::Failed;
            }
            let mut data = self.data.borrow_mut();
            let current = data.get(key).map(|(_, c)| *c);
            if self.conflicts.get() > 0 {
                self.conflicts.set(self.conflicts.get() - 1);
                // Another worker wrote meanwhile: the token moves on.
                if let Some((_, c)) = data.get_mut(key) {
                    *c += 1;
                }
                return Write::CasMismatch;
            }
            if cas.is_some() && cas != current {
                return Write::CasMismatch;
            }
            let next = current.map_or(1, |c| c + 1);
            data.insert(key.to_owned(), (value.to_vec(), next));
            self.writes.set(self.writes.get() + 1);
            Write::Done
        }
    }
}

#[cfg(test)]
mod tests {
    use super::memory::MemoryStore;
    use super::*;

    const POLICY: Policy = Policy { replay_window_seconds: 600, stale_after_seconds: 25 };

    fn at(key: &str) -> PurchaseKey {
        PurchaseKey { bucket: 3, key: key.to_owned() }
    }

    #[test]
    fn only_records_of_money_that_moved_must_survive_a_failed_ledger() {
        let pass = || crate::etcd::sim::pass();
        let put = |entry: Entry| LedgerOp::Put(at("k"), Box::new(entry));
        let entitlement = Entitlement { tier: "1h".into(), iat: 1, exp: 2, network: "n".into() };
        let settled = Box::new(Entry::Settled { at: 1, receipt: crate::etcd::sim::receipt() });
        let both =
            LedgerOp::PutEntitled { at: at("k"), entry: settled, payer: "p".into(), entitlement: entitlement.clone() };
        assert_eq!(both.entitles(), Some(("p", &entitlement)));
        assert_eq!(both.describe(), "record a settlement and its entitlement");
        for kept in [
            put(Entry::Settled { at: 1, receipt: crate::etcd::sim::receipt() }),
            put(Entry::Unknown { since: 1, pass: pass() }),
            put(Entry::Spent { at: 1 }),
            LedgerOp::Entitle { payer: "p".into(), entitlement },
            both,
        ] {
            assert!(kept.records_money_moved(), "{kept:?}");
        }
        assert_eq!(put(Entry::Spent { at: 1 }).entitles(), None);
        for dropped in [
            LedgerOp::Claim(at("k")),
            put(Entry::Pending { since: 1, pass: Some(pass()) }),
            LedgerOp::Forget(at("k")),
            LedgerOp::Look(at("k")),
            LedgerOp::Entitlement("p".into()),
        ] {
            assert!(!dropped.records_money_moved(), "{dropped:?}");
        }
    }

    #[test]
    fn a_lost_compare_and_swap_is_retried_and_the_claim_holds() {
        let store = MemoryStore::default();
        let ledger = LocalLedger { store: &store, policy: POLICY };
        create_buckets(&store);
        store.conflicts.set(3);
        assert_eq!(ledger.run(&LedgerOp::Claim(at("k")), 100), LedgerAnswer::Claimed(Claim::Fresh));
        assert_eq!(ledger.run(&LedgerOp::Claim(at("k")), 101), LedgerAnswer::Claimed(Claim::InProgress));
        assert_eq!(ledger.run(&LedgerOp::Forget(at("k")), 102), LedgerAnswer::Done);
        assert_eq!(ledger.run(&LedgerOp::Claim(at("k")), 103), LedgerAnswer::Claimed(Claim::Fresh));
    }

    #[test]
    fn a_bucket_that_stays_busy_or_a_broken_store_is_unavailable() {
        let store = MemoryStore::default();
        let ledger = LocalLedger { store: &store, policy: POLICY };
        create_buckets(&store);
        store.conflicts.set(MAX_ATTEMPTS);
        assert_eq!(ledger.run(&LedgerOp::Claim(at("k")), 100), LedgerAnswer::Unavailable);
        store.conflicts.set(0);
        store.broken.set(true);
        assert_eq!(
            ledger.run(&LedgerOp::Put(at("k"), Box::new(Entry::Spent { at: 1 })), 100),
            LedgerAnswer::Unavailable
        );
    }

    #[test]
    fn identifiers_are_claimed_released_and_first_payments_looked_at_without_a_write() {
        let store = MemoryStore::default();
        let ledger = LocalLedger { store: &store, policy: POLICY };
        create_buckets(&store);
        let id = PurchaseKey::of_identifier("pay_7d5d747be160e280504c099d984bcfe0");
        assert!(id.key.starts_with("id:") && id.key.len() == 67, "{}", id.key);
        let claim = |payment: &str| LedgerOp::ClaimId {
            id: id.clone(),
            request: "r".into(),
            payment: at(payment),
            takeover: None,
        };
        assert_eq!(ledger.run(&claim("p1"), 100), LedgerAnswer::Identified(IdClaim::Bound));
        let taken = IdClaim::Taken { bucket: 3, payment: "p1".into(), stale: false };
        assert_eq!(ledger.run(&claim("p2"), 101), LedgerAnswer::Identified(taken));
        let writes = store.writes.get();
        assert_eq!(ledger.run(&LedgerOp::Look(at("p1")), 101), LedgerAnswer::Looked(FirstOutcome::Absent));
        assert_eq!(ledger.run(&LedgerOp::Claim(at("p1")), 101), LedgerAnswer::Claimed(Claim::Fresh));
        assert_eq!(ledger.run(&LedgerOp::Look(at("p1")), 101), LedgerAnswer::Looked(FirstOutcome::InProgress));
        assert_eq!(store.writes.get(), writes + 1, "looking writes nothing");
        assert_eq!(ledger.run(&LedgerOp::ReleaseId { id: id.clone(), payment: at("p1") }, 102), LedgerAnswer::Done);
        assert_eq!(ledger.run(&claim("p2"), 103), LedgerAnswer::Identified(IdClaim::Bound));
    }

    #[test]
    fn entitlements_are_granted_and_looked_up_through_the_ledger() {
        let store = MemoryStore::default();
        let ledger = LocalLedger { store: &store, policy: POLICY };
        create_buckets(&store);
        let entitlement = Entitlement { tier: "1h".into(), iat: 100, exp: 3_700, network: "solana:x".into() };
        let ask = LedgerOp::Entitlement("Buyer".into());
        assert_eq!(ledger.run(&ask, 100), LedgerAnswer::Entitled(None));
        let grant = LedgerOp::Entitle { payer: "Buyer".into(), entitlement: entitlement.clone() };
        assert_eq!(ledger.run(&grant, 100), LedgerAnswer::Granted(1));
        assert_eq!(ledger.run(&grant, 101), LedgerAnswer::Granted(0));
        assert_eq!(ledger.run(&ask, 102), LedgerAnswer::Entitled(Some(entitlement)));
        store.broken.set(true);
        assert_eq!(ledger.run(&ask, 103), LedgerAnswer::Unavailable);
    }

    #[test]
    fn a_settlement_with_its_entitlement_is_the_put_then_the_entitle() {
        let entitlement = Entitlement { tier: "1h".into(), iat: 100, exp: 3_700, network: "solana:x".into() };
        let settled = Entry::Settled { at: 100, receipt: crate::etcd::sim::receipt() };
        let both = |entitlement: &Entitlement| LedgerOp::PutEntitled {
            at: at("k"),
            entry: Box::new(settled.clone()),
            payer: "Buyer".into(),
            entitlement: entitlement.clone(),
        };
        // The same store after the two ops and after the one.
        let apart = MemoryStore::default();
        let together = MemoryStore::default();
        create_buckets(&apart);
        create_buckets(&together);
        let (apart_ledger, together_ledger) =
            (LocalLedger { store: &apart, policy: POLICY }, LocalLedger { store: &together, policy: POLICY });
        assert_eq!(apart_ledger.run(&LedgerOp::Put(at("k"), Box::new(settled.clone())), 100), LedgerAnswer::Done);
        let entitle = LedgerOp::Entitle { payer: "Buyer".into(), entitlement: entitlement.clone() };
        assert_eq!(apart_ledger.run(&entitle, 100), LedgerAnswer::Granted(1));
        assert_eq!(together_ledger.run(&both(&entitlement), 100), LedgerAnswer::Granted(1), "the entitlement's answer");
        for ledger in [&apart_ledger, &together_ledger] {
            assert_eq!(
                ledger.run(&LedgerOp::Claim(at("k")), 101),
                LedgerAnswer::Claimed(Claim::Replay(crate::etcd::sim::receipt()))
            );
            let ask = LedgerOp::Entitlement("Buyer".into());
            assert_eq!(ledger.run(&ask, 101), LedgerAnswer::Entitled(Some(entitlement.clone())));
        }
        assert_eq!(together_ledger.run(&both(&entitlement), 102), LedgerAnswer::Granted(0), "held already");
        // A store that fails: unavailable, as the entitle alone would be.
        together.broken.set(true);
        assert_eq!(together_ledger.run(&both(&entitlement), 103), LedgerAnswer::Unavailable);
        // A put that loses every race still entitles the payer (as the two ops in turn would).
        let busy = MemoryStore::default();
        create_buckets(&busy);
        let busy_ledger = LocalLedger { store: &busy, policy: POLICY };
        busy.conflicts.set(MAX_ATTEMPTS);
        assert_eq!(busy_ledger.run(&both(&entitlement), 100), LedgerAnswer::Granted(1));
        assert_eq!(busy_ledger.run(&LedgerOp::Claim(at("k")), 101), LedgerAnswer::Claimed(Claim::Fresh));
    }

    #[test]
    fn buckets_are_created_once_and_swept_only_when_something_expired() {
        let store = MemoryStore::default();
        let ledger = LocalLedger { store: &store, policy: POLICY };
        create_buckets(&store);
        assert_eq!(store.writes.get(), BUCKETS + entitlements::BUCKETS);
        create_buckets(&store);
        assert_eq!(store.writes.get(), BUCKETS + entitlements::BUCKETS);
        assert_eq!(ledger.run(&LedgerOp::Claim(at("k")), 100), LedgerAnswer::Claimed(Claim::Fresh));
        let writes = store.writes.get();
        ledger.sweep(3, 110);
        assert_eq!(store.writes.get(), writes, "nothing expired: no write");
        ledger.sweep(3, 100 + POLICY.stale_after_seconds);
        assert_eq!(store.writes.get(), writes + 1);
        assert_eq!(ledger.run(&LedgerOp::Claim(at("k")), 200), LedgerAnswer::Claimed(Claim::Fresh));
    }
}

//! Replay and concurrency (SPEC §6.5) as pure state: one purchase per payment,
//! keyed by the SHA-256 of its transaction message.
//!
//! Envoy's shared data (visible to every worker) can only compare-and-swap a
//! key that already exists: creating a key is unconditional, so two workers
//! could both "create" the same purchase. Purchases therefore live in a fixed
//! set of buckets created at start-up; every change to a bucket is a
//! read-modify-CAS of the whole bucket, which serialises concurrent requests
//! for the same payment. Shared data has no expiry, so every write also sweeps
//! its bucket, and the root context sweeps all buckets slowly in the background.

use serde::{Deserialize, Serialize};

use crate::purchase::{IssuedPass, Receipt};

/// How many buckets purchases are spread over.
pub const BUCKETS: usize = 64;
/// A spent payment is remembered this long after its replay window, so that it
/// is refused as `duplicate_payment` rather than reaching the facilitator. A
/// Solana transaction cannot land once its blockhash expired (about 2 minutes).
pub const SPENT_RETENTION_SECONDS: u64 = 3_600;
/// An unknown settlement is kept this long for its buyer to come back.
pub const UNKNOWN_RETENTION_SECONDS: u64 = 86_400;

/// A payment identifier is remembered as long as the longest-lived purchase record it can name
/// (docs/behaviour.md §17.5): an unknown settlement's.
pub const IDENTIFIER_RETENTION_SECONDS: u64 = UNKNOWN_RETENTION_SECONDS;

/// Shared-data key of bucket `index`.
pub fn bucket_key(index: usize) -> String {
    format!("x402_access_pass.purchases.{index}")
}

/// The bucket a purchase lives in, and its key inside the bucket.
pub fn locate(message_hash: &[u8; 32]) -> (usize, String) {
    let index = usize::from(message_hash.first().copied().unwrap_or(0)) % BUCKETS;
    let mut hex = String::with_capacity(64);
    for b in message_hash {
        hex.push_str(&format!("{b:02x}"));
    }
    (index, hex)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Entry {
    /// A callout for this payment is in flight since `since`. `pass` is set
    /// once the pass is signed, just before `/settle`.
    Pending { since: u64, pass: Option<IssuedPass> },
    /// `/settle` did not answer: the money may have moved.
    Unknown { since: u64, pass: IssuedPass },
    /// Settled at `at`; the same payment re-serves `receipt` within the window.
    Settled { at: u64, receipt: Receipt },
    /// Settled, and its replay window is over.
    Spent { at: u64 },
    /// A payment identifier (docs/behaviour.md §17.5): `(since, request, bucket, payment)`, first
    /// used at `since` for the request whose fingerprint is `request`, by the payment at
    /// `bucket`/`payment`. (A tuple: a struct variant's decoder costs more wasm.)
    Identifier(u64, String, usize, String),
}

/// What a payment carrying an identifier may do (docs/behaviour.md §17.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdClaim {
    /// The identifier is this payment's (new, or this payment's own): go on as usual.
    Bound,
    /// The identifier was first used for another request: 409.
    Conflict,
    /// Another payment holds it for this request: the answer is that payment's outcome. `stale`
    /// when it was bound long enough ago that a payment still unrecorded was abandoned.
    Taken { bucket: usize, payment: String, stale: bool },
}

/// Where the first payment of an identifier stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FirstOutcome {
    /// Pending or unknown: 409 while it is worked out.
    InProgress,
    /// Settled within its replay window: its answer again.
    Settled(Receipt),
    /// Settled, and its window is over.
    Spent,
    /// Nothing recorded: not yet claimed, or dropped (nothing was charged).
    Absent,
}

#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub replay_window_seconds: u64,
    /// A `Pending` older than this was abandoned (its worker died mid-callout):
    /// twice the callout timeout plus a margin.
    pub stale_after_seconds: u64,
}

/// What to do with a payment that passed the local checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// First time seen: it is now `Pending` for this request; verify it.
    Fresh,
    /// Another request is processing it: 409.
    InProgress,
    /// Already settled: the same 200 again.
    Replay(Receipt),
    /// Settled and past its window: 402 `duplicate_payment`.
    Duplicate,
    /// Its settlement is unknown: settle again and issue this pass if it landed.
    Recover(IssuedPass),
}

/// The purchases of one bucket, sorted by key: a few dozen at most under sustained sales, so a
/// sorted vector (binary search, one small move per insert) rather than a tree, whose code
/// would be linked into the wasm a second time for this alone. Encoded as a JSON array of
/// `[key, entry]` pairs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Bucket {
    entries: Vec<(String, Entry)>,
}

impl Bucket {
    /// Empty or unreadable bytes are an empty bucket: losing a bucket can only
    /// make a replay reach the facilitator, which refuses a second settlement.
    pub fn decode(bytes: Option<&[u8]>) -> Bucket {
        bytes
            .filter(|b| !b.is_empty())
            .and_then(|b| serde_json::from_slice::<Bucket>(b).ok())
            // Lookups need the keys sorted and unique, as this filter writes them.
            .filter(|bucket| bucket.entries.windows(2).all(|w| matches!(w, [a, b] if a.0 < b.0)))
            .unwrap_or_default()
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn position(&self, key: &str) -> Result<usize, usize> {
        self.entries.binary_search_by(|(k, _)| k.as_str().cmp(key))
    }

    pub fn get(&self, key: &str) -> Option<&Entry> {
        let index = self.position(key).ok()?;
        self.entries.get(index).map(|(_, entry)| entry)
    }

    pub fn set(&mut self, key: &str, entry: Entry) {
        match self.position(key) {
            Ok(index) => {
                if let Some(slot) = self.entries.get_mut(index) {
                    slot.1 = entry;
                }
            }
            Err(index) => self.entries.insert(index, (key.to_owned(), entry)),
        }
    }

    pub fn remove(&mut self, key: &str) {
        if let Ok(index) = self.position(key) {
            self.entries.remove(index);
        }
    }

    /// Decides what a request carrying this payment does, and records it.
    pub fn claim(&mut self, key: &str, now: u64, policy: Policy) -> Claim {
        let stale = |since: u64| now.saturating_sub(since) >= policy.stale_after_seconds;
        let (claim, next) = match self.get(key) {
            None => (Claim::Fresh, Some(Entry::Pending { since: now, pass: None })),
            Some(Entry::Pending { since, .. }) if !stale(*since) => (Claim::InProgress, None),
            // Abandoned before the pass was signed: no settlement was attempted.
            Some(Entry::Pending { pass: None, .. }) => (Claim::Fresh, Some(Entry::Pending { since: now, pass: None })),
            Some(Entry::Pending { pass: Some(pass), .. }) | Some(Entry::Unknown { pass, .. }) => {
                (Claim::Recover(pass.clone()), Some(Entry::Pending { since: now, pass: Some(pass.clone()) }))
            }
            Some(Entry::Settled { at, receipt }) if now.saturating_sub(*at) <= policy.replay_window_seconds => {
                (Claim::Replay(receipt.clone()), None)
            }
            Some(Entry::Settled { at, .. }) => (Claim::Duplicate, Some(Entry::Spent { at: *at })),
            Some(Entry::Spent { .. }) => (Claim::Duplicate, None),
            // Identifier keys never meet payment keys (`id:` prefix); refuse rather than guess.
            Some(Entry::Identifier(..)) => (Claim::InProgress, None),
        };
        if let Some(entry) = next {
            self.set(key, entry);
        }
        claim
    }

    /// Binds identifier `key` to a payment for a request, or says who holds it. `takeover` names
    /// the payment that held it when that one was found abandoned: it is replaced only if it
    /// still holds it.
    #[allow(clippy::too_many_arguments)]
    pub fn claim_id(
        &mut self,
        key: &str,
        request: &str,
        bucket: usize,
        payment: &str,
        takeover: Option<&str>,
        now: u64,
        policy: Policy,
    ) -> IdClaim {
        let claim = match self.get(key) {
            Some(Entry::Identifier(_, first, _, _)) if first != request => return IdClaim::Conflict,
            Some(Entry::Identifier(_, _, _, held)) if held == payment => return IdClaim::Bound,
            Some(Entry::Identifier(_, _, _, held)) if takeover == Some(held.as_str()) => IdClaim::Bound,
            Some(Entry::Identifier(since, _, bucket, held)) => {
                let stale = now.saturating_sub(*since) >= policy.stale_after_seconds;
                return IdClaim::Taken { bucket: *bucket, payment: held.clone(), stale };
            }
            _ => IdClaim::Bound,
        };
        let entry = Entry::Identifier(now, request.to_owned(), bucket, payment.to_owned());
        self.set(key, entry);
        claim
    }

    /// Lets identifier `key` go if `payment` holds it: that payment was dropped, nothing charged.
    pub fn release_id(&mut self, key: &str, payment: &str) {
        if matches!(self.get(key), Some(Entry::Identifier(_, _, _, held)) if held == payment) {
            self.remove(key);
        }
    }

    /// Where the payment at `key` stands, read only.
    pub fn first_outcome(&self, key: &str, now: u64, policy: Policy) -> FirstOutcome {
        match self.get(key) {
            None | Some(Entry::Identifier(..)) => FirstOutcome::Absent,
            Some(Entry::Pending { .. }) | Some(Entry::Unknown { .. }) => FirstOutcome::InProgress,
            Some(Entry::Settled { at, receipt }) if now.saturating_sub(*at) <= policy.replay_window_seconds => {
                FirstOutcome::Settled(receipt.clone())
            }
            Some(Entry::Settled { .. }) | Some(Entry::Spent { .. }) => FirstOutcome::Spent,
        }
    }

    /// Drops what is no longer needed; returns whether anything changed.
    pub fn sweep(&mut self, now: u64, policy: Policy) -> bool {
        let before = self.entries.len();
        self.entries.retain(|(_, entry)| match entry {
            Entry::Pending { since, pass: None } => now.saturating_sub(*since) < policy.stale_after_seconds,
            Entry::Pending { since, pass: Some(_) } | Entry::Unknown { since, .. } => {
                now.saturating_sub(*since) < UNKNOWN_RETENTION_SECONDS
            }
            Entry::Settled { .. } => true,
            Entry::Spent { at } => {
                now.saturating_sub(*at) < policy.replay_window_seconds.saturating_add(SPENT_RETENTION_SECONDS)
            }
            Entry::Identifier(since, ..) => now.saturating_sub(*since) < IDENTIFIER_RETENTION_SECONDS,
        });
        let mut changed = before != self.entries.len();
        for (_, entry) in &mut self.entries {
            if let Entry::Settled { at, .. } = entry {
                if now.saturating_sub(*at) > policy.replay_window_seconds {
                    *entry = Entry::Spent { at: *at };
                    changed = true;
                }
            }
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::PassClaims;

    const POLICY: Policy = Policy { replay_window_seconds: 600, stale_after_seconds: 25 };

    fn pass() -> IssuedPass {
        IssuedPass {
            token: "t".into(),
            claims: PassClaims {
                sub: "x402-access-pass".into(),
                tier: "1h".into(),
                duration: 3_600,
                iat: 0,
                exp: 3_600,
                payer: "p".into(),
                network: "n".into(),
                iss: "i".into(),
                aud: None,
            },
        }
    }

    fn receipt() -> Receipt {
        Receipt {
            token: "t".into(),
            payment_response: "pr".into(),
            body: "{}".into(),
            claims: Some(Box::new(pass().claims)),
        }
    }

    #[test]
    fn a_new_payment_is_fresh_then_in_progress() {
        let mut b = Bucket::default();
        assert_eq!(b.claim("k", 100, POLICY), Claim::Fresh);
        assert_eq!(b.claim("k", 101, POLICY), Claim::InProgress);
        assert_eq!(b.claim("other", 101, POLICY), Claim::Fresh);
    }

    #[test]
    fn a_settled_payment_replays_within_the_window_then_is_a_duplicate() {
        let mut b = Bucket::default();
        b.set("k", Entry::Settled { at: 100, receipt: receipt() });
        assert_eq!(b.claim("k", 700, POLICY), Claim::Replay(receipt()));
        assert_eq!(b.claim("k", 701, POLICY), Claim::Duplicate);
        assert_eq!(b.get("k"), Some(&Entry::Spent { at: 100 }));
        assert_eq!(b.claim("k", 702, POLICY), Claim::Duplicate);
    }

    #[test]
    fn an_unknown_settlement_is_recovered_with_the_same_pass() {
        let mut b = Bucket::default();
        b.set("k", Entry::Unknown { since: 100, pass: pass() });
        assert_eq!(b.claim("k", 105, POLICY), Claim::Recover(pass()));
        // while the recovery is in flight, others wait
        assert_eq!(b.claim("k", 106, POLICY), Claim::InProgress);
    }

    #[test]
    fn an_abandoned_pending_is_taken_over() {
        let mut b = Bucket::default();
        b.set("k", Entry::Pending { since: 100, pass: None });
        assert_eq!(b.claim("k", 124, POLICY), Claim::InProgress);
        assert_eq!(b.claim("k", 125, POLICY), Claim::Fresh);
        b.set("k", Entry::Pending { since: 100, pass: Some(pass()) });
        assert_eq!(b.claim("k", 125, POLICY), Claim::Recover(pass()));
    }

    #[test]
    fn sweeping_keeps_memory_bounded() {
        let mut b = Bucket::default();
        b.set("settled", Entry::Settled { at: 100, receipt: receipt() });
        b.set("stale", Entry::Pending { since: 100, pass: None });
        b.set("unknown", Entry::Unknown { since: 100, pass: pass() });
        assert!(b.sweep(800, POLICY));
        assert_eq!(b.get("settled"), Some(&Entry::Spent { at: 100 }));
        assert_eq!(b.get("stale"), None);
        assert!(b.get("unknown").is_some());
        assert!(!b.sweep(800, POLICY));
        b.sweep(100 + 600 + SPENT_RETENTION_SECONDS + UNKNOWN_RETENTION_SECONDS, POLICY);
        assert!(b.is_empty());
    }

    #[test]
    fn an_identifier_is_bound_once_per_request_and_names_its_first_payment() {
        let mut b = Bucket::default();
        let claim = |b: &mut Bucket, request: &str, payment: &str, takeover: Option<&str>, now: u64| {
            b.claim_id("id:k", request, 7, payment, takeover, now, POLICY)
        };
        assert_eq!(claim(&mut b, "GET /a", "p1", None, 100), IdClaim::Bound);
        assert_eq!(claim(&mut b, "GET /a", "p1", None, 101), IdClaim::Bound, "the same payment again");
        assert_eq!(claim(&mut b, "GET /b", "p1", None, 101), IdClaim::Conflict);
        assert_eq!(claim(&mut b, "GET /b", "p2", None, 101), IdClaim::Conflict);
        assert_eq!(
            claim(&mut b, "GET /a", "p2", None, 101),
            IdClaim::Taken { bucket: 7, payment: "p1".into(), stale: false }
        );
        assert_eq!(
            claim(&mut b, "GET /a", "p2", None, 100 + POLICY.stale_after_seconds),
            IdClaim::Taken { bucket: 7, payment: "p1".into(), stale: true }
        );
        // Taken over only from the payment that was found abandoned.
        assert_eq!(
            claim(&mut b, "GET /a", "p2", Some("p0"), 200),
            IdClaim::Taken { bucket: 7, payment: "p1".into(), stale: true }
        );
        assert_eq!(claim(&mut b, "GET /a", "p2", Some("p1"), 200), IdClaim::Bound);
        assert!(matches!(b.get("id:k"), Some(Entry::Identifier(200, _, _, payment)) if payment == "p2"));
        // Released only by the payment that holds it.
        b.release_id("id:k", "p1");
        assert!(b.get("id:k").is_some());
        b.release_id("id:k", "p2");
        assert_eq!(b.get("id:k"), None);
    }

    #[test]
    fn the_first_payment_of_an_identifier_is_read_as_it_stands() {
        let mut b = Bucket::default();
        assert_eq!(b.first_outcome("k", 100, POLICY), FirstOutcome::Absent);
        b.set("k", Entry::Pending { since: 100, pass: None });
        assert_eq!(b.first_outcome("k", 100, POLICY), FirstOutcome::InProgress);
        b.set("k", Entry::Unknown { since: 100, pass: pass() });
        assert_eq!(b.first_outcome("k", 100, POLICY), FirstOutcome::InProgress);
        b.set("k", Entry::Settled { at: 100, receipt: receipt() });
        assert_eq!(b.first_outcome("k", 700, POLICY), FirstOutcome::Settled(receipt()));
        assert_eq!(b.first_outcome("k", 701, POLICY), FirstOutcome::Spent);
        b.set("k", Entry::Spent { at: 100 });
        assert_eq!(b.first_outcome("k", 701, POLICY), FirstOutcome::Spent);
    }

    #[test]
    fn identifiers_live_as_long_as_purchase_records() {
        let mut b = Bucket::default();
        b.set("id:k", Entry::Identifier(100, "r".into(), 0, "p".into()));
        assert!(!b.sweep(100 + IDENTIFIER_RETENTION_SECONDS - 1, POLICY));
        assert!(b.sweep(100 + IDENTIFIER_RETENTION_SECONDS, POLICY));
        assert!(b.is_empty());
    }

    #[test]
    fn buckets_round_trip_and_garbage_is_empty() {
        let mut b = Bucket::default();
        b.set("k", Entry::Unknown { since: 1, pass: pass() });
        assert_eq!(Bucket::decode(Some(&b.encode())), b);
        assert!(Bucket::decode(Some(b"garbage")).is_empty());
        // Keys out of order or repeated were not written by this filter: unreadable too.
        let spent = |at| serde_json::to_value(Entry::Spent { at }).unwrap();
        for keys in [["b", "a"], ["a", "a"]] {
            let bytes = serde_json::json!([[keys[0], spent(1)], [keys[1], spent(2)]]).to_string();
            assert!(Bucket::decode(Some(bytes.as_bytes())).is_empty());
        }
        let sorted = serde_json::json!([["a", spent(1)], ["b", spent(2)]]).to_string();
        assert_eq!(Bucket::decode(Some(sorted.as_bytes())).get("b"), Some(&Entry::Spent { at: 2 }));
        assert!(Bucket::decode(None).is_empty());
        let (index, key) = locate(&[0xff; 32]);
        assert_eq!(index, 0xff % BUCKETS);
        assert_eq!(key, "ff".repeat(32));
    }
}

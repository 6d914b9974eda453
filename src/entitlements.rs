//! Entitlements (docs/behaviour.md §16.3): for every payer the filter sold a pass to,
//! `payer → {tier, iat, exp, network}`, the latest-expiring pass winning, kept until `exp`. A
//! verified `SIGN-IN-WITH-X` from that payer is honoured like the pass itself.
//!
//! They live behind the ledger interface (`LedgerOp::Entitle`, `LedgerOp::Entitlement`), so a
//! ledger that answers by callout serves them the same way. The local ledger keeps them in
//! Envoy's shared data like purchases (src/replay.rs): a fixed set of buckets created at
//! start-up, each changed by read-modify-compare-and-swap, swept of expired entries on every
//! write and slowly in the background.
//!
//! Memory is bounded: at most [`PER_BUCKET`] payers in each of [`BUCKETS`] buckets, 32,768 payers
//! holding a live pass (about 100 bytes each, so ~3.3 MB of shared data when full). A full
//! bucket drops the entitlement that expires soonest; its buyer keeps the pass token itself.

use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::ledger::{SharedStore, Write, MAX_ATTEMPTS};
use crate::token::{self, PassClaims};

/// How many buckets entitlements are spread over.
pub const BUCKETS: usize = 128;
/// Payers per bucket at most.
pub const PER_BUCKET: usize = 256;
/// An entitlement is kept this long past its `exp`: the longest `leewaySeconds` a configuration
/// may allow, so that sweeping never drops one that is still honoured.
pub const KEPT_AFTER_EXP_SECONDS: u64 = 3_600;

/// What a payer's latest pass entitles them to, until `exp` (Unix seconds). Written as a
/// [`Book`] line in both ledgers (src/etcd/entitlement.rs keeps one line per etcd record).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entitlement {
    pub tier: String,
    pub iat: u64,
    pub exp: u64,
    pub network: String,
}

impl Entitlement {
    /// The entitlement a pass gives its payer.
    pub fn of(claims: &PassClaims) -> Entitlement {
        Entitlement { tier: claims.tier.clone(), iat: claims.iat, exp: claims.exp, network: claims.network.clone() }
    }

    /// Whether it is honoured at `now` (seconds): `now <= exp + leeway`.
    pub fn honoured(&self, now: u64, leeway_seconds: u64) -> bool {
        now <= self.exp.saturating_add(leeway_seconds)
    }

    /// The claims a forwarded request carries for `payer`, as if the pass itself had come.
    pub fn claims(&self, config: &Config, payer: &str) -> PassClaims {
        PassClaims {
            sub: token::SUBJECT.to_owned(),
            tier: self.tier.clone(),
            duration: self.exp.saturating_sub(self.iat),
            iat: self.iat,
            exp: self.exp,
            payer: as_a_pass_names_it(payer),
            network: self.network.clone(),
            iss: config.issuer.clone(),
            aud: config.audience.clone(),
        }
    }
}

/// The payer as a pass names it: an EVM address in its EIP-55 form (docs/behaviour.md §21), so the
/// upstream sees one spelling of a wallet whether its request came with the pass or signed in
/// (entitlements are kept under the lower-case address, `key_of`).
fn as_a_pass_names_it(payer: &str) -> String {
    use crate::evm::address::{Address, Case};
    match Address::parse(payer, Case::AllowUpper) {
        Some(address) if payer.starts_with("0x") => address.to_checksum(),
        _ => payer.to_owned(),
    }
}

/// Shared-data key of bucket `index`.
pub fn bucket_key(index: usize) -> String {
    format!("x402_access_pass.entitlements.{index}")
}

/// The key a payer's entitlement is kept under: the address as sold, lower-case on an EVM
/// network (`0x` hex, the same account in any letter case: docs/behaviour.md §21), where a
/// verified EVM sign-in looks it up.
pub fn key_of(payer: &str) -> String {
    match payer.starts_with("0x") {
        true => payer.to_ascii_lowercase(),
        false => payer.to_owned(),
    }
}

/// The bucket a payer lives in.
pub fn locate(payer: &str) -> usize {
    let digest = Sha256::digest(payer.as_bytes());
    usize::from(digest.first().copied().unwrap_or(0)) % BUCKETS
}

/// The entitlements of one bucket, sorted by payer. Encoded as one line per payer,
/// `payer\ttier\tiat\texp\tnetwork\n` (written by hand: a serde derive would add ~10 KB of wasm
/// for this alone); no field holds a tab or a line break (`grant` refuses them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Book {
    entries: Vec<(String, Entitlement)>,
}

/// How a write changed the number of entitlements held (for the `entitlements` gauge).
pub type Delta = i64;

impl Book {
    /// Empty or unreadable bytes are an empty book.
    #[inline(never)]
    pub fn decode(bytes: Option<&[u8]>) -> Book {
        let Some(text) = bytes.and_then(|b| std::str::from_utf8(b).ok()) else { return Book::default() };
        let mut entries = Vec::new();
        for line in text.split_terminator('\n') {
            let mut fields = line.split('\t');
            let (Some(payer), Some(tier), Some(iat), Some(exp), Some(network), None) =
                (fields.next(), fields.next(), fields.next(), fields.next(), fields.next(), fields.next())
            else {
                return Book::default();
            };
            let (Ok(iat), Ok(exp)) = (iat.parse(), exp.parse()) else { return Book::default() };
            entries
                .push((payer.to_owned(), Entitlement { tier: tier.to_owned(), iat, exp, network: network.to_owned() }));
        }
        // Lookups need the payers sorted and unique, as this filter writes them.
        if !entries.windows(2).all(|w| matches!(w, [a, b] if a.0 < b.0)) {
            return Book::default();
        }
        Book { entries }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = String::with_capacity(self.entries.len() * 100);
        for (payer, e) in &self.entries {
            out.push_str(&format!("{payer}\t{}\t{}\t{}\t{}\n", e.tier, e.iat, e.exp, e.network));
        }
        out.into_bytes()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, payer: &str) -> Option<&Entitlement> {
        let index = self.entries.binary_search_by(|(p, _)| p.as_str().cmp(payer)).ok()?;
        self.entries.get(index).map(|(_, e)| e)
    }

    /// Records `entitlement` for `payer` unless one that expires later is held already.
    pub fn grant(&mut self, payer: &str, entitlement: Entitlement) -> Delta {
        let clean = |s: &str| !s.is_empty() && !s.contains(['\t', '\n']);
        if !(clean(payer) && clean(&entitlement.tier) && clean(&entitlement.network)) {
            return 0;
        }
        match self.entries.binary_search_by(|(p, _)| p.as_str().cmp(payer)) {
            Ok(index) => {
                if let Some(slot) = self.entries.get_mut(index) {
                    if entitlement.exp >= slot.1.exp {
                        slot.1 = entitlement;
                    }
                }
                0
            }
            Err(index) => {
                self.entries.insert(index, (payer.to_owned(), entitlement));
                1 - self.evict()
            }
        }
    }

    /// Drops what expired more than `KEPT_AFTER_EXP_SECONDS` before `now`; how many were dropped.
    pub fn sweep(&mut self, now: u64) -> Delta {
        let before = self.entries.len();
        self.entries.retain(|(_, e)| e.honoured(now, KEPT_AFTER_EXP_SECONDS));
        (before - self.entries.len()) as Delta
    }

    /// Past `PER_BUCKET`, drops the entitlements that expire soonest; how many.
    fn evict(&mut self) -> Delta {
        let mut dropped = 0;
        while self.entries.len() > PER_BUCKET {
            let soonest = self.entries.iter().enumerate().min_by_key(|(_, (_, e))| e.exp).map(|(i, _)| i);
            let Some(index) = soonest else { break };
            self.entries.remove(index);
            log::warn!("x402-access-pass: an entitlement bucket is full: dropped the entitlement that expires soonest");
            dropped += 1;
        }
        dropped
    }
}

/// Creates the entitlement buckets that do not exist yet (at start-up, before requests).
pub fn create_buckets(store: &impl SharedStore) {
    for index in 0..BUCKETS {
        let key = bucket_key(index);
        if let Some((None, None)) = store.read(&key) {
            let _ = store.write(&key, b"", None);
        }
    }
}

/// The shared store could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unreadable;

/// The entitlement `payer` holds, if any.
pub fn lookup(store: &impl SharedStore, payer: &str) -> Result<Option<Entitlement>, Unreadable> {
    let (bytes, _) = store.read(&bucket_key(locate(payer))).ok_or(Unreadable)?;
    Ok(Book::decode(bytes.as_deref()).get(payer).cloned())
}

/// Grants `entitlement` to `payer` (read, grant, sweep, compare-and-swap, again on a conflict):
/// the change in the number held, or `None` when the store is unusable or stayed busy.
pub fn grant(store: &impl SharedStore, payer: &str, entitlement: &Entitlement, now: u64) -> Option<Delta> {
    let index = locate(payer);
    let key = bucket_key(index);
    for _ in 0..MAX_ATTEMPTS {
        let (bytes, cas) = store.read(&key)?;
        let mut book = Book::decode(bytes.as_deref());
        let swept = book.sweep(now);
        let added = book.grant(payer, entitlement.clone());
        match store.write(&key, &book.encode(), cas) {
            Write::Done => return Some(added - swept),
            Write::CasMismatch => continue,
            Write::Failed => {
                log::error!("x402-access-pass: shared data write failed for entitlement bucket {index}");
                return None;
            }
        }
    }
    log::error!("x402-access-pass: entitlement bucket {index} stayed busy");
    None
}

/// Background sweep of one bucket; writes only when something expired. How many were dropped.
pub fn sweep(store: &impl SharedStore, index: usize, now: u64) -> Delta {
    let key = bucket_key(index);
    let Some((bytes, cas)) = store.read(&key) else { return 0 };
    let mut book = Book::decode(bytes.as_deref());
    let dropped = book.sweep(now);
    // A conflict means another worker wrote (and swept) it, and counted what it dropped.
    if cas.is_some() && dropped > 0 && store.write(&key, &book.encode(), cas) == Write::Done {
        return dropped;
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::memory::MemoryStore;

    fn pass(tier: &str, iat: u64, seconds: u64) -> Entitlement {
        Entitlement { tier: tier.to_owned(), iat, exp: iat + seconds, network: "solana:devnet".to_owned() }
    }

    #[test]
    fn an_evm_payer_signed_in_is_named_as_its_pass_names_it() {
        // Kept under the lower-case address, forwarded in its EIP-55 form, as a pass carries it.
        let lower = "0x3325a78425f17a7e487eb5666b2bfd93abb06c70";
        assert_eq!(as_a_pass_names_it(lower), "0x3325a78425F17a7E487Eb5666b2bFd93aBb06c70");
        assert_eq!(
            as_a_pass_names_it(&lower.to_ascii_uppercase().replace("0X", "0x")),
            "0x3325a78425F17a7E487Eb5666b2bFd93aBb06c70"
        );
        let solana = "GyGKxMyg1p9SsHfm15MkNUu1u9TN2JtTspcdmrtGUdse";
        assert_eq!(as_a_pass_names_it(solana), solana);
        assert_eq!(as_a_pass_names_it("0xnot-an-address"), "0xnot-an-address");
    }

    #[test]
    fn the_latest_expiring_pass_wins() {
        let mut book = Book::default();
        assert_eq!(book.grant("A", pass("1h", 100, 3_600)), 1);
        assert_eq!(book.grant("A", pass("5m", 200, 300)), 0);
        assert_eq!(book.get("A"), Some(&pass("1h", 100, 3_600)), "a shorter pass later does not shorten it");
        assert_eq!(book.grant("A", pass("24h", 300, 86_400)), 0);
        assert_eq!(book.get("A"), Some(&pass("24h", 300, 86_400)));
        assert_eq!(book.get("B"), None);
    }

    #[test]
    fn kept_until_exp_and_leeway_then_swept() {
        let mut book = Book::default();
        book.grant("A", pass("5m", 1_000, 300));
        book.grant("B", pass("1h", 1_000, 3_600));
        assert!(book.get("A").unwrap().honoured(1_300, 0));
        assert!(!book.get("A").unwrap().honoured(1_301, 0));
        assert!(book.get("A").unwrap().honoured(1_305, 5));
        assert_eq!(book.sweep(1_300 + KEPT_AFTER_EXP_SECONDS), 0, "kept while a leeway could honour it");
        assert_eq!(book.sweep(1_301 + KEPT_AFTER_EXP_SECONDS), 1);
        assert_eq!(book.get("A"), None);
        assert!(book.get("B").is_some());
    }

    #[test]
    fn a_full_bucket_drops_the_soonest_expiring() {
        let mut book = Book::default();
        for i in 0..PER_BUCKET as u64 {
            assert_eq!(book.grant(&format!("payer-{i:04}"), pass("1h", 1_000 + i, 3_600)), 1);
        }
        assert_eq!(book.grant("newcomer", pass("1h", 5_000, 3_600)), 0, "one in, one out");
        assert_eq!(book.len(), PER_BUCKET);
        assert_eq!(book.get("payer-0000"), None);
        assert!(book.get("payer-0001").is_some() && book.get("newcomer").is_some());
    }

    #[test]
    fn unreadable_or_unsorted_bytes_are_an_empty_book() {
        assert!(Book::decode(Some(b"not json")).is_empty());
        let unsorted =
            br#"[["B",{"tier":"1h","iat":1,"exp":2,"network":"n"}],["A",{"tier":"1h","iat":1,"exp":2,"network":"n"}]]"#;
        assert!(Book::decode(Some(unsorted)).is_empty());
        let mut book = Book::default();
        book.grant("A", pass("1h", 1, 1));
        book.grant("B", pass("24h", 5, 86_400));
        assert_eq!(Book::decode(Some(&book.encode())), book);
        assert_eq!(book.grant("C\tD", pass("1h", 1, 1)), 0, "a tab would break the encoding");
        assert_eq!(book.get("C\tD"), None);
    }

    #[test]
    fn granted_through_the_shared_store_despite_lost_races() {
        let store = MemoryStore::default();
        create_buckets(&store);
        assert_eq!(store.writes.get(), BUCKETS);
        store.conflicts.set(3);
        assert_eq!(grant(&store, "A", &pass("1h", 100, 3_600), 100), Some(1));
        assert_eq!(grant(&store, "A", &pass("1h", 200, 3_600), 200), Some(0));
        assert_eq!(lookup(&store, "A"), Ok(Some(pass("1h", 200, 3_600))));
        assert_eq!(lookup(&store, "B"), Ok(None));
        assert_eq!(sweep(&store, locate("A"), 3_800 + KEPT_AFTER_EXP_SECONDS), 0);
        assert_eq!(sweep(&store, locate("A"), 3_801 + KEPT_AFTER_EXP_SECONDS), 1);
        assert_eq!(lookup(&store, "A"), Ok(None));
    }

    #[test]
    fn a_broken_or_busy_store_is_said_so() {
        let store = MemoryStore::default();
        create_buckets(&store);
        store.conflicts.set(MAX_ATTEMPTS);
        assert_eq!(grant(&store, "A", &pass("1h", 100, 3_600), 100), None);
        store.conflicts.set(0);
        store.broken.set(true);
        assert_eq!(lookup(&store, "A"), Err(Unreadable));
        assert_eq!(grant(&store, "A", &pass("1h", 100, 3_600), 100), None);
    }
}

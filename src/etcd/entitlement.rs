//! Entitlements in the shared ledger (docs/fleet.md, "Entitlements"): payer → {tier, iat, exp,
//! network}, kept from the moment a settlement is known until `exp` (plus the leeway a verified
//! `SIGN-IN-WITH-X` is honoured for), visible to every replica. The latest-expiring pass wins:
//! a write replaces the payer's entitlement only with one expiring later, by a transaction
//! comparing the revision it holds (known to this worker, or none: a failed compare reads it), so concurrent sales on several replicas end
//! with the latest `exp`. The record's lease ends when the entitlement does. A record is the
//! local ledger's own line for the payer (`entitlements::Book`: `payer\ttier\tiat\texp\tnetwork`),
//! so both ledgers read entitlements with one decoder.

use super::keys;
use crate::entitlements::Book;

use super::record::{Decision, Op, Record, Write};
use super::wire::Kv;
use super::{Settings, Step, Unavailable};

/// The entitlement the local ledger keeps too (docs/behaviour.md §16.3), one type for both ledgers.
pub use crate::entitlements::Entitlement;

impl Entitlement {
    /// `tier` and `network` are 1 to 64 characters of `A-Z a-z 0-9 : _ . -` (they become claim
    /// headers), and `iat <= exp`.
    pub fn is_well_formed(&self) -> bool {
        let word = |s: &str| {
            (1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b":_.-".contains(&b))
        };
        word(&self.tier) && word(&self.network) && self.iat <= self.exp
    }

    /// `payer`'s entitlement in a record, if it is one this filter wrote for them.
    fn from_record(kv: &Kv, payer: &str) -> Option<Entitlement> {
        Book::decode(Some(&kv.value)).get(payer).filter(|e| e.is_well_formed()).cloned()
    }

    fn record(&self, payer: &str) -> Vec<u8> {
        let mut book = Book::default();
        book.grant(payer, self.clone());
        book.encode()
    }
}

/// How a [`store`] went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// This entitlement is the payer's now.
    Stored,
    /// The payer holds one expiring no earlier: it stays.
    Kept,
    /// It is over (`exp + leeway` is past): nothing to keep.
    Expired,
}

/// An entitlement being stored.
pub struct Storing {
    payer: String,
    entitlement: Entitlement,
    leeway_seconds: u64,
}

impl Storing {
    /// What storing this entitlement over `current` means: a write (giving `Stored`), or nothing
    /// to write (`Kept`, `Expired`).
    pub fn plan(&self, current: Option<&Kv>, now: u64) -> Result<Write<Stored>, Stored> {
        let end = self.entitlement.exp.saturating_add(self.leeway_seconds);
        if end <= now {
            return Err(Stored::Expired);
        }
        // An unreadable record is written over.
        let held = current.and_then(|kv| Entitlement::from_record(kv, &self.payer));
        if held.as_ref().is_some_and(|held| held.exp >= self.entitlement.exp) {
            return Err(Stored::Kept);
        }
        let current_end = held.map(|held| held.exp.saturating_add(self.leeway_seconds));
        let value = self.entitlement.record(&self.payer);
        Ok(Write::over(current, current_end, value, end, Stored::Stored))
    }
}

impl Record for Storing {
    type Output = Stored;

    fn decide(&mut self, current: Option<&Kv>, now: u64) -> Decision<Stored> {
        match self.plan(current, now) {
            Ok(write) => Decision::Write(write),
            Err(nothing) => Decision::Finish(Ok(nothing)),
        }
    }
}

/// Stores `entitlement` for `payer` unless they hold one expiring no earlier. `None` when the
/// entitlement is not well formed, or `payer` cannot be a key (`keys::entitlement`).
pub fn store(
    settings: &Settings,
    payer: &str,
    entitlement: Entitlement,
    leeway_seconds: u64,
    now_ms: u64,
) -> Option<(Op<Storing>, Step<Stored>)> {
    let (key, storing) = storing(settings, payer, entitlement, leeway_seconds)?;
    // From what this worker knows of the payer's record, or as if they held none (a first
    // purchase): a wrong start is set right by the transaction, which then reads the record.
    Some(Op::known_first(settings, key, storing, now_ms, true))
}

/// The key of `payer`'s entitlement and the store of `entitlement` there; `None` as for [`store`].
pub fn storing(
    settings: &Settings,
    payer: &str,
    entitlement: Entitlement,
    leeway_seconds: u64,
) -> Option<(keys::Key, Storing)> {
    let key = keys::entitlement(settings, payer).filter(|_| entitlement.is_well_formed())?;
    Some((key, Storing { payer: payer.to_owned(), entitlement, leeway_seconds }))
}

/// A payer's entitlement being read.
pub struct Reading {
    payer: String,
}

impl Record for Reading {
    type Output = Option<Entitlement>;

    fn decide(&mut self, current: Option<&Kv>, _now: u64) -> Decision<Option<Entitlement>> {
        Decision::Finish(match current {
            None => Ok(None),
            Some(kv) => Entitlement::from_record(kv, &self.payer).map(Some).ok_or(Unavailable::BadRecord),
        })
    }
}

/// Reads `payer`'s entitlement: `None` when they hold none (whether it is still good at `now` is
/// the caller's to judge, with its leeway). `None` when `payer` cannot be a key.
pub fn read(settings: &Settings, payer: &str, now_ms: u64) -> Option<(Op<Reading>, Step<Option<Entitlement>>)> {
    let key = keys::entitlement(settings, payer)?;
    Some(Op::read_first(settings, key, Reading { payer: payer.to_owned() }, now_ms))
}

#[cfg(test)]
mod tests;

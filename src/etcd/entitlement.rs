//! Entitlements in the shared ledger (docs/fleet.md, "Entitlements"): payer → {tier, iat, exp,
//! network}, kept from the moment a settlement is known until `exp` (plus the leeway a verified
//! `SIGN-IN-WITH-X` is honoured for), visible to every replica. The latest-expiring pass wins:
//! a write reads the payer's entitlement and replaces it only with one expiring later, by a
//! transaction comparing the revision it read, so concurrent sales on several replicas end
//! with the latest `exp`. The record's lease ends when the entitlement does.

use super::keys::Key;
use super::record::{self, Decision, Op, Record, Write};
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

    fn from_record(kv: &Kv) -> Option<Entitlement> {
        record::decode::<Entitlement>(&kv.value).filter(Entitlement::is_well_formed)
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
    entitlement: Entitlement,
    leeway_seconds: u64,
}

impl Record for Storing {
    type Output = Stored;

    fn decide(&mut self, current: Option<&Kv>, now: u64) -> Decision<Stored> {
        let end = self.entitlement.exp.saturating_add(self.leeway_seconds);
        if end <= now {
            return Decision::Finish(Ok(Stored::Expired));
        }
        // An unreadable record is written over.
        let held = current.and_then(Entitlement::from_record);
        if held.as_ref().is_some_and(|held| held.exp >= self.entitlement.exp) {
            return Decision::Finish(Ok(Stored::Kept));
        }
        let current_end = held.map(|held| held.exp.saturating_add(self.leeway_seconds));
        Decision::Write(Write::over(current, current_end, record::encode(&self.entitlement), end, Stored::Stored))
    }
}

/// Stores `entitlement` for the payer at `key` (`keys::entitlement`) unless they hold one
/// expiring no earlier. `None` when the entitlement is not well formed.
pub fn store(
    settings: &Settings,
    key: Key,
    entitlement: Entitlement,
    leeway_seconds: u64,
    now_ms: u64,
) -> Option<(Op<Storing>, Step<Stored>)> {
    entitlement.is_well_formed().then(|| Op::read_first(settings, key, Storing { entitlement, leeway_seconds }, now_ms))
}

/// A payer's entitlement being read.
pub struct Reading;

impl Record for Reading {
    type Output = Option<Entitlement>;

    fn decide(&mut self, current: Option<&Kv>, _now: u64) -> Decision<Option<Entitlement>> {
        Decision::Finish(match current {
            None => Ok(None),
            Some(kv) => Entitlement::from_record(kv).map(Some).ok_or(Unavailable::BadRecord),
        })
    }
}

/// Reads the entitlement of the payer at `key`: `None` when they hold none (whether it is still
/// good at `now` is the caller's to judge, with its leeway).
pub fn read(settings: &Settings, key: Key, now_ms: u64) -> (Op<Reading>, Step<Option<Entitlement>>) {
    Op::read_first(settings, key, Reading, now_ms)
}

#[cfg(test)]
mod tests;

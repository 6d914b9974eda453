//! Payment ids in the shared ledger (docs/behaviour.md §17.5, docs/fleet.md): a payment that carries a
//! payment-identifier id is also keyed by it, id → {the purchase it belongs to, the request it
//! paid for}. The first payment to carry an id owns it: a create comparing `create_revision ==
//! 0`, under a lease as long as purchase records live. Later payments with the same id learn
//! whose it is and for which request.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::keys::Key;
use super::record::{self, Decision, Op, Record, Write};
use super::wire::Kv;
use super::{Settings, Step, Unavailable};

/// What an id is bound to: the purchase (`PurchaseKey::key`) and the request
/// ([`request_fingerprint`]), both 64 lowercase hex characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Binding {
    pub purchase: String,
    pub request: String,
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl Binding {
    pub fn is_well_formed(&self) -> bool {
        is_hex64(&self.purchase) && is_hex64(&self.request)
    }
}

/// The request a payment paid for, as §17.5 compares them (method, path, query): SHA-256 over
/// the three, each preceded by its length, in hex.
pub fn request_fingerprint(method: &[u8], path: &[u8], query: &[u8]) -> String {
    let mut hash = Sha256::new();
    for part in [method, path, query] {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part);
    }
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Whose an id is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdClaim {
    /// This payment owns the id now.
    Bound,
    /// The id is this same payment's, for this same request (the payment sent again).
    SamePayment,
    /// Another payment owns the id, for this same request: answer with that purchase's outcome.
    OtherPayment { purchase: String },
    /// The id was used for another request: 409 `payment_identifier_conflict`.
    OtherRequest,
}

/// An id being bound.
pub struct Bind {
    binding: Binding,
    end: u64,
}

impl Record for Bind {
    type Output = IdClaim;

    fn decide(&mut self, current: Option<&Kv>, _now: u64) -> Decision<IdClaim> {
        let Some(kv) = current else {
            return Decision::Write(Write::over(None, None, record::encode(&self.binding), self.end, IdClaim::Bound));
        };
        let Some(held) = record::decode::<Binding>(&kv.value).filter(Binding::is_well_formed) else {
            return Decision::Finish(Err(Unavailable::BadRecord));
        };
        Decision::Finish(Ok(if held.request != self.binding.request {
            IdClaim::OtherRequest
        } else if held.purchase == self.binding.purchase {
            IdClaim::SamePayment
        } else {
            IdClaim::OtherPayment { purchase: held.purchase }
        }))
    }
}

/// Binds the id at `key` (`keys::payment_id`) to `binding` unless it is bound already; the
/// binding lives until `end` (Unix seconds: as long as the purchase records may). `None` when
/// the binding is not well formed.
pub fn bind(
    settings: &Settings,
    key: Key,
    binding: Binding,
    end: u64,
    now_ms: u64,
) -> Option<(Op<Bind>, Step<IdClaim>)> {
    binding.is_well_formed().then(|| Op::create_first(settings, key, Bind { binding, end }, now_ms))
}

#[cfg(test)]
mod tests;

//! A settlement and its payer's entitlement in one transaction (docs/fleet.md, "Performance"):
//! the purchase record takes its new state as [`put`](super::put) writes it, and the payer's
//! entitlement is stored as [`entitlement::store`](super::entitlement::store) decides it (the
//! latest-expiring wins), both or neither, by one transaction that compares both keys. That is
//! one commit fewer per purchase than a put and then a store, for the same two records; the
//! local ledger writes them one after the other (`ledger::LedgerOp::PutEntitled`).
//!
//! Both keys start from what this worker remembers of them (its pending pass, the payer's record
//! as it last wrote or read it), or as if absent. A wrong start loses its compare, the same
//! transaction reads both keys, and both are decided again on what etcd holds (a loss on a start
//! from memory is not counted; other losses are, at most `MAX_ATTEMPTS`). An entitlement kept
//! (the payer holds one expiring no earlier) writes nothing but is still compared, so it is never
//! decided on memory alone; one already over is left out. Leases are every record's (`record`,
//! `memory`): shared by span, granted when the worker holds none, asked for again once when etcd
//! lost one (the whole transaction is refused then: nothing was written).

use crate::replay::{Entry, Policy};

use super::context::{self, Context};
use super::entitlement::{Stored, Storing};
use super::keys::Key;
use super::put::Putting;
use super::record::Write;
use super::wire::{self, Expect, Kv, Lease, Part, TxnAll};
use super::{Call, Finished, Reply, Settings, Step, Unavailable};

/// One key's write in the transaction.
struct Put {
    plan: context::Plan,
    /// Known so far: the key's own (`Keep`: its life does not change), or one granted for it.
    lease: Option<Lease>,
}

impl Put {
    fn of<T>(write: Write<T>) -> Put {
        Put { lease: write.plan.keep_lease.then_some(Lease::Keep), plan: write.plan }
    }
}

/// The entitlement's share of the transaction.
enum Share {
    /// Written: the payer's entitlement now (`Stored`).
    Put(Put),
    /// The payer holds one expiring no earlier, at this revision (`Kept`): compared, not written.
    Compare(i64),
    /// Over already (`Expired`): left out.
    Nothing,
}

/// Both writes of the transaction, and what it gives once committed.
struct Writes {
    record: Put,
    share: Share,
    result: Stored,
}

/// Which put a lease is being granted for.
#[derive(Debug, Clone, Copy)]
enum Which {
    Record,
    Entitlement,
}

enum State {
    /// A lease for `Which`, ending at `.2`.
    Granting(Writes, Which, u64),
    /// The transaction, with the leases of the record and of the entitlement (if written).
    Committing(Writes, Lease, Option<Lease>),
    Done,
}

/// A settlement and an entitlement being written together.
pub struct Settling {
    record_key: Key,
    payer_key: Key,
    putting: Putting,
    storing: Storing,
    /// The clock, the deadline, the lost compares and the memory (`context`).
    context: Context,
    state: State,
}

/// Writes `entry` at `record_key` (`keys::purchase`) and `storing` at `payer_key`
/// (`entitlement::storing`), in one transaction, at `now_ms`.
pub fn settle(
    settings: &Settings,
    record_key: Key,
    entry: Entry,
    policy: Policy,
    (payer_key, storing): (Key, Storing),
    now_ms: u64,
) -> (Settling, Step<Stored>) {
    let mut context = Context::new(settings, now_ms);
    context.assumed = true;
    let record = context.memory.known(record_key.as_bytes());
    let payer = context.memory.known(payer_key.as_bytes());
    let mut settling =
        Settling { record_key, payer_key, putting: Putting::new(entry, policy), storing, context, state: State::Done };
    let step = settling.decide(record.as_ref(), payer.as_ref());
    (settling, step)
}

impl Settling {
    /// The answer to the last [`Step::Send`].
    pub fn on_reply(&mut self, reply: Reply<'_>, now_ms: u64) -> Step<Stored> {
        self.context.answered(now_ms);
        match std::mem::replace(&mut self.state, State::Done) {
            State::Granting(mut plan, which, ends) => match wire::read_lease_grant(reply) {
                Ok(id) => {
                    self.context.memory.granted(ends, id, self.context.now);
                    match (which, &mut plan.share) {
                        (Which::Record, _) => plan.record.lease = Some(Lease::Attach(id)),
                        (Which::Entitlement, Share::Put(put)) => put.lease = Some(Lease::Attach(id)),
                        // Only a written entitlement asks for a lease.
                        (Which::Entitlement, _) => {}
                    }
                    self.proceed(plan)
                }
                Err(problem) => self.finish(Err(problem)),
            },
            State::Committing(mut plan, record, share) if self.context.regrant(wire::lease_gone(reply)) => {
                // A lease ran out or etcd lost it: the whole transaction was refused. Every lease
                // it named is forgotten and asked for again, once.
                for lease in [Some(record), share].into_iter().flatten() {
                    if let Lease::Attach(id) = lease {
                        self.context.memory.gone(id);
                    }
                }
                let keep = |lease: Option<Lease>| lease.filter(|lease| *lease == Lease::Keep);
                plan.record.lease = keep(plan.record.lease);
                if let Share::Put(put) = &mut plan.share {
                    put.lease = keep(put.lease);
                }
                self.proceed(plan)
            }
            State::Committing(plan, record, share) => {
                let compared = !matches!(plan.share, Share::Nothing);
                let keys = [self.record_key.as_bytes(), self.payer_key.as_bytes()];
                let keys = keys.get(..if compared { 2 } else { 1 }).unwrap_or_default();
                let puts = if matches!(plan.share, Share::Put(_)) { 2 } else { 1 };
                match wire::read_txn_all(reply, keys, puts) {
                    Ok(TxnAll::Committed { revision }) => {
                        let Writes { record: put, share: payer, result } = plan;
                        self.context.memory.learn(self.record_key.as_bytes(), put.plan.written(revision, record));
                        if let (Share::Put(put), Some(lease)) = (payer, share) {
                            self.context.memory.learn(self.payer_key.as_bytes(), put.plan.written(revision, lease));
                        }
                        self.finish(Ok(result))
                    }
                    Ok(TxnAll::Lost(now)) => {
                        let mut now = now.into_iter();
                        let record = now.next().flatten();
                        let payer = now.next().flatten();
                        self.context.memory.learn(self.record_key.as_bytes(), record.clone());
                        if compared {
                            self.context.memory.learn(self.payer_key.as_bytes(), payer.clone());
                        }
                        self.lost(record, payer)
                    }
                    Err(problem) => {
                        // It may have committed: what this worker knew of both keys is void.
                        self.context.memory.learn(self.record_key.as_bytes(), None);
                        self.context.memory.learn(self.payer_key.as_bytes(), None);
                        self.finish(Err(problem))
                    }
                }
            }
            // An answer nobody asked for (a host bug).
            State::Done => self.finish(Err(Unavailable::Garbled)),
        }
    }

    /// Another writer changed a key (or the start was wrong): decide again on what etcd holds,
    /// a bounded number of times.
    fn lost(&mut self, record: Option<Kv>, payer: Option<Kv>) -> Step<Stored> {
        match self.context.lost() {
            Ok(()) => self.decide(record.as_ref(), payer.as_ref()),
            Err(problem) => self.finish(Err(problem)),
        }
    }

    /// Both writes over the keys as they are (or are taken to be).
    fn decide(&mut self, record: Option<&Kv>, payer: Option<&Kv>) -> Step<Stored> {
        let put = Put::of(self.putting.write(record, self.context.now));
        let (share, result) = match (self.storing.plan(payer, self.context.now), payer) {
            (Ok(write), _) => (Share::Put(Put::of(write)), Stored::Stored),
            (Err(Stored::Kept), Some(held)) => (Share::Compare(held.mod_revision), Stored::Kept),
            (Err(other), _) => (Share::Nothing, other),
        };
        let entitlement = match &share {
            Share::Put(entitlement) => Some(&entitlement.plan),
            _ => None,
        };
        if let Err(problem) = context::Plan::writable([Some(&put.plan), entitlement].into_iter().flatten()) {
            return self.finish(Err(problem));
        }
        self.proceed(Writes { record: put, share, result })
    }

    /// Commits once every put has its lease: its key's own, one this worker holds for its span,
    /// or a new one (granted one at a time).
    fn proceed(&mut self, plan: Writes) -> Step<Stored> {
        let held = |put: &Put| {
            put.lease.or_else(|| self.context.memory.lease_for(put.plan.end, self.context.now).map(Lease::Attach))
        };
        let Some(record) = held(&plan.record) else {
            let end = plan.record.plan.end;
            return self.grant(plan, Which::Record, end);
        };
        let share = match &plan.share {
            Share::Put(put) => match held(put) {
                Some(lease) => Some(lease),
                None => {
                    let end = put.plan.end;
                    return self.grant(plan, Which::Entitlement, end);
                }
            },
            _ => None,
        };
        self.commit(plan, record, share)
    }

    fn grant(&mut self, plan: Writes, which: Which, end: u64) -> Step<Stored> {
        let granting = self.context.grant(end).map(|(call, ends)| (call, State::Granting(plan, which, ends)));
        self.send(granting)
    }

    fn commit(&mut self, plan: Writes, record: Lease, share: Option<Lease>) -> Step<Stored> {
        let mut parts = vec![Part {
            key: self.record_key.as_bytes(),
            expect: plan.record.plan.expect,
            put: Some((&plan.record.plan.value, record)),
        }];
        match (&plan.share, share) {
            (Share::Put(put), Some(lease)) => {
                parts.push(Part {
                    key: self.payer_key.as_bytes(),
                    expect: put.plan.expect,
                    put: Some((&put.plan.value, lease)),
                });
            }
            (Share::Compare(revision), _) => {
                parts.push(Part { key: self.payer_key.as_bytes(), expect: Expect::ModRevision(*revision), put: None })
            }
            _ => {}
        }
        let body = wire::all_if(&parts);
        self.send(self.context.call(wire::TXN, body).map(|call| (call, State::Committing(plan, record, share))))
    }

    /// The call, then waiting in its state; or why it could not leave (`Deadline`).
    fn send(&mut self, call: Result<(Call, State), Unavailable>) -> Step<Stored> {
        match call {
            Ok((call, state)) => {
                self.state = state;
                Step::Send(call)
            }
            Err(problem) => self.finish(Err(problem)),
        }
    }

    fn finish(&mut self, result: Result<Stored, Unavailable>) -> Step<Stored> {
        self.state = State::Done;
        Step::Finish(Finished { result, cleanup: Vec::new() })
    }
}

#[cfg(test)]
mod tests;

//! The engine every record operation runs on: read the key (or start from what this worker
//! knows of it, or guess it is absent), let the operation [`decide`](Record::decide) what to
//! write, lease the new value for its life, and write it with a transaction that compares the
//! key with what was read. A lost compare hands back the key as it is now and the operation
//! decides again, at most `MAX_ATTEMPTS` times (a start from a guess or from memory that turns
//! out wrong is not counted: it is the read the operation did not make).
//!
//! Leases (`memory`): a record is attached to a lease that ends when its life ends, rounded up
//! to a short span, shared with the worker's other records ending in that span and granted only
//! when the worker holds none. A write that does not change the record's life keeps the key's
//! lease (`ignore_lease`). No lease is ever revoked: one may hold other records. A write refused
//! because its lease is gone asks for a new one and writes again, once.

use crate::replay::{Bucket, Entry, Policy};

use super::context::{Context, Plan};
use super::keys::Key;
use super::wire::{self, Expect, Kv, Lease, Txn};
use super::{life, Call, Finished, Reply, Settings, Step, Unavailable};

/// One kind of record: what to do with the key as etcd holds it.
pub trait Record {
    type Output;
    /// `current` is the key now (`None`: absent); `now` is the operation's clock in seconds.
    fn decide(&mut self, current: Option<&Kv>, now: u64) -> Decision<Self::Output>;
}

pub enum Decision<T> {
    /// Nothing (more) to write: the operation's result.
    Finish(Result<T, Unavailable>),
    Write(Write<T>),
    /// Delete the key if it is still as read (`current`), then give `T`.
    Remove(Remove<T>),
}

/// A conditional delete of the key as it was read.
pub struct Remove<T> {
    pub mod_revision: i64,
    pub then: T,
}

impl<T> Remove<T> {
    pub fn of(current: &Kv, then: T) -> Remove<T> {
        Remove { mod_revision: current.mod_revision, then }
    }
}

/// A conditional write, and the result it gives once committed.
pub struct Write<T> {
    pub plan: Plan,
    pub then: T,
}

impl<T> Write<T> {
    /// Writes `value` over `current` (or creates it when absent). `current_end` is when the
    /// current record's life ends, when it can be read.
    pub fn over(current: Option<&Kv>, current_end: Option<u64>, value: Vec<u8>, end: u64, then: T) -> Write<T> {
        let plan = match current {
            None => Plan { expect: Expect::Absent, value, end, keep_lease: false, replaces: 0, created: 0 },
            Some(kv) => Plan {
                expect: Expect::ModRevision(kv.mod_revision),
                value,
                end,
                keep_lease: kv.lease != 0 && current_end == Some(end),
                replaces: kv.lease,
                created: kv.create_revision,
            },
        };
        Write { plan, then }
    }
}

enum State {
    Reading,
    /// A lease for the write, ending at `.1`.
    Granting(Plan, u64),
    /// The write and the lease it puts the key under.
    Committing(Plan, Lease),
    /// A conditional delete.
    Removing,
    Done,
}

/// What the engine did with an answer.
enum Event {
    Send(Call),
    /// The key as it is now (or as assumed): the record decides.
    Decide(Option<Kv>),
    /// The write (or delete) committed.
    Committed,
    Failed(Unavailable),
}

/// The calls, compares and leases of one record operation, whatever the record: not generic,
/// so it is compiled once however many kinds of record there are.
struct Engine {
    key: Key,
    /// The clock, the deadline, the lost compares and the memory (`context`).
    context: Context,
    /// The first write of a purchase (a claim, a payment id) is never sent before etcd answered
    /// a call of this operation through its quorum: a lease grant (a raft entry, committed by a
    /// quorum) or a linearizable read of the key (a ReadIndex, which the leader answers only
    /// once a quorum has confirmed it still leads). When etcd has lost its quorum that call
    /// fails and the write is never proposed. A write proposed to a leader that has lost its
    /// quorum times out (503 `ledger_unavailable`, nothing charged) yet may commit once the
    /// quorum is back, and a claim committed so would answer the same payment sent again
    /// "in progress" (409) until it turns stale (docs/fleet.md). A worker that holds a lease for
    /// the write's span reads the key (cheaper: no raft entry, no fsync) and decides on what is
    /// there; one that holds none grants one, as it must anyway.
    prove_quorum: bool,
    state: State,
}

/// One record operation between calls.
pub struct Op<R: Record> {
    record: R,
    engine: Engine,
    /// The result of the write in flight, given once it commits.
    then: Option<R::Output>,
}

impl Engine {
    fn learn(&self, kv: Option<Kv>) {
        self.context.memory.learn(self.key.as_bytes(), kv);
    }

    fn on_reply(&mut self, reply: Reply<'_>) -> Event {
        match std::mem::replace(&mut self.state, State::Done) {
            State::Reading => match wire::read_range(reply, self.key.as_bytes()) {
                Ok(current) => {
                    self.prove_quorum = false;
                    self.learn(current.clone());
                    Event::Decide(current)
                }
                Err(problem) => Event::Failed(problem),
            },
            State::Granting(plan, ends) => match wire::read_lease_grant(reply) {
                Ok(id) => {
                    self.prove_quorum = false;
                    self.context.memory.granted(ends, id, self.context.now);
                    self.commit(plan, Lease::Attach(id))
                }
                Err(problem) => Event::Failed(problem),
            },
            State::Committing(plan, Lease::Attach(id)) if self.context.regrant(wire::lease_gone(reply)) => {
                // The shared lease ran out or etcd lost it (restarted): nothing was written.
                self.context.memory.gone(id);
                self.grant(plan)
            }
            State::Committing(plan, lease) => match wire::read_txn(reply, self.key.as_bytes()) {
                Ok(Txn::Committed { revision }) => {
                    self.learn(plan.written(revision, lease));
                    Event::Committed
                }
                Ok(Txn::Lost(current)) => self.lost(current),
                Err(problem) => {
                    // The write may have committed: what this worker knew of the key is void.
                    self.learn(None);
                    Event::Failed(problem)
                }
            },
            State::Removing => match wire::read_txn(reply, self.key.as_bytes()) {
                Ok(Txn::Committed { .. }) => {
                    self.learn(None);
                    Event::Committed
                }
                Ok(Txn::Lost(current)) => self.lost(current),
                Err(problem) => {
                    self.learn(None);
                    Event::Failed(problem)
                }
            },
            // An answer nobody asked for (a host bug).
            State::Done => Event::Failed(Unavailable::Garbled),
        }
    }

    /// Another writer won the compare (or the guess was wrong): decide again on what won, a
    /// bounded number of times.
    fn lost(&mut self, current: Option<Kv>) -> Event {
        self.learn(current.clone());
        match self.context.lost() {
            Ok(()) => Event::Decide(current),
            Err(problem) => Event::Failed(problem),
        }
    }

    /// Writes `plan`: under the key's own lease, a lease this worker holds for the same span,
    /// or a new one.
    fn write(&mut self, plan: Plan) -> Event {
        if let Err(problem) = Plan::writable([&plan]) {
            return Event::Failed(problem);
        }
        if self.prove_quorum {
            return match self.context.memory.lease_for(plan.end, self.context.now) {
                // Read the key first, and decide again on what etcd holds: the decision in hand
                // was made on a guess.
                Some(_) => {
                    self.context.assumed = false;
                    self.read()
                }
                None => self.grant(plan),
            };
        }
        if plan.keep_lease {
            return self.commit(plan, Lease::Keep);
        }
        match self.context.memory.lease_for(plan.end, self.context.now) {
            Some(id) => self.commit(plan, Lease::Attach(id)),
            None => self.grant(plan),
        }
    }

    fn grant(&mut self, plan: Plan) -> Event {
        let granting = self.context.grant(plan.end).map(|(call, ends)| (call, State::Granting(plan, ends)));
        self.send(granting)
    }

    fn commit(&mut self, plan: Plan, lease: Lease) -> Event {
        let body = wire::put_if(self.key.as_bytes(), plan.expect, &plan.value, lease);
        self.send(self.context.call(wire::TXN, body).map(|call| (call, State::Committing(plan, lease))))
    }

    fn remove(&mut self, mod_revision: i64) -> Event {
        let body = wire::delete_if(self.key.as_bytes(), mod_revision);
        self.send(self.context.call(wire::TXN, body).map(|call| (call, State::Removing)))
    }

    fn read(&mut self) -> Event {
        let body = wire::range(self.key.as_bytes());
        self.send(self.context.call(wire::RANGE, body).map(|call| (call, State::Reading)))
    }

    /// The call, then waiting in its state; or why it could not leave (`Deadline`).
    fn send(&mut self, call: Result<(Call, State), Unavailable>) -> Event {
        match call {
            Ok((call, state)) => {
                self.state = state;
                Event::Send(call)
            }
            Err(problem) => Event::Failed(problem),
        }
    }
}

impl<R: Record> Op<R> {
    fn new(settings: &Settings, key: Key, record: R, now_ms: u64) -> Op<R> {
        let engine = Engine { key, context: Context::new(settings, now_ms), prove_quorum: false, state: State::Done };
        Op { record, engine, then: None }
    }

    /// Starts by reading the key.
    pub fn read_first(settings: &Settings, key: Key, record: R, now_ms: u64) -> (Op<R>, Step<R::Output>) {
        let mut op = Op::new(settings, key, record, now_ms);
        let event = op.engine.read();
        let step = op.step(event);
        (op, step)
    }

    /// The first write of a purchase (`prove_quorum`): starts as if the key were absent, and
    /// grants the write's lease first, then creates the key (a create that loses its compare
    /// reads the key in the same transaction); when this worker holds a lease for the span, reads
    /// the key first instead and writes under that lease. Two round trips either way, the first
    /// one proving etcd's quorum before anything is proposed.
    pub fn create_first(settings: &Settings, key: Key, record: R, now_ms: u64) -> (Op<R>, Step<R::Output>) {
        let mut op = Op::new(settings, key, record, now_ms);
        op.engine.context.assumed = true;
        op.engine.prove_quorum = true;
        let step = op.step(Event::Decide(None));
        (op, step)
    }

    /// Starts from the key as this worker last wrote or read it (`memory`), when it knows it:
    /// a transaction comparing that revision, which reads the key if it changed since. Else
    /// reads the key first (`or_create`: guesses it absent).
    pub fn known_first(
        settings: &Settings,
        key: Key,
        record: R,
        now_ms: u64,
        or_create: bool,
    ) -> (Op<R>, Step<R::Output>) {
        let mut op = Op::new(settings, key, record, now_ms);
        let event = match settings.memory().known(op.engine.key.as_bytes()) {
            Some(kv) => {
                op.engine.context.assumed = true;
                Event::Decide(Some(kv))
            }
            None if or_create => {
                op.engine.context.assumed = true;
                Event::Decide(None)
            }
            None => op.engine.read(),
        };
        let step = op.step(event);
        (op, step)
    }

    pub fn record(&self) -> &R {
        &self.record
    }

    /// The answer to the last [`Step::Send`].
    pub fn on_reply(&mut self, reply: Reply<'_>, now_ms: u64) -> Step<R::Output> {
        self.engine.context.answered(now_ms);
        let event = self.engine.on_reply(reply);
        self.step(event)
    }

    /// Runs the engine's events until a call leaves or the operation ends (each decision
    /// either finishes or makes a call, so this ends).
    fn step(&mut self, mut event: Event) -> Step<R::Output> {
        loop {
            event = match event {
                Event::Send(call) => return Step::Send(call),
                Event::Decide(current) => match self.record.decide(current.as_ref(), self.engine.context.now) {
                    // Nothing to write on a guess or on memory: read what etcd holds and decide
                    // on that (a hint never ends an operation).
                    Decision::Finish(_) if std::mem::replace(&mut self.engine.context.assumed, false) => {
                        self.engine.read()
                    }
                    Decision::Finish(result) => return self.finish(result),
                    Decision::Write(write) => {
                        self.then = Some(write.then);
                        self.engine.write(write.plan)
                    }
                    Decision::Remove(remove) => {
                        self.then = Some(remove.then);
                        self.engine.remove(remove.mod_revision)
                    }
                },
                Event::Committed => {
                    let result = self.then.take().ok_or(Unavailable::Garbled);
                    return self.finish(result);
                }
                Event::Failed(problem) => return self.finish(Err(problem)),
            };
        }
    }

    fn finish(&mut self, result: Result<R::Output, Unavailable>) -> Step<R::Output> {
        self.then = None;
        self.engine.state = State::Done;
        Step::Finish(Finished { result, cleanup: Vec::new() })
    }
}

/// The slot of the one-record bucket a purchase or payment-id record is.
pub const SLOT: &str = "r";

/// The record at `current` as a one-record bucket (at [`SLOT`]), and the entry it holds; `Err`
/// when it is not a record this filter wrote: never guess about money.
pub fn held_bucket(current: Option<&Kv>) -> Result<(Bucket, Option<Entry>), Unavailable> {
    let held = match current.map(|kv| decode_entry(&kv.value)) {
        None => None,
        Some(Some(entry)) => Some(entry),
        Some(None) => return Err(Unavailable::BadRecord),
    };
    let mut bucket = Bucket::default();
    if let Some(entry) = &held {
        bucket.set(SLOT, entry.clone());
    }
    Ok((bucket, held))
}

/// Decides on the record etcd holds as the local ledger decides on its own: `change` runs on the
/// one-record bucket holding it, and what it leaves at [`SLOT`] is written back, under a lease
/// as long as its life, when it changed.
pub fn decide_as_local<T>(
    current: Option<&Kv>,
    now: u64,
    policy: Policy,
    change: impl FnOnce(&mut Bucket) -> T,
) -> Decision<T> {
    let (mut bucket, held) = match held_bucket(current) {
        Ok(read) => read,
        Err(problem) => return Decision::Finish(Err(problem)),
    };
    let result = change(&mut bucket);
    match bucket.get(SLOT) {
        Some(next) if Some(next) != held.as_ref() => {
            let end = life::end(next, policy, now);
            let current_end = held.as_ref().map(|entry| life::end(entry, policy, now));
            Decision::Write(Write::over(current, current_end, encode_entry(next), end, result))
        }
        _ => Decision::Finish(Ok(result)),
    }
}

/// A purchase or payment-id record as etcd holds it: the local ledger's own encoding of a bucket
/// holding that one record (`replay::Bucket`), so both ledgers read records with one decoder.
/// `None` when it is not a record this filter wrote: too large, a string with a control character
/// (parts of a record reach response headers), or not such a bucket.
pub fn decode_entry(bytes: &[u8]) -> Option<Entry> {
    if bytes.len() > wire::MAX_VALUE_BYTES || !clean(bytes) {
        return None;
    }
    Bucket::decode(Some(bytes)).get(SLOT).cloned()
}

pub fn encode_entry(entry: &Entry) -> Vec<u8> {
    let mut bucket = Bucket::default();
    bucket.set(SLOT, entry.clone());
    bucket.encode()
}

/// No control character can be in the JSON text's strings, checked on the text: JSON strings
/// hold no raw control byte, so one can only come as an escape (`\n`, `\u0007`, ...) or as the
/// UTF-8 of U+0080–U+009F or DEL. The records this filter writes (serde_json's output of ASCII
/// values) hold none of these, and no other `\u` escape either, so every `\u` is refused.
fn clean(bytes: &[u8]) -> bool {
    let mut escaped = false;
    let mut lead_c2 = false;
    for &b in bytes {
        if escaped {
            if matches!(b, b'b' | b'f' | b'n' | b'r' | b't' | b'u') {
                return false;
            }
            escaped = false;
        } else if b == b'\\' {
            escaped = true;
        }
        if b == 0x7f || (lead_c2 && (0x80..=0x9f).contains(&b)) {
            return false;
        }
        lead_c2 = b == 0xc2;
    }
    true
}

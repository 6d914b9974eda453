//! The engine every record operation runs on: read the key (or guess it is absent), let the
//! operation [`decide`](Record::decide) what to write, lease the new value for its life, and
//! write it with a transaction that compares the key with what was read. A lost compare hands
//! back the key as it is now and the operation decides again, at most `MAX_ATTEMPTS` times.
//!
//! Leases: every record holds its own lease, as long as its life. A write that does not change
//! the record's life keeps the key's lease (`ignore_lease`); one that does asks for a new lease
//! first and, once committed, revokes the one it replaced. A lease granted but not used (the
//! compare lost, and what won needs no write) is revoked at the end. A lease sent in a write
//! whose answer never came is left alone: the write may have committed, and revoking the lease
//! would delete the record.

use crate::replay::{Bucket, Entry, Policy};

use super::keys::Key;
use super::wire::{self, Expect, Kv, Lease, Txn};
use super::{life, Call, Finished, Reply, Settings, Step, Unavailable, MAX_ATTEMPTS};

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
    /// Delete the key if it is still as read (`current`), then give `T`; its lease is revoked.
    Remove(Remove<T>),
}

/// A conditional delete of the key as it was read.
pub struct Remove<T> {
    pub mod_revision: i64,
    /// The record's lease, revoked once the record is gone.
    pub lease: i64,
    pub then: T,
}

impl<T> Remove<T> {
    pub fn of(current: &Kv, then: T) -> Remove<T> {
        Remove { mod_revision: current.mod_revision, lease: current.lease, then }
    }
}

/// A conditional write, and the result it gives once committed.
pub struct Write<T> {
    pub expect: Expect,
    pub value: Vec<u8>,
    /// When the new record's life ends (Unix seconds): its lease.
    pub end: u64,
    /// The key's current lease already ends then: keep it.
    pub keep_lease: bool,
    /// The lease of the record this write replaces (0: none), revoked once it is replaced.
    pub replaces: i64,
    pub then: T,
}

impl<T> Write<T> {
    /// Writes `value` over `current` (or creates it when absent). `current_end` is when the
    /// current record's life ends, when it can be read.
    pub fn over(current: Option<&Kv>, current_end: Option<u64>, value: Vec<u8>, end: u64, then: T) -> Write<T> {
        match current {
            None => Write { expect: Expect::Absent, value, end, keep_lease: false, replaces: 0, then },
            Some(kv) => Write {
                expect: Expect::ModRevision(kv.mod_revision),
                value,
                end,
                keep_lease: kv.lease != 0 && current_end == Some(end),
                replaces: kv.lease,
                then,
            },
        }
    }
}

/// A write without its result: what the engine needs, the same for every kind of record.
struct Plan {
    expect: Expect,
    value: Vec<u8>,
    end: u64,
    keep_lease: bool,
    replaces: i64,
}

enum State {
    Reading,
    Granting(Plan),
    /// The write and the lease it attaches (`None`: the key keeps its own).
    Committing(Plan, Option<i64>),
    /// A conditional delete; the lease of the record deleted.
    Removing(i64),
    Done,
}

/// What the engine did with an answer.
enum Event {
    Send(Call),
    /// The key as it is now: the record decides.
    Decide(Option<Kv>),
    /// The write (or delete) committed: keep this lease, revoke that one.
    Committed {
        keep: Option<i64>,
        replaced: Option<i64>,
    },
    /// It failed; a lease sent in a write whose answer never came is in doubt (kept).
    Failed(Unavailable, Option<i64>),
}

/// The calls, compares and leases of one record operation, whatever the record: not generic,
/// so it is compiled once however many kinds of record there are.
struct Engine {
    key: Key,
    /// The clock of the whole operation, in seconds (records hold seconds).
    now: u64,
    /// The clock of the answer being handled: what is left of the deadline.
    now_ms: u64,
    deadline_ms: u64,
    cleanup_timeout_ms: u64,
    attempts: usize,
    /// Leases granted by this operation: (when they end, id).
    granted: Vec<(u64, i64)>,
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
    fn on_reply(&mut self, reply: Reply<'_>) -> Event {
        match std::mem::replace(&mut self.state, State::Done) {
            State::Reading => match wire::read_range(reply, self.key.as_bytes()) {
                Ok(current) => Event::Decide(current),
                Err(problem) => Event::Failed(problem, None),
            },
            State::Granting(plan) => match wire::read_lease_grant(reply) {
                Ok(id) => {
                    self.granted.push((plan.end, id));
                    self.commit(plan, Some(id))
                }
                Err(problem) => Event::Failed(problem, None),
            },
            State::Committing(plan, lease) => match wire::read_txn(reply, self.key.as_bytes()) {
                Ok(Txn::Committed) => {
                    let replaced = (!plan.keep_lease && plan.replaces != 0).then_some(plan.replaces);
                    Event::Committed { keep: lease, replaced }
                }
                Ok(Txn::Lost(current)) => self.lost(current),
                // The write may have committed: its lease may hold the record now.
                Err(problem) => Event::Failed(problem, lease),
            },
            State::Removing(lease) => match wire::read_txn(reply, self.key.as_bytes()) {
                Ok(Txn::Committed) => Event::Committed { keep: None, replaced: (lease != 0).then_some(lease) },
                Ok(Txn::Lost(current)) => self.lost(current),
                Err(problem) => Event::Failed(problem, None),
            },
            // An answer nobody asked for (a host bug).
            State::Done => Event::Failed(Unavailable::Garbled, None),
        }
    }

    /// Another writer won the compare: decide again on what won, a bounded number of times.
    fn lost(&mut self, current: Option<Kv>) -> Event {
        self.attempts += 1;
        if self.attempts >= MAX_ATTEMPTS {
            return Event::Failed(Unavailable::Busy, None);
        }
        Event::Decide(current)
    }

    fn read(&mut self) -> Event {
        self.send(wire::RANGE, wire::range(self.key.as_bytes()), State::Reading)
    }

    /// Writes `plan`: under the key's own lease, a lease granted earlier in this operation for
    /// the same end, or a new one.
    fn write(&mut self, plan: Plan) -> Event {
        if plan.value.len() > wire::MAX_VALUE_BYTES {
            log::error!("x402-access-pass: a ledger record of {} bytes is too large to write", plan.value.len());
            return Event::Failed(Unavailable::BadRecord, None);
        }
        if plan.keep_lease {
            return self.commit(plan, None);
        }
        if let Some(id) = self.granted.iter().find(|(end, _)| *end == plan.end).map(|(_, id)| *id) {
            return self.commit(plan, Some(id));
        }
        let body = wire::lease_grant(life::ttl(plan.end, self.now));
        self.send(wire::LEASE_GRANT, body, State::Granting(plan))
    }

    fn commit(&mut self, plan: Plan, lease: Option<i64>) -> Event {
        let attach = match lease {
            Some(id) => Lease::Attach(id),
            None => Lease::Keep,
        };
        let body = wire::put_if(self.key.as_bytes(), plan.expect, &plan.value, attach);
        self.send(wire::TXN, body, State::Committing(plan, lease))
    }

    fn remove(&mut self, mod_revision: i64, lease: i64) -> Event {
        let body = wire::delete_if(self.key.as_bytes(), mod_revision);
        self.send(wire::TXN, body, State::Removing(lease))
    }

    /// A call that still has time (then waiting in `state`), or `Deadline`.
    fn send(&mut self, path: &'static str, body: Vec<u8>, state: State) -> Event {
        let now_ms = self.now_ms;
        match self.deadline_ms.saturating_sub(now_ms) {
            0 => Event::Failed(Unavailable::Deadline, None),
            timeout_ms => {
                self.state = state;
                Event::Send(Call { path, body, timeout_ms })
            }
        }
    }

    /// The revocations of every lease granted here but `keep`, and of `replaced`.
    fn cleanup(&mut self, keep: Option<i64>, replaced: Option<i64>) -> Vec<Call> {
        self.state = State::Done;
        let unused = self.granted.drain(..).map(|(_, id)| id).filter(|id| Some(*id) != keep);
        unused
            .chain(replaced)
            .map(|id| Call {
                path: wire::LEASE_REVOKE,
                body: wire::lease_revoke(id),
                timeout_ms: self.cleanup_timeout_ms,
            })
            .collect()
    }
}

impl<R: Record> Op<R> {
    fn new(settings: &Settings, key: Key, record: R, now_ms: u64) -> Op<R> {
        let engine = Engine {
            key,
            now: now_ms / 1_000,
            now_ms,
            deadline_ms: now_ms.saturating_add(settings.timeout_ms()),
            cleanup_timeout_ms: settings.timeout_ms(),
            attempts: 0,
            granted: Vec::new(),
            state: State::Done,
        };
        Op { record, engine, then: None }
    }

    /// Starts by reading the key.
    pub fn read_first(settings: &Settings, key: Key, record: R, now_ms: u64) -> (Op<R>, Step<R::Output>) {
        let mut op = Op::new(settings, key, record, now_ms);
        let event = op.engine.read();
        let step = op.step(event);
        (op, step)
    }

    /// Starts as if the key were absent: a create that loses its compare reads the key in the
    /// same transaction. One round trip fewer for records that are usually new.
    pub fn create_first(settings: &Settings, key: Key, record: R, now_ms: u64) -> (Op<R>, Step<R::Output>) {
        let mut op = Op::new(settings, key, record, now_ms);
        let step = op.step(Event::Decide(None));
        (op, step)
    }

    pub fn record(&self) -> &R {
        &self.record
    }

    /// The answer to the last [`Step::Send`].
    pub fn on_reply(&mut self, reply: Reply<'_>, now_ms: u64) -> Step<R::Output> {
        self.engine.now_ms = now_ms;
        let event = self.engine.on_reply(reply);
        self.step(event)
    }

    /// Runs the engine's events until a call leaves or the operation ends (each decision
    /// either finishes or makes a call, so this ends).
    fn step(&mut self, mut event: Event) -> Step<R::Output> {
        loop {
            event = match event {
                Event::Send(call) => return Step::Send(call),
                Event::Decide(current) => match self.record.decide(current.as_ref(), self.engine.now) {
                    Decision::Finish(result) => return self.finish(result, None, None),
                    Decision::Write(write) => {
                        self.then = Some(write.then);
                        let plan = Plan {
                            expect: write.expect,
                            value: write.value,
                            end: write.end,
                            keep_lease: write.keep_lease,
                            replaces: write.replaces,
                        };
                        self.engine.write(plan)
                    }
                    Decision::Remove(remove) => {
                        self.then = Some(remove.then);
                        self.engine.remove(remove.mod_revision, remove.lease)
                    }
                },
                Event::Committed { keep, replaced } => {
                    let result = self.then.take().ok_or(Unavailable::Garbled);
                    return self.finish(result, keep, replaced);
                }
                Event::Failed(problem, in_doubt) => return self.finish(Err(problem), in_doubt, None),
            };
        }
    }

    fn finish(
        &mut self,
        result: Result<R::Output, Unavailable>,
        keep: Option<i64>,
        replaced: Option<i64>,
    ) -> Step<R::Output> {
        self.then = None;
        Step::Finish(Finished { result, cleanup: self.engine.cleanup(keep, replaced) })
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

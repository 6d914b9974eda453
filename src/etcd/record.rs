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

enum State<T> {
    Reading,
    Granting(Write<T>),
    /// The write and the lease it attaches (`None`: the key keeps its own).
    Committing(Write<T>, Option<i64>),
    Removing(Remove<T>),
    Done,
}

/// One record operation between calls.
pub struct Op<R: Record> {
    record: R,
    key: Key,
    /// The clock of the whole operation, in seconds (records hold seconds).
    now: u64,
    deadline_ms: u64,
    cleanup_timeout_ms: u64,
    attempts: usize,
    /// Leases granted by this operation: (when they end, id).
    granted: Vec<(u64, i64)>,
    state: State<R::Output>,
}

impl<R: Record> Op<R> {
    fn new(settings: &Settings, key: Key, record: R, now_ms: u64) -> Op<R> {
        Op {
            record,
            key,
            now: now_ms / 1_000,
            deadline_ms: now_ms.saturating_add(settings.timeout_ms()),
            cleanup_timeout_ms: settings.timeout_ms(),
            attempts: 0,
            granted: Vec::new(),
            state: State::Done,
        }
    }

    /// Starts by reading the key.
    pub fn read_first(settings: &Settings, key: Key, record: R, now_ms: u64) -> (Op<R>, Step<R::Output>) {
        let mut op = Op::new(settings, key, record, now_ms);
        let step = match op.send(wire::RANGE, wire::range(op.key.as_bytes()), now_ms) {
            Ok(call) => {
                op.state = State::Reading;
                Step::Send(call)
            }
            Err(problem) => op.fail(problem, None),
        };
        (op, step)
    }

    /// Starts as if the key were absent: a create that loses its compare reads the key in the
    /// same transaction. One round trip fewer for records that are usually new.
    pub fn create_first(settings: &Settings, key: Key, record: R, now_ms: u64) -> (Op<R>, Step<R::Output>) {
        let mut op = Op::new(settings, key, record, now_ms);
        let step = op.decide(None, now_ms);
        (op, step)
    }

    pub fn record(&self) -> &R {
        &self.record
    }

    /// The answer to the last [`Step::Send`].
    pub fn on_reply(&mut self, reply: Reply<'_>, now_ms: u64) -> Step<R::Output> {
        match std::mem::replace(&mut self.state, State::Done) {
            State::Reading => match wire::read_range(reply, self.key.as_bytes()) {
                Ok(current) => self.decide(current, now_ms),
                Err(problem) => self.fail(problem, None),
            },
            State::Granting(write) => match wire::read_lease_grant(reply) {
                Ok(id) => {
                    self.granted.push((write.end, id));
                    self.commit(write, Some(id), now_ms)
                }
                Err(problem) => self.fail(problem, None),
            },
            State::Committing(write, lease) => match wire::read_txn(reply, self.key.as_bytes()) {
                Ok(Txn::Committed) => {
                    let replaced = (!write.keep_lease && write.replaces != 0).then_some(write.replaces);
                    self.finish(Ok(write.then), lease, replaced)
                }
                Ok(Txn::Lost(current)) => {
                    self.attempts += 1;
                    if self.attempts >= MAX_ATTEMPTS {
                        return self.fail(Unavailable::Busy, None);
                    }
                    self.decide(current, now_ms)
                }
                // The write may have committed: its lease may hold the record now.
                Err(problem) => self.fail(problem, lease),
            },
            State::Removing(remove) => match wire::read_txn(reply, self.key.as_bytes()) {
                Ok(Txn::Committed) => {
                    let lease = (remove.lease != 0).then_some(remove.lease);
                    self.finish(Ok(remove.then), None, lease)
                }
                Ok(Txn::Lost(current)) => {
                    self.attempts += 1;
                    if self.attempts >= MAX_ATTEMPTS {
                        return self.fail(Unavailable::Busy, None);
                    }
                    self.decide(current, now_ms)
                }
                Err(problem) => self.fail(problem, None),
            },
            // An answer nobody asked for (a host bug).
            State::Done => self.fail(Unavailable::Garbled, None),
        }
    }

    fn decide(&mut self, current: Option<Kv>, now_ms: u64) -> Step<R::Output> {
        match self.record.decide(current.as_ref(), self.now) {
            Decision::Finish(result) => self.finish(result, None, None),
            Decision::Remove(remove) => {
                match self.send(wire::TXN, wire::delete_if(self.key.as_bytes(), remove.mod_revision), now_ms) {
                    Ok(call) => {
                        self.state = State::Removing(remove);
                        Step::Send(call)
                    }
                    Err(problem) => self.fail(problem, None),
                }
            }
            Decision::Write(write) if write.value.len() > wire::MAX_VALUE_BYTES => {
                log::error!("x402-access-pass: a ledger record of {} bytes is too large to write", write.value.len());
                self.fail(Unavailable::BadRecord, None)
            }
            Decision::Write(write) if write.keep_lease => self.commit(write, None, now_ms),
            Decision::Write(write) => {
                let reusable = self.granted.iter().find(|(end, _)| *end == write.end).map(|(_, id)| *id);
                if let Some(id) = reusable {
                    return self.commit(write, Some(id), now_ms);
                }
                match self.send(wire::LEASE_GRANT, wire::lease_grant(life::ttl(write.end, self.now)), now_ms) {
                    Ok(call) => {
                        self.state = State::Granting(write);
                        Step::Send(call)
                    }
                    Err(problem) => self.fail(problem, None),
                }
            }
        }
    }

    fn commit(&mut self, write: Write<R::Output>, lease: Option<i64>, now_ms: u64) -> Step<R::Output> {
        let attach = match lease {
            Some(id) => Lease::Attach(id),
            None => Lease::Keep,
        };
        match self.send(wire::TXN, wire::put_if(self.key.as_bytes(), write.expect, &write.value, attach), now_ms) {
            Ok(call) => {
                self.state = State::Committing(write, lease);
                Step::Send(call)
            }
            Err(problem) => self.fail(problem, None),
        }
    }

    /// A call that still has time, or `Deadline`.
    fn send(&self, path: &'static str, body: Vec<u8>, now_ms: u64) -> Result<Call, Unavailable> {
        match self.deadline_ms.saturating_sub(now_ms) {
            0 => Err(Unavailable::Deadline),
            timeout_ms => Ok(Call { path, body, timeout_ms }),
        }
    }

    fn fail(&mut self, problem: Unavailable, in_doubt: Option<i64>) -> Step<R::Output> {
        self.finish(Err(problem), in_doubt, None)
    }

    /// Revokes every lease granted here but `keep`, and `replaced`.
    fn finish(
        &mut self,
        result: Result<R::Output, Unavailable>,
        keep: Option<i64>,
        replaced: Option<i64>,
    ) -> Step<R::Output> {
        self.state = State::Done;
        let unused = self.granted.drain(..).map(|(_, id)| id).filter(|id| Some(*id) != keep);
        let cleanup = unused
            .chain(replaced)
            .map(|id| Call {
                path: wire::LEASE_REVOKE,
                body: wire::lease_revoke(id),
                timeout_ms: self.cleanup_timeout_ms,
            })
            .collect();
        Step::Finish(Finished { result, cleanup })
    }
}

/// Reads a record's JSON value: bounded, and no string in it holds a control character (parts
/// of a record reach response headers).
pub fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    fn clean(value: &serde_json::Value) -> bool {
        match value {
            serde_json::Value::String(s) => !s.chars().any(char::is_control),
            serde_json::Value::Array(items) => items.iter().all(clean),
            serde_json::Value::Object(map) => map.iter().all(|(k, v)| !k.chars().any(char::is_control) && clean(v)),
            _ => true,
        }
    }
    if bytes.len() > wire::MAX_VALUE_BYTES {
        return None;
    }
    let value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    if !clean(&value) {
        return None;
    }
    serde_json::from_value(value).ok()
}

pub fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

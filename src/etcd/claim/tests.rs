//! Claims against etcd's gateway in memory (`sim`), one per outcome of `Bucket::claim`, and
//! every way etcd can fail to answer.

use super::*;
use crate::etcd::keys::{self, Key};
use crate::etcd::record::{self, Op};
use crate::etcd::sim::{drive, lives, pass, race, receipt, Etcd, POLICY};
use crate::etcd::Unavailable;
use crate::etcd::{wire, Call, Finished, Reply};
use crate::replay::Entry;
use crate::replay::UNKNOWN_RETENTION_SECONDS;

fn settings() -> Settings {
    Settings::new("/x402/", 1_000).unwrap()
}

fn key() -> Key {
    keys::purchase(&settings(), &"ab".repeat(32)).unwrap()
}

fn start(etcd: &Etcd) -> (Op<Claiming>, Step<Claim>) {
    claim(&settings(), key(), POLICY, etcd.now * 1_000)
}

/// One whole claim, now.
fn run(etcd: &mut Etcd) -> Finished<Claim> {
    let started = start(etcd);
    drive(etcd, started)
}

fn held(etcd: &Etcd) -> Option<Entry> {
    etcd.keys.get(key().as_bytes()).map(|s| record::decode_entry(&s.value).unwrap())
}

/// Stores `entry` as another replica would have, under a lease of `ttl` seconds.
fn hold(etcd: &mut Etcd, entry: &Entry, ttl: u64) -> i64 {
    let lease = etcd.answer(&Call { path: wire::LEASE_GRANT, body: wire::lease_grant(ttl), timeout_ms: 1 });
    let id = wire::read_lease_grant(Reply::Response { status: lease.0, body: &lease.1 }).unwrap();
    etcd.put_raw(key().as_bytes(), &record::encode_entry(entry), id);
    etcd.calls.clear();
    id
}

/// Answers the call of `step` from `etcd`.
fn answer(etcd: &mut Etcd, op: &mut Op<Claiming>, step: Step<Claim>, now_ms: u64) -> Step<Claim> {
    let Step::Send(call) = step else { panic!("expected a call, got {step:?}") };
    let (status, body) = etcd.answer(&call);
    op.on_reply(Reply::Response { status, body: &body }, now_ms)
}

fn finished(step: Step<Claim>) -> Finished<Claim> {
    match step {
        Step::Finish(finished) => finished,
        Step::Send(call) => panic!("expected the end, got a call to {}", call.path),
    }
}

/// No operation revokes a lease (docs/fleet.md: leases are shared).
fn revoked(finished: &Finished<Claim>) -> usize {
    finished.cleanup.len()
}

#[test]
fn a_new_payment_is_fresh_in_two_round_trips_and_pending_for_as_long_as_a_pending_lives() {
    let mut etcd = Etcd::new();
    let done = run(&mut etcd);
    assert_eq!(done.result, Ok(Claim::Fresh));
    assert_eq!(etcd.calls, [wire::LEASE_GRANT, wire::TXN]);
    assert!(done.cleanup.is_empty());
    assert_eq!(held(&etcd), Some(Entry::Pending { since: etcd.now, pass: None }));
    assert!(lives(etcd.lease_of(key().as_bytes()).unwrap().1, POLICY.stale_after_seconds));
}

#[test]
fn the_same_payment_again_is_in_progress_and_its_unused_lease_is_kept_for_the_next() {
    let mut etcd = Etcd::new();
    run(&mut etcd);
    etcd.advance(5);
    let before = etcd.keys.clone();
    let done = run(&mut etcd);
    assert_eq!(done.result, Ok(Claim::InProgress));
    assert_eq!(revoked(&done), 0, "a lease is never revoked");
    assert_eq!(etcd.keys.len(), before.len());
    assert_eq!(etcd.leases.len(), 2, "the record's, and the unused one, left to run out");
    // With one memory (one worker) holding a lease for the span, a claim reads the key first
    // (its proof of etcd's quorum, record.rs `prove_quorum`) and, answered "in progress", writes
    // nothing: one round trip, no lease.
    let settings = settings();
    let mut etcd = Etcd::new();
    etcd.now += 10; // not at the end of a lease's span
    let first = claim(&settings, key(), POLICY, etcd.now * 1_000);
    assert_eq!(drive(&mut etcd, first).result, Ok(Claim::Fresh));
    etcd.advance(1);
    etcd.calls.clear();
    let again = claim(&settings, key(), POLICY, etcd.now * 1_000);
    assert_eq!(drive(&mut etcd, again).result, Ok(Claim::InProgress));
    assert_eq!(etcd.calls, [wire::RANGE], "read, and nothing to write");
    assert_eq!(etcd.leases.len(), 1);
}

/// The first call of a claim by a worker whose memory is `settings`'s.
fn first_call(etcd: &Etcd, settings: &Settings, hex: &str) -> &'static str {
    let other = keys::purchase(settings, &hex.repeat(32)).unwrap();
    match claim(settings, other, POLICY, etcd.now * 1_000).1 {
        Step::Send(call) => call.path,
        Step::Finish(done) => panic!("a claim makes a call first: {done:?}"),
    }
}

#[test]
fn a_claim_is_never_sent_before_etcd_answered_a_call_through_its_quorum() {
    // A create proposed to a leader that has lost its quorum may commit once the quorum is back
    // and make the same payment "in progress": before it, etcd must have answered a lease grant
    // (committed by a quorum) or a linearizable read (confirmed by a quorum). A lease held from
    // an earlier claim proves nothing about now.
    let settings = settings();
    let mut etcd = Etcd::new();
    etcd.now += 10;
    assert_eq!(first_call(&etcd, &settings, "0e"), wire::LEASE_GRANT, "no lease held: its grant");
    let first = claim(&settings, key(), POLICY, etcd.now * 1_000);
    assert_eq!(drive(&mut etcd, first).result, Ok(Claim::Fresh));
    assert_eq!(first_call(&etcd, &settings, "0f"), wire::RANGE, "a lease held: the key read first");
    // The read, then the create under the lease held: two round trips, no lease granted.
    etcd.calls.clear();
    let other = keys::purchase(&settings, &"0f".repeat(32)).unwrap();
    let started = claim(&settings, other.clone(), POLICY, etcd.now * 1_000);
    let done = drive(&mut etcd, started);
    assert_eq!(done.result, Ok(Claim::Fresh));
    assert_eq!(etcd.calls, [wire::RANGE, wire::TXN]);
    assert_eq!(etcd.leases.len(), 1, "the one held");
    assert_eq!(etcd.lease_of(other.as_bytes()).unwrap().0, etcd.lease_of(key().as_bytes()).unwrap().0);
    // Read absent, then created by another replica before this create: the create loses, and
    // the claim is decided on what won (in progress), under no new lease.
    let raced = keys::purchase(&settings, &"0c".repeat(32)).unwrap();
    let now_ms = etcd.now * 1_000;
    let (mut op, step) = claim(&settings, raced.clone(), POLICY, now_ms);
    let step = answer(&mut etcd, &mut op, step, now_ms);
    let Step::Send(create) = &step else { panic!("the create") };
    assert_eq!(create.path, wire::TXN);
    let pending = record::encode_entry(&Entry::Pending { since: etcd.now, pass: None });
    etcd.put_raw(raced.as_bytes(), &pending, 0);
    let done = finished(answer(&mut etcd, &mut op, step, now_ms));
    assert_eq!(done.result, Ok(Claim::InProgress));
    assert_eq!(etcd.leases.len(), 1);
    // etcd without a quorum: the read (or the grant) fails, and no create is ever sent.
    for reply in [Reply::TimedOut, Reply::Response { status: 503, body: b"{}" }, Reply::Failed] {
        for memory in [settings.clone(), self::settings()] {
            let (mut op, step) =
                claim(&memory, keys::purchase(&memory, &"0d".repeat(32)).unwrap(), POLICY, etcd.now * 1_000);
            assert!(matches!(step, Step::Send(_)));
            let done = finished(op.on_reply(reply, etcd.now * 1_000));
            assert!(done.result.is_err(), "{done:?}");
        }
    }
}

#[test]
fn two_claims_racing_for_a_new_payment_make_exactly_one_fresh() {
    let mut etcd = Etcd::new();
    let (a, b) = (start(&etcd), start(&etcd));
    let (a, b) = race(&mut etcd, a, b);
    let mut results = [a.result.unwrap(), b.result.unwrap()];
    results.sort_by_key(|c| c == &Claim::Fresh);
    assert_eq!(results, [Claim::InProgress, Claim::Fresh]);
    assert_eq!(etcd.leases.len(), 2, "the loser's lease is left to run out");
}

#[test]
fn a_settlement_replays_within_its_window_then_is_a_duplicate_turned_spent_under_the_same_lease() {
    let mut etcd = Etcd::new();
    let at = etcd.now;
    let lease = hold(&mut etcd, &Entry::Settled { at, receipt: receipt() }, 4_200);
    etcd.advance(600);
    assert_eq!(run(&mut etcd).result, Ok(Claim::Replay(receipt())));
    assert_eq!(held(&etcd), Some(Entry::Settled { at, receipt: receipt() }), "a replay writes nothing");
    etcd.advance(1);
    assert_eq!(run(&mut etcd).result, Ok(Claim::Duplicate));
    assert_eq!(held(&etcd), Some(Entry::Spent { at }));
    assert_eq!(etcd.lease_of(key().as_bytes()).unwrap().0, lease, "its life did not change: same lease");
    etcd.calls.clear();
    assert_eq!(run(&mut etcd).result, Ok(Claim::Duplicate));
    assert_eq!(etcd.calls, [wire::LEASE_GRANT, wire::TXN], "spent: nothing written");
}

#[test]
fn a_stale_pending_is_taken_over_and_a_pass_in_doubt_recovered() {
    let mut etcd = Etcd::new();
    // Left by a replica that died mid-callout (its lease longer than the pending's life).
    let old = hold(&mut etcd, &Entry::Pending { since: 1_000_000, pass: None }, 3_600);
    etcd.advance(POLICY.stale_after_seconds - 1);
    assert_eq!(run(&mut etcd).result, Ok(Claim::InProgress));
    etcd.advance(1);
    let done = run(&mut etcd);
    assert_eq!(done.result, Ok(Claim::Fresh));
    assert_eq!(held(&etcd), Some(Entry::Pending { since: etcd.now, pass: None }));
    assert_eq!(revoked(&done), 0, "the record's old lease is left to run out");
    let (lease, left) = etcd.lease_of(key().as_bytes()).unwrap();
    assert!(lease != old && lives(left, POLICY.stale_after_seconds), "the create's lease is reused");

    for left in [
        Entry::Unknown { since: 1_000_000 - 100, pass: pass() },
        Entry::Pending { since: 1_000_000 - 30, pass: Some(pass()) },
    ] {
        let mut etcd = Etcd::new();
        let old = hold(&mut etcd, &left, 86_400);
        let done = run(&mut etcd);
        assert_eq!(done.result, Ok(Claim::Recover(pass())));
        assert_eq!(held(&etcd), Some(Entry::Pending { since: etcd.now, pass: Some(pass()) }));
        let (lease, left) = etcd.lease_of(key().as_bytes()).unwrap();
        assert!(lease != old && lives(left, UNKNOWN_RETENTION_SECONDS));
        assert_eq!(revoked(&done), 0);
        assert_eq!(etcd.calls, [wire::LEASE_GRANT, wire::TXN, wire::LEASE_GRANT, wire::TXN]);
        // While the recovery is in flight, others wait.
        assert_eq!(run(&mut etcd).result, Ok(Claim::InProgress));
    }
}

#[test]
fn a_compare_lost_to_another_writer_is_decided_again_on_what_won() {
    let mut etcd = Etcd::new();
    let now_ms = etcd.now * 1_000;
    // Left in doubt a while ago: recovering it starts a new life, with a new lease.
    hold(&mut etcd, &Entry::Unknown { since: 1_000_000 - 100, pass: pass() }, 86_400);
    let (mut op, step) = start(&etcd);
    let step = answer(&mut etcd, &mut op, step, now_ms); // the create's lease
    let step = answer(&mut etcd, &mut op, step, now_ms); // the create: lost, reads Unknown
    let step = answer(&mut etcd, &mut op, step, now_ms); // the recovery's lease
                                                         // Another replica settles it before our compare.
    etcd.put_raw(key().as_bytes(), &record::encode_entry(&Entry::Settled { at: etcd.now, receipt: receipt() }), 0);
    let done = finished(answer(&mut etcd, &mut op, step, now_ms));
    assert_eq!(done.result, Ok(Claim::Replay(receipt())));
    assert_eq!(revoked(&done), 0, "unused leases are kept for the next records");
}

#[test]
fn a_record_that_keeps_changing_makes_the_claim_busy() {
    let mut etcd = Etcd::new();
    let now_ms = etcd.now * 1_000;
    let (mut op, mut step) = start(&etcd);
    let mut calls = 0;
    let done = loop {
        match step {
            Step::Send(call) => {
                if call.path == wire::TXN {
                    // Someone else writes a fresh pass in doubt every time, just before our compare.
                    let since = etcd.now - calls;
                    etcd.put_raw(key().as_bytes(), &record::encode_entry(&Entry::Unknown { since, pass: pass() }), 0);
                }
                calls += 1;
                let (status, body) = etcd.answer(&call);
                step = op.on_reply(Reply::Response { status, body: &body }, now_ms);
            }
            Step::Finish(done) => break done,
        }
    };
    assert_eq!(done.result, Err(Unavailable::Busy));
    // The create's guess (absent) lost is not counted: MAX_ATTEMPTS losses after it.
    assert_eq!(etcd.calls.iter().filter(|p| **p == wire::TXN).count(), crate::etcd::MAX_ATTEMPTS + 1);
}

#[test]
fn a_record_this_filter_did_not_write_is_unavailable() {
    for value in [
        &b"garbage"[..],
        b"{\"pending\":{\"since\":1,\"pass\":null}}",
        b"[[\"r\",{\"pending\":{\"pass\":null}}]]",
        b"[[\"r\",{\"spent\":{\"at\":\"1\"}}]]",
        b"[[\"another\",{\"spent\":{\"at\":1}}]]",
    ] {
        let mut etcd = Etcd::new();
        etcd.put_raw(key().as_bytes(), value, 0);
        assert_eq!(run(&mut etcd).result, Err(Unavailable::BadRecord), "{value:?}");
    }
    // A control character in a string that could reach a header.
    let mut etcd = Etcd::new();
    let mut bad = receipt();
    bad.token = "a\r\nSet-Cookie: x".into();
    etcd.put_raw(key().as_bytes(), &record::encode_entry(&Entry::Settled { at: etcd.now, receipt: bad }), 0);
    assert_eq!(run(&mut etcd).result, Err(Unavailable::BadRecord));
}

#[test]
fn no_answer_is_unavailable_and_a_lease_in_a_write_in_doubt_is_kept() {
    let now_ms = 5_000_000;
    let settings = settings();
    // The lease grant times out, fails, or is refused.
    for (reply, problem) in [
        (Reply::TimedOut, Unavailable::TimedOut),
        (Reply::Failed, Unavailable::Failed),
        (
            Reply::Response { status: 503, body: b"{\"error\":\"etcdserver: no leader\",\"code\":14}" },
            Unavailable::Status(503),
        ),
        (Reply::Response { status: 200, body: b"<html>" }, Unavailable::Garbled),
    ] {
        let (mut op, step) = claim(&settings, key(), POLICY, now_ms);
        assert!(matches!(&step, Step::Send(call) if call.path == wire::LEASE_GRANT && call.timeout_ms == 1_000));
        let done = finished(op.on_reply(reply, now_ms + 10));
        assert_eq!(done, Finished { result: Err(problem), cleanup: Vec::new() });
    }
    // The create times out: it may have committed under its lease, which stays.
    let mut etcd = Etcd::new();
    let (mut op, step) = claim(&settings, key(), POLICY, now_ms);
    let step = answer(&mut etcd, &mut op, step, now_ms + 10);
    assert!(matches!(&step, Step::Send(call) if call.path == wire::TXN && call.timeout_ms == 990));
    let done = finished(op.on_reply(Reply::TimedOut, now_ms + 1_000));
    assert_eq!(done, Finished { result: Err(Unavailable::TimedOut), cleanup: Vec::new() });
    // An answer after the end is not taken.
    assert_eq!(finished(op.on_reply(Reply::TimedOut, now_ms + 1_000)).result, Err(Unavailable::Garbled));
}

#[test]
fn an_operation_never_outlives_its_timeout() {
    let mut etcd = Etcd::new();
    hold(&mut etcd, &Entry::Unknown { since: 1_000_000 - 100, pass: pass() }, 86_400);
    let now_ms = etcd.now * 1_000;
    let (mut op, step) = start(&etcd);
    let step = answer(&mut etcd, &mut op, step, now_ms + 400);
    let step = answer(&mut etcd, &mut op, step, now_ms + 999);
    let Step::Send(call) = &step else { panic!() };
    assert_eq!((call.path, call.timeout_ms), (wire::LEASE_GRANT, 1), "what is left of the second");
    let step = answer(&mut etcd, &mut op, step, now_ms + 1_000);
    let done = finished(step);
    assert_eq!(done.result, Err(Unavailable::Deadline));
    assert_eq!(revoked(&done), 0);
    assert_eq!(held(&etcd), Some(Entry::Unknown { since: 1_000_000 - 100, pass: pass() }));
}

#[test]
fn a_pass_in_doubt_from_this_second_is_recovered_under_the_lease_it_has() {
    // Recovering starts the same life (it ends UNKNOWN_RETENTION_SECONDS after `now` either way).
    let mut etcd = Etcd::new();
    let lease = hold(&mut etcd, &Entry::Unknown { since: 1_000_000, pass: pass() }, 86_400);
    let done = run(&mut etcd);
    assert_eq!(done.result, Ok(Claim::Recover(pass())));
    assert_eq!(etcd.lease_of(key().as_bytes()).unwrap().0, lease);
    assert_eq!(etcd.calls, [wire::LEASE_GRANT, wire::TXN, wire::TXN]);
}

#[test]
fn a_bad_answer_at_any_step_ends_the_claim_unavailable_and_never_revokes_a_lease_in_doubt() {
    let bad: [Reply<'static>; 5] = [
        Reply::TimedOut,
        Reply::Failed,
        Reply::Response { status: 500, body: b"" },
        Reply::Response { status: 200, body: b"{\"kvs\":" },
        Reply::Response { status: 200, body: b"{\"error\":\"etcdserver: request timed out\",\"code\":14}" },
    ];
    // A recovery makes four calls: grant, create (lost), grant, txn.
    for step_at in 0..4 {
        for reply in bad {
            let mut etcd = Etcd::new();
            hold(&mut etcd, &Entry::Unknown { since: 1_000_000 - 100, pass: pass() }, 86_400);
            let now_ms = etcd.now * 1_000;
            let (mut op, mut step) = start(&etcd);
            for _ in 0..step_at {
                step = answer(&mut etcd, &mut op, step, now_ms);
            }
            assert!(matches!(&step, Step::Send(_)), "step {step_at}: ended early");
            let done = finished(op.on_reply(reply, now_ms));
            assert!(done.result.is_err(), "step {step_at}: {reply:?}");
            // A write without an answer keeps its lease (the write may have committed): no
            // lease is ever revoked.
            assert_eq!(revoked(&done), 0, "step {step_at}: {reply:?}");
            assert_eq!(held(&etcd), Some(Entry::Unknown { since: 1_000_000 - 100, pass: pass() }));
        }
    }
}

use super::*;
use crate::etcd::keys;
use crate::etcd::record;
use crate::etcd::sim::{drive, lives, pass, receipt, Etcd, POLICY};
use crate::etcd::{wire, Reply, Unavailable};
use crate::replay::{SPENT_RETENTION_SECONDS, UNKNOWN_RETENTION_SECONDS};

fn settings() -> Settings {
    Settings::new("/x402/", 1_000).unwrap()
}

fn key() -> Key {
    keys::purchase(&settings(), &"cd".repeat(32)).unwrap()
}

fn run(etcd: &mut Etcd, entry: Entry) -> crate::etcd::Finished<()> {
    let started = put(&settings(), key(), entry, POLICY, etcd.now * 1_000);
    drive(etcd, started)
}

fn held(etcd: &Etcd) -> Option<Entry> {
    etcd.keys.get(key().as_bytes()).map(|s| record::decode_entry(&s.value).unwrap())
}

#[test]
fn each_state_is_written_under_a_lease_as_long_as_it_lives_and_the_old_lease_is_left_to_run_out() {
    let mut etcd = Etcd::new();
    let now = etcd.now;
    assert_eq!(run(&mut etcd, Entry::Pending { since: now, pass: None }).result, Ok(()));
    assert_eq!(etcd.calls, [wire::RANGE, wire::LEASE_GRANT, wire::TXN]);
    assert!(lives(etcd.lease_of(key().as_bytes()).unwrap().1, POLICY.stale_after_seconds));

    let signed = Entry::Pending { since: now, pass: Some(pass()) };
    assert_eq!(run(&mut etcd, signed.clone()).result, Ok(()));
    assert_eq!(held(&etcd), Some(signed));
    assert!(lives(etcd.lease_of(key().as_bytes()).unwrap().1, UNKNOWN_RETENTION_SECONDS));
    assert_eq!(etcd.leases.len(), 2, "the pending's lease is not revoked (it may hold others)");

    let settled = Entry::Settled { at: now, receipt: receipt() };
    assert_eq!(run(&mut etcd, settled.clone()).result, Ok(()));
    assert_eq!(held(&etcd), Some(settled));
    let (lease, ttl) = etcd.lease_of(key().as_bytes()).unwrap();
    assert!(lives(ttl, POLICY.replay_window_seconds + SPENT_RETENTION_SECONDS));
    assert_eq!(etcd.leases.len(), 3);

    // Spent ends when the settlement did: the key keeps its lease.
    etcd.calls.clear();
    assert_eq!(run(&mut etcd, Entry::Spent { at: now }).result, Ok(()));
    assert_eq!(etcd.calls, [wire::RANGE, wire::TXN]);
    assert_eq!(etcd.lease_of(key().as_bytes()).unwrap().0, lease);
}

#[test]
fn a_record_expires_with_its_lease() {
    let mut etcd = Etcd::new();
    let now = etcd.now;
    run(&mut etcd, Entry::Pending { since: now, pass: None });
    etcd.advance(POLICY.stale_after_seconds - 1);
    assert!(held(&etcd).is_some());
    // Gone with its lease, which ends with it or within its slack after.
    etcd.advance(crate::etcd::memory::slack(POLICY.stale_after_seconds));
    assert_eq!(held(&etcd), None);
}

/// A purchase's records as one worker writes them (one memory): its claim, its pending pass,
/// its settlement.
fn purchase(etcd: &mut Etcd, settings: &Settings, key: &Key) {
    let now_ms = etcd.now * 1_000;
    let claim = crate::etcd::claim::claim(settings, key.clone(), POLICY, now_ms);
    assert_eq!(drive(etcd, claim).result, Ok(crate::replay::Claim::Fresh));
    let signed = Entry::Pending { since: etcd.now, pass: Some(pass()) };
    assert_eq!(drive(etcd, put(settings, key.clone(), signed, POLICY, now_ms)).result, Ok(()));
    let settled = Entry::Settled { at: etcd.now, receipt: receipt() };
    assert_eq!(drive(etcd, put(settings, key.clone(), settled.clone(), POLICY, now_ms)).result, Ok(()));
    assert_eq!(etcd.keys.get(key.as_bytes()).map(|s| record::decode_entry(&s.value).unwrap()), Some(settled));
}

#[test]
fn a_worker_writes_each_state_in_one_transaction_from_the_revision_it_wrote_and_leases_it_holds() {
    let settings = settings();
    let mut etcd = Etcd::new();
    etcd.now += 10; // not at the end of a lease's span
    purchase(&mut etcd, &settings, &key());
    // No read: each write compares the revision of the one before it.
    assert_eq!(etcd.calls, [wire::LEASE_GRANT, wire::TXN, wire::LEASE_GRANT, wire::TXN, wire::LEASE_GRANT, wire::TXN]);
    // The next purchase a few seconds later on this worker: every state uses the leases already
    // granted; the claim reads its key first (its proof of etcd's quorum, record.rs
    // `prove_quorum`).
    etcd.advance(2);
    etcd.calls.clear();
    let other = keys::purchase(&settings, &"0e".repeat(32)).unwrap();
    purchase(&mut etcd, &settings, &other);
    assert_eq!(etcd.calls, [wire::RANGE, wire::TXN, wire::TXN, wire::TXN]);
    assert_eq!(etcd.leases.len(), 3, "one lease per span, shared");
    for key in [key(), other.clone()] {
        let left = etcd.lease_of(key.as_bytes()).unwrap().1;
        assert!(left >= POLICY.replay_window_seconds + SPENT_RETENTION_SECONDS - 2);
        assert!(left < POLICY.replay_window_seconds + SPENT_RETENTION_SECONDS + 60, "{left}");
    }
    // Each record lives as long as it should: the first's lease ends no earlier than its life.
    etcd.advance(POLICY.replay_window_seconds + SPENT_RETENTION_SECONDS - 3);
    assert!(held(&etcd).is_some() && etcd.keys.contains_key(other.as_bytes()));
    etcd.advance(60);
    assert!(etcd.keys.is_empty(), "both gone within a minute of their end");
}

#[test]
fn a_record_changed_by_another_replica_is_read_by_the_failed_compare_and_written_over() {
    let settings = settings();
    let mut etcd = Etcd::new();
    let now = etcd.now;
    let claim = crate::etcd::claim::claim(&settings, key(), POLICY, now * 1_000);
    drive(&mut etcd, claim);
    // Another replica writes the record this worker knows.
    etcd.put_raw(key().as_bytes(), &record::encode_entry(&Entry::Pending { since: now, pass: Some(pass()) }), 0);
    etcd.calls.clear();
    let settled = Entry::Settled { at: now, receipt: receipt() };
    let done = drive(&mut etcd, put(&settings, key(), settled.clone(), POLICY, now * 1_000));
    assert_eq!(done.result, Ok(()));
    // The settlement's lease first (none held yet), then the compare lost, and won on what won.
    assert_eq!(etcd.calls, [wire::LEASE_GRANT, wire::TXN, wire::TXN], "lost, then written over what won");
    assert_eq!(held(&etcd), Some(settled));
    // Forgotten elsewhere: the compare fails, the record is created again.
    etcd.keys.clear();
    etcd.calls.clear();
    let spent = Entry::Spent { at: now };
    assert_eq!(drive(&mut etcd, put(&settings, key(), spent.clone(), POLICY, now * 1_000)).result, Ok(()));
    assert_eq!(etcd.calls, [wire::TXN, wire::TXN]);
    assert_eq!(held(&etcd), Some(spent));
}

#[test]
fn a_lease_etcd_no_longer_has_is_granted_again_once() {
    let settings = settings();
    let mut etcd = Etcd::new();
    etcd.now += 10; // not at the end of a lease's span
    purchase(&mut etcd, &settings, &key());
    // etcd lost every lease (its data restored, or the leases ran out).
    etcd.leases.clear();
    etcd.calls.clear();
    etcd.advance(1);
    let other = keys::purchase(&settings, &"0e".repeat(32)).unwrap();
    purchase(&mut etcd, &settings, &other);
    // The claim reads its key first; then it and the two states after it find their leases gone.
    let refused_then_granted = [wire::TXN, wire::LEASE_GRANT, wire::TXN];
    let mut expected = vec![wire::RANGE];
    expected.extend(refused_then_granted.repeat(3));
    assert_eq!(etcd.calls, expected);
    assert_eq!(etcd.leases.len(), 3);
    // Refused twice in one write: unavailable (etcd is not keeping leases).
    let signed = Entry::Pending { since: etcd.now, pass: Some(pass()) };
    let (mut op, step) = put(&settings, other.clone(), signed, POLICY, etcd.now * 1_000);
    let mut step = step;
    let gone = br#"{"error":"etcdserver: requested lease not found","message":"etcdserver: requested lease not found","code":5}"#;
    let mut calls = Vec::new();
    let done = loop {
        match step {
            Step::Send(call) if call.path == wire::TXN => {
                calls.push(call.path);
                step = op.on_reply(Reply::Response { status: 404, body: gone }, etcd.now * 1_000);
            }
            Step::Send(call) => {
                calls.push(call.path);
                let (status, body) = etcd.answer(&call);
                step = op.on_reply(Reply::Response { status, body: &body }, etcd.now * 1_000);
            }
            Step::Finish(done) => break done,
        }
    };
    assert_eq!(done.result, Err(Unavailable::Status(404)));
    assert_eq!(calls, [wire::TXN, wire::LEASE_GRANT, wire::TXN]);
}

#[test]
fn a_put_that_loses_its_compare_reads_again_and_writes_over_what_won() {
    let mut etcd = Etcd::new();
    let now_ms = etcd.now * 1_000;
    let (mut op, step) = put(&settings(), key(), Entry::Spent { at: etcd.now }, POLICY, now_ms);
    let Step::Send(read) = step else { panic!() };
    let (status, body) = etcd.answer(&read);
    let Step::Send(grant) = op.on_reply(Reply::Response { status, body: &body }, now_ms) else { panic!() };
    let (status, body) = etcd.answer(&grant);
    let step = op.on_reply(Reply::Response { status, body: &body }, now_ms);
    // Another writer creates the record before our create.
    etcd.put_raw(key().as_bytes(), &record::encode_entry(&Entry::Pending { since: etcd.now, pass: None }), 0);
    let Step::Send(txn) = step else { panic!() };
    let (status, body) = etcd.answer(&txn);
    let Step::Send(again) = op.on_reply(Reply::Response { status, body: &body }, now_ms) else { panic!() };
    assert_eq!(again.path, wire::TXN, "the granted lease is reused");
    let (status, body) = etcd.answer(&again);
    let Step::Finish(done) = op.on_reply(Reply::Response { status, body: &body }, now_ms) else { panic!() };
    assert_eq!(done.result, Ok(()));
    assert!(done.cleanup.is_empty());
    assert_eq!(held(&etcd), Some(Entry::Spent { at: etcd.now }));
}

#[test]
fn an_unreadable_record_is_written_over_and_a_failed_read_is_unavailable() {
    let mut etcd = Etcd::new();
    etcd.put_raw(key().as_bytes(), b"garbage", 0);
    let now = etcd.now;
    assert_eq!(run(&mut etcd, Entry::Spent { at: now }).result, Ok(()));
    assert_eq!(held(&etcd), Some(Entry::Spent { at: now }));

    let (mut op, _) = put(&settings(), key(), Entry::Spent { at: 1 }, POLICY, 1_000);
    let Step::Finish(done) = op.on_reply(Reply::TimedOut, 1_500) else { panic!() };
    assert_eq!(done.result, Err(Unavailable::TimedOut));
}

#[test]
fn a_lease_is_never_remembered_to_outlive_the_longest_lease() {
    // A policy that keeps settlements almost for ever: the record is cut to the longest lease,
    // and the lease is remembered as ending then, not at the end of its span.
    let forever = Policy { replay_window_seconds: u64::MAX / 2, stale_after_seconds: 25 };
    let settings = settings();
    let mut etcd = Etcd::new();
    etcd.now += 7; // the longest lease from now is not at the end of a span
    let now = etcd.now;
    let settled = Entry::Settled { at: now, receipt: receipt() };
    assert_eq!(drive(&mut etcd, put(&settings, key(), settled, forever, now * 1_000)).result, Ok(()));
    let longest = now + crate::etcd::LONGEST_LEASE_SECONDS;
    assert!(settings.memory().leases().iter().all(|(ends, _)| *ends <= longest));
    assert_eq!(etcd.lease_of(key().as_bytes()).unwrap().1, crate::etcd::LONGEST_LEASE_SECONDS);
}

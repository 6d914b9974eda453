use super::*;
use crate::etcd::keys;
use crate::etcd::record;
use crate::etcd::sim::{drive, pass, receipt, Etcd, POLICY};
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
fn each_state_is_written_under_a_lease_as_long_as_it_lives_and_the_old_lease_goes() {
    let mut etcd = Etcd::new();
    let now = etcd.now;
    assert_eq!(run(&mut etcd, Entry::Pending { since: now, pass: None }).result, Ok(()));
    assert_eq!(etcd.calls, [wire::RANGE, wire::LEASE_GRANT, wire::TXN]);
    assert_eq!(etcd.lease_of(key().as_bytes()).unwrap().1, POLICY.stale_after_seconds);

    let signed = Entry::Pending { since: now, pass: Some(pass()) };
    assert_eq!(run(&mut etcd, signed.clone()).result, Ok(()));
    assert_eq!(held(&etcd), Some(signed));
    assert_eq!(etcd.lease_of(key().as_bytes()).unwrap().1, UNKNOWN_RETENTION_SECONDS);
    assert_eq!(etcd.leases.len(), 1, "the pending's lease was revoked");

    let settled = Entry::Settled { at: now, receipt: receipt() };
    assert_eq!(run(&mut etcd, settled.clone()).result, Ok(()));
    assert_eq!(held(&etcd), Some(settled));
    let (lease, ttl) = etcd.lease_of(key().as_bytes()).unwrap();
    assert_eq!(ttl, POLICY.replay_window_seconds + SPENT_RETENTION_SECONDS);
    assert_eq!(etcd.leases.len(), 1);

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
    etcd.advance(1);
    assert_eq!(held(&etcd), None);
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

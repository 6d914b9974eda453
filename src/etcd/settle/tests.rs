use super::*;
use crate::entitlements::{Book, Entitlement};
use crate::etcd::entitlement::storing;
use crate::etcd::sim::{lives, pass, receipt, Etcd, POLICY};
use crate::etcd::{keys, put, record, Finished, MAX_ATTEMPTS};
use crate::replay::{Claim, SPENT_RETENTION_SECONDS};

const PAYER: &str = "GyGKxMyg1p9SsHfm15MkNUu1u9TN2JtTspcdmrtGUdse";
const LEEWAY: u64 = 30;
const GONE: &[u8] =
    br#"{"error":"etcdserver: requested lease not found","message":"etcdserver: requested lease not found","code":5}"#;

fn settings() -> Settings {
    Settings::new("/x402/", 1_000).unwrap()
}

fn key() -> Key {
    keys::purchase(&settings(), &"cd".repeat(32)).unwrap()
}

fn payer_key() -> Key {
    keys::entitlement(&settings(), PAYER).unwrap()
}

fn until(exp: u64) -> Entitlement {
    Entitlement { tier: "1h".into(), iat: exp.saturating_sub(3_600), exp, network: "solana:devnet".into() }
}

fn settled(at: u64) -> Entry {
    Entry::Settled { at, receipt: receipt() }
}

/// The settlement at `now` and an entitlement until `exp`, started.
fn start(now: u64, settings: &Settings, key: &Key, exp: u64) -> (Settling, Step<Stored>) {
    let entitled = storing(settings, PAYER, until(exp), LEEWAY).unwrap();
    settle(settings, key.clone(), settled(now), POLICY, entitled, now * 1_000)
}

/// Runs the operation to its end against `etcd`; `answer` may answer a call in etcd's place.
fn drive_with(
    etcd: &mut Etcd,
    (mut op, mut step): (Settling, Step<Stored>),
    mut answer: impl FnMut(&mut Etcd, &crate::etcd::Call) -> Option<(u32, Vec<u8>)>,
) -> Finished<Stored> {
    let now_ms = etcd.now * 1_000;
    for _ in 0..32 {
        match step {
            Step::Send(call) => {
                let (status, body) = answer(etcd, &call).unwrap_or_else(|| etcd.answer(&call));
                step = op.on_reply(Reply::Response { status, body: &body }, now_ms);
            }
            Step::Finish(finished) => return finished,
        }
    }
    panic!("the operation did not finish in 32 calls");
}

fn drive(etcd: &mut Etcd, started: (Settling, Step<Stored>)) -> Finished<Stored> {
    drive_with(etcd, started, |_, _| None)
}

fn held(etcd: &Etcd, key: &Key) -> Option<Entry> {
    etcd.keys.get(key.as_bytes()).map(|s| record::decode_entry(&s.value).unwrap())
}

fn entitlement(etcd: &Etcd) -> Option<Entitlement> {
    etcd.keys.get(payer_key().as_bytes()).and_then(|s| Book::decode(Some(&s.value)).get(PAYER).cloned())
}

/// A purchase's first records as one worker writes them: its claim, its pending pass.
fn claimed_and_pending(etcd: &mut Etcd, settings: &Settings, key: &Key) {
    let now_ms = etcd.now * 1_000;
    let claim = crate::etcd::claim::claim(settings, key.clone(), POLICY, now_ms);
    assert_eq!(crate::etcd::sim::drive(etcd, claim).result, Ok(Claim::Fresh));
    let signed = Entry::Pending { since: etcd.now, pass: Some(pass()) };
    assert_eq!(crate::etcd::sim::drive(etcd, put::put(settings, key.clone(), signed, POLICY, now_ms)).result, Ok(()));
}

#[test]
fn a_settlement_and_its_entitlement_are_one_transaction_under_leases_as_long_as_each_lives() {
    let settings = settings();
    let mut etcd = Etcd::new();
    etcd.now += 10; // not at the end of a lease's span
    let now = etcd.now;
    claimed_and_pending(&mut etcd, &settings, &key());
    etcd.calls.clear();
    let done = drive(&mut etcd, start(now, &settings, &key(), now + 3_600));
    assert_eq!(done.result, Ok(Stored::Stored));
    // From the pending pass this worker wrote and the payer it never saw: no read; a lease for
    // each record's span, then one transaction.
    assert_eq!(etcd.calls, [wire::LEASE_GRANT, wire::LEASE_GRANT, wire::TXN]);
    assert_eq!(held(&etcd, &key()), Some(settled(now)));
    assert_eq!(entitlement(&etcd), Some(until(now + 3_600)));
    assert!(lives(etcd.lease_of(key().as_bytes()).unwrap().1, POLICY.replay_window_seconds + SPENT_RETENTION_SECONDS));
    assert!(lives(etcd.lease_of(payer_key().as_bytes()).unwrap().1, 3_600 + LEEWAY));
    let (record, payer) = (etcd.keys[key().as_bytes()].clone(), etcd.keys[payer_key().as_bytes()].clone());
    assert_eq!(record.mod_revision, payer.mod_revision, "one transaction, one revision");
    // What the worker remembers is what etcd holds: the next write of either key compares it.
    let known = settings.memory().known(payer_key().as_bytes()).unwrap();
    assert_eq!((known.mod_revision, known.lease, known.value), (payer.mod_revision, payer.lease, payer.value));
    assert_eq!(settings.memory().known(key().as_bytes()).unwrap().mod_revision, record.mod_revision);

    // The next purchase on this worker by the same payer, a little later: the leases it holds,
    // its own pending pass and the payer's record as it wrote it. One call.
    etcd.advance(2);
    let other = keys::purchase(&settings, &"0e".repeat(32)).unwrap();
    claimed_and_pending(&mut etcd, &settings, &other);
    etcd.calls.clear();
    let done = drive(&mut etcd, start(now + 2, &settings, &other, now + 3_602));
    assert_eq!(done.result, Ok(Stored::Stored));
    assert_eq!(etcd.calls, [wire::TXN]);
    assert_eq!(entitlement(&etcd), Some(until(now + 3_602)));
    assert_eq!(held(&etcd, &other), Some(settled(etcd.now)));
}

#[test]
fn an_entitlement_held_that_expires_later_is_compared_not_written() {
    let settings = settings();
    let mut etcd = Etcd::new();
    let now = etcd.now;
    let later = storing(&settings, PAYER, until(now + 7_200), LEEWAY).unwrap();
    let (op, step) =
        crate::etcd::entitlement::store(&settings, PAYER, until(now + 7_200), LEEWAY, now * 1_000).unwrap();
    drop(later);
    assert_eq!(crate::etcd::sim::drive(&mut etcd, (op, step)).result, Ok(Stored::Stored));
    let before = etcd.keys[payer_key().as_bytes()].clone();
    etcd.calls.clear();
    let started = start(now, &settings, &key(), now + 3_600);
    let Step::Send(txn) = &started.1 else { panic!("a call first") };
    assert_eq!(txn.path, wire::LEASE_GRANT, "the settlement's lease");
    let compares = |body: &[u8]| serde_json::from_slice::<serde_json::Value>(body).unwrap()["compare"].clone();
    let mut bodies = Vec::new();
    let done = drive_with(&mut etcd, started, |_, call| {
        bodies.push(call.body.clone());
        None
    });
    assert_eq!(done.result, Ok(Stored::Kept));
    assert_eq!(etcd.calls, [wire::LEASE_GRANT, wire::TXN], "the payer's record as this worker knows it");
    let txn: serde_json::Value = serde_json::from_slice(bodies.last().unwrap()).unwrap();
    assert_eq!(compares(bodies.last().unwrap()).as_array().unwrap().len(), 2, "the entitlement is compared");
    assert_eq!(txn["success"].as_array().unwrap().len(), 1, "only the settlement is written");
    assert_eq!(txn["failure"].as_array().unwrap().len(), 2, "both read if a compare fails");
    let after = etcd.keys[payer_key().as_bytes()].clone();
    assert_eq!((after.mod_revision, after.value), (before.mod_revision, before.value));
    assert_eq!(held(&etcd, &key()), Some(settled(now)));
}

#[test]
fn a_kept_entitlement_decided_on_memory_that_another_replica_changed_is_decided_again() {
    let settings = settings();
    let mut etcd = Etcd::new();
    let now = etcd.now;
    let stored = crate::etcd::entitlement::store(&settings, PAYER, until(now + 7_200), LEEWAY, now * 1_000).unwrap();
    crate::etcd::sim::drive(&mut etcd, stored);
    // Another replica sells the payer a later one: this worker's memory is stale.
    let book = |exp: u64| {
        let mut book = Book::default();
        book.grant(PAYER, until(exp));
        book.encode()
    };
    etcd.put_raw(payer_key().as_bytes(), &book(now + 9_000), 0);
    etcd.calls.clear();
    let done = drive(&mut etcd, start(now, &settings, &key(), now + 3_600));
    assert_eq!(done.result, Ok(Stored::Kept));
    // The compare on memory lost (not counted), both keys were read in that transaction, and the
    // entitlement is kept on what etcd holds.
    assert_eq!(etcd.calls, [wire::LEASE_GRANT, wire::TXN, wire::TXN]);
    assert_eq!(entitlement(&etcd), Some(until(now + 9_000)));
    assert_eq!(held(&etcd, &key()), Some(settled(now)));
}

#[test]
fn an_entitlement_already_over_is_left_out_and_the_settlement_still_written() {
    let settings = settings();
    let mut etcd = Etcd::new();
    let now = etcd.now;
    let mut bodies = Vec::new();
    let done = drive_with(&mut etcd, start(now, &settings, &key(), now - LEEWAY), |_, call| {
        bodies.push(call.body.clone());
        None
    });
    assert_eq!(done.result, Ok(Stored::Expired));
    let txn: serde_json::Value = serde_json::from_slice(bodies.last().unwrap()).unwrap();
    assert_eq!(txn["compare"].as_array().unwrap().len(), 1, "the payer's key is not in it");
    assert_eq!(entitlement(&etcd), None);
    assert_eq!(held(&etcd, &key()), Some(settled(now)));
    // The record changed by another replica since: only it is read again, and written over.
    etcd.put_raw(key().as_bytes(), &record::encode_entry(&Entry::Unknown { since: now, pass: pass() }), 0);
    etcd.calls.clear();
    let mut bodies = Vec::new();
    let done = drive_with(&mut etcd, start(now, &settings, &key(), now - LEEWAY), |_, call| {
        bodies.push(call.body.clone());
        None
    });
    assert_eq!(done.result, Ok(Stored::Expired));
    assert_eq!(etcd.calls, [wire::TXN, wire::TXN]);
    let lost: serde_json::Value = serde_json::from_slice(&bodies[0]).unwrap();
    assert_eq!(lost["failure"].as_array().unwrap().len(), 1);
    assert_eq!(held(&etcd, &key()), Some(settled(now)));
    assert_eq!(entitlement(&etcd), None);
}

#[test]
fn records_changed_by_another_replica_are_read_by_the_failed_compare_and_both_written_over() {
    let settings = settings();
    let mut etcd = Etcd::new();
    let now = etcd.now;
    claimed_and_pending(&mut etcd, &settings, &key());
    // Another replica writes both keys since: the payer's with an earlier pass.
    etcd.put_raw(key().as_bytes(), &record::encode_entry(&Entry::Unknown { since: now, pass: pass() }), 0);
    let mut book = Book::default();
    book.grant(PAYER, until(now + 60));
    etcd.put_raw(payer_key().as_bytes(), &book.encode(), 0);
    etcd.calls.clear();
    let done = drive(&mut etcd, start(now, &settings, &key(), now + 3_600));
    assert_eq!(done.result, Ok(Stored::Stored));
    assert_eq!(etcd.calls, [wire::LEASE_GRANT, wire::LEASE_GRANT, wire::TXN, wire::TXN], "lost, then written over");
    assert_eq!(held(&etcd, &key()), Some(settled(now)));
    assert_eq!(entitlement(&etcd), Some(until(now + 3_600)));
    // Both records gone (forgotten, expired): the compare fails, both are created again.
    etcd.keys.clear();
    etcd.calls.clear();
    assert_eq!(drive(&mut etcd, start(now, &settings, &key(), now + 3_600)).result, Ok(Stored::Stored));
    assert_eq!(etcd.calls, [wire::TXN, wire::TXN]);
    assert_eq!(entitlement(&etcd), Some(until(now + 3_600)));
}

#[test]
fn a_transaction_that_keeps_losing_is_busy_after_max_attempts() {
    let settings = settings();
    let mut etcd = Etcd::new();
    let now = etcd.now;
    let mut txns = 0;
    let done = drive_with(&mut etcd, start(now, &settings, &key(), now + 3_600), |etcd, call| {
        if call.path == wire::TXN {
            // Another replica writes the record just before each transaction.
            txns += 1;
            etcd.put_raw(key().as_bytes(), &record::encode_entry(&Entry::Pending { since: now, pass: None }), 0);
        }
        None
    });
    assert_eq!(done.result, Err(Unavailable::Busy));
    assert_eq!(txns, MAX_ATTEMPTS + 1, "the first start was a guess: not counted");
    assert_eq!(entitlement(&etcd), None, "all or nothing");
}

#[test]
fn a_lease_etcd_lost_refuses_the_whole_transaction_and_is_granted_again_once() {
    let settings = settings();
    let mut etcd = Etcd::new();
    etcd.now += 10;
    let now = etcd.now;
    claimed_and_pending(&mut etcd, &settings, &key());
    assert_eq!(drive(&mut etcd, start(now, &settings, &key(), now + 3_600)).result, Ok(Stored::Stored));
    // etcd lost the entitlement's lease only: nothing of the next transaction is written, both
    // leases are forgotten and granted again, and the transaction made once more.
    let entitlement_lease = etcd.keys[payer_key().as_bytes()].lease;
    etcd.leases.remove(&entitlement_lease);
    etcd.keys.remove(payer_key().as_bytes());
    let other = keys::purchase(&settings, &"0e".repeat(32)).unwrap();
    claimed_and_pending(&mut etcd, &settings, &other);
    let pending = held(&etcd, &other);
    etcd.calls.clear();
    let mut seen = Vec::new();
    let done = drive_with(&mut etcd, start(now, &settings, &other, now + 3_600), |etcd, call| {
        let answer = etcd.answer(call);
        seen.push((call.path, answer.0, held(etcd, &other)));
        Some(answer)
    });
    assert_eq!(done.result, Ok(Stored::Stored));
    let paths: Vec<_> = seen.iter().map(|(path, ..)| *path).collect();
    // The payer's record went with its lease: the compare on memory loses first (both read), the
    // transaction on what etcd holds is refused, both leases are asked for again.
    assert_eq!(paths, [wire::TXN, wire::TXN, wire::LEASE_GRANT, wire::LEASE_GRANT, wire::TXN]);
    assert_eq!((seen[1].1, &seen[1].2), (404, &pending), "refused: the settlement was not written either");
    assert_eq!(entitlement(&etcd), Some(until(now + 3_600)));
    // Refused twice in one operation: unavailable (etcd is not keeping leases).
    let done = drive_with(&mut etcd, start(now, &settings, &other, now + 3_700), |_, call| {
        (call.path == wire::TXN).then(|| (404, GONE.to_vec()))
    });
    assert_eq!(done.result, Err(Unavailable::Status(404)));
}

#[test]
fn no_answer_is_unavailable_and_what_the_worker_knew_of_both_keys_is_void() {
    let settings = settings();
    let mut etcd = Etcd::new();
    let now = etcd.now;
    claimed_and_pending(&mut etcd, &settings, &key());
    assert!(settings.memory().known(key().as_bytes()).is_some());
    let (mut op, mut step) = start(now, &settings, &key(), now + 3_600);
    let txn = loop {
        match step {
            Step::Send(call) if call.path == wire::TXN => break call,
            Step::Send(call) => {
                let (status, body) = etcd.answer(&call);
                step = op.on_reply(Reply::Response { status, body: &body }, now * 1_000);
            }
            Step::Finish(done) => panic!("{done:?}"),
        }
    };
    // The transaction reached etcd, and its answer was lost.
    etcd.answer(&txn);
    let Step::Finish(done) = op.on_reply(Reply::TimedOut, now * 1_000) else { panic!() };
    assert_eq!(done.result, Err(Unavailable::TimedOut));
    assert_eq!(settings.memory().known(key().as_bytes()), None);
    assert_eq!(settings.memory().known(payer_key().as_bytes()), None);
    // Written again (the kept record's retry): both compares fail on what committed, both are
    // read and decided again; the entitlement is kept, the settlement written over itself.
    etcd.calls.clear();
    assert_eq!(drive(&mut etcd, start(now, &settings, &key(), now + 3_600)).result, Ok(Stored::Kept));
    assert_eq!(etcd.calls, [wire::TXN, wire::TXN]);
    // A garbled answer, a refusal, an answer after the end: unavailable.
    for (reply, why) in [
        (Reply::Response { status: 200, body: b"{}" }, Unavailable::Garbled),
        (Reply::Response { status: 503, body: b"" }, Unavailable::Status(503)),
        (Reply::Failed, Unavailable::Failed),
    ] {
        let (mut op, _) = start(now, &settings, &key(), now + 3_600);
        let Step::Finish(done) = op.on_reply(reply, now * 1_000) else { panic!() };
        assert_eq!(done.result, Err(why));
        let Step::Finish(again) = op.on_reply(Reply::Failed, now * 1_000) else { panic!() };
        assert_eq!(again.result, Err(Unavailable::Garbled), "an answer nobody asked for");
    }
}

#[test]
fn no_call_leaves_once_the_operation_is_out_of_time() {
    let settings = settings();
    let etcd = Etcd::new();
    let now_ms = etcd.now * 1_000;
    let (mut op, step) = start(etcd.now, &settings, &key(), etcd.now + 3_600);
    let Step::Send(grant) = step else { panic!() };
    assert_eq!(grant.timeout_ms, settings.timeout_ms());
    let grant_answer = br#"{"header":{"revision":"1"},"ID":"42","TTL":"60"}"#;
    let Step::Finish(done) =
        op.on_reply(Reply::Response { status: 200, body: grant_answer }, now_ms + settings.timeout_ms())
    else {
        panic!("no time left: no call")
    };
    assert_eq!(done.result, Err(Unavailable::Deadline));
}

#[test]
fn a_record_too_large_is_never_sent() {
    let settings = settings();
    let etcd = Etcd::new();
    let mut big = receipt();
    big.body = "x".repeat(wire::MAX_VALUE_BYTES);
    let entitled = storing(&settings, PAYER, until(etcd.now + 3_600), LEEWAY).unwrap();
    let entry = Entry::Settled { at: etcd.now, receipt: big };
    let (_, step) = settle(&settings, key(), entry, POLICY, entitled, etcd.now * 1_000);
    let Step::Finish(done) = step else { panic!("nothing sent") };
    assert_eq!(done.result, Err(Unavailable::BadRecord));
}

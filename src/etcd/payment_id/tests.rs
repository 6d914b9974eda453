use super::*;
use crate::etcd::sim::{drive, race, receipt, Etcd, POLICY};
use crate::etcd::Unavailable;
use crate::etcd::{claim, keys, put, wire, Finished, Reply};
use crate::replay::Entry;

fn settings() -> Settings {
    Settings::new("/x402/", 1_000).unwrap()
}

fn key() -> Key {
    keys::payment_id(&settings(), "pay_7d5e0d8b2c4a4f1e9b3a").unwrap()
}

fn payment(p: &str) -> String {
    p.repeat(32)
}

fn binding(p: &str, request: &str, takeover: Option<&str>) -> Binding {
    Binding {
        request: request.repeat(32),
        bucket: 3,
        payment: payment(p),
        takeover: takeover.map(payment),
        policy: POLICY,
    }
}

fn bind_now(etcd: &mut Etcd, b: Binding) -> Finished<IdClaim> {
    let started = bind(&settings(), key(), b, etcd.now * 1_000);
    drive(etcd, started)
}

#[test]
fn the_first_payment_owns_an_id_and_later_ones_learn_whose_it_is() {
    let mut etcd = Etcd::new();
    assert_eq!(bind_now(&mut etcd, binding("aa", "r1", None)).result, Ok(IdClaim::Bound));
    assert_eq!(etcd.calls, [wire::LEASE_GRANT, wire::TXN], "a new id is one lease and one create");
    assert_eq!(bind_now(&mut etcd, binding("aa", "r1", None)).result, Ok(IdClaim::Bound), "its own payment again");
    assert_eq!(
        bind_now(&mut etcd, binding("bb", "r1", None)).result,
        Ok(IdClaim::Taken { bucket: 3, payment: payment("aa"), stale: false })
    );
    assert_eq!(bind_now(&mut etcd, binding("bb", "r2", None)).result, Ok(IdClaim::Conflict));
    assert_eq!(etcd.leases.len(), 4, "no lease is revoked: the unused ones run out");
    etcd.advance(POLICY.stale_after_seconds);
    assert_eq!(
        bind_now(&mut etcd, binding("bb", "r1", None)).result,
        Ok(IdClaim::Taken { bucket: 3, payment: payment("aa"), stale: true }),
        "an old binding is said to be stale"
    );
    assert_eq!(bind_now(&mut etcd, binding("bb", "r1", Some("aa"))).result, Ok(IdClaim::Bound), "taken over");
    assert_eq!(
        bind_now(&mut etcd, binding("cc", "r1", Some("aa"))).result,
        Ok(IdClaim::Taken { bucket: 3, payment: payment("bb"), stale: false }),
        "a takeover of a payment that no longer holds the id takes nothing"
    );
}

#[test]
fn two_payments_racing_for_one_id_bind_it_once() {
    let mut etcd = Etcd::new();
    let now_ms = etcd.now * 1_000;
    let a = bind(&settings(), key(), binding("aa", "r1", None), now_ms);
    let b = bind(&settings(), key(), binding("bb", "r1", None), now_ms);
    let (a, b) = race(&mut etcd, a, b);
    assert_eq!(a.result, Ok(IdClaim::Bound));
    assert_eq!(b.result, Ok(IdClaim::Taken { bucket: 3, payment: payment("aa"), stale: false }));
}

#[test]
fn only_the_payment_holding_an_id_lets_it_go() {
    let mut etcd = Etcd::new();
    assert_eq!(bind_now(&mut etcd, binding("aa", "r1", None)).result, Ok(IdClaim::Bound));
    let now_ms = etcd.now * 1_000;
    assert_eq!(drive(&mut etcd, release(&settings(), key(), payment("bb"), now_ms)).result, Ok(()));
    assert!(etcd.value(key().as_bytes()).is_some(), "another payment's release leaves it");
    assert_eq!(drive(&mut etcd, release(&settings(), key(), payment("aa"), now_ms)).result, Ok(()));
    assert!(etcd.value(key().as_bytes()).is_none(), "its own release deletes it");
    assert_eq!(etcd.leases.len(), 1, "its lease is left to run out (it may hold others)");
    assert_eq!(drive(&mut etcd, release(&settings(), key(), payment("aa"), now_ms)).result, Ok(()), "absent: done");
    assert_eq!(bind_now(&mut etcd, binding("bb", "r2", None)).result, Ok(IdClaim::Bound), "free again");
}

#[test]
fn a_release_that_loses_to_a_rebind_deletes_nothing() {
    let mut etcd = Etcd::new();
    assert_eq!(bind_now(&mut etcd, binding("aa", "r1", None)).result, Ok(IdClaim::Bound));
    let now_ms = etcd.now * 1_000;
    let (mut op, Step::Send(read)) = release(&settings(), key(), payment("aa"), now_ms) else { panic!() };
    let (status, body) = etcd.answer(&read);
    let Step::Send(delete) = op.on_reply(Reply::Response { status, body: &body }, now_ms) else { panic!() };
    // Between the read and the delete, the id is taken over by another payment.
    etcd.advance(POLICY.stale_after_seconds);
    assert_eq!(bind_now(&mut etcd, binding("bb", "r1", Some("aa"))).result, Ok(IdClaim::Bound));
    let (status, body) = etcd.answer(&delete);
    let Step::Finish(done) = op.on_reply(Reply::Response { status, body: &body }, now_ms) else { panic!() };
    assert_eq!(done.result, Ok(()));
    assert_eq!(
        bind_now(&mut etcd, binding("cc", "r1", None)).result,
        Ok(IdClaim::Taken { bucket: 3, payment: payment("bb"), stale: false }),
        "the new holder keeps it"
    );
}

#[test]
fn look_reads_where_a_first_payment_stands() {
    let mut etcd = Etcd::new();
    let at = keys::purchase(&settings(), &"ab".repeat(32)).unwrap();
    let now_ms = etcd.now * 1_000;
    let looked = |etcd: &mut Etcd| drive(etcd, look(&settings(), at.clone(), POLICY, etcd.now * 1_000)).result;
    assert_eq!(looked(&mut etcd), Ok(FirstOutcome::Absent));
    assert_eq!(
        drive(&mut etcd, claim::claim(&settings(), at.clone(), POLICY, now_ms)).result.ok(),
        Some(crate::replay::Claim::Fresh)
    );
    assert_eq!(looked(&mut etcd), Ok(FirstOutcome::InProgress));
    let settled = Entry::Settled { at: etcd.now, receipt: receipt() };
    assert_eq!(drive(&mut etcd, put::put(&settings(), at.clone(), settled, POLICY, now_ms)).result, Ok(()));
    assert_eq!(looked(&mut etcd), Ok(FirstOutcome::Settled(receipt())));
    etcd.advance(POLICY.replay_window_seconds + 1);
    assert_eq!(looked(&mut etcd), Ok(FirstOutcome::Spent));
}

#[test]
fn records_this_filter_did_not_write_are_never_guessed_about() {
    let mut etcd = Etcd::new();
    etcd.put_raw(key().as_bytes(), b"{\"purchase\":\"aa\",\"request\":\"bb\"}", 0);
    assert_eq!(bind_now(&mut etcd, binding("aa", "r1", None)).result, Err(Unavailable::BadRecord));
    let now_ms = etcd.now * 1_000;
    assert_eq!(drive(&mut etcd, release(&settings(), key(), payment("aa"), now_ms)).result, Ok(()));
    assert!(etcd.value(key().as_bytes()).is_some(), "an unreadable record is not deleted");
    let (mut op, _) = bind(&settings(), key(), binding("aa", "r1", None), now_ms);
    let Step::Finish(done) = op.on_reply(Reply::TimedOut, now_ms) else { panic!() };
    assert_eq!(done.result, Err(Unavailable::TimedOut));
}

use super::*;
use crate::etcd::keys;
use crate::etcd::sim::{drive, race, Etcd};
use crate::etcd::{wire, Finished, Reply};

fn settings() -> Settings {
    Settings::new("/x402/", 1_000).unwrap()
}

fn key() -> Key {
    keys::payment_id(&settings(), "pay_7d5e0d8b2c4a4f1e9b3a").unwrap()
}

fn binding(purchase: &str, path: &str) -> Binding {
    Binding { purchase: purchase.repeat(32), request: request_fingerprint(b"GET", path.as_bytes(), b"") }
}

fn starting(etcd: &Etcd, b: Binding) -> (Op<Bind>, Step<IdClaim>) {
    bind(&settings(), key(), b, etcd.now + 86_400, etcd.now * 1_000).unwrap()
}

fn run(etcd: &mut Etcd, b: Binding) -> Finished<IdClaim> {
    let started = starting(etcd, b);
    drive(etcd, started)
}

#[test]
fn the_first_payment_owns_an_id_and_later_ones_learn_whose_it_is() {
    let mut etcd = Etcd::new();
    assert_eq!(run(&mut etcd, binding("aa", "/data")).result, Ok(IdClaim::Bound));
    assert_eq!(etcd.calls, [wire::LEASE_GRANT, wire::TXN]);
    assert_eq!(etcd.lease_of(key().as_bytes()).unwrap().1, 86_400);
    assert_eq!(run(&mut etcd, binding("aa", "/data")).result, Ok(IdClaim::SamePayment));
    assert_eq!(run(&mut etcd, binding("bb", "/data")).result, Ok(IdClaim::OtherPayment { purchase: "aa".repeat(32) }));
    assert_eq!(run(&mut etcd, binding("bb", "/other")).result, Ok(IdClaim::OtherRequest));
    assert_eq!(run(&mut etcd, binding("aa", "/other")).result, Ok(IdClaim::OtherRequest));
    assert_eq!(etcd.leases.len(), 1, "the leases of creates that lost are revoked");
    etcd.advance(86_400);
    assert_eq!(run(&mut etcd, binding("bb", "/other")).result, Ok(IdClaim::Bound), "it lived its life");
}

#[test]
fn two_payments_racing_for_one_id_bind_it_once() {
    let mut etcd = Etcd::new();
    let a = starting(&etcd, binding("aa", "/data"));
    let b = starting(&etcd, binding("bb", "/data"));
    let (a, b) = race(&mut etcd, a, b);
    assert_eq!(a.result, Ok(IdClaim::Bound));
    assert_eq!(b.result, Ok(IdClaim::OtherPayment { purchase: "aa".repeat(32) }));
}

#[test]
fn fingerprints_tell_requests_apart_and_bindings_are_checked() {
    let f = |m: &str, p: &str, q: &str| request_fingerprint(m.as_bytes(), p.as_bytes(), q.as_bytes());
    assert_eq!(f("GET", "/a", "b=1"), f("GET", "/a", "b=1"));
    assert_ne!(f("GET", "/a", "b=1"), f("POST", "/a", "b=1"));
    assert_ne!(f("GET", "/a", "b=1"), f("GET", "/a", "b=2"));
    assert_ne!(f("GET", "/ab", ""), f("GET", "/a", "b"), "parts do not run into each other");
    assert_eq!(f("GET", "/", "").len(), 64);
    let etcd = Etcd::new();
    assert!(bind(&settings(), key(), Binding { purchase: "x".into(), request: f("GET", "/", "") }, 1, 0).is_none());
    let mut etcd2 = Etcd::new();
    etcd2.put_raw(key().as_bytes(), b"{\"purchase\":\"aa\",\"request\":\"bb\"}", 0);
    assert_eq!(run(&mut etcd2, binding("aa", "/data")).result, Err(Unavailable::BadRecord));
    let (mut op, _) = starting(&etcd, binding("aa", "/data"));
    let Step::Finish(done) = op.on_reply(Reply::TimedOut, 5) else { panic!() };
    assert_eq!(done.result, Err(Unavailable::TimedOut));
}

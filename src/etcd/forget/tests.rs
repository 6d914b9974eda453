use super::*;
use crate::etcd::keys;
use crate::etcd::sim::{Etcd, POLICY};

fn settings() -> Settings {
    Settings::new("/x402/", 1_000).unwrap()
}

fn key() -> Key {
    keys::purchase(&settings(), &"ef".repeat(32)).unwrap()
}

fn run(etcd: &mut Etcd) -> Finished<()> {
    let (mut op, step) = forget(&settings(), key());
    let Step::Send(call) = step else { panic!() };
    assert_eq!(call.path, wire::DELETE_RANGE);
    let (status, body) = etcd.answer(&call);
    let Step::Finish(done) = op.on_reply(Reply::Response { status, body: &body }, 0) else { panic!() };
    etcd.clean(&done);
    done
}

#[test]
fn forgetting_deletes_the_record_and_leaves_its_lease_to_run_out() {
    let mut etcd = Etcd::new();
    let started = crate::etcd::claim::claim(&settings(), key(), POLICY, etcd.now * 1_000);
    crate::etcd::sim::drive(&mut etcd, started);
    assert_eq!(etcd.leases.len(), 1);
    let done = run(&mut etcd);
    assert_eq!(done.result, Ok(()));
    assert!(done.cleanup.is_empty(), "a lease may hold other records: never revoked");
    assert!(etcd.keys.is_empty());
    assert_eq!(etcd.leases.len(), 1);
    // Nothing there: done.
    assert_eq!(run(&mut etcd), Finished { result: Ok(()), cleanup: Vec::new() });
}

#[test]
fn a_delete_without_an_answer_is_unavailable_and_answers_are_taken_once() {
    let (mut op, _) = forget(&settings(), key());
    let Step::Finish(done) = op.on_reply(Reply::TimedOut, 0) else { panic!() };
    assert_eq!(done.result, Err(Unavailable::TimedOut));
    let Step::Finish(done) = op.on_reply(Reply::Response { status: 200, body: b"{}" }, 0) else { panic!() };
    assert_eq!(done.result, Err(Unavailable::Garbled));
    let (mut op, _) = forget(&settings(), key());
    let Step::Finish(done) = op.on_reply(Reply::Response { status: 200, body: b"{\"deleted\":\"1\"}" }, 0) else {
        panic!()
    };
    assert_eq!(done.result, Err(Unavailable::Garbled));
}

use super::*;
use crate::etcd::keys;
use crate::etcd::sim::{drive, lives, race, Etcd};
use crate::etcd::{wire, Finished, Reply};

const PAYER: &str = "GyGKxMyg1p9SsHfm15MkNUu1u9TN2JtTspcdmrtGUdse";
const LEEWAY: u64 = 30;

fn settings() -> Settings {
    Settings::new("/x402/", 1_000).unwrap()
}

fn key() -> keys::Key {
    keys::entitlement(&settings(), PAYER).unwrap()
}

fn pass_until(iat: u64, exp: u64) -> Entitlement {
    Entitlement { tier: "1h".into(), iat, exp, network: "solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1".into() }
}

fn starting(etcd: &Etcd, entitlement: Entitlement) -> (Op<Storing>, Step<Stored>) {
    store(&settings(), PAYER, entitlement, LEEWAY, etcd.now * 1_000).unwrap()
}

fn run(etcd: &mut Etcd, entitlement: Entitlement) -> Finished<Stored> {
    let started = starting(etcd, entitlement);
    drive(etcd, started)
}

fn get(etcd: &mut Etcd) -> Result<Option<Entitlement>, Unavailable> {
    let started = read(&settings(), PAYER, etcd.now * 1_000).unwrap();
    drive(etcd, started).result
}

#[test]
fn an_entitlement_is_kept_until_it_expires_and_the_latest_expiring_wins() {
    let mut etcd = Etcd::new();
    let now = etcd.now;
    assert_eq!(get(&mut etcd), Ok(None));
    assert_eq!(run(&mut etcd, pass_until(now, now + 3_600)).result, Ok(Stored::Stored));
    assert_eq!(get(&mut etcd), Ok(Some(pass_until(now, now + 3_600))));
    assert!(lives(etcd.lease_of(key().as_bytes()).unwrap().1, 3_600 + LEEWAY));
    // One expiring earlier (or at the same time) does not replace it.
    assert_eq!(run(&mut etcd, pass_until(now - 100, now + 600)).result, Ok(Stored::Kept));
    assert_eq!(run(&mut etcd, pass_until(now + 5, now + 3_600)).result, Ok(Stored::Kept));
    assert_eq!(get(&mut etcd), Ok(Some(pass_until(now, now + 3_600))));
    // A later one does, under a new lease; the old one is left to run out.
    assert_eq!(run(&mut etcd, pass_until(now, now + 86_400)).result, Ok(Stored::Stored));
    assert_eq!(get(&mut etcd), Ok(Some(pass_until(now, now + 86_400))));
    // (No lease is revoked: those asked for by the two kept ones, which guessed the payer held
    // none, are left to run out too.)
    assert_eq!(etcd.leases.len(), 4);
    etcd.advance(86_400 + LEEWAY + 60);
    assert_eq!(get(&mut etcd), Ok(None), "gone with its lease");
    // One already over is not stored.
    let now = etcd.now;
    assert_eq!(run(&mut etcd, pass_until(now - 100, now - LEEWAY)).result, Ok(Stored::Expired));
    assert_eq!(get(&mut etcd), Ok(None));
}

#[test]
fn concurrent_sales_to_one_payer_end_with_the_latest_expiring() {
    for order in [[3_600, 7_200], [7_200, 3_600]] {
        let mut etcd = Etcd::new();
        let now = etcd.now;
        let a = starting(&etcd, pass_until(now, now + order[0]));
        let b = starting(&etcd, pass_until(now, now + order[1]));
        let (a, b) = race(&mut etcd, a, b);
        assert!(a.result.is_ok() && b.result.is_ok());
        assert_eq!(get(&mut etcd), Ok(Some(pass_until(now, now + 7_200))), "{order:?}");
        assert!(lives(etcd.lease_of(key().as_bytes()).unwrap().1, 7_200 + LEEWAY));
    }
}

#[test]
fn only_well_formed_entitlements_are_written_or_believed() {
    let etcd = Etcd::new();
    for bad in [
        Entitlement { tier: String::new(), ..pass_until(1, 2) },
        Entitlement { tier: "1h\r\nX: y".into(), ..pass_until(1, 2) },
        Entitlement { network: "a".repeat(65), ..pass_until(1, 2) },
        pass_until(3, 2),
    ] {
        assert!(store(&settings(), PAYER, bad, LEEWAY, etcd.now * 1_000).is_none());
    }
    for value in [
        &b"garbage"[..],
        b"{\"tier\":\"1h\",\"iat\":1,\"exp\":2,\"network\":\"n\"}",
        // Another payer's line; a tier that could not be a header; a line with a field too many.
        b"Someone\t1h\t1\t2\tn\n",
        b"GyGKxMyg1p9SsHfm15MkNUu1u9TN2JtTspcdmrtGUdse\t1 h\t1\t2\tn\n",
        b"GyGKxMyg1p9SsHfm15MkNUu1u9TN2JtTspcdmrtGUdse\t1h\t1\t2\tn\textra\n",
    ] {
        let mut etcd = Etcd::new();
        etcd.put_raw(key().as_bytes(), value, 0);
        assert_eq!(get(&mut etcd), Err(Unavailable::BadRecord), "{value:?}");
        // A sale writes over it.
        let now = etcd.now;
        assert_eq!(run(&mut etcd, pass_until(now, now + 60)).result, Ok(Stored::Stored));
        assert_eq!(get(&mut etcd), Ok(Some(pass_until(now, now + 60))));
    }
}

#[test]
fn a_lookup_that_cannot_reach_etcd_is_unavailable_never_none() {
    for reply in [Reply::TimedOut, Reply::Failed, Reply::Response { status: 503, body: b"" }] {
        let (mut op, step) = read(&settings(), PAYER, 0).unwrap();
        assert!(matches!(step, Step::Send(ref call) if call.path == wire::RANGE));
        let Step::Finish(done) = op.on_reply(reply, 10) else { panic!() };
        assert!(done.result.is_err());
    }
}

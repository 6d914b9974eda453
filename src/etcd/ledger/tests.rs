use super::*;
use crate::etcd::sim::{pass, receipt, Etcd, POLICY};
use crate::ledger::memory::MemoryStore;
use crate::ledger::{Ledger, LocalLedger};
use crate::replay::Entry;

const LEEWAY: u64 = 60;

fn settings() -> Settings {
    Settings::new("/x402/", 1_000).unwrap()
}

/// Runs `op` to its end on the simulated etcd, cleanup included, as the worker whose settings
/// (and memory of leases and records) are `settings`.
fn on_etcd(etcd: &mut Etcd, settings: &Settings, op: &LedgerOp) -> LedgerAnswer {
    let now_ms = etcd.now * 1_000;
    let (mut running, mut step) = start(settings, POLICY, LEEWAY, op, now_ms);
    for _ in 0..32 {
        match step {
            Step::Send(call) => {
                let (status, body) = etcd.answer(&call);
                step = running.on_reply(Reply::Response { status, body: &body }, now_ms);
            }
            Step::Finish(finished) => {
                etcd.clean(&finished);
                return finished.result.unwrap_or(LedgerAnswer::Unavailable);
            }
        }
    }
    panic!("the operation did not finish in 32 calls");
}

fn payment(hex: &str) -> PurchaseKey {
    PurchaseKey { bucket: 5, key: hex.repeat(32) }
}

fn identifier(id: &str) -> PurchaseKey {
    PurchaseKey::of_identifier(id)
}

fn entitlement(exp: u64) -> Entitlement {
    Entitlement { tier: "1h".into(), iat: exp - 3_600, exp, network: "solana:devnet".into() }
}

/// A settlement of payment `hex` at `at` and its payer's entitlement until `exp`, as one op.
fn settled_entitled(hex: &str, at: u64, payer: &str, exp: u64) -> LedgerOp {
    let entry = Box::new(Entry::Settled { at, receipt: receipt() });
    LedgerOp::PutEntitled { at: payment(hex), entry, payer: payer.into(), entitlement: entitlement(exp) }
}

/// How the ops of the script are spread over workers (each with its own memory of etcd).
#[derive(Debug, Clone, Copy)]
enum Workers {
    /// Every op on a worker of its own: nothing remembered (every op reads).
    Fresh,
    /// Every op on one worker: it writes from the revisions and leases it remembers.
    One,
    /// Ops on two workers in turn: each one's memory goes stale behind the other's writes.
    Two,
}

/// Every op the checkout makes, in the orders a purchase makes them, with the clock moving:
/// the etcd ledger answers exactly as the local ledger does, however the ops are spread over
/// workers and whatever each remembers.
#[test]
fn the_etcd_ledger_answers_every_op_as_the_local_ledger_does() {
    let calls = [Workers::Fresh, Workers::One, Workers::Two].map(same_answers);
    // What a worker remembers saves calls (reads and lease grants), and costs none when stale.
    assert!(calls[1] < calls[0] && calls[2] <= calls[0], "{calls:?}");
}

/// Runs the script; the calls etcd answered.
fn same_answers(workers: Workers) -> usize {
    let mut etcd = Etcd::new();
    let memories = [settings(), settings()];
    let store = MemoryStore::default();
    crate::ledger::create_buckets(&store);
    let local = LocalLedger { store: &store, policy: POLICY };
    let request = "cd".repeat(32);
    let settled = |at: u64| Entry::Settled { at, receipt: receipt() };
    let script: Vec<(u64, LedgerOp)> = vec![
        (
            0,
            LedgerOp::ClaimId {
                id: identifier("pay_1"),
                request: request.clone(),
                payment: payment("aa"),
                takeover: None,
            },
        ),
        (0, LedgerOp::Claim(payment("aa"))),
        (0, LedgerOp::Claim(payment("aa"))),
        (
            1,
            LedgerOp::ClaimId {
                id: identifier("pay_1"),
                request: request.clone(),
                payment: payment("bb"),
                takeover: None,
            },
        ),
        (
            0,
            LedgerOp::ClaimId {
                id: identifier("pay_1"),
                request: "ef".repeat(32),
                payment: payment("bb"),
                takeover: None,
            },
        ),
        (0, LedgerOp::Look(payment("aa"))),
        (1, LedgerOp::Put(payment("aa"), Box::new(Entry::Pending { since: 1_000_002, pass: Some(pass()) }))),
        (0, LedgerOp::Look(payment("aa"))),
        (1, LedgerOp::Put(payment("aa"), Box::new(settled(1_000_002)))),
        (0, LedgerOp::Claim(payment("aa"))),
        (0, LedgerOp::Look(payment("aa"))),
        (0, LedgerOp::Entitlement("Payer1".into())),
        (0, LedgerOp::Entitle { payer: "Payer1".into(), entitlement: entitlement(1_003_600) }),
        (0, LedgerOp::Entitle { payer: "Payer1".into(), entitlement: entitlement(1_001_800) }),
        (0, LedgerOp::Entitlement("Payer1".into())),
        // A payment dropped (nothing charged) lets its id go; another payment may then bind it.
        (
            0,
            LedgerOp::ClaimId {
                id: identifier("pay_2"),
                request: request.clone(),
                payment: payment("cc"),
                takeover: None,
            },
        ),
        (0, LedgerOp::Claim(payment("cc"))),
        (0, LedgerOp::Forget(payment("cc"))),
        (0, LedgerOp::ReleaseId { id: identifier("pay_2"), payment: payment("bb") }),
        (
            0,
            LedgerOp::ClaimId {
                id: identifier("pay_2"),
                request: request.clone(),
                payment: payment("dd"),
                takeover: None,
            },
        ),
        (0, LedgerOp::ReleaseId { id: identifier("pay_2"), payment: payment("cc") }),
        (
            0,
            LedgerOp::ClaimId {
                id: identifier("pay_2"),
                request: request.clone(),
                payment: payment("dd"),
                takeover: None,
            },
        ),
        (0, LedgerOp::Claim(payment("cc"))),
        // An abandoned pending is taken over; an abandoned id binding too.
        (30, LedgerOp::Claim(payment("cc"))),
        (
            0,
            LedgerOp::ClaimId {
                id: identifier("pay_2"),
                request: request.clone(),
                payment: payment("ee"),
                takeover: None,
            },
        ),
        (0, LedgerOp::Look(payment("dd"))),
        (
            0,
            LedgerOp::ClaimId {
                id: identifier("pay_2"),
                request: request.clone(),
                payment: payment("ee"),
                takeover: Some(payment("dd").key),
            },
        ),
        // Past the replay window: a duplicate, then spent.
        (700, LedgerOp::Claim(payment("aa"))),
        (0, LedgerOp::Look(payment("aa"))),
        (0, LedgerOp::Claim(payment("aa"))),
        (
            0,
            LedgerOp::ClaimId {
                id: identifier("pay_1"),
                request: request.clone(),
                payment: payment("bb"),
                takeover: None,
            },
        ),
        // A whole purchase, then another by the same payer: claim, pending pass, settlement,
        // entitlement; the same payment again replays.
        (1, LedgerOp::Claim(payment("ff"))),
        (0, LedgerOp::Put(payment("ff"), Box::new(Entry::Pending { since: 1_000_733, pass: Some(pass()) }))),
        (0, settled_entitled("ff", 1_000_733, "Payer2", 1_004_333)),
        (0, LedgerOp::Claim(payment("ff"))),
        (2, LedgerOp::Claim(payment("0a"))),
        (0, LedgerOp::Put(payment("0a"), Box::new(Entry::Pending { since: 1_000_735, pass: Some(pass()) }))),
        (0, LedgerOp::Put(payment("0a"), Box::new(Entry::Unknown { since: 1_000_735, pass: pass() }))),
        (0, LedgerOp::Claim(payment("0a"))),
        (0, settled_entitled("0a", 1_000_735, "Payer2", 1_004_335)),
        (0, LedgerOp::Entitle { payer: "Payer2".into(), entitlement: entitlement(1_004_000) }),
        // An earlier entitlement with a settlement: kept; a new payer's: stored.
        (0, settled_entitled("0b", 1_000_735, "Payer2", 1_004_001)),
        (0, LedgerOp::Entitlement("Payer2".into())),
        (0, settled_entitled("0c", 1_000_735, "Payer3", 1_001_000)),
        (0, LedgerOp::Entitlement("Payer3".into())),
        (0, LedgerOp::Claim(payment("0b"))),
        (0, LedgerOp::Entitlement("Payer2".into())),
        (0, LedgerOp::Claim(payment("0a"))),
        (0, LedgerOp::Forget(payment("0a"))),
        (0, LedgerOp::Claim(payment("0a"))),
    ];
    for (step, (advance, op)) in script.iter().enumerate() {
        etcd.advance(*advance);
        let expected = local.run(op, etcd.now);
        let fresh = settings();
        let settings = match workers {
            Workers::Fresh => &fresh,
            Workers::One => &memories[0],
            Workers::Two => &memories[step % 2],
        };
        let got = on_etcd(&mut etcd, settings, op);
        let same = match (&expected, &got) {
            // The local ledger counts the entitlements it holds; etcd's count nothing.
            (LedgerAnswer::Granted(_), LedgerAnswer::Granted(0)) => true,
            _ => expected == got,
        };
        assert!(same, "{workers:?} step {step} {op:?}: local {expected:?}, etcd {got:?}");
        assert_ne!(got, LedgerAnswer::Unavailable, "{workers:?} step {step}");
    }
    etcd.calls.len()
}

#[test]
fn keys_no_record_can_have_are_refused_before_any_call() {
    let mut etcd = Etcd::new();
    for op in [
        LedgerOp::Claim(PurchaseKey { bucket: 0, key: "not-hex".into() }),
        LedgerOp::Entitlement("pay/er".into()),
        LedgerOp::Look(PurchaseKey { bucket: 0, key: "id:a b".into() }),
    ] {
        assert_eq!(on_etcd(&mut etcd, &settings(), &op), LedgerAnswer::Unavailable, "{op:?}");
    }
    assert!(etcd.calls.is_empty());
}

#[test]
fn a_settlement_whose_entitlement_no_key_can_hold_is_written_alone() {
    let mut etcd = Etcd::new();
    let settings = settings();
    let mut op = settled_entitled("aa", etcd.now, "pay/er", etcd.now + 3_600);
    assert_eq!(on_etcd(&mut etcd, &settings, &op), LedgerAnswer::Done, "not Granted: nothing to cache");
    assert_eq!(etcd.keys.len(), 1, "the settlement only");
    let key = keys::purchase(&settings, &"aa".repeat(32)).unwrap();
    let held = crate::etcd::record::decode_entry(&etcd.keys[key.as_bytes()].value);
    assert!(matches!(held, Some(Entry::Settled { .. })));
    // A payment key no record can have: refused before any call.
    if let LedgerOp::PutEntitled { at, .. } = &mut op {
        at.key = "not-hex".into();
    }
    etcd.calls.clear();
    assert_eq!(on_etcd(&mut etcd, &settings, &op), LedgerAnswer::Unavailable);
    assert!(etcd.calls.is_empty());
}

#[test]
fn an_unreachable_etcd_is_unavailable_with_its_reason() {
    let (mut running, step) = start(&settings(), POLICY, LEEWAY, &LedgerOp::Claim(payment("aa")), 5_000);
    assert!(matches!(step, Step::Send(_)));
    let Step::Finish(done) = running.on_reply(Reply::Failed, 5_000) else { panic!() };
    assert_eq!(done.result, Err(Unavailable::Failed));
    let Step::Finish(done) = running.on_reply(Reply::Failed, 5_000) else { panic!() };
    assert_eq!(done.result, Err(Unavailable::Garbled), "an answer after the end is a host bug, never a result");
}

//! The gateway's bodies and answers. The answers below are etcd 3.4.23's own, captured from a
//! real member (the real cluster suite, tests/ledger, runs the same parsers over live answers).

use super::*;
use serde_json::{json, Value};

const KEY: &[u8] = b"/p/k";

fn ok(body: &str) -> Reply<'_> {
    Reply::Response { status: 200, body: body.as_bytes() }
}

fn json_of(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap()
}

const RANGE_HIT: &str = r#"{"header":{"cluster_id":"15118495548433857066","member_id":"13668033151171901709","revision":"3","raft_term":"2"},"kvs":[{"key":"L3Avaw==","create_revision":"2","mod_revision":"3","version":"2","value":"aGVsbG8=","lease":"4111120491374213383"}],"count":"1"}"#;
const RANGE_MISS: &str = r#"{"header":{"cluster_id":"15118495548433857066","member_id":"13668033151171901709","revision":"3","raft_term":"2"}}"#;
const TXN_COMMITTED: &str = r#"{"header":{"cluster_id":"15118495548433857066","member_id":"13668033151171901709","revision":"2","raft_term":"2"},"succeeded":true,"responses":[{"response_put":{"header":{"revision":"2"}}}]}"#;
const TXN_LOST: &str = r#"{"header":{"cluster_id":"15118495548433857066","member_id":"13668033151171901709","revision":"2","raft_term":"2"},"responses":[{"response_range":{"header":{"revision":"2"},"kvs":[{"key":"L3Avaw==","create_revision":"2","mod_revision":"2","version":"1","value":"aGVsbG8=","lease":"4111120491374213383"}],"count":"1"}}]}"#;
const TXN_LOST_ABSENT: &str =
    r#"{"header":{"revision":"2"},"responses":[{"response_range":{"header":{"revision":"2"}}}]}"#;
const GRANT: &str = r#"{"header":{"cluster_id":"15118495548433857066","member_id":"13668033151171901709","revision":"1","raft_term":"2"},"ID":"4111120491374213381","TTL":"5"}"#;
const DELETED: &str = r#"{"header":{"cluster_id":"15118495548433857066","member_id":"13668033151171901709","revision":"4","raft_term":"2"},"deleted":"1","prev_kvs":[{"key":"L3Avaw==","create_revision":"2","mod_revision":"3","version":"2","value":"aGVsbG8=","lease":"4111120491374213383"}]}"#;
const NO_LEASE: &str =
    r#"{"error":"etcdserver: requested lease not found","message":"etcdserver: requested lease not found","code":5}"#;

fn hello() -> Kv {
    Kv { value: b"hello".to_vec(), create_revision: 2, mod_revision: 3, lease: 4111120491374213383 }
}

#[test]
fn requests_are_the_gateway_json_with_base64_keys_and_int64_strings() {
    assert_eq!(json_of(&range(KEY)), json!({"key": "L3Avaw=="}));
    assert_eq!(json_of(&delete(KEY)), json!({"key": "L3Avaw==", "prev_kv": true}));
    assert_eq!(json_of(&lease_grant(25)), json!({"TTL": "25"}));
    assert_eq!(json_of(&lease_revoke(4111120491374213383)), json!({"ID": "4111120491374213383"}));
    assert_eq!(
        json_of(&put_if(KEY, Expect::Absent, b"hello", Lease::Attach(7))),
        json!({
            "compare": [{"key": "L3Avaw==", "target": "CREATE", "result": "EQUAL", "create_revision": "0"}],
            "success": [{"request_put": {"key": "L3Avaw==", "value": "aGVsbG8=", "lease": "7"}}],
            "failure": [{"request_range": {"key": "L3Avaw=="}}],
        })
    );
    assert_eq!(
        json_of(&put_if(KEY, Expect::ModRevision(17), b"hello", Lease::Keep)),
        json!({
            "compare": [{"key": "L3Avaw==", "target": "MOD", "result": "EQUAL", "mod_revision": "17"}],
            "success": [{"request_put": {"key": "L3Avaw==", "value": "aGVsbG8=", "ignore_lease": true}}],
            "failure": [{"request_range": {"key": "L3Avaw=="}}],
        })
    );
}

#[test]
fn etcds_own_answers_are_read() {
    assert_eq!(read_range(ok(RANGE_HIT), KEY), Ok(Some(hello())));
    assert_eq!(read_range(ok(RANGE_MISS), KEY), Ok(None));
    assert_eq!(read_txn(ok(TXN_COMMITTED), KEY), Ok(Txn::Committed { revision: 2 }));
    let lost = Kv { mod_revision: 2, ..hello() };
    assert_eq!(read_txn(ok(TXN_LOST), KEY), Ok(Txn::Lost(Some(lost))));
    assert_eq!(read_txn(ok(TXN_LOST_ABSENT), KEY), Ok(Txn::Lost(None)));
    assert_eq!(read_lease_grant(ok(GRANT)), Ok(4111120491374213381));
    assert_eq!(read_delete(ok(DELETED), KEY), Ok(Some(hello())));
    assert_eq!(read_delete(ok(RANGE_MISS), KEY), Ok(None));
    // A key without a lease or a value: both fields are left out.
    let bare = r#"{"kvs":[{"key":"L3Avaw==","create_revision":"5","mod_revision":"5","version":"1"}],"count":"1"}"#;
    assert_eq!(
        read_range(ok(bare), KEY),
        Ok(Some(Kv { value: Vec::new(), create_revision: 5, mod_revision: 5, lease: 0 }))
    );
}

#[test]
fn no_answer_or_a_refusal_is_unavailable() {
    for reply in [Reply::TimedOut, Reply::Failed] {
        assert!(read_range(reply, KEY).is_err());
        assert!(read_txn(reply, KEY).is_err());
        assert!(read_lease_grant(reply).is_err());
        assert!(read_delete(reply, KEY).is_err());
    }
    assert_eq!(read_range(Reply::TimedOut, KEY), Err(Unavailable::TimedOut));
    assert_eq!(read_range(Reply::Failed, KEY), Err(Unavailable::Failed));
    let refused = Reply::Response { status: 404, body: NO_LEASE.as_bytes() };
    assert_eq!(read_txn(refused, KEY), Err(Unavailable::Status(404)));
    // ... and is told apart: the write asks for a new lease.
    assert!(lease_gone(refused));
    let no_leader = Reply::Response { status: 503, body: b"{\"error\":\"etcdserver: no leader\",\"code\":14}" };
    assert!(!lease_gone(no_leader) && !lease_gone(ok(NO_LEASE)) && !lease_gone(Reply::TimedOut));
    assert_eq!(read_range(no_leader, KEY), Err(Unavailable::Status(503)));
    // An error envelope with a 2xx status is no answer either.
    assert_eq!(read_range(ok(NO_LEASE), KEY), Err(Unavailable::Garbled));
}

#[test]
fn garbled_answers_are_unavailable_never_a_guess() {
    let garbled = [
        "",
        "not json",
        "[]",
        r#"{"kvs":{}}"#,
        // Not base64; not the key asked for; two keys for one.
        r#"{"kvs":[{"key":"***","create_revision":"2","mod_revision":"2"}]}"#,
        r#"{"kvs":[{"key":"L3Avag==","create_revision":"2","mod_revision":"2"}]}"#,
        r#"{"kvs":[{"key":"L3Avaw==","create_revision":"2","mod_revision":"2"},{"key":"L3Avaw==","create_revision":"2","mod_revision":"2"}]}"#,
        // int64s are strings of digits; a key that exists has a create revision.
        r#"{"kvs":[{"key":"L3Avaw==","create_revision":2,"mod_revision":"2"}]}"#,
        r#"{"kvs":[{"key":"L3Avaw==","create_revision":"-2","mod_revision":"2"}]}"#,
        r#"{"kvs":[{"key":"L3Avaw==","create_revision":"99999999999999999999","mod_revision":"2"}]}"#,
        r#"{"kvs":[{"key":"L3Avaw==","mod_revision":"2"}]}"#,
        r#"{"kvs":[{"key":"L3Avaw==","create_revision":"3","mod_revision":"2"}]}"#,
        r#"{"kvs":[{"key":"L3Avaw==","create_revision":"2","mod_revision":"2","value":"%%%"}]}"#,
        r#"{"kvs":[{"key":"L3Avaw==","create_revision":"2","mod_revision":"2","lease":"x"}]}"#,
    ];
    for body in garbled {
        assert_eq!(read_range(ok(body), KEY), Err(Unavailable::Garbled), "{body}");
    }
    // Too large to be an answer to one record, or a value larger than a record may be.
    let huge = format!(r#"{{"header":{{}},"pad":"{}"}}"#, "x".repeat(MAX_ANSWER_BYTES));
    assert_eq!(read_range(ok(&huge), KEY), Err(Unavailable::Garbled));
    let big_value = BASE64.encode(vec![b'a'; MAX_VALUE_BYTES + 1]);
    let body =
        format!(r#"{{"kvs":[{{"key":"L3Avaw==","create_revision":"2","mod_revision":"2","value":"{big_value}"}}]}}"#);
    assert_eq!(read_range(ok(&body), KEY), Err(Unavailable::Garbled));

    for body in [
        "{}",
        r#"{"succeeded":true}"#,
        r#"{"succeeded":true,"responses":[{"response_range":{}}]}"#,
        r#"{"responses":[{"response_put":{}}]}"#,
        r#"{"succeeded":true,"responses":[{"response_put":{}},{"response_put":{}}]}"#,
        r#"{"succeeded":"yes","responses":[{"response_put":{}}]}"#,
    ] {
        assert_eq!(read_txn(ok(body), KEY), Err(Unavailable::Garbled), "{body}");
    }
    for body in ["{}", r#"{"ID":"0","TTL":"5"}"#, r#"{"ID":"7"}"#, r#"{"ID":7,"TTL":"5"}"#, r#"{"ID":"-7","TTL":"5"}"#]
    {
        assert_eq!(read_lease_grant(ok(body)), Err(Unavailable::Garbled), "{body}");
    }
    // `deleted` and `prev_kvs` disagree.
    for body in [r#"{"deleted":"1"}"#, r#"{"deleted":"2","prev_kvs":[]}"#] {
        assert_eq!(read_delete(ok(body), KEY), Err(Unavailable::Garbled), "{body}");
    }
}

#[test]
fn every_reason_to_be_unavailable_has_a_name_for_the_log() {
    let reasons = [
        Unavailable::TimedOut,
        Unavailable::Failed,
        Unavailable::Status(503),
        Unavailable::Garbled,
        Unavailable::BadRecord,
        Unavailable::Busy,
        Unavailable::Deadline,
    ]
    .map(Unavailable::reason);
    assert_eq!(
        reasons,
        ["timeout", "connection_failed", "status_503", "garbled_answer", "bad_record", "busy", "deadline"]
    );
}

#[test]
fn no_answer_however_mangled_makes_a_parser_panic_or_believe_another_key() {
    let answers = [RANGE_HIT, RANGE_MISS, TXN_COMMITTED, TXN_LOST, TXN_LOST_ABSENT, GRANT, DELETED, NO_LEASE];
    let mut bodies: Vec<Vec<u8>> = Vec::new();
    for answer in answers {
        let bytes = answer.as_bytes();
        for cut in 0..bytes.len() {
            bodies.push(bytes[..cut].to_vec());
        }
        for at in 0..bytes.len() {
            for replacement in [b'"', b'0', b'{', b']', 0xff, b'\\'] {
                let mut mangled = bytes.to_vec();
                mangled[at] = replacement;
                bodies.push(mangled);
            }
        }
    }
    for body in &bodies {
        let reply = Reply::Response { status: 200, body };
        for result in [read_range(reply, KEY), read_delete(reply, KEY)] {
            if let Ok(Some(kv)) = result {
                assert!(kv.create_revision > 0 && kv.mod_revision >= kv.create_revision);
            }
        }
        if let Ok(Txn::Lost(Some(kv))) = read_txn(reply, KEY) {
            assert!(kv.create_revision > 0);
        }
        if let Ok(id) = read_lease_grant(reply) {
            assert!(id > 0);
        }
        // Whatever a mangled answer says, it is never about another key.
        assert!(read_range(reply, b"/p/other").map_or(true, |kv| kv.is_none()));
    }
}

#[test]
fn a_conditional_delete_is_a_txn_that_reads_the_key_when_it_lost() {
    assert_eq!(
        json_of(&delete_if(KEY, 7)),
        json!({
            "compare": [{"key": "L3Avaw==", "result": "EQUAL", "target": "MOD", "mod_revision": "7"}],
            "success": [{"request_delete_range": {"key": "L3Avaw=="}}],
            "failure": [{"request_range": {"key": "L3Avaw=="}}],
        })
    );
    let deleted = r#"{"header":{"revision":"9"},"succeeded":true,"responses":[{"response_delete_range":{"header":{"revision":"9"},"deleted":"1"}}]}"#;
    assert_eq!(read_txn(ok(deleted), KEY), Ok(Txn::Committed { revision: 9 }));
}

#[test]
fn a_transaction_over_several_keys_compares_all_puts_the_written_and_reads_all_when_it_lost() {
    const OTHER: &[u8] = b"/p/e";
    let parts = [
        Part { key: KEY, expect: Expect::ModRevision(7), put: Some((b"hello", Lease::Keep)) },
        Part { key: OTHER, expect: Expect::Absent, put: Some((b"bye", Lease::Attach(9))) },
    ];
    assert_eq!(
        json_of(&all_if(&parts)),
        json!({
            "compare": [
                {"key": "L3Avaw==", "result": "EQUAL", "target": "MOD", "mod_revision": "7"},
                {"key": "L3AvZQ==", "result": "EQUAL", "target": "CREATE", "create_revision": "0"},
            ],
            "success": [
                {"request_put": {"key": "L3Avaw==", "value": "aGVsbG8=", "ignore_lease": true}},
                {"request_put": {"key": "L3AvZQ==", "value": "Ynll", "lease": "9"}},
            ],
            "failure": [{"request_range": {"key": "L3Avaw=="}}, {"request_range": {"key": "L3AvZQ=="}}],
        })
    );
    // A key only compared is read too when a compare fails, never written.
    let compared = [parts[0], Part { key: OTHER, expect: Expect::ModRevision(3), put: None }];
    let body = json_of(&all_if(&compared));
    assert_eq!(body["compare"].as_array().unwrap().len(), 2);
    assert_eq!(body["success"].as_array().unwrap().len(), 1);
    assert_eq!(body["failure"].as_array().unwrap().len(), 2);
    // One key: the same transaction as `put_if`'s.
    let one = [Part { key: KEY, expect: Expect::Absent, put: Some((b"hello", Lease::Attach(7))) }];
    assert_eq!(json_of(&all_if(&one)), json_of(&put_if(KEY, Expect::Absent, b"hello", Lease::Attach(7))));

    let keys: [&[u8]; 2] = [KEY, OTHER];
    let two_puts = r#"{"header":{"revision":"12"},"succeeded":true,"responses":[{"response_put":{"header":{"revision":"12"}}},{"response_put":{"header":{"revision":"12"}}}]}"#;
    assert_eq!(read_txn_all(ok(two_puts), &keys, 2), Ok(TxnAll::Committed { revision: 12 }));
    assert_eq!(read_txn_all(ok(TXN_COMMITTED), &keys, 1), Ok(TxnAll::Committed { revision: 2 }));
    let lost = r#"{"header":{"revision":"3"},"responses":[{"response_range":{"header":{"revision":"3"},"kvs":[{"key":"L3Avaw==","create_revision":"2","mod_revision":"3","version":"2","value":"aGVsbG8=","lease":"4111120491374213383"}],"count":"1"}},{"response_range":{"header":{"revision":"3"}}}]}"#;
    assert_eq!(read_txn_all(ok(lost), &keys, 2), Ok(TxnAll::Lost(vec![Some(hello()), None])));
    // Anything else is garbled: a put missing or one too many, a read missing, about another key,
    // a put where a read should be; and every refusal is unavailable.
    for (answer, puts) in [(TXN_COMMITTED, 2), (two_puts, 1), (TXN_LOST, 2), (TXN_LOST_ABSENT, 2), (two_puts, 0)] {
        assert_eq!(read_txn_all(ok(answer), &keys, puts), Err(Unavailable::Garbled), "{answer}");
    }
    let swapped = [OTHER, KEY];
    assert_eq!(read_txn_all(ok(lost), &swapped, 2), Err(Unavailable::Garbled));
    let mixed = r#"{"header":{"revision":"3"},"responses":[{"response_put":{}},{"response_range":{}}]}"#;
    assert_eq!(read_txn_all(ok(mixed), &keys, 2), Err(Unavailable::Garbled));
    let half =
        r#"{"header":{"revision":"3"},"succeeded":true,"responses":[{"response_put":{}},{"response_range":{}}]}"#;
    assert_eq!(read_txn_all(ok(half), &keys, 2), Err(Unavailable::Garbled));
    assert_eq!(read_txn_all(ok(NO_LEASE), &keys, 2), Err(Unavailable::Garbled));
    let refused = Reply::Response { status: 404, body: NO_LEASE.as_bytes() };
    assert_eq!(read_txn_all(refused, &keys, 2), Err(Unavailable::Status(404)));
    assert_eq!(read_txn_all(Reply::TimedOut, &keys, 2), Err(Unavailable::TimedOut));
}

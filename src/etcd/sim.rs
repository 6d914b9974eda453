//! For the native tests: etcd's JSON gateway in memory (revisions, compares, leases that
//! expire with a clock), answering the bodies `wire` builds as etcd 3.4 answers them (checked
//! by tests/ledger against a real cluster), and drivers that run operations against it, alone
//! or interleaved call by call.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde_json::{json, Value};

use super::record::{Op, Record};
use super::{Call, Finished, Reply, Step};
use crate::purchase::{IssuedPass, Receipt};
use crate::replay::Policy;
use crate::token::PassClaims;

/// A lease with `left` seconds to run is right for a record living `life` more seconds: never
/// shorter, and longer by less than its slack (`memory::slack`).
pub fn lives(left: u64, life: u64) -> bool {
    left >= life && left - life < super::memory::slack(life)
}

pub const POLICY: Policy = Policy { replay_window_seconds: 600, stale_after_seconds: 25 };

pub fn pass() -> IssuedPass {
    IssuedPass {
        token: "header.payload.signature".into(),
        claims: PassClaims {
            sub: "x402-access-pass".into(),
            tier: "1h".into(),
            duration: 3_600,
            iat: 0,
            exp: 3_600,
            payer: "payer".into(),
            network: "solana:devnet".into(),
            iss: "issuer".into(),
            aud: None,
        },
    }
}

pub fn receipt() -> Receipt {
    Receipt {
        token: "header.payload.signature".into(),
        payment_response: "eyJ9".into(),
        body: "{}".into(),
        claims: None,
    }
}

#[derive(Debug, Clone)]
pub struct Stored {
    pub value: Vec<u8>,
    pub create_revision: i64,
    pub mod_revision: i64,
    pub lease: i64,
}

#[derive(Default)]
pub struct Etcd {
    pub now: u64,
    pub revision: i64,
    pub keys: BTreeMap<Vec<u8>, Stored>,
    /// id → (expires at, ttl)
    pub leases: BTreeMap<i64, (u64, u64)>,
    next_lease: i64,
    /// Every call answered, by path.
    pub calls: Vec<&'static str>,
}

fn b64(bytes: &[u8]) -> String {
    BASE64.encode(bytes)
}

fn unb64(value: &Value) -> Vec<u8> {
    BASE64.decode(value.as_str().unwrap_or("")).unwrap()
}

fn int(value: &Value) -> i64 {
    value.as_str().map_or(0, |s| s.parse().unwrap())
}

impl Etcd {
    pub fn new() -> Etcd {
        Etcd { now: 1_000_000, revision: 1, next_lease: 7_000_000_000_000_000_000, ..Etcd::default() }
    }

    fn header(&self) -> Value {
        json!({"cluster_id": "1", "member_id": "2", "revision": self.revision.to_string(), "raft_term": "2"})
    }

    fn kv_json(key: &[u8], s: &Stored) -> Value {
        let mut kv = json!({"key": b64(key), "create_revision": s.create_revision.to_string(),
            "mod_revision": s.mod_revision.to_string(), "version": "1", "value": b64(&s.value)});
        if s.lease != 0 {
            kv["lease"] = json!(s.lease.to_string());
        }
        kv
    }

    fn range_json(&self, key: &[u8]) -> Value {
        let mut answer = json!({"header": self.header()});
        if let Some(s) = self.keys.get(key) {
            answer["kvs"] = json!([Etcd::kv_json(key, s)]);
            answer["count"] = json!("1");
        }
        answer
    }

    fn error(code: u32, message: &str) -> (u32, Vec<u8>) {
        (code, json!({"error": message, "message": message, "code": 5}).to_string().into_bytes())
    }

    /// Time passes: leases run out, and their keys go with them.
    pub fn advance(&mut self, seconds: u64) {
        self.now += seconds;
        let now = self.now;
        let expired: Vec<i64> = self.leases.iter().filter(|(_, (at, _))| *at <= now).map(|(id, _)| *id).collect();
        for id in expired {
            self.revoke(id);
        }
    }

    fn revoke(&mut self, id: i64) -> bool {
        if self.leases.remove(&id).is_none() {
            return false;
        }
        let before = self.keys.len();
        self.keys.retain(|_, s| s.lease != id);
        if self.keys.len() != before {
            self.revision += 1;
        }
        true
    }

    pub fn value(&self, key: &[u8]) -> Option<Value> {
        self.keys.get(key).map(|s| serde_json::from_slice(&s.value).unwrap())
    }

    pub fn lease_of(&self, key: &[u8]) -> Option<(i64, u64)> {
        let s = self.keys.get(key)?;
        self.leases.get(&s.lease).map(|(at, _)| (s.lease, at - self.now))
    }

    /// Puts a raw value, as another writer would.
    pub fn put_raw(&mut self, key: &[u8], value: &[u8], lease: i64) {
        self.revision += 1;
        let create_revision = self.keys.get(key).map_or(self.revision, |s| s.create_revision);
        self.keys.insert(
            key.to_vec(),
            Stored { value: value.to_vec(), create_revision, mod_revision: self.revision, lease },
        );
    }

    pub fn answer(&mut self, call: &Call) -> (u32, Vec<u8>) {
        self.calls.push(call.path);
        let body: Value = serde_json::from_slice(&call.body).unwrap();
        let (status, answer) = match call.path {
            "/v3/kv/range" => (200, self.range_json(&unb64(&body["key"]))),
            "/v3/kv/deleterange" => {
                let key = unb64(&body["key"]);
                let mut answer = json!({"header": self.header()});
                if let Some(s) = self.keys.remove(&key) {
                    self.revision += 1;
                    answer = json!({"header": self.header(), "deleted": "1"});
                    if body["prev_kv"] == json!(true) {
                        answer["prev_kvs"] = json!([Etcd::kv_json(&key, &s)]);
                    }
                }
                (200, answer)
            }
            "/v3/lease/grant" => {
                let ttl = int(&body["TTL"]) as u64;
                self.next_lease += 1;
                self.leases.insert(self.next_lease, (self.now + ttl, ttl));
                (200, json!({"header": self.header(), "ID": self.next_lease.to_string(), "TTL": ttl.to_string()}))
            }
            "/v3/lease/revoke" => {
                if !self.revoke(int(&body["ID"])) {
                    return Etcd::error(404, "etcdserver: requested lease not found");
                }
                (200, json!({"header": self.header()}))
            }
            "/v3/kv/txn" => {
                // Every compare must hold (one key each); then every put, all under one revision,
                // or the single delete; else every read of the failure branch.
                let holds = body["compare"].as_array().unwrap().iter().all(|compare| {
                    let held = self.keys.get(&unb64(&compare["key"]));
                    assert_eq!(compare["result"], "EQUAL");
                    match compare["target"].as_str().unwrap() {
                        "CREATE" => held.map_or(0, |s| s.create_revision) == int(&compare["create_revision"]),
                        "MOD" => held.map_or(0, |s| s.mod_revision) == int(&compare["mod_revision"]),
                        other => panic!("compare target {other}"),
                    }
                });
                let success = body["success"].as_array().unwrap();
                if holds && success.first().is_some_and(|op| op.get("request_delete_range").is_some()) {
                    assert_eq!(success.len(), 1);
                    let key = unb64(&success[0]["request_delete_range"]["key"]);
                    if self.keys.remove(&key).is_some() {
                        self.revision += 1;
                    }
                    let deleted = json!({"header": self.header(), "deleted": "1"});
                    (
                        200,
                        json!({"header": self.header(), "succeeded": true, "responses": [{"response_delete_range": deleted}]}),
                    )
                } else if holds {
                    // Checked first, as etcd does: a put refused leaves the whole txn unapplied.
                    let mut writes = Vec::new();
                    for op in success {
                        let put = &op["request_put"];
                        let key = unb64(&put["key"]);
                        let held = self.keys.get(&key);
                        let lease = if put["ignore_lease"] == json!(true) {
                            match held {
                                Some(s) => s.lease,
                                None => return Etcd::error(404, "etcdserver: key not found"),
                            }
                        } else {
                            int(&put["lease"])
                        };
                        if lease != 0 && !self.leases.contains_key(&lease) {
                            return Etcd::error(404, "etcdserver: requested lease not found");
                        }
                        writes.push((key, unb64(&put["value"]), lease));
                    }
                    if !writes.is_empty() {
                        self.revision += 1;
                    }
                    let revision = self.revision;
                    for (key, value, lease) in writes {
                        let create_revision = self.keys.get(&key).map_or(revision, |s| s.create_revision);
                        self.keys.insert(key, Stored { value, create_revision, mod_revision: revision, lease });
                    }
                    let responses: Vec<Value> = success
                        .iter()
                        .map(|_| json!({"response_put": {"header": {"revision": revision.to_string()}}}))
                        .collect();
                    let mut answer = json!({"header": self.header(), "succeeded": true});
                    if !responses.is_empty() {
                        answer["responses"] = json!(responses);
                    }
                    (200, answer)
                } else {
                    let responses: Vec<Value> = body["failure"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|op| json!({"response_range": self.range_json(&unb64(&op["request_range"]["key"]))}))
                        .collect();
                    (200, json!({"header": self.header(), "responses": responses}))
                }
            }
            other => panic!("no such gateway path {other}"),
        };
        (status, serde_json::to_vec(&answer).unwrap())
    }

    /// Sends the cleanup calls, ignoring their answers (as the host does).
    pub fn clean<T>(&mut self, finished: &Finished<T>) {
        for call in &finished.cleanup {
            let _ = self.answer(call);
        }
    }
}

/// Runs one operation to its end against `etcd` (cleanup included).
pub fn drive<R: Record>(etcd: &mut Etcd, (mut op, mut step): (Op<R>, Step<R::Output>)) -> Finished<R::Output> {
    let now_ms = etcd.now * 1_000;
    for _ in 0..32 {
        match step {
            Step::Send(call) => {
                let (status, body) = etcd.answer(&call);
                step = op.on_reply(Reply::Response { status, body: &body }, now_ms);
            }
            Step::Finish(finished) => {
                etcd.clean(&finished);
                return finished;
            }
        }
    }
    panic!("the operation did not finish in 32 calls");
}

/// Runs two operations call by call in turn (the first call of `a`, then of `b`, ...).
pub fn race<A: Record, B: Record>(
    etcd: &mut Etcd,
    (mut op_a, mut a): (Op<A>, Step<A::Output>),
    (mut op_b, mut b): (Op<B>, Step<B::Output>),
) -> (Finished<A::Output>, Finished<B::Output>) {
    let now_ms = etcd.now * 1_000;
    for _ in 0..64 {
        if let Step::Send(call) = &a {
            let (status, body) = etcd.answer(call);
            a = op_a.on_reply(Reply::Response { status, body: &body }, now_ms);
        }
        if let Step::Send(call) = &b {
            let (status, body) = etcd.answer(call);
            b = op_b.on_reply(Reply::Response { status, body: &body }, now_ms);
        }
        match (a, b) {
            (Step::Finish(fa), Step::Finish(fb)) => {
                etcd.clean(&fa);
                etcd.clean(&fb);
                return (fa, fb);
            }
            (next_a, next_b) => (a, b) = (next_a, next_b),
        }
    }
    panic!("the race did not finish in 64 rounds");
}

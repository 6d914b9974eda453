//! etcd v3's JSON gateway, as the ledger speaks it: request bodies and the parsers of the
//! answers. Keys and values are base64 (standard, padded) in JSON; int64s are JSON strings; a
//! false or zero field is left out of an answer. Every answer is checked before use: its size,
//! its JSON, its base64, that it is about the key asked for; anything else is
//! [`Unavailable::Garbled`].

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::de::IgnoredAny;
use serde::Deserialize;

use super::{Reply, Unavailable};

pub const RANGE: &str = "/v3/kv/range";
pub const TXN: &str = "/v3/kv/txn";
pub const DELETE_RANGE: &str = "/v3/kv/deleterange";
pub const LEASE_GRANT: &str = "/v3/lease/grant";
pub const LEASE_REVOKE: &str = "/v3/lease/revoke";

/// The largest answer body read (a record of `MAX_VALUE_BYTES` in base64, with its envelope).
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// The largest record value written or read.
pub const MAX_VALUE_BYTES: usize = 16 * 1024;

/// One key as etcd holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kv {
    pub value: Vec<u8>,
    pub create_revision: i64,
    pub mod_revision: i64,
    /// The lease the key is attached to; 0 for none.
    pub lease: i64,
}

/// What a conditional write compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// The key does not exist (`create_revision == 0`).
    Absent,
    /// The key is as it was read (`mod_revision == n`).
    ModRevision(i64),
}

/// The lease a conditional write puts the key under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lease {
    /// The key's current lease (`ignore_lease`): its life does not change.
    Keep,
    Attach(i64),
}

/// How a conditional write went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Txn {
    /// The success branch ran; `revision` is the store's revision after it (the key's new
    /// `mod_revision` after a put; 0 when the answer did not say).
    Committed { revision: i64 },
    /// The compare failed: the key as it is now (`None`: absent).
    Lost(Option<Kv>),
}

fn b64(bytes: &[u8]) -> String {
    BASE64.encode(bytes)
}

// The request bodies are written as text rather than built as `serde_json::Value`s: every
// value in them is base64 (`A-Z a-z 0-9 + / =`) or a decimal number, which JSON takes as they
// are, and the `Value` builder cost ~10 KB of wasm for five small bodies.

/// `/v3/kv/range` of one key (linearizable: a read without a quorum fails).
pub fn range(key: &[u8]) -> Vec<u8> {
    format!(r#"{{"key":"{}"}}"#, b64(key)).into_bytes()
}

/// `/v3/kv/deleterange` of one key, answering with what it deleted.
pub fn delete(key: &[u8]) -> Vec<u8> {
    format!(r#"{{"key":"{}","prev_kv":true}}"#, b64(key)).into_bytes()
}

/// `/v3/lease/grant` of a lease of `ttl` seconds (etcd picks the id).
pub fn lease_grant(ttl: u64) -> Vec<u8> {
    format!(r#"{{"TTL":"{ttl}"}}"#).into_bytes()
}

/// `/v3/lease/revoke`: the lease and every key still attached to it are gone.
pub fn lease_revoke(id: i64) -> Vec<u8> {
    format!(r#"{{"ID":"{id}"}}"#).into_bytes()
}

/// `/v3/kv/txn`: put `value` at `key` if `expect` holds; otherwise read the key, so that the
/// next attempt starts from what won.
pub fn put_if(key: &[u8], expect: Expect, value: &[u8], lease: Lease) -> Vec<u8> {
    all_if(&[Part { key, expect, put: Some((value, lease)) }])
}

/// One key's share of a transaction over several keys ([`all_if`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part<'a> {
    pub key: &'a [u8],
    pub expect: Expect,
    /// What to put there when every compare holds; `None`: the key is only compared.
    pub put: Option<(&'a [u8], Lease)>,
}

/// A transaction: `compares` (`{"key":K,"result":"EQUAL",` then each one's own fields), then, if
/// every one holds, `success`, else a read of every key compared, in order.
fn txn(compares: &[(String, String)], success: &str) -> Vec<u8> {
    let mut body = String::from(r#"{"compare":["#);
    for (i, (key, compare)) in compares.iter().enumerate() {
        let comma = if i == 0 { "" } else { "," };
        body.push_str(&format!(r#"{comma}{{"key":"{key}","result":"EQUAL",{compare}}}"#));
    }
    body.push_str(&format!(r#"],"success":[{success}],"failure":["#));
    for (i, (key, _)) in compares.iter().enumerate() {
        let comma = if i == 0 { "" } else { "," };
        body.push_str(&format!(r#"{comma}{{"request_range":{{"key":"{key}"}}}}"#));
    }
    body.push_str("]}");
    body.into_bytes()
}

/// `/v3/kv/txn` over several keys, all or nothing: if every key is as its part expects, every
/// put; otherwise read every key, in the order of `parts`, so that the next attempt starts from
/// what won (answered by [`read_txn_all`]).
pub fn all_if(parts: &[Part<'_>]) -> Vec<u8> {
    let mut compares = Vec::with_capacity(parts.len());
    let mut puts = String::new();
    for part in parts {
        let key = b64(part.key);
        if let Some((value, lease)) = part.put {
            let lease = match lease {
                Lease::Keep => r#""ignore_lease":true"#.to_owned(),
                Lease::Attach(id) => format!(r#""lease":"{id}""#),
            };
            let comma = if puts.is_empty() { "" } else { "," };
            puts.push_str(&format!(r#"{comma}{{"request_put":{{"key":"{key}","value":"{}",{lease}}}}}"#, b64(value)));
        }
        let compare = match part.expect {
            Expect::Absent => r#""target":"CREATE","create_revision":"0""#.to_owned(),
            Expect::ModRevision(revision) => format!(r#""target":"MOD","mod_revision":"{revision}""#),
        };
        compares.push((key, compare));
    }
    txn(&compares, &puts)
}

/// A transaction that deletes `key` if its `mod_revision` is still `revision`, else reads it
/// (answered like [`put_if`]: committed, or lost with the key as it is now).
pub fn delete_if(key: &[u8], revision: i64) -> Vec<u8> {
    let key = b64(key);
    let delete = format!(r#"{{"request_delete_range":{{"key":"{key}"}}}}"#);
    txn(&[(key, format!(r#""target":"MOD","mod_revision":"{revision}""#))], &delete)
}

/// The body of a 2xx answer, bounded; anything else is unavailable.
fn body(reply: Reply<'_>) -> Result<&[u8], Unavailable> {
    match reply {
        Reply::Response { status, body } if (200..300).contains(&status) => {
            if body.len() > MAX_ANSWER_BYTES {
                Err(Unavailable::Garbled)
            } else {
                Ok(body)
            }
        }
        Reply::Response { status, .. } => Err(Unavailable::Status(status)),
        Reply::TimedOut => Err(Unavailable::TimedOut),
        Reply::Failed => Err(Unavailable::Failed),
    }
}

/// An answer is a JSON object; a gateway error travels as `{"error": ..., "code": n}`, and a 2xx
/// body holding one is no answer.
fn parse<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, Unavailable> {
    #[derive(Deserialize)]
    struct Problem {
        #[serde(default)]
        error: Option<IgnoredAny>,
        #[serde(default)]
        code: Option<IgnoredAny>,
    }
    // A derived struct also reads a JSON array: only an object is an answer.
    if bytes.trim_ascii_start().first() != Some(&b'{') {
        return Err(Unavailable::Garbled);
    }
    let problem: Problem = serde_json::from_slice(bytes).map_err(|_| Unavailable::Garbled)?;
    if problem.error.is_some() || problem.code.is_some() {
        return Err(Unavailable::Garbled);
    }
    serde_json::from_slice(bytes).map_err(|_| Unavailable::Garbled)
}

/// An int64 as the gateway writes it: a string of decimal digits, absent when 0.
fn int(field: Option<&str>) -> Result<i64, Unavailable> {
    match field {
        None => Ok(0),
        Some(text) if !text.is_empty() && text.len() <= 19 && text.bytes().all(|b| b.is_ascii_digit()) => {
            text.parse().map_err(|_| Unavailable::Garbled)
        }
        Some(_) => Err(Unavailable::Garbled),
    }
}

fn unbase64(text: Option<&str>, limit: usize) -> Result<Vec<u8>, Unavailable> {
    let text = text.unwrap_or("");
    if text.len() > limit.div_ceil(3) * 4 {
        return Err(Unavailable::Garbled);
    }
    let bytes = BASE64.decode(text).map_err(|_| Unavailable::Garbled)?;
    if bytes.len() > limit {
        return Err(Unavailable::Garbled);
    }
    Ok(bytes)
}

#[derive(Deserialize)]
struct RawKv<'a> {
    #[serde(borrow, default)]
    key: Option<&'a str>,
    #[serde(borrow, default)]
    value: Option<&'a str>,
    #[serde(borrow, default)]
    create_revision: Option<&'a str>,
    #[serde(borrow, default)]
    mod_revision: Option<&'a str>,
    #[serde(borrow, default)]
    lease: Option<&'a str>,
}

#[derive(Deserialize)]
struct RawRange<'a> {
    #[serde(borrow, default)]
    kvs: Vec<RawKv<'a>>,
}

fn one_kv(raw: RawRange<'_>, key: &[u8]) -> Result<Option<Kv>, Unavailable> {
    let mut kvs = raw.kvs.into_iter();
    match (kvs.next(), kvs.next()) {
        (None, _) => Ok(None),
        (Some(kv), None) => kv_of(kv, key).map(Some),
        // More than the one key asked for.
        (Some(_), Some(_)) => Err(Unavailable::Garbled),
    }
}

fn kv_of(raw: RawKv<'_>, key: &[u8]) -> Result<Kv, Unavailable> {
    if unbase64(raw.key, key.len())? != key {
        return Err(Unavailable::Garbled);
    }
    let kv = Kv {
        value: unbase64(raw.value, MAX_VALUE_BYTES)?,
        create_revision: int(raw.create_revision)?,
        mod_revision: int(raw.mod_revision)?,
        lease: int(raw.lease)?,
    };
    // A key that exists has both revisions.
    if kv.create_revision == 0 || kv.mod_revision < kv.create_revision {
        return Err(Unavailable::Garbled);
    }
    Ok(kv)
}

/// The answer to [`range`] of `key`: the key, or `None` when it does not exist.
pub fn read_range(reply: Reply<'_>, key: &[u8]) -> Result<Option<Kv>, Unavailable> {
    let raw: RawRange<'_> = parse(body(reply)?)?;
    one_kv(raw, key)
}

/// The answer to [`delete`] of `key`: what was deleted, or `None` when there was nothing.
pub fn read_delete(reply: Reply<'_>, key: &[u8]) -> Result<Option<Kv>, Unavailable> {
    #[derive(Deserialize)]
    struct RawDelete<'a> {
        #[serde(borrow, default)]
        deleted: Option<&'a str>,
        #[serde(borrow, default)]
        prev_kvs: Vec<RawKv<'a>>,
    }
    let raw: RawDelete<'_> = parse(body(reply)?)?;
    let deleted = int(raw.deleted)?;
    let previous = one_kv(RawRange { kvs: raw.prev_kvs }, key)?;
    match (deleted, previous) {
        (0, None) => Ok(None),
        (1, Some(kv)) => Ok(Some(kv)),
        _ => Err(Unavailable::Garbled),
    }
}

/// The answer to [`lease_grant`]: the lease id (positive).
pub fn read_lease_grant(reply: Reply<'_>) -> Result<i64, Unavailable> {
    #[derive(Deserialize)]
    struct RawGrant<'a> {
        #[serde(borrow, default, rename = "ID")]
        id: Option<&'a str>,
        #[serde(borrow, default, rename = "TTL")]
        ttl: Option<&'a str>,
    }
    let raw: RawGrant<'_> = parse(body(reply)?)?;
    match (int(raw.id)?, int(raw.ttl)?) {
        (id, ttl) if id > 0 && ttl > 0 => Ok(id),
        _ => Err(Unavailable::Garbled),
    }
}

/// Whether etcd refused a write because the lease it names does not exist (any more): the
/// gateway's error (gRPC `NotFound`) says so in words, `etcdserver: requested lease not found`.
pub fn lease_gone(reply: Reply<'_>) -> bool {
    const GONE: &[u8] = b"requested lease not found";
    match reply {
        Reply::Response { status, body } if !(200..300).contains(&status) && body.len() <= MAX_ANSWER_BYTES => {
            body.windows(GONE.len()).any(|w| w == GONE)
        }
        _ => false,
    }
}

#[derive(Deserialize)]
struct RawResponse<'a> {
    #[serde(borrow, default)]
    response_range: Option<RawRange<'a>>,
    #[serde(default)]
    response_put: Option<IgnoredAny>,
    #[serde(default)]
    response_delete_range: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct RawHeader<'a> {
    #[serde(borrow, default)]
    revision: Option<&'a str>,
}

#[derive(Deserialize)]
struct RawTxn<'a> {
    #[serde(borrow, default)]
    header: Option<RawHeader<'a>>,
    #[serde(default)]
    succeeded: bool,
    #[serde(borrow, default)]
    responses: Vec<RawResponse<'a>>,
}

/// The answer to [`put_if`] (or [`delete_if`]) of `key`.
pub fn read_txn(reply: Reply<'_>, key: &[u8]) -> Result<Txn, Unavailable> {
    Ok(match read_txn_all(reply, &[key], 1)? {
        TxnAll::Committed { revision } => Txn::Committed { revision },
        TxnAll::Lost(now) => Txn::Lost(now.into_iter().next().flatten()),
    })
}

/// How a transaction over several keys went ([`all_if`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnAll {
    /// Every put was made; `revision` is the store's revision after them (each written key's new
    /// `mod_revision`; 0 when the answer did not say).
    Committed { revision: i64 },
    /// A compare failed: every key as it is now, in the order asked (`None`: absent).
    Lost(Vec<Option<Kv>>),
}

/// The answer to [`all_if`] of `keys` (in the order of its parts), `puts` of them written (a
/// [`delete_if`]'s delete counts as one).
pub fn read_txn_all(reply: Reply<'_>, keys: &[&[u8]], puts: usize) -> Result<TxnAll, Unavailable> {
    let raw: RawTxn<'_> = parse(body(reply)?)?;
    let revision = int(raw.header.and_then(|header| header.revision))?;
    if raw.succeeded {
        let all_written = raw.responses.iter().all(|r| match r {
            RawResponse { response_range: None, response_put, response_delete_range } => {
                response_put.is_some() != response_delete_range.is_some()
            }
            _ => false,
        });
        return match all_written && raw.responses.len() == puts {
            true => Ok(TxnAll::Committed { revision }),
            false => Err(Unavailable::Garbled),
        };
    }
    if raw.responses.len() != keys.len() {
        return Err(Unavailable::Garbled);
    }
    let mut now = Vec::with_capacity(keys.len());
    for (response, key) in raw.responses.into_iter().zip(keys) {
        match response {
            RawResponse { response_range: Some(range), response_put: None, response_delete_range: None } => {
                now.push(one_kv(range, key)?)
            }
            _ => return Err(Unavailable::Garbled),
        }
    }
    Ok(TxnAll::Lost(now))
}

#[cfg(test)]
mod tests;

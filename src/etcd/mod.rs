//! The shared ledger over etcd v3 (docs/fleet.md): purchase records,
//! entitlements and payment ids as keys under one prefix, spoken through etcd's JSON gateway
//! (`/v3/kv/*`, `/v3/lease/*`), which the filter reaches with HTTP callouts to an Envoy cluster.
//!
//! Nothing here does I/O. Every operation is a small state machine: it hands out a [`Call`] (a
//! path and a JSON body) and is handed back the [`Reply`] it got, until it [`Step::Finish`]es
//! with a result, or with [`Unavailable`] when etcd could not be read or written in time: the
//! purchase flow then fails closed before any money moves. The host (the proxy-wasm layer, or
//! the test executor `examples/etcd_ledger.rs`) only sends calls and feeds answers back.
//!
//! - [`wire`]: the gateway's request bodies and the parsers of its answers, validated;
//! - [`keys`]: where each record lives under the prefix;
//! - [`life`]: how long a purchase record lives (its lease), the local ledger's own rule;
//! - [`record`]: the engine of one record's read / lease / compare-and-put;
//! - [`context`]: what every operation keeps between calls (clock, deadline, retries, memory);
//! - [`claim`], [`put`], [`forget`]: purchase records, as `replay::Bucket` decides them;
//! - [`entitlement`]: payer → entitlement, the latest-expiring wins;
//! - [`settle`]: a settlement and its payer's entitlement in one transaction;
//! - [`payment_id`]: payment id → the purchase and the request it paid for, bound once;
//! - [`ledger`]: the purchase flow's `LedgerOp`s as these operations, answered as the local
//!   ledger answers them.

pub mod claim;
pub mod context;
pub mod entitlement;
pub mod forget;
pub mod keys;
pub mod ledger;
pub mod life;
pub mod memory;
pub mod payment_id;
pub mod put;
pub mod record;
pub mod settle;
pub mod wire;

#[cfg(test)]
pub(crate) mod sim;

/// How many compares one operation may lose to other writers before it gives up as
/// [`Unavailable::Busy`]. Each loss is another writer's success, so with n writers of one key at
/// once none loses more than n - 1 times: 8 covers nine replicas writing one record at the same
/// moment (six concurrent sales to one payer lost four in a row against a real cluster). The
/// operation's deadline bounds the time either way.
pub const MAX_ATTEMPTS: usize = 8;

/// The longest lease the ledger asks for (a record that would live longer is cut to this).
pub const LONGEST_LEASE_SECONDS: u64 = 366 * 86_400;

/// One HTTP request to etcd's JSON gateway: `POST path` with `body` (`application/json`),
/// answered within `timeout_ms` or counted as [`Reply::TimedOut`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub path: &'static str,
    pub body: Vec<u8>,
    pub timeout_ms: u64,
}

/// What came back for a [`Call`]: an HTTP callout's result, the same as the facilitator's (the
/// proxy-wasm layer reads both the same way).
pub type Reply<'a> = crate::facilitator::CalloutResult<'a>;

/// Why an operation could not use etcd. The flow treats every one the same way (fail closed);
/// the reason is for the log line and `ledger_errors`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unavailable {
    TimedOut,
    Failed,
    /// A non-2xx answer (etcd or the gateway refused, e.g. no leader).
    Status(u32),
    /// A 2xx answer that was not the JSON the gateway sends.
    Garbled,
    /// A record under the prefix that this filter did not write (unreadable).
    BadRecord,
    /// Lost the compare to other writers `MAX_ATTEMPTS` times in a row.
    Busy,
    /// The operation's time (`timeoutMs`) ran out before it could finish.
    Deadline,
}

impl Unavailable {
    pub fn reason(self) -> String {
        match self {
            Unavailable::TimedOut => "timeout".to_owned(),
            Unavailable::Failed => "connection_failed".to_owned(),
            Unavailable::Status(status) => format!("status_{status}"),
            Unavailable::Garbled => "garbled_answer".to_owned(),
            Unavailable::BadRecord => "bad_record".to_owned(),
            Unavailable::Busy => "busy".to_owned(),
            Unavailable::Deadline => "deadline".to_owned(),
        }
    }
}

/// The end of an operation: its result, and calls to send without waiting for their answers
/// (none today: leases are shared and never revoked, `memory`; the host still sends whatever
/// an operation leaves here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished<T> {
    pub result: Result<T, Unavailable>,
    pub cleanup: Vec<Call>,
}

/// What the host does next for an operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step<T> {
    /// Send this and hand what comes back to the operation's `on_reply`.
    Send(Call),
    Finish(Finished<T>),
}

/// Where the ledger lives in etcd, and how long one operation may take (`ledger.prefix`,
/// `ledger.timeoutMs`); and the memory of leases and records the operations started with these
/// settings share (one per worker: `memory`).
#[derive(Debug, Clone)]
pub struct Settings {
    prefix: String,
    timeout_ms: u64,
    memory: memory::Memory,
}

/// Settings are equal when they name the same ledger (the memory is not configuration).
impl PartialEq for Settings {
    fn eq(&self, other: &Settings) -> bool {
        self.prefix == other.prefix && self.timeout_ms == other.timeout_ms
    }
}

impl Eq for Settings {}

impl Settings {
    /// `prefix` starts and ends with `/`, at most 128 printable ASCII characters without spaces;
    /// `timeout_ms` is between 1 and 60,000.
    pub fn new(prefix: &str, timeout_ms: u64) -> Option<Settings> {
        let printable = prefix.bytes().all(|b| b.is_ascii_graphic());
        let ok = prefix.len() >= 2 && prefix.len() <= 128 && prefix.starts_with('/') && prefix.ends_with('/');
        (ok && printable && (1..=60_000).contains(&timeout_ms)).then(|| Settings {
            prefix: prefix.to_owned(),
            timeout_ms,
            memory: memory::Memory::default(),
        })
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn timeout_ms(&self) -> u64 {
        self.timeout_ms
    }

    pub fn memory(&self) -> &memory::Memory {
        &self.memory
    }
}

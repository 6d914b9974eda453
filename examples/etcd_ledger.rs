//! A test executor for the shared ledger (src/etcd): it runs the core's pure operations over
//! real HTTP to a real etcd, sending exactly the calls the filter will send through Envoy, and
//! prints each result as one JSON line. The cluster suite (tests/ledger) drives it.
//!
//! ```text
//! etcd_ledger --endpoints 127.0.0.1:2379,127.0.0.1:2479 [--prefix /x402-access-pass/]
//!             [--timeout-ms 1000] [--first N] [--stale-after S] [--window S] <command>
//!   claim HASH                       claim the payment HASH (64 hex)
//!   put HASH ENTRY_JSON              record a purchase state (replay::Entry as JSON)
//!   forget HASH
//!   record HASH                      the record as etcd holds it, and its lease's time to live
//!   entitle PAYER TIER IAT EXP NETWORK [LEEWAY]
//!   entitlement PAYER
//!   settle HASH ENTRY_JSON PAYER TIER IAT EXP NETWORK   a state and the payer's entitlement in
//!                                    one transaction (the filter's `PutEntitled`, leeway 0)
//!   bind ID PAYMENT REQUEST [TAKEOVER]   bind a payment id (PAYMENT, REQUEST: 64 hex) as the filter does
//!   release ID PAYMENT               let the id go if PAYMENT holds it
//!   race-claim HASH N                N claims of HASH at once, one thread each, member i % members
//!   race-entitle PAYER NETWORK EXP,EXP,...   one store per EXP at once, as above
//!   race-settle PAYER NETWORK EXP,EXP,...    one settlement of a payment of its own (HASH i is
//!                                    `{i:02x}` then the payer's SHA-256, as 64 hex) per EXP at once
//! ```
//!
//! A call goes to one member; a member that refuses the connection is skipped for the next
//! (as an Envoy cluster with health checks does). Time is the machine's clock.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Barrier;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use x402_access_pass::etcd::record::{self, Op, Record};
use x402_access_pass::etcd::{claim, entitlement, forget, keys, ledger, put, wire};
use x402_access_pass::etcd::{Call, Finished, Reply, Settings, Step};
use x402_access_pass::ledger::{LedgerAnswer, LedgerOp, PurchaseKey};
use x402_access_pass::replay::{Claim, Entry, IdClaim, Policy};

struct Client {
    endpoints: Vec<SocketAddr>,
    next: usize,
    /// Every call sent, cleanup included.
    calls: usize,
}

enum Answer {
    Response(u32, Vec<u8>),
    TimedOut,
    Failed,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl Client {
    /// `POST call.path` to the next member that takes the connection, within `call.timeout_ms`.
    fn send(&mut self, call: &Call) -> Answer {
        self.calls += 1;
        let deadline = Instant::now() + Duration::from_millis(call.timeout_ms);
        for _ in 0..self.endpoints.len() {
            let Some(endpoint) = self.endpoints.get(self.next % self.endpoints.len()).copied() else {
                return Answer::Failed;
            };
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Answer::TimedOut;
            }
            match TcpStream::connect_timeout(&endpoint, left) {
                Ok(stream) => return exchange(stream, call, deadline),
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return Answer::TimedOut,
                Err(_) => self.next += 1,
            }
        }
        Answer::Failed
    }
}

/// One HTTP/1.0 exchange (the answer ends with the connection: no chunking).
fn exchange(mut stream: TcpStream, call: &Call, deadline: Instant) -> Answer {
    let head = format!(
        "POST {} HTTP/1.0\r\nHost: etcd\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        call.path,
        call.body.len()
    );
    let mut request = head.into_bytes();
    request.extend_from_slice(&call.body);
    let timed_out =
        |e: &std::io::Error| matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut);
    let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
    let _ = stream.set_write_timeout(Some(left));
    if let Err(e) = stream.write_all(&request) {
        return if timed_out(&e) { Answer::TimedOut } else { Answer::Failed };
    }
    let mut answer = Vec::new();
    let mut buffer = [0u8; 16 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Answer::TimedOut;
        }
        let _ = stream.set_read_timeout(Some(left));
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(buffer.get(..n).unwrap_or_default()),
            Err(e) if timed_out(&e) => return Answer::TimedOut,
            Err(_) => return Answer::Failed,
        }
        if answer.len() > 1 << 20 {
            return Answer::Failed;
        }
    }
    let Some(split) = answer.windows(4).position(|w| w == b"\r\n\r\n") else { return Answer::Failed };
    let status = std::str::from_utf8(answer.get(..split).unwrap_or_default())
        .ok()
        .and_then(|head| head.split(' ').nth(1))
        .and_then(|code| code.parse().ok());
    match status {
        Some(status) => Answer::Response(status, answer.get(split + 4..).unwrap_or_default().to_vec()),
        None => Answer::Failed,
    }
}

fn set(value: &mut Value, key: &str, field: Value) {
    if let Some(object) = value.as_object_mut() {
        object.insert(key.to_owned(), field);
    }
}

fn reply(answer: &Answer) -> Reply<'_> {
    match answer {
        Answer::Response(status, body) => Reply::Response { status: *status, body },
        Answer::TimedOut => Reply::TimedOut,
        Answer::Failed => Reply::Failed,
    }
}

/// Sends cleanup calls without waiting for their answers (as the filter will).
fn clean<T>(client: &mut Client, finished: &Finished<T>) {
    for call in &finished.cleanup {
        let mut background = Client { endpoints: client.endpoints.clone(), next: client.next, calls: 0 };
        let call = call.clone();
        client.calls += 1;
        std::thread::spawn(move || background.send(&call));
    }
}

fn run<R: Record>(client: &mut Client, (mut op, mut step): (Op<R>, Step<R::Output>)) -> Finished<R::Output> {
    loop {
        match step {
            Step::Send(call) => {
                let answer = client.send(&call);
                step = op.on_reply(reply(&answer), now_ms());
            }
            Step::Finish(finished) => {
                clean(client, &finished);
                return finished;
            }
        }
    }
}

fn claim_name(claim: &Claim) -> &'static str {
    match claim {
        Claim::Fresh => "fresh",
        Claim::InProgress => "in_progress",
        Claim::Replay(_) => "replay",
        Claim::Duplicate => "duplicate",
        Claim::Recover(_) => "recover",
    }
}

fn outcome<T>(finished: Finished<T>, name: impl Fn(T) -> Value) -> Value {
    match finished.result {
        Ok(value) => json!({ "result": name(value) }),
        Err(problem) => json!({ "unavailable": problem.reason() }),
    }
}

/// Runs one of the checkout's ledger ops as the filter does (`etcd::ledger`).
fn ledger_outcome(
    client: &mut Client,
    options: &Options,
    op: &LedgerOp,
    name: impl Fn(LedgerAnswer) -> Value,
) -> Value {
    let (mut running, mut step) = ledger::start(&options.settings, options.policy, 0, op, now_ms());
    let finished = loop {
        match step {
            Step::Send(call) => {
                let answer = client.send(&call);
                step = running.on_reply(reply(&answer), now_ms());
            }
            Step::Finish(finished) => break finished,
        }
    };
    clean(client, &finished);
    outcome(finished, name)
}

struct Options {
    settings: Settings,
    policy: Policy,
    endpoints: Vec<SocketAddr>,
    first: usize,
}

fn purchase_key(options: &Options, hash: &str) -> Result<keys::Key, String> {
    keys::purchase(&options.settings, hash).ok_or_else(|| format!("not a purchase hash: {hash}"))
}

fn command(options: &Options, client: &mut Client, args: &[String]) -> Result<Value, String> {
    let arg = |i: usize| args.get(i).map(String::as_str).ok_or_else(|| format!("missing argument {i}"));
    let number = |i: usize| arg(i)?.parse::<u64>().map_err(|e| e.to_string());
    let settings = &options.settings;
    Ok(match arg(0)? {
        "claim" => {
            let started = claim::claim(settings, purchase_key(options, arg(1)?)?, options.policy, now_ms());
            let finished = run(client, started);
            let recovered = matches!(&finished.result, Ok(Claim::Recover(_)) | Ok(Claim::Replay(_)));
            let mut value = outcome(finished.clone(), |c| json!(claim_name(&c)));
            if recovered {
                if let Ok(Claim::Recover(pass)) = &finished.result {
                    set(&mut value, "token", json!(pass.token));
                }
                if let Ok(Claim::Replay(receipt)) = &finished.result {
                    set(&mut value, "token", json!(receipt.token));
                }
            }
            value
        }
        "put" => {
            let entry: Entry = serde_json::from_str(arg(2)?).map_err(|e| e.to_string())?;
            let started = put::put(settings, purchase_key(options, arg(1)?)?, entry, options.policy, now_ms());
            outcome(run(client, started), |()| json!("done"))
        }
        "forget" => {
            let (mut op, mut step) = forget::forget(settings, purchase_key(options, arg(1)?)?);
            let finished = loop {
                match step {
                    Step::Send(call) => {
                        let answer = client.send(&call);
                        step = op.on_reply(reply(&answer), now_ms());
                    }
                    Step::Finish(finished) => break finished,
                }
            };
            clean(client, &finished);
            outcome(finished, |()| json!("done"))
        }
        "record" => {
            let key = purchase_key(options, arg(1)?)?;
            let call = Call { path: wire::RANGE, body: wire::range(key.as_bytes()), timeout_ms: settings.timeout_ms() };
            let answer = client.send(&call);
            match wire::read_range(reply(&answer), key.as_bytes()) {
                Ok(None) => json!({ "result": null }),
                Ok(Some(kv)) => {
                    // The record as the filter reads it (a one-record bucket), shown as its entry.
                    let value = record::decode_entry(&kv.value)
                        .and_then(|entry| serde_json::to_value(entry).ok())
                        .unwrap_or(Value::Null);
                    let body = json!({ "ID": kv.lease.to_string() }).to_string().into_bytes();
                    let ttl =
                        client.send(&Call { path: "/v3/lease/timetolive", body, timeout_ms: settings.timeout_ms() });
                    let ttl = match ttl {
                        Answer::Response(200, body) => serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null),
                        _ => Value::Null,
                    };
                    json!({ "result": value, "lease": kv.lease.to_string(), "ttl": ttl.get("TTL"), "granted_ttl": ttl.get("grantedTTL") })
                }
                Err(problem) => json!({ "unavailable": problem.reason() }),
            }
        }
        "entitle" => {
            let payer = arg(1)?;
            let value = entitlement::Entitlement {
                tier: arg(2)?.to_owned(),
                iat: number(3)?,
                exp: number(4)?,
                network: arg(5)?.to_owned(),
            };
            let leeway =
                args.get(6).map_or(Ok(0), |s| s.parse().map_err(|e: std::num::ParseIntError| e.to_string()))?;
            let started = entitlement::store(settings, payer, value, leeway, now_ms()).ok_or("not well formed")?;
            outcome(run(client, started), |stored| json!(format!("{stored:?}").to_lowercase()))
        }
        "entitlement" => {
            let started = entitlement::read(settings, arg(1)?, now_ms()).ok_or("not a payer")?;
            outcome(run(client, started), |held| match held {
                Some(e) => json!({ "tier": e.tier, "iat": e.iat, "exp": e.exp, "network": e.network }),
                None => Value::Null,
            })
        }
        "settle" => {
            let at = PurchaseKey { bucket: 0, key: arg(1)?.to_owned() };
            let entry: Entry = serde_json::from_str(arg(2)?).map_err(|e| e.to_string())?;
            let entitlement = entitlement::Entitlement {
                tier: arg(4)?.to_owned(),
                iat: number(5)?,
                exp: number(6)?,
                network: arg(7)?.to_owned(),
            };
            let op = LedgerOp::PutEntitled { at, entry: Box::new(entry), payer: arg(3)?.to_owned(), entitlement };
            ledger_outcome(client, options, &op, |answer| match answer {
                LedgerAnswer::Granted(_) => json!("done"),
                other => json!(format!("{other:?}")),
            })
        }
        "bind" => {
            // The local ledger's identifier rules, as the filter runs them (etcd::ledger).
            let id = PurchaseKey { bucket: 0, key: format!("id:{}", arg(1)?) };
            let payment = PurchaseKey { bucket: 0, key: arg(2)?.to_owned() };
            let request = arg(3)?.to_owned();
            let takeover = args.get(4).cloned();
            let op = LedgerOp::ClaimId { id, request, payment, takeover };
            ledger_outcome(client, options, &op, |answer| match answer {
                LedgerAnswer::Identified(IdClaim::Bound) => json!("bound"),
                LedgerAnswer::Identified(IdClaim::Conflict) => json!("conflict"),
                LedgerAnswer::Identified(IdClaim::Taken { payment, stale, .. }) => {
                    json!({ "taken": payment, "stale": stale })
                }
                other => json!(format!("{other:?}")),
            })
        }
        "release" => {
            let id = PurchaseKey { bucket: 0, key: format!("id:{}", arg(1)?) };
            let payment = PurchaseKey { bucket: 0, key: arg(2)?.to_owned() };
            ledger_outcome(client, options, &LedgerOp::ReleaseId { id, payment }, |_| json!("done"))
        }
        "race-claim" => {
            let hash = arg(1)?.to_owned();
            let n = number(2)? as usize;
            race(options, n, |options, client, _| command(options, client, &["claim".to_owned(), hash.clone()]))?
        }
        "race-entitle" => {
            let (payer, network) = (arg(1)?.to_owned(), arg(2)?.to_owned());
            let exps: Vec<String> = arg(3)?.split(',').map(str::to_owned).collect();
            let now = (now_ms() / 1_000).to_string();
            race(options, exps.len(), |options, client, i| {
                let exp = exps.get(i).cloned().unwrap_or_default();
                let args = ["entitle", &payer, "1h", &now, &exp, &network].map(str::to_owned);
                command(options, client, &args)
            })?
        }
        "race-settle" => {
            let (payer, network) = (arg(1)?.to_owned(), arg(2)?.to_owned());
            let exps: Vec<String> = arg(3)?.split(',').map(str::to_owned).collect();
            let now = now_ms() / 1_000;
            race(options, exps.len(), |options, client, i| {
                let exp = exps.get(i).cloned().unwrap_or_default();
                let hash = payment_of(&payer, i);
                let receipt = json!({"token": format!("t{i}"), "payment_response": "p", "body": "{}"});
                let entry = json!({"settled": {"at": now, "receipt": receipt}}).to_string();
                let args = ["settle", &hash, &entry, &payer, "1h", &now.to_string(), &exp, &network].map(str::to_owned);
                command(options, client, &args)
            })?
        }
        other => return Err(format!("unknown command {other}")),
    })
}

/// The payment hash `race-settle` uses for its `i`-th settlement to `payer`.
fn payment_of(payer: &str, i: usize) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(payer.as_bytes());
    let hex: String = digest.iter().skip(1).map(|b| format!("{b:02x}")).collect();
    format!("{:02x}{hex}", i % 256)
}

/// `n` runs of `work` at once, run i on its own thread, starting at member i.
fn race(
    options: &Options,
    n: usize,
    work: impl Fn(&Options, &mut Client, usize) -> Result<Value, String> + Sync,
) -> Result<Value, String> {
    let barrier = Barrier::new(n);
    let results: Vec<Result<Value, String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let (barrier, work) = (&barrier, &work);
                scope.spawn(move || {
                    let mut client = Client { endpoints: rotate(&options.endpoints, i), next: 0, calls: 0 };
                    barrier.wait();
                    let started = Instant::now();
                    let mut value = work(options, &mut client, i)?;
                    set(&mut value, "ms", json!(started.elapsed().as_millis() as u64));
                    Ok(value)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err("thread panicked".to_owned()))).collect()
    });
    Ok(json!({ "results": results.into_iter().collect::<Result<Vec<_>, _>>()? }))
}

fn rotate(endpoints: &[SocketAddr], by: usize) -> Vec<SocketAddr> {
    let mut rotated = endpoints.to_vec();
    if !rotated.is_empty() {
        let by = by % rotated.len();
        rotated.rotate_left(by);
    }
    rotated
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut rest = Vec::new();
    let (mut endpoints, mut prefix, mut timeout_ms, mut first) =
        (String::new(), "/x402-access-pass/".to_owned(), 1_000, 0);
    let mut policy = Policy { replay_window_seconds: 600, stale_after_seconds: 25 };
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_default();
        match arg.as_str() {
            "--endpoints" => endpoints = value(),
            "--prefix" => prefix = value(),
            "--timeout-ms" => timeout_ms = value().parse().unwrap_or(0),
            "--first" => first = value().parse().unwrap_or(0),
            "--stale-after" => policy.stale_after_seconds = value().parse().unwrap_or(25),
            "--window" => policy.replay_window_seconds = value().parse().unwrap_or(600),
            _ => rest.push(arg),
        }
    }
    let endpoints: Vec<SocketAddr> = endpoints.split(',').filter_map(|e| e.parse().ok()).collect();
    let Some(settings) = Settings::new(&prefix, timeout_ms) else {
        eprintln!("bad --prefix or --timeout-ms");
        std::process::exit(2);
    };
    if endpoints.is_empty() {
        eprintln!("--endpoints host:port,... is required");
        std::process::exit(2);
    }
    let options = Options { settings, policy, endpoints: rotate(&endpoints, first), first };
    let mut client = Client { endpoints: options.endpoints.clone(), next: 0, calls: 0 };
    let started = Instant::now();
    match command(&options, &mut client, &rest) {
        Ok(mut value) => {
            set(&mut value, "ms", json!(started.elapsed().as_millis() as u64));
            set(&mut value, "calls", json!(client.calls));
            set(&mut value, "first", json!(options.first));
            println!("{value}");
            // Let cleanup calls leave before the process ends.
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(problem) => {
            eprintln!("etcd_ledger: {problem}");
            std::process::exit(2);
        }
    }
}

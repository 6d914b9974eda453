//! Wiring: the three listeners (facilitator, control, RPC), their routes, and
//! the fault handling in front of the facilitator endpoints.

use crate::facilitator::{Config, Facilitator};
use crate::faults::{self, Endpoint, Faults, Mode};
use crate::http::{self, Reply, Request, Response, Switchable};
use crate::rpc::Rpc;
use serde_json::{json, Value};
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

pub struct Options {
    pub listen: String,
    pub control_listen: String,
    pub rpc_listen: Option<String>,
    pub config: Config,
    /// EVM networks served too (`--evm-network`).
    pub evm: Option<crate::evm::EvmConfig>,
    pub ata_owners: Vec<x402_access_pass::solana::Pubkey>,
}

pub struct App {
    pub facilitator: Facilitator,
    pub faults: Faults,
    pub rpc: Rpc,
    listener: OnceLock<Arc<Switchable>>,
}

/// Addresses actually bound (port 0 resolved).
#[derive(Debug, Clone, Copy)]
pub struct Bound {
    pub facilitator: SocketAddr,
    pub control: SocketAddr,
    pub rpc: Option<SocketAddr>,
}

impl Bound {
    pub fn line(&self) -> String {
        let mut s = format!("listening facilitator={} control={}", self.facilitator, self.control);
        if let Some(r) = self.rpc {
            s.push_str(&format!(" rpc={r}"));
        }
        s
    }

    pub fn json(&self) -> Value {
        let mut v = json!({"facilitator": self.facilitator.to_string(), "control": self.control.to_string()});
        if let Some(r) = self.rpc {
            v["rpc"] = json!(r.to_string());
        }
        v
    }
}

/// One line per request, with the facilitator's own handling time (in ms, and in µs: bench/run.py
/// subtracts it from a paid request's latency to get what the filter adds).
fn log(kind: &str, req: &Request, status: &str, started: Instant, note: &str) {
    let q = if req.query.is_empty() { String::new() } else { format!("?{}", req.query) };
    let elapsed = started.elapsed();
    eprintln!(
        "[{kind}] {} {}{q} -> {status} ({} ms, {} us){note}",
        req.method,
        req.path,
        elapsed.as_millis(),
        elapsed.as_micros()
    );
}

fn reply_status(r: &Reply) -> String {
    match r {
        Reply::Send(resp) => resp.status.to_string(),
        Reply::Truncated(resp) => format!("{} truncated", resp.status),
        Reply::Reset => "reset".into(),
    }
}

fn parse_json(body: &[u8]) -> Result<Value, Reply> {
    serde_json::from_slice(body).map_err(|_| {
        Reply::Send(Response::json(400, &json!({"error": "invalid_request", "message": "body is not JSON"})))
    })
}

impl App {
    pub fn new(
        config: Config,
        evm: Option<crate::evm::EvmConfig>,
        ata_owners: &[x402_access_pass::solana::Pubkey],
    ) -> App {
        let rpc = Rpc::new(&config.network, config.asset, config.decimals, ata_owners);
        App {
            facilitator: Facilitator::new(config).with_evm(evm),
            faults: Faults::default(),
            rpc,
            listener: OnceLock::new(),
        }
    }

    /// The normal answer of a facilitator endpoint.
    fn facilitator_answer(&self, ep: Endpoint, req: &Request, settle_failure: bool) -> Reply {
        let value = match ep {
            Endpoint::Supported => self.facilitator.supported(),
            Endpoint::Verify | Endpoint::Settle => {
                let body = match parse_json(&req.body) {
                    Ok(b) => b,
                    Err(r) => return r,
                };
                if ep == Endpoint::Verify {
                    self.facilitator.verify(&body)
                } else {
                    self.facilitator.settle(&body, settle_failure)
                }
            }
        };
        Reply::Send(Response::json(200, &value))
    }

    fn facilitator_route(&self, req: &Request) -> (Reply, String) {
        let ep = Endpoint::from_path(&req.path);
        let method_ok = match ep {
            Some(Endpoint::Supported) => req.method == "GET" || req.method == "HEAD",
            Some(_) => req.method == "POST",
            None => false,
        };
        let Some(ep) = ep.filter(|_| method_ok) else {
            let status = if ep.is_some() { 405 } else { 404 };
            return (Reply::Send(Response::json(status, &json!({"error": "not_found"}))), String::new());
        };
        self.facilitator.count(|c| match ep {
            Endpoint::Supported => c.supported += 1,
            Endpoint::Verify => c.verify += 1,
            Endpoint::Settle => c.settle += 1,
        });
        let Some(fault) = self.faults.take(ep) else {
            return (self.facilitator_answer(ep, req, false), String::new());
        };
        let note = format!(" fault={}", fault.mode.name());
        if fault.delay_ms > 0 {
            thread::sleep(Duration::from_millis(fault.delay_ms));
        }
        let reply = match fault.mode {
            Mode::None | Mode::Slow | Mode::Refuse => self.facilitator_answer(ep, req, false),
            Mode::SettleFailure => self.facilitator_answer(ep, req, ep == Endpoint::Settle),
            Mode::Settle(how) if ep == Endpoint::Settle => match parse_json(&req.body) {
                Ok(body) => {
                    let (status, value) = self.facilitator.settle_as(&body, how);
                    Reply::Send(Response::json(status, &value))
                }
                Err(reply) => reply,
            },
            Mode::Settle(_) => self.facilitator_answer(ep, req, false),
            Mode::Status => {
                Reply::Send(Response::json(fault.status, &json!({"error": "fault_injected", "status": fault.status})))
            }
            Mode::Garbage => Reply::Send(Response::new(200, "application/json", "not json{")),
            // The request is processed (a settle does settle), the answer cut.
            Mode::Truncated => match self.facilitator_answer(ep, req, false) {
                Reply::Send(mut resp) => {
                    let keep = resp.body.len() / 2;
                    resp.body.truncate(keep);
                    Reply::Truncated(resp)
                }
                other => other,
            },
            // Nothing processed, no answer.
            Mode::Reset => Reply::Reset,
        };
        (reply, note)
    }

    fn apply_refuse(&self) {
        if let Some(l) = self.listener.get() {
            l.set_listening(!self.faults.refusing());
        }
    }

    fn control_route(&self, req: &Request) -> Reply {
        let ok = |v: Value| Reply::Send(Response::json(200, &v));
        match (req.method.as_str(), req.path.as_str()) {
            ("POST", "/fault") => match faults::parse(&req.body) {
                Ok((endpoints, fault)) => {
                    self.faults.set(&endpoints, fault);
                    self.apply_refuse();
                    ok(json!({"ok": true, "faults": self.faults.snapshot()}))
                }
                Err(e) => Reply::Send(Response::json(400, &json!({"ok": false, "error": e}))),
            },
            ("GET", "/fault") | ("GET", "/faults") => ok(self.faults.snapshot()),
            ("POST", "/reset") => {
                self.faults.clear();
                self.apply_refuse();
                let records = req.query_flag("records");
                if records {
                    self.facilitator.reset_records();
                }
                ok(json!({"ok": true, "records": records}))
            }
            ("GET", "/state") => ok(self.facilitator.state()),
            // The EVM stand-in chain: {"network":"eip155:…","address":"0x…","amount":"…"}.
            ("POST", "/evm/balance") => {
                let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
                let text = |k: &str| body.get(k).and_then(Value::as_str).unwrap_or_default();
                let set = text("amount")
                    .parse::<u64>()
                    .map_err(|_| "amount must be a decimal string".to_string())
                    .and_then(|amount| self.facilitator.set_evm_balance(text("network"), text("address"), amount));
                match set {
                    Ok(()) => ok(json!({"ok": true})),
                    Err(e) => Reply::Send(Response::json(400, &json!({"ok": false, "error": e}))),
                }
            }
            ("GET", "/health") | ("GET", "/") => ok(json!({"ok": true})),
            _ => Reply::Send(Response::json(404, &json!({"error": "not_found"}))),
        }
    }

    fn rpc_route(&self, req: &Request) -> (Reply, String) {
        let allow_headers =
            req.header("access-control-request-headers").unwrap_or("content-type, solana-client").to_string();
        let cors = |r: Response| {
            r.with_header("Access-Control-Allow-Origin", "*")
                .with_header("Access-Control-Allow-Methods", "POST, GET, OPTIONS")
                .with_header("Access-Control-Allow-Headers", &allow_headers)
                .with_header("Access-Control-Max-Age", "86400")
        };
        let (resp, note) = match req.method.as_str() {
            "OPTIONS" => (Response::new(204, "text/plain", ""), String::new()),
            "GET" if req.path == "/health" => (Response::new(200, "text/plain", "ok"), String::new()),
            "POST" => {
                self.facilitator.count(|c| c.rpc += 1);
                let (answer, methods) = self.rpc.handle(&req.body);
                (Response::json(200, &answer), format!(" {}", methods.join(",")))
            }
            _ => (Response::json(405, &json!({"error": "method_not_allowed"})), String::new()),
        };
        (Reply::Send(cors(resp)), note)
    }
}

fn bind(addr: &str, what: &str) -> io::Result<TcpListener> {
    TcpListener::bind(addr).map_err(|e| io::Error::new(e.kind(), format!("cannot bind {what} {addr}: {e}")))
}

/// Binds every listener and starts serving in background threads.
pub fn start(opts: Options) -> io::Result<(Arc<App>, Bound)> {
    let fac_listener = bind(&opts.listen, "--listen")?;
    let control_listener = bind(&opts.control_listen, "--control-listen")?;
    let rpc_listener = opts.rpc_listen.as_deref().map(|a| bind(a, "--rpc-listen")).transpose()?;
    let bound = Bound {
        facilitator: fac_listener.local_addr()?,
        control: control_listener.local_addr()?,
        rpc: rpc_listener.as_ref().map(TcpListener::local_addr).transpose()?,
    };
    let app = Arc::new(App::new(opts.config, opts.evm, &opts.ata_owners));

    let a = Arc::clone(&app);
    let fac_handler: Arc<http::Handler> = Arc::new(move |req: &Request| {
        let started = Instant::now();
        let (reply, note) = a.facilitator_route(req);
        log("facilitator", req, &reply_status(&reply), started, &note);
        reply
    });
    let switch = Switchable::start(fac_listener, fac_handler)?;
    let _ = app.listener.set(switch);

    let a = Arc::clone(&app);
    http::serve(
        control_listener,
        Arc::new(move |req: &Request| {
            let started = Instant::now();
            let reply = a.control_route(req);
            let body = String::from_utf8_lossy(&req.body);
            let note = if body.is_empty() { String::new() } else { format!(" {body}") };
            log("control", req, &reply_status(&reply), started, &note);
            reply
        }),
    );

    if let Some(l) = rpc_listener {
        let a = Arc::clone(&app);
        http::serve(
            l,
            Arc::new(move |req: &Request| {
                let started = Instant::now();
                let (reply, note) = a.rpc_route(req);
                log("rpc", req, &reply_status(&reply), started, &note);
                reply
            }),
        );
    }
    Ok((app, bound))
}

//! Fault injection for the facilitator endpoints, driven by `POST /fault` on
//! the control port.

use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::Mutex;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Supported,
    Verify,
    Settle,
}

impl Endpoint {
    pub const ALL: [Endpoint; 3] = [Endpoint::Supported, Endpoint::Verify, Endpoint::Settle];

    pub fn name(self) -> &'static str {
        match self {
            Endpoint::Supported => "supported",
            Endpoint::Verify => "verify",
            Endpoint::Settle => "settle",
        }
    }

    /// The endpoint a request path names: its last segment, so that a
    /// facilitator URL with a path prefix works too.
    pub fn from_path(path: &str) -> Option<Endpoint> {
        match path.trim_end_matches('/').rsplit('/').next()? {
            "supported" => Some(Endpoint::Supported),
            "verify" => Some(Endpoint::Verify),
            "settle" => Some(Endpoint::Settle),
            _ => None,
        }
    }
}

use crate::facilitator::SettleAs;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    None,
    Slow,
    Status,
    Garbage,
    Truncated,
    Reset,
    Refuse,
    SettleFailure,
    /// `/settle` answers as `facilitator::SettleAs` says (other endpoints are unaffected).
    Settle(SettleAs),
}

impl Mode {
    fn parse(s: &str) -> Option<Mode> {
        Some(match s {
            "none" => Mode::None,
            "slow" => Mode::Slow,
            "status" => Mode::Status,
            "garbage" => Mode::Garbage,
            "truncated" => Mode::Truncated,
            "reset" => Mode::Reset,
            "refuse" => Mode::Refuse,
            "settle_failure" => Mode::SettleFailure,
            "settle_pending" => Mode::Settle(SettleAs::Pending),
            "confirmation_timeout" => Mode::Settle(SettleAs::ConfirmationTimeout),
            "already_processed" => Mode::Settle(SettleAs::AlreadyProcessed),
            "refused_400" => Mode::Settle(SettleAs::Refused400),
            "bad_transaction" => Mode::Settle(SettleAs::BadTransaction),
            "bad_network" => Mode::Settle(SettleAs::BadNetwork),
            "bad_payer" => Mode::Settle(SettleAs::BadPayer),
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Mode::None => "none",
            Mode::Slow => "slow",
            Mode::Status => "status",
            Mode::Garbage => "garbage",
            Mode::Truncated => "truncated",
            Mode::Reset => "reset",
            Mode::Refuse => "refuse",
            Mode::SettleFailure => "settle_failure",
            Mode::Settle(SettleAs::Pending) => "settle_pending",
            Mode::Settle(SettleAs::ConfirmationTimeout) => "confirmation_timeout",
            Mode::Settle(SettleAs::AlreadyProcessed) => "already_processed",
            Mode::Settle(SettleAs::Refused400) => "refused_400",
            Mode::Settle(SettleAs::BadTransaction) => "bad_transaction",
            Mode::Settle(SettleAs::BadNetwork) => "bad_network",
            Mode::Settle(SettleAs::BadPayer) => "bad_payer",
            Mode::Settle(_) => "settle",
        }
    }
}

/// One fault, as set by `POST /fault`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    pub mode: Mode,
    /// Sleep before answering (`slow`; also honoured with any other mode).
    pub delay_ms: u64,
    /// Status of the `status` mode.
    pub status: u16,
    /// Requests left to apply it to; `None` = until cleared.
    pub remaining: Option<u64>,
    /// The fault that takes over once `remaining` is used up (`"then"`): a sequence such as an
    /// answer lost, then `already_processed` to the retry, with no race against the client.
    pub then: Option<Box<Fault>>,
}

const DEFAULT_SLOW_MS: u64 = 2000;

/// Parses a `POST /fault` body into the endpoints it targets and the fault.
pub fn parse(body: &[u8]) -> Result<(Vec<Endpoint>, Fault), String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("body is not JSON: {e}"))?;
    let obj = v.as_object().ok_or("body must be a JSON object")?;
    let endpoints = match obj.get("endpoint").and_then(Value::as_str).unwrap_or("all") {
        "all" => Endpoint::ALL.to_vec(),
        "supported" => vec![Endpoint::Supported],
        "verify" => vec![Endpoint::Verify],
        "settle" => vec![Endpoint::Settle],
        other => return Err(format!("unknown endpoint {other:?}")),
    };
    Ok((endpoints, parse_fault(obj, true)?))
}

/// One fault object; `top`: the body itself (it may name the endpoint), not a `then`.
fn parse_fault(obj: &Map<String, Value>, top: bool) -> Result<Fault, String> {
    for k in obj.keys() {
        let known = matches!(k.as_str(), "mode" | "delayMs" | "status" | "count" | "then") || (top && k == "endpoint");
        if !known {
            return Err(format!("unknown field {k:?}"));
        }
    }
    let mode_str = obj.get("mode").and_then(Value::as_str).ok_or("mode is required")?;
    let mode = Mode::parse(mode_str).ok_or_else(|| format!("unknown mode {mode_str:?}"))?;
    let num = |name: &str| -> Result<Option<u64>, String> {
        match obj.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(x) => x.as_u64().map(Some).ok_or_else(|| format!("{name} must be a non-negative integer")),
        }
    };
    let delay_ms = num("delayMs")?.unwrap_or(if mode == Mode::Slow { DEFAULT_SLOW_MS } else { 0 });
    let status = match num("status")? {
        None => 500,
        Some(s) if (100..=599).contains(&s) => s as u16,
        Some(_) => return Err("status must be in 100..=599".into()),
    };
    let remaining = if mode == Mode::Refuse { None } else { num("count")? };
    let then = match obj.get("then") {
        None | Some(Value::Null) => None,
        Some(Value::Object(next)) => {
            if remaining.is_none() {
                return Err("then needs a count: it takes over once the count is used up".into());
            }
            if matches!(mode, Mode::None | Mode::Refuse) {
                return Err(format!("then cannot follow mode {mode_str:?}"));
            }
            let next = parse_fault(next, false)?;
            if next.mode == Mode::Refuse {
                return Err("then cannot be refuse".into());
            }
            Some(Box::new(next))
        }
        Some(_) => return Err("then must be a fault object".into()),
    };
    Ok(Fault { mode, delay_ms, status, remaining, then })
}

/// The faults in force, per endpoint.
#[derive(Default)]
pub struct Faults {
    inner: Mutex<HashMap<Endpoint, Fault>>,
}

impl Faults {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Endpoint, Fault>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets a fault (the last one set wins for its endpoints); mode `none`
    /// clears them.
    pub fn set(&self, endpoints: &[Endpoint], fault: Fault) {
        let mut map = self.lock();
        for ep in endpoints {
            if fault.mode == Mode::None || fault.remaining == Some(0) {
                map.remove(ep);
            } else {
                map.insert(*ep, fault.clone());
            }
        }
    }

    pub fn clear(&self) {
        self.lock().clear();
    }

    /// Whether the facilitator listener must be closed.
    pub fn refusing(&self) -> bool {
        self.lock().values().any(|f| f.mode == Mode::Refuse)
    }

    /// The fault to apply to one request to `ep`, consuming one of its count
    /// (the last one hands the endpoint over to its `then`, if any).
    /// `refuse` is handled at the listener, so it is not returned.
    pub fn take(&self, ep: Endpoint) -> Option<Fault> {
        let mut map = self.lock();
        let fault = map.get(&ep)?.clone();
        if fault.mode == Mode::Refuse {
            return None;
        }
        if let Some(n) = fault.remaining {
            if n <= 1 {
                match fault.then.clone() {
                    Some(next) => map.insert(ep, *next),
                    None => map.remove(&ep),
                };
            } else if let Some(f) = map.get_mut(&ep) {
                f.remaining = Some(n - 1);
            }
        }
        Some(fault)
    }

    pub fn snapshot(&self) -> Value {
        let map = self.lock();
        let mut out = Map::new();
        for ep in Endpoint::ALL {
            if let Some(f) = map.get(&ep) {
                out.insert(ep.name().into(), describe(f));
            }
        }
        Value::Object(out)
    }
}

fn describe(f: &Fault) -> Value {
    let mut v = json!({"mode": f.mode.name(), "delayMs": f.delay_ms, "status": f.status, "count": f.remaining});
    if let (Some(next), Some(obj)) = (&f.then, v.as_object_mut()) {
        obj.insert("then".into(), describe(next));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_counts() {
        let (eps, f) = parse(br#"{"endpoint":"verify","mode":"status","status":503,"count":2}"#).unwrap();
        assert_eq!(eps, vec![Endpoint::Verify]);
        assert_eq!(f.status, 503);
        let faults = Faults::default();
        faults.set(&eps, f);
        assert_eq!(faults.take(Endpoint::Settle), None);
        assert_eq!(faults.take(Endpoint::Verify).unwrap().mode, Mode::Status);
        assert_eq!(faults.take(Endpoint::Verify).unwrap().remaining, Some(1));
        assert_eq!(faults.take(Endpoint::Verify), None);
    }

    #[test]
    fn defaults_and_errors() {
        let (eps, f) = parse(br#"{"mode":"slow"}"#).unwrap();
        assert_eq!(eps.len(), 3);
        assert_eq!(f.delay_ms, DEFAULT_SLOW_MS);
        assert_eq!(f.remaining, None);
        let (_, f) = parse(br#"{"endpoint":"all","mode":"status"}"#).unwrap();
        assert_eq!(f.status, 500);
        assert!(parse(br#"{"mode":"explode"}"#).is_err());
        assert!(parse(br#"{"endpoint":"x","mode":"none"}"#).is_err());
        assert!(parse(br#"{"mode":"none","bogus":1}"#).is_err());
        assert!(parse(b"nope").is_err());
    }

    #[test]
    fn refuse_ignores_count_and_none_clears() {
        let faults = Faults::default();
        let (eps, f) = parse(br#"{"endpoint":"all","mode":"refuse","count":1}"#).unwrap();
        assert_eq!(f.remaining, None);
        faults.set(&eps, f);
        assert!(faults.refusing());
        assert_eq!(faults.take(Endpoint::Verify), None);
        assert!(faults.refusing());
        let (eps, f) = parse(br#"{"endpoint":"all","mode":"none"}"#).unwrap();
        faults.set(&eps, f);
        assert!(!faults.refusing());
    }

    #[test]
    fn last_set_wins() {
        let faults = Faults::default();
        let (eps, f) = parse(br#"{"endpoint":"settle","mode":"garbage"}"#).unwrap();
        faults.set(&eps, f);
        let (eps, f) = parse(br#"{"endpoint":"settle","mode":"settle_failure","count":1}"#).unwrap();
        faults.set(&eps, f);
        assert_eq!(faults.take(Endpoint::Settle).unwrap().mode, Mode::SettleFailure);
        assert_eq!(faults.take(Endpoint::Settle), None);
    }

    #[test]
    fn then_takes_over_once_the_count_is_used_up() {
        let faults = Faults::default();
        let body =
            br#"{"endpoint":"settle","mode":"truncated","count":1,"then":{"mode":"already_processed","count":2}}"#;
        let (eps, f) = parse(body).unwrap();
        faults.set(&eps, f);
        assert_eq!(faults.snapshot()["settle"]["then"]["mode"], "already_processed");
        assert_eq!(faults.take(Endpoint::Settle).unwrap().mode, Mode::Truncated);
        assert_eq!(faults.snapshot()["settle"]["mode"], "already_processed");
        assert_eq!(faults.take(Endpoint::Settle).unwrap().mode, Mode::Settle(SettleAs::AlreadyProcessed));
        assert_eq!(faults.take(Endpoint::Settle).unwrap().mode, Mode::Settle(SettleAs::AlreadyProcessed));
        assert_eq!(faults.take(Endpoint::Settle), None);
        assert_eq!(faults.snapshot(), json!({}));
        // a then without a count of its own lasts until cleared
        let (eps, f) = parse(br#"{"endpoint":"verify","mode":"garbage","count":1,"then":{"mode":"slow"}}"#).unwrap();
        faults.set(&eps, f);
        faults.take(Endpoint::Verify);
        for _ in 0..3 {
            assert_eq!(faults.take(Endpoint::Verify).unwrap().delay_ms, DEFAULT_SLOW_MS);
        }
    }

    #[test]
    fn then_is_checked() {
        assert!(parse(br#"{"mode":"truncated","then":{"mode":"slow"}}"#).is_err(), "then needs a count");
        assert!(parse(br#"{"mode":"truncated","count":1,"then":{"mode":"refuse"}}"#).is_err());
        assert!(parse(br#"{"mode":"truncated","count":1,"then":{"mode":"slow","endpoint":"verify"}}"#).is_err());
        assert!(parse(br#"{"mode":"truncated","count":1,"then":"slow"}"#).is_err());
        assert!(parse(br#"{"mode":"none","count":1,"then":{"mode":"slow"}}"#).is_err());
    }

    #[test]
    fn endpoint_from_path() {
        assert_eq!(Endpoint::from_path("/verify"), Some(Endpoint::Verify));
        assert_eq!(Endpoint::from_path("/x402/settle"), Some(Endpoint::Settle));
        assert_eq!(Endpoint::from_path("/supported/"), Some(Endpoint::Supported));
        assert_eq!(Endpoint::from_path("/other"), None);
    }
}

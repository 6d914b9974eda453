//! Envoy counters, all named `x402_access_pass.*` (SPEC §10). Envoy shows wasm
//! metrics with its own `wasmcustom.` prefix in `/stats`.

use std::cell::RefCell;
use std::collections::HashMap;

use proxy_wasm::hostcalls;
use proxy_wasm::types::MetricType;

/// Reasons come partly from the facilitator: bound how many names exist.
const MAX_DYNAMIC: usize = 128;

pub struct Metrics {
    pub passes_accepted: Option<u32>,
    pub challenges_issued: Option<u32>,
    pub preflights_answered: Option<u32>,
    pub purchases_succeeded: Option<u32>,
    pub replays_served: Option<u32>,
    pub settled_atomic: Option<u32>,
    pub facilitator_errors: Option<u32>,
    pub facilitator_timeouts: Option<u32>,
    pub settlements_unknown: Option<u32>,
    pub settle_retries: Option<u32>,
    pub settlements_recovered: Option<u32>,
    pub fee_payer_unavailable: Option<u32>,
    dynamic: RefCell<HashMap<String, Option<u32>>>,
}

fn counter(name: &str) -> Option<u32> {
    hostcalls::define_metric(MetricType::Counter, &format!("x402_access_pass.{name}")).ok()
}

impl Metrics {
    pub fn define() -> Metrics {
        Metrics {
            passes_accepted: counter("passes_accepted"),
            challenges_issued: counter("challenges_issued"),
            preflights_answered: counter("preflights_answered"),
            purchases_succeeded: counter("purchases_succeeded"),
            replays_served: counter("replays_served"),
            settled_atomic: counter("settled_atomic"),
            facilitator_errors: counter("facilitator_errors"),
            facilitator_timeouts: counter("facilitator_timeouts"),
            settlements_unknown: counter("settlements_unknown"),
            settle_retries: counter("settle_retries"),
            settlements_recovered: counter("settlements_recovered"),
            fee_payer_unavailable: counter("fee_payer_unavailable"),
            dynamic: RefCell::new(HashMap::new()),
        }
    }

    pub fn add(&self, id: Option<u32>, amount: u64) {
        if let Some(id) = id {
            let _ = hostcalls::increment_metric(id, i64::try_from(amount).unwrap_or(i64::MAX));
        }
    }

    pub fn inc(&self, id: Option<u32>) {
        self.add(id, 1);
    }

    /// `x402_access_pass.<family>.<reason>`, defined on first use.
    pub fn inc_reason(&self, family: &str, reason: &str) {
        let name = format!("{family}.{reason}");
        let id = {
            let mut dynamic = self.dynamic.borrow_mut();
            match dynamic.get(&name) {
                Some(id) => *id,
                None if dynamic.len() < MAX_DYNAMIC => {
                    let id = counter(&name);
                    dynamic.insert(name, id);
                    id
                }
                None => {
                    let other = format!("{family}.other");
                    *dynamic.entry(other.clone()).or_insert_with(|| counter(&other))
                }
            }
        };
        self.inc(id);
    }
}

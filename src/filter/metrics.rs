//! Envoy counters, all named `x402_access_pass.*` (SPEC §10). Envoy shows wasm
//! metrics with its own `wasmcustom.` prefix in `/stats`, and without it, dots
//! made underscores and no labels, in `/stats/prometheus`
//! (`x402_access_pass_purchases_succeeded_by_tier_1h`); the scrape config in
//! envoy/observability/ turns the last segment of a family into a label.

use std::cell::RefCell;
use std::collections::HashMap;

use proxy_wasm::hostcalls;
use proxy_wasm::types::MetricType;

use crate::config::Config;
use crate::offer::CUSTOM_TIER;

const BY_TIER: [&str; 2] = ["purchases_succeeded_by_tier", "settled_atomic_by_tier"];

/// Reasons come partly from the facilitator: bound how many names exist (for
/// reasons, and apart from them for tiers, which a configuration may have many of).
const MAX_DYNAMIC: usize = 128;

/// Counters defined on first use, by name.
type Names = RefCell<HashMap<String, Option<u32>>>;

pub struct Metrics {
    pub passes_accepted: Option<u32>,
    pub challenges_issued: Option<u32>,
    pub preflights_answered: Option<u32>,
    pub purchases_succeeded: Option<u32>,
    pub replays_served: Option<u32>,
    pub paid_requests_forwarded: Option<u32>,
    pub settled_atomic: Option<u32>,
    pub facilitator_errors: Option<u32>,
    pub facilitator_timeouts: Option<u32>,
    pub settlements_unknown: Option<u32>,
    pub settle_retries: Option<u32>,
    pub settlements_recovered: Option<u32>,
    pub fee_payer_unavailable: Option<u32>,
    dynamic: Names,
    by_tier: Names,
}

fn counter(name: &str) -> Option<u32> {
    hostcalls::define_metric(MetricType::Counter, &format!("x402_access_pass.{name}")).ok()
}

impl Metrics {
    /// The per-tier counters of every tier `config` sells are defined here, at 0:
    /// a series that Prometheus first sees at 1 would hide that first sale from
    /// `increase()` and `rate()`.
    pub fn define(config: &Config) -> Metrics {
        let metrics = Metrics {
            passes_accepted: counter("passes_accepted"),
            challenges_issued: counter("challenges_issued"),
            preflights_answered: counter("preflights_answered"),
            purchases_succeeded: counter("purchases_succeeded"),
            replays_served: counter("replays_served"),
            paid_requests_forwarded: counter("paid_requests_forwarded"),
            settled_atomic: counter("settled_atomic"),
            facilitator_errors: counter("facilitator_errors"),
            facilitator_timeouts: counter("facilitator_timeouts"),
            settlements_unknown: counter("settlements_unknown"),
            settle_retries: counter("settle_retries"),
            settlements_recovered: counter("settlements_recovered"),
            fee_payer_unavailable: counter("fee_payer_unavailable"),
            dynamic: RefCell::new(HashMap::new()),
            by_tier: RefCell::new(HashMap::new()),
        };
        let custom = config.rate_per_hour.as_ref().map(|_| CUSTOM_TIER);
        for tier in config.tiers.iter().map(|t| t.id.as_str()).chain(custom) {
            for family in BY_TIER {
                Metrics::keyed(&metrics.by_tier, family, tier);
            }
        }
        metrics
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
        self.add(Metrics::keyed(&self.dynamic, family, reason), 1);
    }

    /// A settled purchase, by tier: `purchases_succeeded_by_tier.<tier>` and
    /// `settled_atomic_by_tier.<tier>`. Tier ids come from the configuration;
    /// every custom duration is the one tier `custom`.
    pub fn settled_by_tier(&self, tier: &str, atomic: u64) {
        let [purchases, settled] = BY_TIER;
        self.add(Metrics::keyed(&self.by_tier, purchases, tier), 1);
        self.add(Metrics::keyed(&self.by_tier, settled, tier), atomic);
    }

    /// The id of `x402_access_pass.<family>.<key>`, defined on first use; past
    /// `MAX_DYNAMIC` names in `names`, `<family>.other`.
    fn keyed(names: &Names, family: &str, key: &str) -> Option<u32> {
        let name = format!("{family}.{key}");
        let mut dynamic = names.borrow_mut();
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
    }
}

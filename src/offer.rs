//! Which pass a request asks for (docs/behaviour.md §5.1): every `tier` in the query, then
//! every `duration`, then the default pass. The first candidate prices a
//! challenge; a purchase takes the first candidate whose price was paid.

use crate::config::Config;
use crate::pricing;

/// The id of a pass bought by duration rather than by tier.
pub const CUSTOM_TIER: &str = "custom";

/// A pass for sale at a price.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    /// A tier id, or `custom` for a duration bought at `ratePerHour`.
    pub tier: String,
    pub seconds: u64,
    pub atomic: u64,
    pub label: String,
}

impl Offer {
    pub fn atomic_string(&self) -> String {
        self.atomic.to_string()
    }
}

/// The pass an unqualified request is priced at: the shortest tier, or one hour
/// at `ratePerHour` when there are no tiers. The Node client pays exactly this.
pub fn default_offer(config: &Config) -> Option<Offer> {
    match (config.tiers.first(), &config.rate_per_hour) {
        (Some(tier), _) => {
            Some(Offer { tier: tier.id.clone(), seconds: tier.seconds, atomic: tier.atomic, label: tier.label.clone() })
        }
        (None, Some(_)) => custom_offer(config, 3_600),
        (None, None) => None,
    }
}

fn custom_offer(config: &Config, seconds: u64) -> Option<Offer> {
    let rate = config.rate_per_hour.as_ref()?;
    let atomic = pricing::duration_price(rate.atomic, seconds, config.asset.decimals)?;
    Some(Offer { tier: CUSTOM_TIER.to_owned(), seconds, atomic, label: pricing::label(seconds) })
}

/// Every pass this request may be asking for, in order; never empty for a valid
/// configuration (the default is always last).
pub fn candidates(config: &Config, path: &[u8]) -> Vec<Offer> {
    let query = pricing::parse_query(path);
    let mut offers = Vec::with_capacity(query.tiers.len() + query.durations.len() + 1);
    for id in &query.tiers {
        if let Some(tier) = config.tiers.iter().find(|t| &t.id == id) {
            offers.push(Offer {
                tier: tier.id.clone(),
                seconds: tier.seconds,
                atomic: tier.atomic,
                label: tier.label.clone(),
            });
        }
    }
    for text in &query.durations {
        let in_bounds = |s: &u64| (config.min_duration_seconds..=config.max_duration_seconds).contains(s);
        if let Some(offer) =
            pricing::parse_duration_seconds(text).filter(in_bounds).and_then(|seconds| custom_offer(config, seconds))
        {
            offers.push(offer);
        }
    }
    offers.extend(default_offer(config));
    offers
}

/// The first candidate whose price is exactly `paid` atomic units: paying the
/// 5-minute price never yields a 24-hour pass, and paying the 24-hour price
/// yields it even when the React hook appended `&tier=5m`.
pub fn offer_paid_for(config: &Config, path: &[u8], paid: u64) -> Option<Offer> {
    candidates(config, path).into_iter().find(|o| o.atomic == paid)
}

/// The price of `offer` in atomic units of an asset of `decimals` (docs/behaviour.md §21): the
/// same USD string, in that asset's decimals. `None` if it has no price there.
pub fn price_in(config: &Config, offer: &Offer, decimals: u8) -> Option<u64> {
    if decimals == config.asset.decimals {
        return Some(offer.atomic);
    }
    if offer.tier == CUSTOM_TIER {
        let rate = pricing::parse_price(&config.rate_per_hour.as_ref()?.price, decimals).ok()?;
        return pricing::duration_price(rate, offer.seconds, decimals);
    }
    let tier = config.tiers.iter().find(|t| t.id == offer.tier)?;
    pricing::parse_price(&tier.price, decimals).ok()
}

/// As [`offer_paid_for`], for `paid` atomic units of an asset of `decimals`; with its price there.
pub fn offer_paid_in(config: &Config, path: &[u8], decimals: u8, paid: u64) -> Option<(Offer, u64)> {
    candidates(config, path).into_iter().find(|o| price_in(config, o, decimals) == Some(paid)).map(|o| (o, paid))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: serde_json::Value) -> Config {
        let mut json = serde_json::json!({
            "payTo": "GRzLBcpDz3XkKQ1y2dmbezuXYRTUJ3vNueDNkma32unv",
            "secret": "unit-test-secret-0123456789abcdef0123",
        });
        if let (Some(obj), Some(extra)) = (json.as_object_mut(), extra.as_object()) {
            obj.extend(extra.clone());
        }
        Config::parse(json.to_string().as_bytes(), &|_| None).unwrap()
    }

    fn tiered() -> Config {
        config(serde_json::json!({"tiers": {"5m": "0.05", "1h": "0.50", "24h": "2.00"}, "ratePerHour": "0.50"}))
    }

    fn first(c: &Config, path: &str) -> (String, u64, u64) {
        let o = candidates(c, path.as_bytes()).into_iter().next().unwrap();
        (o.tier, o.seconds, o.atomic)
    }

    #[test]
    fn unqualified_requests_are_priced_at_the_shortest_tier() {
        assert_eq!(first(&tiered(), "/api/data"), ("5m".into(), 300, 50_000));
    }

    #[test]
    fn without_tiers_the_default_is_one_hour_at_the_rate() {
        let c = config(serde_json::json!({"ratePerHour": "0.50"}));
        assert_eq!(first(&c, "/api/data"), ("custom".into(), 3_600, 500_000));
    }

    #[test]
    fn tiers_then_durations_then_the_default() {
        let c = tiered();
        assert_eq!(first(&c, "/api?tier=1h"), ("1h".into(), 3_600, 500_000));
        assert_eq!(first(&c, "/api?tier=24h&tier=5m"), ("24h".into(), 86_400, 2_000_000));
        assert_eq!(first(&c, "/api?duration=7200"), ("custom".into(), 7_200, 1_000_000));
        assert_eq!(first(&c, "/api?duration=5400&tier=1h"), ("1h".into(), 3_600, 500_000));
        // unknown tiers and out-of-range durations are not candidates
        assert_eq!(first(&c, "/api?tier=2h"), ("5m".into(), 300, 50_000));
        assert_eq!(first(&c, "/api?duration=30"), ("5m".into(), 300, 50_000));
        assert_eq!(first(&c, "/api?duration=315360000"), ("5m".into(), 300, 50_000));
        assert_eq!(first(&c, "/api?duration=abc"), ("5m".into(), 300, 50_000));
    }

    #[test]
    fn durations_need_a_rate() {
        let c = config(serde_json::json!({"tiers": {"5m": "0.05"}}));
        assert_eq!(first(&c, "/api?duration=7200"), ("5m".into(), 300, 50_000));
    }

    #[test]
    fn a_pass_is_only_ever_what_was_paid_for() {
        let c = tiered();
        // the 5-minute price with ?tier=24h buys the 5-minute pass, never 24 hours
        let o = offer_paid_for(&c, b"/api?tier=24h", 50_000).unwrap();
        assert_eq!((o.tier.as_str(), o.seconds), ("5m", 300));
        // a cheap payment with a 10-year duration: the default pass at most
        let o = offer_paid_for(&c, b"/api?duration=315360000", 50_000).unwrap();
        assert_eq!(o.seconds, 300);
        // the React hook's ?tier=24h&tier=5m paying the 24-hour price: 24 hours
        let o = offer_paid_for(&c, b"/api?tier=24h&tier=5m", 2_000_000).unwrap();
        assert_eq!((o.tier.as_str(), o.seconds), ("24h", 86_400));
        // a price that is no candidate's buys nothing
        assert_eq!(offer_paid_for(&c, b"/api?tier=24h", 1_999_999), None);
        assert_eq!(offer_paid_for(&c, b"/api", 500_000), None);
    }
}

//! Which pass a request asks for (docs/behaviour.md §5): `pricing::parse_query`,
//! `offer::candidates`, `offer::offer_paid_for` and the price parsers, on an
//! arbitrary `:path`, with three fixed configurations: the integration suite's
//! (tiers 5m/1h/24h, 0.50/h), a rate-only one with a 2-decimal asset, and an
//! extreme one that `Config::parse` accepts (prices and durations at the
//! limits of u64).
//!
//! Prices are checked against an independent computation (exact u128, no
//! intermediate that can overflow): a pass is never for sale at a price other
//! than the rounded rate × duration, never free, and never outside the
//! configured bounds.

use std::sync::OnceLock;

use x402_access_pass::config::Config;
use x402_access_pass::offer::{self, Offer, CUSTOM_TIER};
use x402_access_pass::pricing;

use crate::fixed_config;

const CONFIGS: [&str; 3] = [
    r#"{"payTo": "GRzLBcpDz3XkKQ1y2dmbezuXYRTUJ3vNueDNkma32unv",
        "network": "solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1",
        "tiers": {"5m": "0.05", "1h": "0.50", "24h": "2.00"}, "ratePerHour": "0.50",
        "secretEnv": "PASS_SECRET", "protect": [{"prefix": "/api/"}], "bypass": [{"prefix": "/api/public/"}]}"#,
    r#"{"payTo": "GRzLBcpDz3XkKQ1y2dmbezuXYRTUJ3vNueDNkma32unv",
        "network": "solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1",
        "asset": {"address": "4zMMC9srt5Ri5X14GAgXhaHii3GnPAEERYPJgZJDncDU", "decimals": 2},
        "ratePerHour": "0.01", "minDurationSeconds": 2, "maxDurationSeconds": 86400,
        "secretEnv": "PASS_SECRET"}"#,
    r#"{"payTo": "GRzLBcpDz3XkKQ1y2dmbezuXYRTUJ3vNueDNkma32unv",
        "tiers": {"1w": "0.000001", "1m": "18446744073709.551615"},
        "ratePerHour": "18446744073709.551615",
        "minDurationSeconds": 1, "maxDurationSeconds": 315360000,
        "secretEnv": "PASS_SECRET"}"#,
];

pub fn configs() -> &'static [Config] {
    static CELL: OnceLock<Vec<Config>> = OnceLock::new();
    CELL.get_or_init(|| CONFIGS.iter().map(|json| fixed_config(json)).collect())
}

pub fn run(data: &[u8]) {
    let query = pricing::parse_query(data);
    assert!(query.tiers.len() + query.durations.len() <= 64);
    for value in query.tiers.iter().chain(&query.durations) {
        assert!(value.len() <= 32, "an overlong query value was kept: {value:?}");
    }
    for config in configs() {
        check_candidates(config, data, &query);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        check_parsers(text, data.first().map_or(6, |b| b % 19));
    }
}

fn check_candidates(config: &Config, path: &[u8], query: &pricing::PassQuery) {
    let _ = config.applies_to(path);
    let offers = offer::candidates(config, path);
    let default = offer::default_offer(config);
    assert!(default.is_some());
    assert_eq!(offers.last(), default.as_ref(), "the default pass is not the last candidate");
    let (asked, _) = offers.split_at(offers.len() - 1);
    let mut seen_custom = false;
    for o in asked {
        assert!(o.atomic > 0, "free pass {o:?}");
        if o.tier == CUSTOM_TIER {
            seen_custom = true;
            assert!(
                (config.min_duration_seconds..=config.max_duration_seconds).contains(&o.seconds),
                "{o:?} outside [{}, {}]",
                config.min_duration_seconds,
                config.max_duration_seconds
            );
            assert!(query.durations.iter().any(|d| *d == o.seconds.to_string()), "{o:?} was not asked for");
            let rate = config.rate_per_hour.as_ref().expect("a custom pass needs a rate");
            assert_eq!(
                Some(o.atomic),
                reference_price(rate.atomic, o.seconds, config.asset.decimals),
                "{} s at {} atomic/h is priced {}",
                o.seconds,
                rate.atomic,
                o.atomic
            );
            assert_eq!(o.label, pricing::label(o.seconds));
        } else {
            assert!(!seen_custom, "a tier after a duration: {offers:?}");
            let tier = config.tiers.iter().find(|t| t.id == o.tier).expect("a configured tier");
            assert_eq!((o.seconds, o.atomic), (tier.seconds, tier.atomic));
            assert!(query.tiers.contains(&o.tier));
        }
    }
    // Every duration asked for that is in bounds and has a price is a candidate.
    for d in &query.durations {
        let Some(seconds) = pricing::parse_duration_seconds(d) else { continue };
        let in_bounds = (config.min_duration_seconds..=config.max_duration_seconds).contains(&seconds);
        let price =
            config.rate_per_hour.as_ref().and_then(|r| reference_price(r.atomic, seconds, config.asset.decimals));
        let listed = asked.iter().any(|o| o.tier == CUSTOM_TIER && o.seconds == seconds);
        assert_eq!(listed, in_bounds && price.is_some(), "duration {seconds}: listed {listed}, price {price:?}");
    }
    // Paying a candidate's price buys the first candidate at that price, nothing else.
    for o in offers.iter().take(4) {
        let bought = offer::offer_paid_for(config, path, o.atomic).expect("a candidate's price buys a pass");
        assert_eq!(bought.atomic, o.atomic);
        assert_eq!(Some(&bought), offers.iter().find(|c| c.atomic == o.atomic));
    }
    let odd = offers.iter().map(|o| o.atomic).max().unwrap_or(0).wrapping_add(1);
    assert_eq!(offer::offer_paid_for(config, path, odd).map(|o: Offer| o.atomic), None);
}

/// round_half_up(rate × seconds / 3600) to a multiple of 10^(decimals − 4)
/// (10^(decimals − 2) for 4 decimals or fewer); `None` when it is zero or
/// does not fit u64. Every intermediate fits u128.
pub fn reference_price(rate_atomic: u64, seconds: u64, decimals: u8) -> Option<u64> {
    let exponent = if decimals > 4 { decimals - 4 } else { decimals.saturating_sub(2) };
    let unit = 10u128.pow(u32::from(exponent));
    let numerator = u128::from(rate_atomic) * u128::from(seconds); // < 2^128
    let denominator = 3_600 * unit;
    let (whole, rest) = (numerator / denominator, numerator % denominator);
    let units = whole + u128::from(rest >= denominator - rest); // half up, without 2 × rest
    let atomic = u64::try_from(units.checked_mul(unit)?).ok()?;
    (atomic > 0).then_some(atomic)
}

fn check_parsers(text: &str, decimals: u8) {
    if let Ok(atomic) = pricing::parse_price(text, decimals) {
        assert!(atomic > 0);
        let scale = 10u64.pow(u32::from(decimals));
        let canonical = if decimals == 0 {
            atomic.to_string()
        } else {
            format!("{}.{:0width$}", atomic / scale, atomic % scale, width = usize::from(decimals))
        };
        assert_eq!(pricing::parse_price(&canonical, decimals), Ok(atomic), "{text:?} -> {canonical:?}");
    }
    if let Some(seconds) = pricing::tier_seconds(text) {
        assert!(seconds > 0);
        let _ = pricing::label(seconds);
    }
    if let Some(seconds) = pricing::parse_duration_seconds(text) {
        assert_eq!(seconds.to_string(), text, "a duration that is not canonical");
        let label = pricing::label(seconds);
        assert!(label.ends_with('s') || label.starts_with("1 "), "{label}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_price_agrees_with_the_spec_examples() {
        assert_eq!(reference_price(500_000, 5_400, 6), Some(750_000));
        assert_eq!(reference_price(500_000, 61, 6), Some(8_500));
        assert_eq!(reference_price(10_000, 18, 6), Some(100));
        assert_eq!(reference_price(10_000, 17, 6), None);
        assert_eq!(reference_price(50, 5_400, 2), Some(75));
    }
}

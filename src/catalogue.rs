//! What a configuration sells, and how it is described to buyers: the passes of fixed
//! duration (tiers), the hourly rate for custom durations, and the `AccessPassInfo` JSON
//! of the `X-ACCESS-PASS-TIERS` header and of the challenge body's `accessPass`
//! (docs/behaviour.md §4).
//!
//! Both the configuration (which builds the header once) and the challenge (which writes
//! the body) use this module; it uses neither.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::Serialize;

/// A fixed-duration pass for sale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tier {
    pub id: String,
    pub seconds: u64,
    /// The configured price string, as written (shown to buyers).
    pub price: String,
    pub atomic: u64,
    pub label: String,
}

/// `ratePerHour`, which enables `?duration=<seconds>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rate {
    pub price: String,
    pub atomic: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TierInfo<'a> {
    id: &'a str,
    label: &'a str,
    seconds: u64,
    price: &'a str,
    price_atomic: String,
}

fn tier_infos(tiers: &[Tier]) -> Vec<TierInfo<'_>> {
    tiers
        .iter()
        .map(|t| TierInfo {
            id: &t.id,
            label: &t.label,
            seconds: t.seconds,
            price: &t.price,
            price_atomic: t.atomic.to_string(),
        })
        .collect()
}

/// `AccessPassInfo` of the `X-ACCESS-PASS-TIERS` header (with `issuer`), and
/// the `accessPass` of the challenge body (with `usage`).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AccessPassInfo<'a> {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) tiers: Vec<TierInfo<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) rate_per_hour: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) issuer: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) usage: Option<&'static str>,
}

impl<'a> AccessPassInfo<'a> {
    /// The passes on sale, without `issuer` or `usage`.
    pub(crate) fn of(tiers: &'a [Tier], rate_per_hour: Option<&'a Rate>) -> AccessPassInfo<'a> {
        AccessPassInfo {
            tiers: tier_infos(tiers),
            rate_per_hour: rate_per_hour.map(|r| r.price.as_str()),
            issuer: None,
            usage: None,
        }
    }
}

/// `X-ACCESS-PASS-TIERS`: the same for every request, so built once per configuration.
pub fn tiers_header(tiers: &[Tier], rate_per_hour: Option<&Rate>, issuer: &str) -> String {
    let info = AccessPassInfo { issuer: Some(issuer), ..AccessPassInfo::of(tiers, rate_per_hour) };
    BASE64.encode(serde_json::to_vec(&info).unwrap_or_default())
}

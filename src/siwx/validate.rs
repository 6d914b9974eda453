//! The message's fields against this seller (docs/behaviour.md §16.2), in the order of the
//! package's `validateSIWxMessage`, but bound to the configured origins rather than one:
//! `domain` must be the host of a configured origin and `uri` on that same origin, never judged
//! from the request's own `Host`. Times are compared in milliseconds, with `leewaySeconds` of
//! clock skew allowed where a time could be a little ahead.

use super::header::Payload;
use super::settings::{Origin, Settings};
use super::time::parse_millis;
use super::Reason;

pub fn validate(settings: &Settings, leeway_seconds: u64, payload: &Payload, now_ms: u64) -> Result<(), Reason> {
    if !settings.origins.iter().any(|o| o.host == payload.domain) {
        return Err(Reason::Domain);
    }
    let uri = Origin::of_url(&payload.uri).ok_or(Reason::Uri)?;
    if !settings.origins.iter().any(|o| o.host == payload.domain && *o == uri) {
        return Err(Reason::Uri);
    }
    let now = i64::try_from(now_ms).unwrap_or(i64::MAX);
    let leeway = i64::try_from(leeway_seconds.saturating_mul(1_000)).unwrap_or(i64::MAX);
    let max_age = i64::try_from(settings.max_age_seconds.saturating_mul(1_000)).unwrap_or(i64::MAX);
    let issued_at = parse_millis(&payload.issued_at).ok_or(Reason::IssuedAt)?;
    let age = now.saturating_sub(issued_at);
    if age > max_age || age < -leeway {
        return Err(Reason::IssuedAt);
    }
    if let Some(expiration) = present(&payload.expiration_time) {
        let expiration = parse_millis(expiration).ok_or(Reason::Expired)?;
        if expiration.saturating_add(leeway) < now {
            return Err(Reason::Expired);
        }
    }
    if let Some(not_before) = present(&payload.not_before) {
        let not_before = parse_millis(not_before).ok_or(Reason::NotBefore)?;
        if now.saturating_add(leeway) < not_before {
            return Err(Reason::NotBefore);
        }
    }
    Ok(())
}

/// The package tests optional fields for truthiness: an empty one is absent.
fn present(field: &Option<String>) -> Option<&str> {
    field.as_deref().filter(|s| !s.is_empty())
}

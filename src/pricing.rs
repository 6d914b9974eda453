//! Exact integer pricing (SPEC §5): USD decimal strings to atomic units, custom
//! durations at `ratePerHour`, human labels, and which pass a request asks for.
//!
//! No floating point anywhere: `"2.01"` with 6 decimals is `2010000`, where the
//! reference's float math gives 2009999.

const MINUTE: u64 = 60;
const HOUR: u64 = 3_600;
const DAY: u64 = 86_400;
const WEEK: u64 = 604_800;

/// Why a price string was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PriceError {
    NotADecimal,
    TooManyDecimals(u8),
    Zero,
    TooLarge,
}

impl std::fmt::Display for PriceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PriceError::NotADecimal => f.write_str("must be a positive decimal string such as \"0.50\""),
            PriceError::TooManyDecimals(d) => write!(f, "has more than {d} fractional digits"),
            PriceError::Zero => f.write_str("must be greater than zero"),
            PriceError::TooLarge => f.write_str("is too large"),
        }
    }
}

/// `"0.50"` with `decimals = 6` → `500000`. Digits with at most one dot, no sign,
/// no exponent, no more fractional digits than the asset has.
pub fn parse_price(text: &str, decimals: u8) -> Result<u64, PriceError> {
    let (whole, fraction) = match text.split_once('.') {
        Some((_, "")) => return Err(PriceError::NotADecimal),
        Some(parts) => parts,
        None => (text, ""),
    };
    let digits_only = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits_only(whole) || !digits_only(fraction) {
        return Err(PriceError::NotADecimal);
    }
    if fraction.len() > usize::from(decimals) {
        return Err(PriceError::TooManyDecimals(decimals));
    }
    let mut atomic: u64 = 0;
    let padding = usize::from(decimals) - fraction.len();
    for b in whole.bytes().chain(fraction.bytes()).chain(std::iter::repeat_n(b'0', padding)) {
        atomic = atomic.checked_mul(10).and_then(|v| v.checked_add(u64::from(b - b'0'))).ok_or(PriceError::TooLarge)?;
    }
    if atomic == 0 {
        return Err(PriceError::Zero);
    }
    Ok(atomic)
}

/// Seconds of a tier id `^[1-9][0-9]*(m|h|d|w)$` (`"5m"` → 300), or `None`.
pub fn tier_seconds(id: &str) -> Option<u64> {
    let unit = match id.as_bytes().last()? {
        b'm' => MINUTE,
        b'h' => HOUR,
        b'd' => DAY,
        b'w' => WEEK,
        _ => return None,
    };
    let count = id.get(..id.len() - 1)?;
    if !count.bytes().next().is_some_and(|b| (b'1'..=b'9').contains(&b)) || !count.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    count.parse::<u64>().ok()?.checked_mul(unit)
}

/// Price of a custom duration: `rate × seconds / 3600`, rounded half up to the
/// precision the reference keeps (4 USD places for 6-decimal assets). `None`
/// when it rounds to zero (the duration is then not for sale).
pub fn duration_price(rate_atomic: u64, seconds: u64, decimals: u8) -> Option<u64> {
    let exponent = if decimals > 4 { decimals - 4 } else { decimals.saturating_sub(2) };
    let unit = 10u128.checked_pow(u32::from(exponent))?;
    // Checked throughout: a price that does not fit is not for sale (never a
    // wrapped, tiny one).
    let twice_numerator = u128::from(rate_atomic).checked_mul(u128::from(seconds))?.checked_mul(2)?;
    let denominator = u128::from(HOUR).checked_mul(unit)?;
    let units = twice_numerator.checked_add(denominator)? / denominator.checked_mul(2)?;
    let atomic = u64::try_from(units.checked_mul(unit)?).ok()?;
    (atomic > 0).then_some(atomic)
}

/// `86400` → `1 day`, `5400` → `90 minutes`, `61` → `61 seconds`.
pub fn label(seconds: u64) -> String {
    let (count, unit) = [(WEEK, "week"), (DAY, "day"), (HOUR, "hour"), (MINUTE, "minute")]
        .into_iter()
        .find(|(size, _)| seconds >= *size && seconds.is_multiple_of(*size))
        .map_or((seconds, "second"), |(size, name)| (seconds / size, name));
    if count == 1 {
        format!("1 {unit}")
    } else {
        format!("{count} {unit}s")
    }
}

/// What a request's query string asks for, in the order SPEC §5.1 walks it:
/// every `tier` value, then every `duration` value.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PassQuery {
    pub tiers: Vec<String>,
    pub durations: Vec<String>,
}

/// Reads `tier` and `duration` from the query of a `:path` (bytes, never trusted
/// to be UTF-8). Values are percent-decoded; anything undecodable is skipped.
pub fn parse_query(path: &[u8]) -> PassQuery {
    let mut query = PassQuery::default();
    let Some(start) = path.iter().position(|&b| b == b'?') else {
        return query;
    };
    let rest = path.get(start + 1..).unwrap_or_default();
    let rest = rest.split(|&b| b == b'#').next().unwrap_or_default();
    // Bound the work an absurd query can cause; real ones have a handful of pairs.
    for pair in rest.split(|&b| b == b'&').take(64) {
        let mut kv = pair.splitn(2, |&b| b == b'=');
        let key = kv.next().unwrap_or_default();
        let Some(value) = kv.next().and_then(percent_decode) else {
            continue;
        };
        match key {
            b"tier" => query.tiers.push(value),
            b"duration" => query.durations.push(value),
            _ => {}
        }
    }
    query
}

/// Whether the query names a pass at all: a `tier` or `duration` parameter, whatever its value.
/// A payment without one is a paid request for the default pass (docs/behaviour.md §15).
pub fn selects_pass(path: &[u8]) -> bool {
    let Some(start) = path.iter().position(|&b| b == b'?') else { return false };
    let rest = path.get(start + 1..).unwrap_or_default();
    let rest = rest.split(|&b| b == b'#').next().unwrap_or_default();
    rest.split(|&b| b == b'&').any(|pair| {
        let key = pair.split(|&b| b == b'=').next().unwrap_or_default();
        key == b"tier" || key == b"duration"
    })
}

fn percent_decode(raw: &[u8]) -> Option<String> {
    if raw.len() > 32 {
        return None; // no tier id or duration is this long
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut bytes = raw.iter();
    while let Some(&b) = bytes.next() {
        if b == b'%' {
            let hi = hex_value(*bytes.next()?)?;
            let lo = hex_value(*bytes.next()?)?;
            out.push(hi << 4 | lo);
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).ok()
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// A plain positive decimal integer (`"7200"`), nothing else (`"+1"`, `"1e3"`,
/// `"0x10"`, `" 5"` and `"007"`-style leading zeros are refused).
pub fn parse_duration_seconds(text: &str) -> Option<u64> {
    let first = *text.as_bytes().first()?;
    if !(b'1'..=b'9').contains(&first) || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_are_exact_integers() {
        assert_eq!(parse_price("2.01", 6), Ok(2_010_000));
        assert_eq!(parse_price("0.50", 6), Ok(500_000));
        assert_eq!(parse_price("0.05", 6), Ok(50_000));
        assert_eq!(parse_price("2", 6), Ok(2_000_000));
        assert_eq!(parse_price("0.000001", 6), Ok(1));
        assert_eq!(parse_price("19.99", 6), Ok(19_990_000));
    }

    #[test]
    fn bad_prices_are_refused() {
        for bad in ["", ".", "1.", ".5", "-1", "+1", "1e3", "0x10", " 1", "1 ", "1,5", "1.2.3", "abc"] {
            assert_eq!(parse_price(bad, 6), Err(PriceError::NotADecimal), "{bad:?}");
        }
        assert_eq!(parse_price("0", 6), Err(PriceError::Zero));
        assert_eq!(parse_price("0.000", 6), Err(PriceError::Zero));
        assert_eq!(parse_price("0.0000001", 6), Err(PriceError::TooManyDecimals(6)));
        assert_eq!(parse_price("99999999999999999999", 6), Err(PriceError::TooLarge));
    }

    #[test]
    fn tier_ids_follow_the_pattern() {
        assert_eq!(tier_seconds("5m"), Some(300));
        assert_eq!(tier_seconds("1h"), Some(3_600));
        assert_eq!(tier_seconds("24h"), Some(86_400));
        assert_eq!(tier_seconds("7d"), Some(604_800));
        assert_eq!(tier_seconds("2w"), Some(1_209_600));
        for bad in ["", "h", "0h", "05m", "1s", "1H", "1.5h", "-1h", "1hh", "99999999999999999999w"] {
            assert_eq!(tier_seconds(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn custom_durations_round_half_up_to_four_usd_places() {
        // 0.50/h: 90 minutes = 0.75, two hours = 1.00.
        assert_eq!(duration_price(500_000, 5_400, 6), Some(750_000));
        assert_eq!(duration_price(500_000, 7_200, 6), Some(1_000_000));
        // 61 s at 0.50/h = 0.0084722… → 0.0085.
        assert_eq!(duration_price(500_000, 61, 6), Some(8_500));
        // exactly half a unit rounds up: 0.01/h × 18 s = 0.00005 → 0.0001.
        assert_eq!(duration_price(10_000, 18, 6), Some(100));
        // below half a unit rounds to zero: not for sale.
        assert_eq!(duration_price(10_000, 17, 6), None);
        // a price that does not fit in u64 is not for sale (found by fuzzing: the
        // unchecked u128 arithmetic wrapped to a tiny price).
        assert_eq!(duration_price(10_000_000_000_000_000_000, 17_014_118_346_046_923_174, 18), None);
        assert_eq!(duration_price(u64::MAX, u64::MAX, 6), None);
        // two decimals: whole cents.
        assert_eq!(duration_price(50, 5_400, 2), Some(75));
    }

    #[test]
    fn labels_use_the_largest_unit_that_divides() {
        assert_eq!(label(86_400), "1 day");
        assert_eq!(label(5_400), "90 minutes");
        assert_eq!(label(61), "61 seconds");
        assert_eq!(label(1), "1 second");
        assert_eq!(label(3_600), "1 hour");
        assert_eq!(label(7_200), "2 hours");
        assert_eq!(label(604_800), "1 week");
        assert_eq!(label(300), "5 minutes");
    }

    #[test]
    fn query_keeps_every_tier_then_durations_in_order() {
        let q = parse_query(b"/api/data?tier=24h&x=1&tier=5m&duration=7200");
        assert_eq!(q.tiers, vec!["24h", "5m"]);
        assert_eq!(q.durations, vec!["7200"]);
        assert_eq!(parse_query(b"/api/data"), PassQuery::default());
        assert_eq!(parse_query(b"/api?tier=%32%34h").tiers, vec!["24h"]);
        assert_eq!(parse_query(b"/api?tier=%zz&tier=\xff").tiers, Vec::<String>::new());
        assert_eq!(parse_query(b"/api?tier").tiers, Vec::<String>::new());
    }

    #[test]
    fn a_query_selects_a_pass_by_naming_tier_or_duration_whatever_the_value() {
        for path in [&b"/api?tier=1h"[..], b"/api?x=1&duration=60", b"/api?tier", b"/api?duration=", b"/a?tier=\xff"] {
            assert!(selects_pass(path), "{}", String::from_utf8_lossy(path));
        }
        for path in [&b"/api"[..], b"/api?", b"/api?tiers=1h", b"/api?x=tier", b"/api?q=1#tier=1h"] {
            assert!(!selects_pass(path), "{}", String::from_utf8_lossy(path));
        }
    }

    #[test]
    fn durations_are_plain_positive_integers() {
        assert_eq!(parse_duration_seconds("7200"), Some(7_200));
        for bad in ["", "0", "007", "+5", "5.0", "1e3", " 5", "-5", "99999999999999999999999"] {
            assert_eq!(parse_duration_seconds(bad), None, "{bad:?}");
        }
    }
}

//! The 402 challenge (SPEC §4): `PAYMENT-REQUIRED`, `X-ACCESS-PASS-TIERS` and a
//! JSON (or, for browsers, HTML) body. Field order follows the x402 packages.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::Serialize;

use crate::config::{Config, Tier};
use crate::offer::Offer;
use crate::response::Response;

const MAX_TIMEOUT_SECONDS: u64 = 60;
const MIME_TYPE: &str = "application/json";
const USAGE: &str = "Add ?tier=<id> or ?duration=<seconds> to your payment request to choose a pass duration.";

/// One `accepts[]` entry: what the buyer pays for this pass. Also the
/// requirements the filter sends to the facilitator (its own, never the echo).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentRequirements {
    pub scheme: &'static str,
    pub network: String,
    pub amount: String,
    pub max_amount_required: String,
    pub asset: String,
    pub pay_to: String,
    pub max_timeout_seconds: u64,
    pub extra: RequirementsExtra,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequirementsExtra {
    pub fee_payer: String,
    pub decimals: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Resource {
    pub url: String,
    pub description: String,
    pub mime_type: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PaymentRequired<'a> {
    x402_version: u8,
    resource: &'a Resource,
    accepts: [&'a PaymentRequirements; 1],
    error: &'static str,
}

/// The members of `extensions` in every 402 (x402 v2), each as the official `@x402/extensions`
/// server helper builds it. Written as JSON text and joined to the serialized `PaymentRequired`
/// (see [`with_extensions`]): a struct per member costs more wasm than the text.
///
/// `payment-identifier`: `declarePaymentIdentifierExtension(false)` of `@x402/extensions` 2.27.0,
/// member for member (docs/behaviour.md §17.5): a buyer may name its payment, and the same id for
/// the same request is answered once.
const EXTENSION_MEMBERS: &[(&str, &str)] = &[(
    "payment-identifier",
    concat!(
        r#"{"info":{"required":false},"schema":{"$schema":"https://json-schema.org/draft/2020-12/schema","#,
        r#""type":"object","properties":{"required":{"type":"boolean"},"id":{"type":"string","minLength":16,"#,
        r#""maxLength":128,"pattern":"^[a-zA-Z0-9_-]+$"}},"required":["required"]}}"#
    ),
)];

/// `PaymentRequired` JSON (an object) with `"extensions":{...}` added as its last member.
fn with_extensions(mut required: Vec<u8>) -> Vec<u8> {
    if required.pop() != Some(b'}') {
        return required;
    }
    required.extend_from_slice(br#","extensions":{"#);
    for (i, (name, member)) in EXTENSION_MEMBERS.iter().enumerate() {
        if i > 0 {
            required.push(b',');
        }
        required.push(b'"');
        required.extend_from_slice(name.as_bytes());
        required.extend_from_slice(b"\":");
        required.extend_from_slice(member.as_bytes());
    }
    required.extend_from_slice(b"}}");
    required
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TierInfo<'a> {
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
struct AccessPassInfo<'a> {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tiers: Vec<TierInfo<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rate_per_hour: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    issuer: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<&'static str>,
}

impl<'a> AccessPassInfo<'a> {
    fn of(config: &'a Config) -> AccessPassInfo<'a> {
        AccessPassInfo {
            tiers: tier_infos(&config.tiers),
            rate_per_hour: config.rate_per_hour.as_ref().map(|r| r.price.as_str()),
            issuer: None,
            usage: None,
        }
    }
}

/// `X-ACCESS-PASS-TIERS`: the same for every request, so built once per configuration.
pub fn access_pass_tiers_header(config: &Config) -> String {
    let info = AccessPassInfo { issuer: Some(&config.issuer), ..AccessPassInfo::of(config) };
    BASE64.encode(serde_json::to_vec(&info).unwrap_or_default())
}

#[derive(Serialize)]
struct ChallengeBody<'a> {
    error: &'static str,
    message: &'static str,
    accepts: [&'a PaymentRequirements; 1],
    resource: &'a Resource,
    #[serde(rename = "accessPass")]
    access_pass: AccessPassInfo<'a>,
}

/// The server's requirements for a pass: the price of `offer`, paid to the seller.
pub fn requirements(config: &Config, offer: &Offer, fee_payer: &str) -> PaymentRequirements {
    let amount = offer.atomic_string();
    PaymentRequirements {
        scheme: "exact",
        network: config.network.clone(),
        max_amount_required: amount.clone(),
        amount,
        asset: config.asset.address.clone(),
        pay_to: config.pay_to.clone(),
        max_timeout_seconds: MAX_TIMEOUT_SECONDS,
        extra: RequirementsExtra { fee_payer: fee_payer.to_owned(), decimals: config.asset.decimals },
    }
}

/// `resource.url`: scheme from `x-forwarded-proto` (first of a list) or
/// `:scheme`, then `:authority` and `:path`. Bytes that are not UTF-8 are
/// replaced, never trusted.
pub fn resource_url(forwarded_proto: Option<&[u8]>, scheme: Option<&[u8]>, authority: &[u8], path: &[u8]) -> String {
    let proto = forwarded_proto
        .and_then(|p| p.split(|&b| b == b',').next())
        .map(|p| p.trim_ascii())
        .filter(|p| !p.is_empty())
        .or(scheme)
        .unwrap_or(b"http");
    format!(
        "{}://{}{}",
        String::from_utf8_lossy(proto),
        String::from_utf8_lossy(authority),
        String::from_utf8_lossy(path)
    )
}

/// Everything a 402 for one offer needs.
pub struct Challenge {
    pub resource: Resource,
    pub requirements: PaymentRequirements,
}

impl Challenge {
    pub fn new(config: &Config, offer: &Offer, url: String, fee_payer: &str) -> Challenge {
        let description = config.description.clone().unwrap_or_else(|| format!("Access pass: {}", offer.label));
        Challenge {
            resource: Resource { url, description, mime_type: MIME_TYPE },
            requirements: requirements(config, offer, fee_payer),
        }
    }

    /// The headers every 402 carries: a buyer can always pay from any of them.
    fn headers(&self, config: &Config) -> Vec<(&'static str, String)> {
        let required = PaymentRequired {
            x402_version: 2,
            resource: &self.resource,
            accepts: [&self.requirements],
            error: "Payment required",
        };
        let required = with_extensions(serde_json::to_vec(&required).unwrap_or_default());
        vec![
            ("payment-required", BASE64.encode(required)),
            ("x-access-pass-tiers", config.access_pass_tiers_header.clone()),
            ("cache-control", "no-store".to_owned()),
        ]
    }

    /// The challenge itself. `html` for browsers (`Accept: text/html`).
    pub fn response(&self, config: &Config, html: bool) -> Response {
        let mut headers = self.headers(config);
        let body = if html {
            headers.push(("content-type", "text/html; charset=utf-8".to_owned()));
            paywall_html(config, self).into_bytes()
        } else {
            headers.push(("content-type", MIME_TYPE.to_owned()));
            let body = ChallengeBody {
                error: "Access pass required",
                message: "Purchase an access pass to unlock unlimited API access for a time window.",
                accepts: [&self.requirements],
                resource: &self.resource,
                access_pass: AccessPassInfo { usage: Some(USAGE), ..AccessPassInfo::of(config) },
            };
            serde_json::to_vec(&body).unwrap_or_default()
        };
        Response { status: 402, headers, body }
    }

    /// A refused payment: 402 with the challenge headers (so the buyer can pay
    /// again) and `{"error": ..., "reason": ...}`.
    pub fn refusal(&self, config: &Config, error: &str, reason: &str) -> Response {
        let mut headers = self.headers(config);
        headers.push(("content-type", MIME_TYPE.to_owned()));
        let body = serde_json::json!({"error": error, "reason": reason});
        Response { status: 402, headers, body: body.to_string().into_bytes() }
    }
}

fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// A small readable paywall for people who open the API in a browser.
fn paywall_html(config: &Config, challenge: &Challenge) -> String {
    let mut rows = String::new();
    for tier in &config.tiers {
        rows.push_str(&format!(
            "<tr><td>{}</td><td>${} USDC</td><td><code>?tier={}</code></td></tr>",
            escape_html(&tier.label),
            escape_html(&tier.price),
            escape_html(&tier.id)
        ));
    }
    if let Some(rate) = &config.rate_per_hour {
        rows.push_str(&format!(
            "<tr><td>Any duration ({} to {} seconds)</td><td>${} USDC per hour</td><td><code>?duration=&lt;seconds&gt;</code></td></tr>",
            config.min_duration_seconds,
            config.max_duration_seconds,
            escape_html(&rate.price)
        ));
    }
    format!(
        concat!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">",
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
            "<title>Payment required: {title}</title>",
            "<style>body{{font-family:system-ui,sans-serif;max-width:42rem;margin:3rem auto;padding:0 1rem;color:#222}}",
            "table{{border-collapse:collapse;width:100%}}td,th{{border-bottom:1px solid #ddd;padding:.5rem;text-align:left}}",
            "code{{background:#f4f4f4;padding:0 .2rem}}</style></head><body>",
            "<h1>Access pass required</h1>",
            "<p>{description}. Buy a pass once and every request in its time window goes straight through.</p>",
            "<table><thead><tr><th>Pass</th><th>Price</th><th>How to ask for it</th></tr></thead><tbody>{rows}</tbody></table>",
            "<h2>How to pay</h2>",
            "<p>Payments use the <a href=\"https://x402.org\">x402 protocol</a>: USDC on <code>{network}</code>, ",
            "paid to <code>{pay_to}</code>. An x402 client (for example <code>wrapFetch</code> from ",
            "<code>@dexterai/x402</code> with <code>accessPass</code>) reads the <code>PAYMENT-REQUIRED</code> and ",
            "<code>X-ACCESS-PASS-TIERS</code> headers of this response, sends the payment in a ",
            "<code>PAYMENT-SIGNATURE</code> header and receives the pass in <code>ACCESS-PASS</code>. ",
            "Send it afterwards as <code>Authorization: Bearer &lt;pass&gt;</code>.</p>",
            "</body></html>"
        ),
        title = escape_html(&challenge.resource.url),
        description = escape_html(&challenge.resource.description),
        rows = rows,
        network = escape_html(&config.network),
        pay_to = escape_html(&config.pay_to),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::offer;

    fn config() -> Config {
        let json = serde_json::json!({
            "payTo": "GRzLBcpDz3XkKQ1y2dmbezuXYRTUJ3vNueDNkma32unv",
            "secret": "unit-test-secret-0123456789abcdef0123",
            "tiers": {"1h": "0.50", "5m": "0.05"}, "ratePerHour": "0.50",
        });
        Config::parse(json.to_string().as_bytes(), &|_| None).unwrap()
    }

    fn decode(b64: &str) -> serde_json::Value {
        serde_json::from_slice(&BASE64.decode(b64).unwrap()).unwrap()
    }

    #[test]
    fn the_challenge_matches_the_spec_field_by_field() {
        let c = config();
        let offer = offer::candidates(&c, b"/api/data?tier=1h").remove(0);
        let url = resource_url(Some(b"https"), Some(b"http"), b"api.example.com", b"/api/data?tier=1h");
        let challenge = Challenge::new(&c, &offer, url, "FeePayer1111111111111111111111111111111111");
        let r = challenge.response(&c, false);
        assert_eq!(r.status, 402);
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.header("cache-control"), Some("no-store"));
        let required = r.header("payment-required").unwrap();
        // compact JSON, standard padded base64, x402 field order
        let raw = String::from_utf8(BASE64.decode(required).unwrap()).unwrap();
        assert_eq!(
            raw,
            concat!(
                r#"{"x402Version":2,"resource":{"url":"https://api.example.com/api/data?tier=1h","description":"Access pass: 1 hour","mimeType":"application/json"},"#,
                r#""accepts":[{"scheme":"exact","network":"solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp","amount":"500000","maxAmountRequired":"500000","#,
                r#""asset":"EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v","payTo":"GRzLBcpDz3XkKQ1y2dmbezuXYRTUJ3vNueDNkma32unv","maxTimeoutSeconds":60,"#,
                r#""extra":{"feePayer":"FeePayer1111111111111111111111111111111111","decimals":6}}],"error":"Payment required","#,
                // declarePaymentIdentifierExtension(false) of @x402/extensions 2.27.0, member for member
                r#""extensions":{"payment-identifier":{"info":{"required":false},"schema":{"$schema":"https://json-schema.org/draft/2020-12/schema","#,
                r#""type":"object","properties":{"required":{"type":"boolean"},"id":{"type":"string","minLength":16,"maxLength":128,"#,
                r#""pattern":"^[a-zA-Z0-9_-]+$"}},"required":["required"]}}}}"#
            )
        );
        let tiers = decode(r.header("x-access-pass-tiers").unwrap());
        assert_eq!(tiers["tiers"][0]["id"], "5m");
        assert_eq!(tiers["ratePerHour"], "0.50");
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["error"], "Access pass required");
        assert_eq!(body["accepts"][0]["amount"], "500000");
        assert_eq!(body["resource"]["description"], "Access pass: 1 hour");
        assert_eq!(body["accessPass"]["tiers"][1]["priceAtomic"], "500000");
        assert_eq!(body["accessPass"]["ratePerHour"], "0.50");
        assert!(body["accessPass"]["usage"].as_str().unwrap().contains("?tier=<id>"));
    }

    #[test]
    fn browsers_get_a_readable_paywall_with_the_same_headers() {
        let c = config();
        let offer = offer::default_offer(&c).unwrap();
        let challenge = Challenge::new(&c, &offer, "http://x/<script>".into(), "F");
        let json = challenge.response(&c, false);
        let html = challenge.response(&c, true);
        assert_eq!(html.header("payment-required"), json.header("payment-required"));
        assert_eq!(html.header("content-type"), Some("text/html; charset=utf-8"));
        let page = String::from_utf8(html.body).unwrap();
        assert!(page.contains("5 minutes") && page.contains("$0.05 USDC") && page.contains("PAYMENT-SIGNATURE"));
        assert!(!page.contains("<script>"));
    }

    #[test]
    fn forwarded_proto_wins_and_bad_bytes_never_trap() {
        assert_eq!(resource_url(Some(b"https, http"), Some(b"http"), b"h", b"/p"), "https://h/p");
        assert_eq!(resource_url(None, Some(b"http"), b"h", b"/p"), "http://h/p");
        assert_eq!(resource_url(None, None, b"h\xff", b"/p\xfe"), "http://h\u{fffd}/p\u{fffd}");
    }
}

//! The 402 challenge (docs/behaviour.md §4): `PAYMENT-REQUIRED`, `X-ACCESS-PASS-TIERS` and a
//! JSON (or, for browsers, HTML) body. Field order follows the x402 packages.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::Serialize;

use crate::catalogue::AccessPassInfo;
use crate::config::Config;
use crate::networks::{Network, Rail};
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

/// `extra` of an accepts entry: on Solana the facilitator's fee payer (and the asset's decimals);
/// on an EVM network the token's EIP-712 domain `name` and `version`, as `@x402/evm` 2.27.0's
/// server gives them (docs/behaviour.md §21).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum RequirementsExtra {
    Solana {
        #[serde(rename = "feePayer")]
        fee_payer: String,
        decimals: u8,
    },
    Evm {
        name: String,
        version: String,
    },
}

/// x402 v1 network names and the CAIP-2 networks they stand for (docs/behaviour.md §20), as
/// `@x402/core` 2.27.0 maps them for its v1 clients.
const V1_NETWORKS: &[(&str, &str)] = &[
    ("solana", crate::config::MAINNET),
    ("solana-devnet", crate::config::DEVNET),
    ("base", "eip155:8453"),
    ("base-sepolia", "eip155:84532"),
];

/// The v1 name of a CAIP-2 network; a network v1 has no name for keeps its CAIP-2 id.
pub fn v1_network(network: &str) -> &str {
    V1_NETWORKS.iter().find(|(_, caip2)| *caip2 == network).map_or(network, |(name, _)| name)
}

/// The CAIP-2 network a v1 network name stands for.
pub fn network_of_v1(name: &str) -> Option<&'static str> {
    V1_NETWORKS.iter().find(|(v1, _)| *v1 == name).map(|(_, caip2)| *caip2)
}

/// One x402 v1 `accepts[]` entry (docs/behaviour.md §20): the same requirements, with the v1
/// network name and the resource inside. `amount` stays beside `maxAmountRequired` for the Part I
/// readers of the body; v1 parsers drop members they do not know.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct V1Requirements<'a> {
    scheme: &'static str,
    network: &'a str,
    amount: &'a str,
    max_amount_required: &'a str,
    resource: &'a str,
    description: &'a str,
    mime_type: &'static str,
    pay_to: &'a str,
    max_timeout_seconds: u64,
    asset: &'a str,
    extra: &'a RequirementsExtra,
}

impl PaymentRequirements {
    pub fn v1<'a>(&'a self, resource: &'a Resource) -> V1Requirements<'a> {
        V1Requirements {
            scheme: self.scheme,
            network: v1_network(&self.network),
            amount: &self.amount,
            max_amount_required: &self.max_amount_required,
            resource: &resource.url,
            description: &resource.description,
            mime_type: resource.mime_type,
            pay_to: &self.pay_to,
            max_timeout_seconds: self.max_timeout_seconds,
            asset: &self.asset,
            extra: &self.extra,
        }
    }
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
    accepts: &'a [PaymentRequirements],
    error: &'static str,
}

/// `payment-identifier`, declared in every 402: `declarePaymentIdentifierExtension(false)` of `@x402/extensions` 2.27.0,
/// member for member (docs/behaviour.md §17.5): a buyer may name its payment, and the same id for
/// the same request is answered once.
const PAYMENT_IDENTIFIER: &str = concat!(
    r#"{"info":{"required":false},"schema":{"$schema":"https://json-schema.org/draft/2020-12/schema","#,
    r#""type":"object","properties":{"required":{"type":"boolean"},"id":{"type":"string","minLength":16,"#,
    r#""maxLength":128,"pattern":"^[a-zA-Z0-9_-]+$"}},"required":["required"]}}"#
);

/// `extensions` of `PAYMENT-REQUIRED`: `payment-identifier` always, then one member per x402
/// extension this 402 declares besides (its name and its compact JSON), after `error`. Each member
/// is JSON text as the official `@x402/extensions` server helper builds it: a struct per member
/// costs more wasm than the text.
#[derive(Debug, Clone, Default)]
pub struct Extensions {
    members: Vec<(&'static str, String)>,
}

impl Extensions {
    /// Adds the member `name` (a JSON-safe constant) with the value `json` (compact JSON).
    pub fn declare(&mut self, name: &'static str, json: String) {
        self.members.push((name, json));
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Writes `,"extensions":{...}` before the closing brace of the object `json`.
    fn append_to(&self, json: &mut Vec<u8>) {
        if json.pop() != Some(b'}') {
            return;
        }
        json.extend_from_slice(b",\"extensions\":{\"payment-identifier\":");
        json.extend_from_slice(PAYMENT_IDENTIFIER.as_bytes());
        for (name, value) in &self.members {
            json.extend_from_slice(b",\"");
            json.extend_from_slice(name.as_bytes());
            json.extend_from_slice(b"\":");
            json.extend_from_slice(value.as_bytes());
        }
        json.extend_from_slice(b"}}");
    }
}

/// The JSON body: a valid x402 v1 `PaymentRequired` (`x402Version`, `error`, `accepts`) with the
/// Part I members beside it (docs/behaviour.md §4, §20). The top-level `resource` object is not a v1
/// member: v1 clients read only `x402Version` and `accepts` (whose entries carry the v1
/// `resource` URL), so the Part I object stays.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ChallengeBody<'a> {
    x402_version: u8,
    error: &'static str,
    accepts: Vec<V1Requirements<'a>>,
    message: &'static str,
    resource: &'a Resource,
    #[serde(rename = "accessPass")]
    access_pass: AccessPassInfo<'a>,
}

/// The server's requirements for a pass on `network`: the price of `offer` in its asset, paid to
/// the seller there. `None` when the pass has no price on that network.
pub fn requirements(config: &Config, network: &Network, offer: &Offer, fee_payer: &str) -> Option<PaymentRequirements> {
    let amount = crate::offer::price_in(config, offer, network.asset.decimals)?.to_string();
    let extra = match &network.rail {
        Rail::Solana { .. } => {
            RequirementsExtra::Solana { fee_payer: fee_payer.to_owned(), decimals: network.asset.decimals }
        }
        Rail::Evm(token) => RequirementsExtra::Evm { name: token.name.clone(), version: token.version.clone() },
    };
    Some(PaymentRequirements {
        scheme: "exact",
        network: network.network.clone(),
        max_amount_required: amount.clone(),
        amount,
        asset: network.asset.address.clone(),
        pay_to: network.pay_to.clone(),
        max_timeout_seconds: MAX_TIMEOUT_SECONDS,
        extra,
    })
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
    // Built in place, not with `format!`: this runs for every challenge, remembered or not (the
    // memo is keyed by it), and the formatting machinery was a quarter of that path's own work.
    let mut url = String::with_capacity(proto.len() + 3 + authority.len() + path.len());
    push_lossy(&mut url, proto);
    url.push_str("://");
    push_lossy(&mut url, authority);
    push_lossy(&mut url, path);
    url
}

/// Appends `bytes` as `String::from_utf8_lossy` reads them, copying once when they are UTF-8.
fn push_lossy(out: &mut String, bytes: &[u8]) {
    match std::str::from_utf8(bytes) {
        Ok(text) => out.push_str(text),
        Err(_) => out.push_str(&String::from_utf8_lossy(bytes)),
    }
}

/// Everything a 402 for one offer needs.
pub struct Challenge {
    pub resource: Resource,
    /// One entry per network, in the configuration's order (docs/behaviour.md §21).
    pub accepts: Vec<PaymentRequirements>,
    pub extensions: Extensions,
}

impl Challenge {
    pub fn new(config: &Config, offer: &Offer, url: String, fee_payer: &str) -> Challenge {
        let description = config.description.clone().unwrap_or_else(|| format!("Access pass: {}", offer.label));
        Challenge {
            resource: Resource { url, description, mime_type: MIME_TYPE },
            accepts: config.networks.iter().filter_map(|n| requirements(config, n, offer, fee_payer)).collect(),
            extensions: Extensions::default(),
        }
    }

    /// Declares Sign-In-With-X (docs/behaviour.md §16.1) when SIWX is on and the resource URL is
    /// on one of `siwx.origins`; the clock is read only then.
    pub fn with_sign_in(mut self, config: &Config, now_ms: impl FnOnce() -> u64) -> Challenge {
        if let Some(settings) = &config.siwx {
            if settings.origin_of(&self.resource.url).is_some() {
                let networks: Vec<&str> = config.networks.iter().map(|n| n.network.as_str()).collect();
                if let Some(json) = crate::siwx::declare::declare(settings, &networks, &self.resource.url, now_ms()) {
                    self.extensions.declare(crate::siwx::declare::EXTENSION, json);
                }
            }
        }
        self
    }

    /// The headers every 402 carries: a buyer can always pay from any of them.
    fn headers(&self, config: &Config) -> Vec<(&'static str, String)> {
        let required = PaymentRequired {
            x402_version: 2,
            resource: &self.resource,
            accepts: &self.accepts,
            error: "Payment required",
        };
        let mut json = serde_json::to_vec(&required).unwrap_or_default();
        self.extensions.append_to(&mut json);
        vec![
            ("payment-required", BASE64.encode(json)),
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
                x402_version: 1,
                error: "Access pass required",
                accepts: self.accepts.iter().map(|r| r.v1(&self.resource)).collect(),
                message: "Purchase an access pass to unlock unlimited API access for a time window.",
                resource: &self.resource,
                access_pass: AccessPassInfo {
                    usage: Some(USAGE),
                    ..AccessPassInfo::of(&config.tiers, config.rate_per_hour.as_ref())
                },
            };
            serde_json::to_vec(&body).unwrap_or_default()
        };
        Response { status: 402, headers, body }
    }

    /// A refused payment: 402 with the challenge headers (so the buyer can pay
    /// again) and `{"error": ..., "reason": ...}`.
    pub fn refusal(&self, config: &Config, error: &str, reason: &str) -> Response {
        let mut answer = Response::error(402, error, reason, None);
        let mut headers = self.headers(config);
        headers.push(("content-type", MIME_TYPE.to_owned()));
        answer.headers = headers;
        answer
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
    // Every network the seller is paid on (docs/behaviour.md §21), in the 402's order.
    let networks = config
        .networks
        .iter()
        .map(|n| format!("<code>{}</code>, paid to <code>{}</code>", escape_html(&n.network), escape_html(&n.pay_to)))
        .collect::<Vec<_>>()
        .join(" or ");
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
            "<p>Payments use the <a href=\"https://x402.org\">x402 protocol</a>: USDC on {networks}. An x402 client (for example <code>wrapFetch</code> from ",
            "<code>@dexterai/x402</code> with <code>accessPass</code>) reads the <code>PAYMENT-REQUIRED</code> and ",
            "<code>X-ACCESS-PASS-TIERS</code> headers of this response, sends the payment in a ",
            "<code>PAYMENT-SIGNATURE</code> header and receives the pass in <code>ACCESS-PASS</code>. ",
            "Send it afterwards as <code>Authorization: Bearer &lt;pass&gt;</code>.</p>",
            "</body></html>"
        ),
        title = escape_html(&challenge.resource.url),
        description = escape_html(&challenge.resource.description),
        rows = rows,
        networks = networks,
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
        assert_eq!(body["message"], "Purchase an access pass to unlock unlimited API access for a time window.");
        assert_eq!(body["resource"]["description"], "Access pass: 1 hour");
        assert_eq!(body["accessPass"]["tiers"][1]["priceAtomic"], "500000");
        assert_eq!(body["accessPass"]["ratePerHour"], "0.50");
        assert!(body["accessPass"]["usage"].as_str().unwrap().contains("?tier=<id>"));
    }

    /// docs/behaviour.md §20: the body is a v1 `PaymentRequired` member for member, the Part I
    /// members beside it, and the v2 header unchanged.
    #[test]
    fn the_json_body_is_a_v1_payment_required_with_the_part_one_members_beside_it() {
        let mut c = config();
        c.network = crate::config::DEVNET.to_owned();
        c.networks[0].network = crate::config::DEVNET.to_owned();
        let offer = offer::default_offer(&c).unwrap();
        let url = "http://api.test/weather".to_owned();
        let challenge = Challenge::new(&c, &offer, url, "9hSR6S7WPtxmTojgo6GG3k4yDPecgJY292j7xrsUGWBu");
        let r = challenge.response(&c, false);
        let raw = String::from_utf8(r.body.clone()).unwrap();
        assert!(raw.starts_with(concat!(
            r#"{"x402Version":1,"error":"Access pass required","accepts":[{"scheme":"exact","network":"solana-devnet","#,
            r#""amount":"50000","maxAmountRequired":"50000","resource":"http://api.test/weather","description":"Access pass: 5 minutes","#,
            r#""mimeType":"application/json","payTo":"GRzLBcpDz3XkKQ1y2dmbezuXYRTUJ3vNueDNkma32unv","maxTimeoutSeconds":60,"#,
            r#""asset":"EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v","extra":{"feePayer":"9hSR6S7WPtxmTojgo6GG3k4yDPecgJY292j7xrsUGWBu","decimals":6}}],"#,
            r#""message":"#
        )), "{raw}");
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["resource"]["url"], "http://api.test/weather");
        assert_eq!(body["accessPass"]["tiers"][0]["id"], "5m");
        // The header stays v2, with the CAIP-2 network.
        let header = decode(r.header("payment-required").unwrap());
        assert_eq!(
            (header["x402Version"].as_u64(), header["accepts"][0]["network"].as_str()),
            (Some(2), Some(crate::config::DEVNET))
        );
    }

    #[test]
    fn v1_network_names_map_both_ways_and_an_unnamed_network_keeps_its_id() {
        for (name, caip2) in [
            ("solana", crate::config::MAINNET),
            ("solana-devnet", crate::config::DEVNET),
            ("base", "eip155:8453"),
            ("base-sepolia", "eip155:84532"),
        ] {
            assert_eq!((v1_network(caip2), network_of_v1(name)), (name, Some(caip2)));
        }
        assert_eq!(v1_network("eip155:1"), "eip155:1");
        assert_eq!(network_of_v1(crate::config::DEVNET), None);
        assert_eq!(network_of_v1("Solana"), None);
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

    #[test]
    fn a_402_on_a_configured_origin_declares_sign_in_with_x_and_others_do_not() {
        let json = serde_json::json!({
            "payTo": "GRzLBcpDz3XkKQ1y2dmbezuXYRTUJ3vNueDNkma32unv", "network": crate::config::DEVNET,
            "secret": "unit-test-secret-0123456789abcdef0123", "tiers": {"1h": "0.50"},
            "siwx": {"origins": ["https://api.example.com"], "statement": "Welcome back"},
        });
        let c = Config::parse(json.to_string().as_bytes(), &|_| None).unwrap();
        let offer = offer::default_offer(&c).unwrap();
        let now = || 1_772_366_400_123;
        let url = resource_url(Some(b"https"), None, b"api.example.com", b"/api/data");
        let here = Challenge::new(&c, &offer, url, "F").with_sign_in(&c, now);
        for response in [here.response(&c, false), here.refusal(&c, "Payment verification failed", "x")] {
            let required = decode(response.header("payment-required").unwrap());
            let siwx = &required["extensions"]["sign-in-with-x"];
            assert_eq!(siwx["info"]["domain"], "api.example.com");
            assert_eq!(siwx["info"]["uri"], "https://api.example.com/api/data");
            assert_eq!(siwx["info"]["resources"], serde_json::json!(["https://api.example.com/api/data"]));
            assert_eq!(siwx["info"]["issuedAt"], "2026-03-01T12:00:00.123Z");
            assert_eq!(siwx["info"]["statement"], "Welcome back");
            assert_eq!(
                siwx["supportedChains"],
                serde_json::json!([{"chainId": crate::config::DEVNET, "type": "ed25519"}])
            );
            assert_eq!(siwx["schema"]["required"][0], "domain");
        }
        // The request's own Host decides nothing: another authority, or http, gets no declaration.
        for (proto, host) in [(&b"https"[..], &b"evil.example"[..]), (b"http", b"api.example.com")] {
            let url = resource_url(Some(proto), None, host, b"/api/data");
            let elsewhere = Challenge::new(&c, &offer, url, "F").with_sign_in(&c, || panic!("no clock needed"));
            let required = decode(elsewhere.response(&c, false).header("payment-required").unwrap());
            assert!(required["extensions"].get("sign-in-with-x").is_none(), "{required}");
            assert!(required["extensions"].get("payment-identifier").is_some(), "{required}");
        }
    }

    #[test]
    fn extensions_go_last_payment_identifier_always_and_several_fit() {
        let plain = br#"{"x402Version":2,"error":"Payment required"}"#;
        let mut json = plain.to_vec();
        Extensions::default().append_to(&mut json);
        let parsed: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(parsed["extensions"].as_object().unwrap().keys().collect::<Vec<_>>(), ["payment-identifier"]);
        let mut json = plain.to_vec();
        let mut extensions = Extensions::default();
        extensions.declare("sign-in-with-x", r#"{"info":{}}"#.to_owned());
        extensions.append_to(&mut json);
        let parsed: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(parsed["extensions"]["sign-in-with-x"], serde_json::json!({"info": {}}));
        assert_eq!(parsed["extensions"]["payment-identifier"]["info"]["required"], false);
        assert_eq!(parsed["error"], "Payment required", "the members before it are kept");
    }
}

//! A response the filter answers itself, as plain data; the proxy-wasm layer
//! hands it to Envoy's local reply unchanged, its headers serialized here.

use crate::config::Config;
use crate::header_map::HeaderMap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u32,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

/// Headers a browser needs to read the filter's answers (docs/behaviour.md §3), and v1's
/// `X-PAYMENT-RESPONSE` (§20).
pub const EXPOSE_HEADERS: &str =
    "PAYMENT-REQUIRED, X-ACCESS-PASS-TIERS, ACCESS-PASS, PAYMENT-RESPONSE, X-PAYMENT-RESPONSE";
/// The request headers a buyer in a browser may send: `SIGN-IN-WITH-X` (§16), v1's `X-PAYMENT`,
/// and the `Access-Control-Expose-Headers` request header `x402-fetch` 1.2.0 adds to its paid
/// request (docs/behaviour.md §20).
pub const ALLOW_HEADERS: &str =
    "Authorization, PAYMENT-SIGNATURE, SIGN-IN-WITH-X, X-PAYMENT, Access-Control-Expose-Headers, Content-Type";
pub const ALLOW_METHODS: &str = "GET, POST, HEAD, OPTIONS";
const PREFLIGHT_MAX_AGE: &str = "600";

impl Response {
    /// Its headers, then `extra`, serialized as proxy-wasm hands a local reply's to Envoy
    /// (src/header_map.rs): what the filter sends, built once for a remembered challenge
    /// (src/challenge_cache.rs), per answer for the rest.
    pub fn serialized_headers(&self, extra: &[(&str, &str)]) -> Vec<u8> {
        let pairs: Vec<(&str, &[u8])> = self
            .headers
            .iter()
            .map(|(name, value)| (*name, value.as_bytes()))
            .chain(extra.iter().map(|(name, value)| (*name, value.as_bytes())))
            .collect();
        HeaderMap::serialize(&pairs).into_bytes()
    }

    #[cfg(test)]
    pub fn json(status: u32, body: &serde_json::Value) -> Response {
        Response {
            status,
            headers: vec![("content-type", "application/json".to_owned()), ("cache-control", "no-store".to_owned())],
            body: body.to_string().into_bytes(),
        }
    }

    /// A JSON error answer, `{"error","message"?,"reason"}` (members in the order `json!` wrote
    /// them), serialized by one small struct: every error answer shares its code.
    pub fn error(status: u32, error: &str, reason: &str, message: Option<&str>) -> Response {
        #[derive(serde::Serialize)]
        struct Body<'a> {
            error: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            message: Option<&'a str>,
            reason: &'a str,
        }
        Response {
            status,
            headers: vec![("content-type", "application/json".to_owned()), ("cache-control", "no-store".to_owned())],
            body: serde_json::to_vec(&Body { error, message, reason }).unwrap_or_default(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((name, value.into()));
        self
    }

    /// Adds the CORS headers every response of a protected request carries.
    pub fn with_cors(mut self, config: &Config, origin: Option<&[u8]>) -> Response {
        self.headers.extend(cors_headers(config, origin).into_iter().map(|(n, v)| (n, v.to_owned())));
        self
    }
}

/// `Access-Control-Allow-Origin` (when the origin is allowed), `Vary: Origin`
/// when the answer depends on it, and `Access-Control-Expose-Headers`.
/// Borrowed from the configuration: every forwarded response gets them, so no copies.
pub fn cors_headers<'a>(config: &'a Config, origin: Option<&[u8]>) -> Vec<(&'static str, &'a str)> {
    let mut headers = Vec::with_capacity(3);
    if let Some(allowed) = config.allow_origin(origin) {
        if allowed != "*" {
            headers.push(("vary", "Origin"));
        }
        headers.push(("access-control-allow-origin", allowed));
    }
    headers.push(("access-control-expose-headers", EXPOSE_HEADERS));
    headers
}

/// The upstream's `Vary` with `Origin` added (a forwarded answer whose
/// `Access-Control-Allow-Origin` depends on the request's `Origin`): the upstream's own reasons
/// to vary stay.
pub fn vary_with_origin(upstream: Option<&[u8]>) -> String {
    let value = upstream.map(String::from_utf8_lossy).unwrap_or_default();
    let value = value.trim();
    if value.is_empty() {
        return "Origin".to_owned();
    }
    if value.split(',').any(|v| matches!(v.trim(), "*") || v.trim().eq_ignore_ascii_case("origin")) {
        return value.to_owned();
    }
    format!("{value}, Origin")
}

/// The upstream's `Cache-Control` with `private` merged in, as the official x402 server does for
/// a response carrying `PAYMENT-RESPONSE`: a shared cache must never keep a buyer's pass.
pub fn private_cache_control(upstream: Option<&[u8]>) -> String {
    let value = upstream.map(String::from_utf8_lossy).unwrap_or_default();
    let value = value.trim();
    if value.is_empty() {
        return "private".to_owned();
    }
    if value.split(',').any(|d| d.trim().eq_ignore_ascii_case("private")) {
        return value.to_owned();
    }
    format!("{value}, private")
}

/// The answer to a CORS preflight: 204, never a 402.
pub fn preflight(config: &Config, origin: Option<&[u8]>) -> Response {
    Response {
        status: 204,
        headers: vec![
            ("access-control-allow-methods", ALLOW_METHODS.to_owned()),
            ("access-control-allow-headers", ALLOW_HEADERS.to_owned()),
            ("access-control-max-age", PREFLIGHT_MAX_AGE.to_owned()),
        ],
        body: Vec::new(),
    }
    .with_cors(config, origin)
}

#[cfg(test)]
mod tests {

    #[test]
    fn origin_joins_the_upstreams_vary() {
        assert_eq!(vary_with_origin(None), "Origin");
        assert_eq!(vary_with_origin(Some(b" ")), "Origin");
        assert_eq!(vary_with_origin(Some(b"Accept-Encoding")), "Accept-Encoding, Origin");
        assert_eq!(vary_with_origin(Some(b"accept-encoding, origin")), "accept-encoding, origin");
        assert_eq!(vary_with_origin(Some(b"*")), "*");
    }

    use super::*;

    #[test]
    fn a_paid_response_is_private_to_the_buyer_whatever_the_upstream_said() {
        assert_eq!(private_cache_control(None), "private");
        assert_eq!(private_cache_control(Some(b"  ")), "private");
        assert_eq!(private_cache_control(Some(b"max-age=60")), "max-age=60, private");
        assert_eq!(private_cache_control(Some(b"no-cache, Private")), "no-cache, Private");
        assert_eq!(private_cache_control(Some(b"public, max-age=60")), "public, max-age=60, private");
    }
}

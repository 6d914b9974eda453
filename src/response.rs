//! A response the filter answers itself, as plain data; the proxy-wasm layer
//! hands it to `send_http_response` unchanged.

use crate::config::Config;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u32,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

/// Headers a browser needs to read the filter's answers (SPEC §3).
pub const EXPOSE_HEADERS: &str = "PAYMENT-REQUIRED, X-ACCESS-PASS-TIERS, ACCESS-PASS, PAYMENT-RESPONSE";
pub const ALLOW_HEADERS: &str = "Authorization, PAYMENT-SIGNATURE, Content-Type";
pub const ALLOW_METHODS: &str = "GET, POST, HEAD, OPTIONS";
const PREFLIGHT_MAX_AGE: &str = "600";

impl Response {
    pub fn json(status: u32, body: &serde_json::Value) -> Response {
        Response {
            status,
            headers: vec![("content-type", "application/json".to_owned()), ("cache-control", "no-store".to_owned())],
            body: body.to_string().into_bytes(),
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

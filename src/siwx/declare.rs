//! The `sign-in-with-x` member of a 402's `extensions` (docs/behaviour.md §16.1), as the
//! package's `declareSIWxExtension` + `enrichPaymentRequiredResponse` produce it: member order,
//! schema and all (tests/vectors/siwx/siwx.json holds its output for the same inputs). Written as
//! compact JSON by hand: serde's derives cost several KB of wasm for one fixed shape.

use super::settings::{Origin, Settings};
use super::time::format_millis;

/// The member's name in `extensions`.
pub const EXTENSION: &str = "sign-in-with-x";

/// `buildSIWxSchema()`, serialized as the package does.
pub const SCHEMA: &str = concat!(
    r#"{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object","properties":{"#,
    r#""domain":{"type":"string"},"address":{"type":"string"},"statement":{"type":"string"},"#,
    r#""uri":{"type":"string","format":"uri"},"version":{"type":"string"},"chainId":{"type":"string"},"#,
    r#""type":{"type":"string"},"nonce":{"type":"string"},"issuedAt":{"type":"string","format":"date-time"},"#,
    r#""expirationTime":{"type":"string","format":"date-time"},"notBefore":{"type":"string","format":"date-time"},"#,
    r#""requestId":{"type":"string"},"resources":{"type":"array","items":{"type":"string","format":"uri"}},"#,
    r#""signature":{"type":"string"}},"#,
    r#""required":["domain","address","uri","version","chainId","type","nonce","issuedAt","signature"]}"#
);

/// Random bytes of a nonce: 16, written as 32 hex characters (the package's size).
pub const NONCE_BYTES: usize = 16;

/// The declaration (compact JSON) for a 402 to `resource_url` at `now_ms`, or `None` when that URL
/// is not on a configured origin (a signature made for it would never be honoured) or no nonce
/// could be drawn.
pub fn declare(settings: &Settings, networks: &[&str], resource_url: &str, now_ms: u64) -> Option<String> {
    let origin = settings.origin_of(resource_url)?;
    let nonce = fresh_nonce()?;
    Some(declaration(settings, origin, networks, resource_url, now_ms, &nonce))
}

/// `{"info":{...},"supportedChains":[...],"schema":{...}}` with a given nonce (`declare` draws it):
/// one supported chain per network, in the 402's order, `ed25519` on Solana and `eip191` on EVM
/// networks, as the package's `getSignatureType` (docs/behaviour.md §21).
pub fn declaration(
    settings: &Settings,
    origin: &Origin,
    networks: &[&str],
    resource_url: &str,
    now_ms: u64,
    nonce: &str,
) -> String {
    let uri = json_string(&rebase(origin, resource_url));
    let mut chains = String::new();
    for (i, network) in networks.iter().enumerate() {
        let kind = if network.starts_with("solana:") { "ed25519" } else { "eip191" };
        let separator = if i == 0 { "" } else { "," };
        chains.push_str(&concat_all(&[
            separator,
            r#"{"chainId":"#,
            &json_string(network),
            r#","type":""#,
            kind,
            r#""}"#,
        ]));
    }
    let statement = settings.statement.as_deref().map(json_string);
    let (statement_member, statement) = match &statement {
        Some(json) => (r#","statement":"#, json.as_str()),
        None => ("", ""),
    };
    concat_all(&[
        r#"{"info":{"domain":"#,
        &json_string(&origin.host),
        r#","uri":"#,
        &uri,
        r#","version":"1","nonce":"#,
        &json_string(nonce),
        r#","issuedAt":""#,
        &format_millis(now_ms),
        r#"","resources":["#,
        &uri,
        "]",
        statement_member,
        statement,
        r#"},"supportedChains":["#,
        &chains,
        r#"],"schema":"#,
        SCHEMA,
        "}",
    ])
}

#[inline(never)]
fn concat_all(parts: &[&str]) -> String {
    parts.concat()
}

/// A JSON string literal (quoted, escaped).
#[inline(never)]
fn json_string(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

/// The resource's path and query on the configured origin (the package's `rebaseResourcePath`),
/// bytes that `URL` would percent-encode percent-encoded.
fn rebase(origin: &Origin, resource_url: &str) -> String {
    let after_scheme = resource_url.split_once("://").map_or("", |(_, rest)| rest);
    let path_and_query = after_scheme.find(['/', '?']).and_then(|at| after_scheme.get(at..)).unwrap_or("");
    let path_and_query = path_and_query.split('#').next().unwrap_or("");
    let mut uri = String::with_capacity(origin.origin.len() + path_and_query.len() + 1);
    uri.push_str(&origin.origin);
    if !path_and_query.starts_with('/') {
        uri.push('/');
    }
    for &b in path_and_query.as_bytes() {
        if b <= b' ' || b >= 0x7f || matches!(b, b'"' | b'<' | b'>' | b'`' | b'{' | b'}') {
            uri.push_str(&format!("%{b:02X}"));
        } else {
            uri.push(char::from(b));
        }
    }
    uri
}

/// 16 bytes from the host's randomness (WASI `random_get` inside Envoy), in lower-case hex.
fn fresh_nonce() -> Option<String> {
    let mut bytes = [0u8; NONCE_BYTES];
    if getrandom::getrandom(&mut bytes).is_err() {
        log::error!("x402-access-pass: no randomness for a sign-in-with-x nonce: the 402 goes without it");
        return None;
    }
    Some(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_are_fresh_hex() {
        let a = fresh_nonce().unwrap();
        let b = fresh_nonce().unwrap();
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(a, b);
    }

    #[test]
    fn the_uri_keeps_path_and_query_on_the_configured_origin() {
        let origin = Origin::configured("https://api.example.com").unwrap();
        assert_eq!(
            rebase(&origin, "http://10.0.0.7:8080/api/data?tier=1h"),
            "https://api.example.com/api/data?tier=1h"
        );
        assert_eq!(rebase(&origin, "https://api.example.com"), "https://api.example.com/");
        assert_eq!(rebase(&origin, "https://api.example.com?x"), "https://api.example.com/?x");
        assert_eq!(rebase(&origin, "https://h/a b\"<é>#frag"), "https://api.example.com/a%20b%22%3C%C3%A9%3E");
        assert!(serde_json::from_str::<serde_json::Value>(SCHEMA).is_ok());
    }
}

//! The `sign-in-with-x` member of a 402's `extensions` (docs/behaviour.md §16.1), as the
//! package's `declareSIWxExtension` + `enrichPaymentRequiredResponse` produce it: member order,
//! schema and all (tests/vectors/siwx/siwx.json holds its output for the same inputs).

use serde::Serialize;

use super::settings::{Origin, Settings};
use super::time::format_millis;

/// A constant JSON value, serialized member by member in the order written.
#[derive(Debug)]
pub enum Json {
    Str(&'static str),
    Arr(&'static [Json]),
    Obj(&'static [(&'static str, Json)]),
}

impl Serialize for Json {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        match self {
            Json::Str(text) => serializer.serialize_str(text),
            Json::Arr(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in *items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Json::Obj(members) => {
                let mut map = serializer.serialize_map(Some(members.len()))?;
                for (name, value) in *members {
                    map.serialize_entry(name, value)?;
                }
                map.end()
            }
        }
    }
}

const STRING: Json = Json::Obj(&[("type", Json::Str("string"))]);
const URI: Json = Json::Obj(&[("type", Json::Str("string")), ("format", Json::Str("uri"))]);
const DATE_TIME: Json = Json::Obj(&[("type", Json::Str("string")), ("format", Json::Str("date-time"))]);

/// `buildSIWxSchema()`, member for member.
pub const SCHEMA: Json = Json::Obj(&[
    ("$schema", Json::Str("https://json-schema.org/draft/2020-12/schema")),
    ("type", Json::Str("object")),
    (
        "properties",
        Json::Obj(&[
            ("domain", STRING),
            ("address", STRING),
            ("statement", STRING),
            ("uri", URI),
            ("version", STRING),
            ("chainId", STRING),
            ("type", STRING),
            ("nonce", STRING),
            ("issuedAt", DATE_TIME),
            ("expirationTime", DATE_TIME),
            ("notBefore", DATE_TIME),
            ("requestId", STRING),
            ("resources", Json::Obj(&[("type", Json::Str("array")), ("items", URI)])),
            ("signature", STRING),
        ]),
    ),
    (
        "required",
        Json::Arr(&[
            Json::Str("domain"),
            Json::Str("address"),
            Json::Str("uri"),
            Json::Str("version"),
            Json::Str("chainId"),
            Json::Str("type"),
            Json::Str("nonce"),
            Json::Str("issuedAt"),
            Json::Str("signature"),
        ]),
    ),
]);

/// Random bytes of a nonce: 16, written as 32 hex characters (the package's size).
pub const NONCE_BYTES: usize = 16;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Info {
    pub domain: String,
    pub uri: String,
    pub version: &'static str,
    pub nonce: String,
    pub issued_at: String,
    pub resources: [String; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub statement: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SupportedChain {
    pub chain_id: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
}

/// `{"info":{...},"supportedChains":[...],"schema":{...}}`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Declaration {
    pub info: Info,
    pub supported_chains: Vec<SupportedChain>,
    pub schema: &'static Json,
}

/// The declaration for a 402 to `resource_url` at `now_ms`, or `None` when that URL is not on a
/// configured origin (a signature made for it would never be honoured) or no nonce could be drawn.
pub fn declare(settings: &Settings, network: &str, resource_url: &str, now_ms: u64) -> Option<Declaration> {
    let origin = settings.origin_of(resource_url)?;
    let nonce = fresh_nonce()?;
    declaration(settings, origin, network, resource_url, now_ms, nonce)
}

/// The declaration with a given nonce (`declare` draws it).
pub fn declaration(
    settings: &Settings,
    origin: &Origin,
    network: &str,
    resource_url: &str,
    now_ms: u64,
    nonce: String,
) -> Option<Declaration> {
    let uri = rebase(origin, resource_url);
    Some(Declaration {
        info: Info {
            domain: origin.host.clone(),
            uri: uri.clone(),
            version: "1",
            nonce,
            issued_at: format_millis(now_ms),
            resources: [uri],
            statement: settings.statement.clone(),
        },
        supported_chains: vec![SupportedChain {
            chain_id: network.to_owned(),
            kind: if network.starts_with("solana:") { "ed25519" } else { "eip191" },
        }],
        schema: &SCHEMA,
    })
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
    if let Err(problem) = getrandom::getrandom(&mut bytes) {
        log::error!("x402-access-pass: no randomness for a sign-in-with-x nonce: {problem}");
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
    }
}

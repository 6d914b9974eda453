//! The `SIGN-IN-WITH-X` header (docs/behaviour.md §16.2): standard base64 of the JSON payload
//! the client signed, as the package's `encodeSIWxHeader` writes it and `parseSIWxHeader` reads
//! it. Read as bytes and bounded: whatever a client sends, the answer is a payload or `None`.

use base64::alphabet::STANDARD;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use serde_json::{Map, Value};

/// The longest header read (8 KiB): a payload is a few hundred bytes.
pub const MAX_HEADER_BYTES: usize = 8 * 1024;

/// `atob`: standard alphabet, padding optional, stray low bits ignored.
const ATOB: GeneralPurpose = GeneralPurpose::new(
    &STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// The client's proof, field by field as the package's `SIWxPayloadSchema` has it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Payload {
    pub domain: String,
    pub address: String,
    pub statement: Option<String>,
    pub uri: String,
    pub version: String,
    pub chain_id: String,
    /// `type`: `ed25519` or `eip191`.
    pub kind: String,
    pub nonce: String,
    pub issued_at: String,
    pub expiration_time: Option<String>,
    pub not_before: Option<String>,
    pub request_id: Option<String>,
    pub resources: Option<Vec<String>>,
    pub signature_scheme: Option<String>,
    pub signature: String,
}

/// The payload of one header value, or `None` when it is too long, not base64 (`^[A-Za-z0-9+/]*={0,2}$`),
/// not UTF-8 JSON, or not of the schema's shape (required strings, known `type` and
/// `signatureScheme`, `resources` an array of strings). Unknown members are ignored, as zod does.
pub fn parse(raw: &[u8]) -> Option<Payload> {
    if raw.is_empty() || raw.len() > MAX_HEADER_BYTES {
        return None;
    }
    let body = raw.strip_suffix(b"==").or_else(|| raw.strip_suffix(b"=")).unwrap_or(raw);
    if !body.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/') {
        return None;
    }
    let json = ATOB.decode(raw).ok()?;
    let Value::Object(object) = serde_json::from_slice::<Value>(&json).ok()? else { return None };
    let payload = Payload {
        domain: required(&object, "domain")?,
        address: required(&object, "address")?,
        statement: optional(&object, "statement")?,
        uri: required(&object, "uri")?,
        version: required(&object, "version")?,
        chain_id: required(&object, "chainId")?,
        kind: required(&object, "type").filter(|t| matches!(t.as_str(), "eip191" | "ed25519"))?,
        nonce: required(&object, "nonce")?,
        issued_at: required(&object, "issuedAt")?,
        expiration_time: optional(&object, "expirationTime")?,
        not_before: optional(&object, "notBefore")?,
        request_id: optional(&object, "requestId")?,
        resources: match object.get("resources") {
            None => None,
            Some(Value::Array(items)) => {
                Some(items.iter().map(|item| item.as_str().map(str::to_owned)).collect::<Option<Vec<String>>>()?)
            }
            Some(_) => return None,
        },
        signature_scheme: match optional(&object, "signatureScheme")? {
            Some(s) if !matches!(s.as_str(), "eip191" | "eip1271" | "eip6492" | "siws") => return None,
            other => other,
        },
        signature: required(&object, "signature")?,
    };
    Some(payload)
}

fn required(object: &Map<String, Value>, key: &str) -> Option<String> {
    object.get(key)?.as_str().map(str::to_owned)
}

/// `Some(None)` when absent; `None` (malformed) when present and not a string (zod refuses
/// `null` for an optional string too).
fn optional(object: &Map<String, Value>, key: &str) -> Option<Option<String>> {
    match object.get(key) {
        None => Some(None),
        Some(value) => value.as_str().map(|s| Some(s.to_owned())),
    }
}

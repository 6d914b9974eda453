//! The `SIGN-IN-WITH-X` header (docs/behaviour.md §16.2): standard base64 of the JSON payload
//! the client signed, as the package's `encodeSIWxHeader` writes it and `parseSIWxHeader` reads
//! it. Read as bytes and bounded: whatever a client sends, the answer is a payload or `None`.

use base64::alphabet::STANDARD;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use serde_json::Value;

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

fn has_control(text: &str) -> bool {
    text.chars().any(char::is_control)
}

/// The payload of one header value, or `None` when it is too long, not base64 (`^[A-Za-z0-9+/]*={0,2}$`),
/// not UTF-8 JSON, or not of the schema's shape (required strings, known `type` and
/// `signatureScheme`, `resources` an array of strings, no control character in any of them).
/// Unknown members are ignored, as zod does.
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
    // One pass over the members, each moved into its field: no lookups, no copies.
    let mut p = Payload::default();
    let mut seen = 0u16;
    for (name, value) in object {
        let (slot, bit) = match name.as_str() {
            "domain" => (&mut p.domain, 1),
            "address" => (&mut p.address, 2),
            "uri" => (&mut p.uri, 4),
            "version" => (&mut p.version, 8),
            "chainId" => (&mut p.chain_id, 16),
            "type" => (&mut p.kind, 32),
            "nonce" => (&mut p.nonce, 64),
            "issuedAt" => (&mut p.issued_at, 128),
            "signature" => (&mut p.signature, 256),
            "statement" => (p.statement.insert(String::new()), 0),
            "expirationTime" => (p.expiration_time.insert(String::new()), 0),
            "notBefore" => (p.not_before.insert(String::new()), 0),
            "requestId" => (p.request_id.insert(String::new()), 0),
            "signatureScheme" => (p.signature_scheme.insert(String::new()), 0),
            "resources" => {
                let Value::Array(items) = value else { return None };
                let mut resources = Vec::with_capacity(items.len());
                for item in items {
                    let Value::String(text) = item else { return None };
                    if has_control(&text) {
                        return None;
                    }
                    resources.push(text);
                }
                p.resources = Some(resources);
                continue;
            }
            _ => continue,
        };
        // zod: a string, never `null`, even for an optional member. A control character has no
        // place in any field (CAIP-122 lines are separated by `\n`): a message carrying one could
        // read as lines it does not hold.
        let Value::String(text) = value else { return None };
        if has_control(&text) {
            return None;
        }
        *slot = text;
        seen |= bit;
    }
    let known_type = matches!(p.kind.as_str(), "eip191" | "ed25519");
    let known_scheme =
        p.signature_scheme.as_deref().is_none_or(|s| matches!(s, "eip191" | "eip1271" | "eip6492" | "siws"));
    (seen == 511 && known_type && known_scheme).then_some(p)
}

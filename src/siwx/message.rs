//! The CAIP-122 text a Solana wallet signs, byte for byte as the package's `formatSIWSMessage`
//! builds it from the payload (tests/vectors/siwx/siwx.json holds its output).

use super::header::Payload;

/// `formatSIWSMessage(payload, payload.address)`. Empty optional fields are left out, as the
/// package's truthiness tests do; a `chainId` without `:` gives `Chain ID: undefined`, as
/// `chainId.split(":")[1]` does in JavaScript.
pub fn format(payload: &Payload) -> String {
    // Lines as (prefix, value) pairs, joined with `\n` as the package's `lines.join("\n")`.
    let mut lines: Vec<(&str, &str)> = Vec::with_capacity(16);
    lines.push((&payload.domain, " wants you to sign in with your Solana account:"));
    lines.push(("", &payload.address));
    lines.push(("", ""));
    if let Some(statement) = present(&payload.statement) {
        lines.push(("", statement));
        lines.push(("", ""));
    }
    let chain_reference = payload.chain_id.split(':').nth(1).unwrap_or("undefined");
    lines.push(("URI: ", &payload.uri));
    lines.push(("Version: ", &payload.version));
    lines.push(("Chain ID: ", chain_reference));
    lines.push(("Nonce: ", &payload.nonce));
    lines.push(("Issued At: ", &payload.issued_at));
    for (label, field) in [
        ("Expiration Time: ", &payload.expiration_time),
        ("Not Before: ", &payload.not_before),
        ("Request ID: ", &payload.request_id),
    ] {
        if let Some(value) = present(field) {
            lines.push((label, value));
        }
    }
    if let Some(resources) = payload.resources.as_ref().filter(|r| !r.is_empty()) {
        lines.push(("Resources:", ""));
        lines.extend(resources.iter().map(|r| ("- ", r.as_str())));
    }
    let mut text = String::with_capacity(lines.iter().map(|(a, b)| a.len() + b.len() + 1).sum());
    for (index, (prefix, value)) in lines.iter().enumerate() {
        if index > 0 {
            text.push('\n');
        }
        text.push_str(prefix);
        text.push_str(value);
    }
    text
}

fn present(field: &Option<String>) -> Option<&str> {
    field.as_deref().filter(|s| !s.is_empty())
}

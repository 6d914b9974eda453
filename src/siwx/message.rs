//! The CAIP-122 text a Solana wallet signs, byte for byte as the package's `formatSIWSMessage`
//! builds it from the payload (tests/vectors/siwx/siwx.json holds its output).

use super::header::Payload;

/// `formatSIWSMessage(payload, payload.address)`. Empty optional fields are left out, as the
/// package's truthiness tests do; a `chainId` without `:` gives `Chain ID: undefined`, as
/// `chainId.split(":")[1]` does in JavaScript.
pub fn format(payload: &Payload) -> String {
    let mut text = String::with_capacity(512);
    text.push_str(&payload.domain);
    text.push_str(" wants you to sign in with your Solana account:\n");
    text.push_str(&payload.address);
    text.push_str("\n\n");
    if let Some(statement) = present(&payload.statement) {
        text.push_str(statement);
        text.push_str("\n\n");
    }
    let chain_reference = payload.chain_id.split(':').nth(1).unwrap_or("undefined");
    for (label, value) in [
        ("URI: ", payload.uri.as_str()),
        ("\nVersion: ", &payload.version),
        ("\nChain ID: ", chain_reference),
        ("\nNonce: ", &payload.nonce),
        ("\nIssued At: ", &payload.issued_at),
    ] {
        text.push_str(label);
        text.push_str(value);
    }
    for (label, field) in [
        ("\nExpiration Time: ", &payload.expiration_time),
        ("\nNot Before: ", &payload.not_before),
        ("\nRequest ID: ", &payload.request_id),
    ] {
        if let Some(value) = present(field) {
            text.push_str(label);
            text.push_str(value);
        }
    }
    if let Some(resources) = payload.resources.as_ref().filter(|r| !r.is_empty()) {
        text.push_str("\nResources:");
        for resource in resources {
            text.push_str("\n- ");
            text.push_str(resource);
        }
    }
    text
}

fn present(field: &Option<String>) -> Option<&str> {
    field.as_deref().filter(|s| !s.is_empty())
}

//! Sign-In-With-Ethereum (`evm::siwe`) on arbitrary bytes: the input is a `SIGN-IN-WITH-X`
//! payload (JSON), as `@x402/extensions` 2.27.0's `createSIWxPayload` makes it for EVM chains.
//!
//! For fields the formatter accepts: the message has exactly the lines the EIP-4361 layout
//! gives those fields (no field can add or remove one), starts with the domain and the
//! checksummed address, and names the chain id; a signature that verifies recovers the address
//! of the payload (whatever its letter case).

use serde_json::Value;
use x402_access_pass::evm::address::{Address, Case};
use x402_access_pass::evm::siwe::{self, SiweFields};

pub fn run(data: &[u8]) {
    let Ok(payload) = serde_json::from_slice::<Value>(data) else { return };
    let text = |key: &str| payload.get(key).and_then(Value::as_str);
    let list: Option<Vec<&str>> =
        payload.get("resources").and_then(Value::as_array).map(|l| l.iter().filter_map(Value::as_str).collect());
    let fields = SiweFields {
        domain: text("domain").unwrap_or_default(),
        address: text("address").unwrap_or_default(),
        statement: text("statement"),
        uri: text("uri").unwrap_or_default(),
        version: text("version").unwrap_or_default(),
        chain_id: text("chainId").unwrap_or_default(),
        nonce: text("nonce").unwrap_or_default(),
        issued_at: text("issuedAt").unwrap_or_default(),
        expiration_time: text("expirationTime"),
        not_before: text("notBefore"),
        request_id: text("requestId"),
        resources: list.as_deref(),
    };
    let _ = siwe::is_date_time(fields.issued_at);
    let Ok(message) = siwe::format_message(&fields) else {
        assert!(siwe::verify(&fields, text("signature").unwrap_or_default()).is_err());
        return;
    };

    // Lines: header, address, then blank/statement lines, five fixed ones, the optional ones.
    let statement_lines = match fields.statement {
        None => 2,     // "", ""
        Some("") => 3, // "", "", ""
        Some(_) => 3,  // "", statement, ""
    };
    fn present(t: Option<&str>) -> Option<&str> {
        t.filter(|t| !t.is_empty())
    }
    let optional =
        [present(fields.expiration_time), present(fields.not_before), fields.request_id].iter().flatten().count();
    let resources = fields.resources.map_or(0, |r| 1 + r.len());
    let expected = 2 + statement_lines + 5 + optional + resources;
    assert_eq!(message.split('\n').count(), expected, "a field changed the line count: {message:?}");
    assert!(!message.contains('\r'));
    let address = match Address::parse(fields.address, Case::AllowUpper) {
        Some(a) => a,
        None => panic!("formatted with an address that does not parse: {:?}", fields.address),
    };
    let mut lines = message.split('\n');
    assert_eq!(
        lines.next(),
        Some(format!("{} wants you to sign in with your Ethereum account:", fields.domain).as_str())
    );
    assert_eq!(lines.next(), Some(address.to_checksum().as_str()));
    let digits = fields.chain_id.trim_start_matches("eip155:");
    if !digits.starts_with('0') {
        assert!(message.contains(&format!("\nChain ID: {digits}\n")), "chain id not rendered as sent");
    }

    if let Ok(signer) = siwe::verify(&fields, text("signature").unwrap_or_default()) {
        assert_eq!(signer, address);
    }
}

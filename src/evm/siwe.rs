//! Sign-In-With-Ethereum for the x402 `sign-in-with-x` extension on EVM networks
//! (docs/behaviour.md §16, §21): the EIP-4361 message text exactly as `@x402/extensions` 2.27.0's
//! `formatSIWEMessage` builds it (`SiweMessage.prepareMessage()` of `@signinwithethereum/siwe`
//! 4.2), and the EIP-191 `personal_sign` signature over it.
//!
//! `formatSIWEMessage` throws for fields its message parser refuses; [`format_message`] refuses
//! the same (`SiweError`), so a payload the official verifier would never accept is never
//! honoured here, and no field can smuggle a line into the signed text.
//!
//! Signatures: 65 bytes, `v` 27/28 or 0/1, low `s` (every wallet signs low `s`; a malleated
//! twin is refused). secp256k1 has a prime-order group (cofactor 1): there is no small-order
//! key to refuse, and recovery never yields the point at infinity (k256 errors instead).

use super::address::{Address, Case};
use super::eip712::chain_id;
use super::keccak::keccak256;
use super::signature::{RecoverableSignature, SignatureError};

/// Larger messages are refused (the extension's whole header is at most 8 KiB).
pub const MAX_MESSAGE_BYTES: usize = 8 * 1024;

/// The payload fields the message is built from (the names of the SIWX payload).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct SiweFields<'a> {
    pub domain: &'a str,
    pub address: &'a str,
    pub statement: Option<&'a str>,
    pub uri: &'a str,
    pub version: &'a str,
    /// CAIP-2, `eip155:<id>`.
    pub chain_id: &'a str,
    pub nonce: &'a str,
    pub issued_at: &'a str,
    pub expiration_time: Option<&'a str>,
    pub not_before: Option<&'a str>,
    pub request_id: Option<&'a str>,
    pub resources: Option<&'a [&'a str]>,
}

/// Which field the official formatter would refuse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SiweError {
    Domain,
    Address,
    Statement,
    Uri,
    Version,
    ChainId,
    Nonce,
    IssuedAt,
    ExpirationTime,
    NotBefore,
    RequestId,
    Resource,
    TooLong,
}

/// Why a sign-in is not proven.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VerifyError {
    Message(SiweError),
    Signature(SignatureError),
    /// The signature is another key's, or over another text.
    SignerMismatch,
}

/// The EIP-4361 message text, byte for byte as `formatSIWEMessage(info, address)`.
pub fn format_message(fields: &SiweFields<'_>) -> Result<String, SiweError> {
    if !is_authority(fields.domain) {
        return Err(SiweError::Domain);
    }
    let address = Address::parse(fields.address, Case::AllowUpper).ok_or(SiweError::Address)?;
    if let Some(statement) = fields.statement {
        if !statement.bytes().all(is_statement_char) {
            return Err(SiweError::Statement);
        }
    }
    if !is_uri(fields.uri) {
        return Err(SiweError::Uri);
    }
    if fields.version != "1" {
        return Err(SiweError::Version);
    }
    // parseInt of the digits: exact only up to 2^53 - 1.
    let chain = chain_id(fields.chain_id).filter(|id| *id < (1u64 << 53)).ok_or(SiweError::ChainId)?;
    if fields.nonce.len() < 8 || !fields.nonce.bytes().all(|c| c.is_ascii_alphanumeric()) {
        return Err(SiweError::Nonce);
    }
    if !is_date_time(fields.issued_at) {
        return Err(SiweError::IssuedAt);
    }
    // The formatter writes these two only when truthy: an empty one is an absent one.
    let expiration_time = fields.expiration_time.filter(|t| !t.is_empty());
    let not_before = fields.not_before.filter(|t| !t.is_empty());
    if expiration_time.is_some_and(|t| !is_date_time(t)) {
        return Err(SiweError::ExpirationTime);
    }
    if not_before.is_some_and(|t| !is_date_time(t)) {
        return Err(SiweError::NotBefore);
    }
    if fields.request_id.is_some_and(|r| !r.bytes().all(is_pchar) || !pct_ok(r)) {
        return Err(SiweError::RequestId);
    }
    if fields.resources.is_some_and(|list| !list.iter().all(|r| is_uri(r))) {
        return Err(SiweError::Resource);
    }

    let mut out = String::with_capacity(256);
    out.push_str(fields.domain);
    out.push_str(" wants you to sign in with your Ethereum account:\n");
    out.push_str(&address.to_checksum());
    match fields.statement {
        None => out.push_str("\n\n"),
        Some(statement) => {
            out.push_str("\n\n");
            out.push_str(statement);
            out.push('\n');
        }
    }
    out.push_str("\nURI: ");
    out.push_str(fields.uri);
    out.push_str("\nVersion: ");
    out.push_str(fields.version);
    out.push_str("\nChain ID: ");
    out.push_str(&chain.to_string());
    out.push_str("\nNonce: ");
    out.push_str(fields.nonce);
    out.push_str("\nIssued At: ");
    out.push_str(fields.issued_at);
    let optional = [
        ("\nExpiration Time: ", expiration_time),
        ("\nNot Before: ", not_before),
        ("\nRequest ID: ", fields.request_id),
    ];
    for (title, value) in optional {
        if let Some(value) = value {
            out.push_str(title);
            out.push_str(value);
        }
    }
    if let Some(resources) = fields.resources {
        out.push_str("\nResources:");
        for resource in resources {
            out.push_str("\n- ");
            out.push_str(resource);
        }
    }
    if out.len() > MAX_MESSAGE_BYTES {
        return Err(SiweError::TooLong);
    }
    Ok(out)
}

/// The EIP-191 `personal_sign` hash of `message`:
/// keccak-256 of `"\x19Ethereum Signed Message:\n" || decimal byte length || message`.
pub fn personal_sign_hash(message: &[u8]) -> [u8; 32] {
    keccak256(&[b"\x19Ethereum Signed Message:\n", message.len().to_string().as_bytes(), message])
}

/// Formats the message from `fields` and checks that `signature` (`0x` + 130 hex) is the
/// `personal_sign` of it by `fields.address`. Returns the signer.
pub fn verify(fields: &SiweFields<'_>, signature: &str) -> Result<Address, VerifyError> {
    let message = format_message(fields).map_err(VerifyError::Message)?;
    let claimed = Address::parse(fields.address, Case::AllowUpper).ok_or(VerifyError::Message(SiweError::Address))?;
    let signature = RecoverableSignature::parse_hex(signature).map_err(VerifyError::Signature)?;
    let signer = signature.recover(&personal_sign_hash(message.as_bytes())).map_err(VerifyError::Signature)?;
    if signer != claimed {
        return Err(VerifyError::SignerMismatch);
    }
    Ok(signer)
}

/// RFC 3986 unreserved, sub-delims, `:` and `@`, or `%` (pct-encoded is checked by the caller
/// only as characters: a stray `%` is what the grammar's `pct-encoded` would refuse).
fn is_pchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@%".contains(&c)
}

/// The grammar's `statement`: printable ASCII without `"`, `%`, `<`, `>`, `\`, `^`, `` ` ``,
/// `{`, `|`, `}` (and so without line breaks).
fn is_statement_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b" !#$&'()*+,-./:;=?@[]_~".contains(&c)
}

/// `%` must start two hex digits.
fn pct_ok(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.iter().enumerate().all(|(i, c)| {
        *c != b'%'
            || (bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
    })
}

/// `[userinfo "@"] host [":" port]`, host a reg-name, IPv4 or `[`IP literal`]`; not empty.
fn is_authority(text: &str) -> bool {
    if text.is_empty() || !pct_ok(text) {
        return false;
    }
    let host_port = match text.rsplit_once('@') {
        Some((userinfo, rest)) => {
            if !userinfo.bytes().all(|c| c != b'@' && is_pchar(c)) {
                return false;
            }
            rest
        }
        None => text,
    };
    let (host, port) = if let Some(literal) = host_port.strip_prefix('[') {
        let Some((inside, after)) = literal.split_once(']') else {
            return false;
        };
        if inside.is_empty() || !inside.bytes().all(|c| c.is_ascii_hexdigit() || c == b':' || c == b'.') {
            return false;
        }
        match after {
            "" => ("x", None),
            _ => match after.strip_prefix(':') {
                Some(port) => ("x", Some(port)),
                None => return false,
            },
        }
    } else {
        match host_port.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        }
    };
    let host_ok = host.bytes().all(|c| c.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=%".contains(&c));
    let port_ok = port.is_none_or(|p| p.bytes().all(|c| c.is_ascii_digit()));
    host_ok && port_ok && !host.is_empty()
}

/// `scheme ":" rest`, the scheme a letter then letters, digits, `+`, `-`, `.`; the rest made of
/// URI characters (pchar, `/`, `?`, `#`, and `[`/`]` for IP literals).
fn is_uri(text: &str) -> bool {
    let Some((scheme, rest)) = text.split_once(':') else {
        return false;
    };
    let mut scheme_bytes = scheme.bytes();
    let scheme_ok = scheme_bytes.next().is_some_and(|c| c.is_ascii_alphabetic())
        && scheme_bytes.all(|c| c.is_ascii_alphanumeric() || b"+-.".contains(&c));
    let rest_ok = rest.bytes().all(|c| is_pchar(c) || b"/?#[]".contains(&c)) && pct_ok(rest);
    let authority_ok = match rest.strip_prefix("//") {
        Some(after) => {
            let end = after.find(['/', '?', '#']).unwrap_or(after.len());
            after.get(..end).is_some_and(|a| a.is_empty() || is_authority(a))
        }
        None => true,
    };
    scheme_ok && rest_ok && authority_ok
}

/// RFC 3339 `date-time` with a real calendar date, as the SIWE parser checks it:
/// `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)` (`T`/`Z` either case, second up to 60).
pub fn is_date_time(text: &str) -> bool {
    let b = text.as_bytes();
    let digits = |range: core::ops::Range<usize>| {
        b.get(range.clone())
            .filter(|s| s.len() == range.len() && s.iter().all(u8::is_ascii_digit))
            .map(|s| s.iter().fold(0u32, |n, c| n * 10 + u32::from(c - b'0')))
    };
    let (Some(year), Some(month), Some(day), Some(hour), Some(minute), Some(second)) =
        (digits(0..4), digits(5..7), digits(8..10), digits(11..13), digits(14..16), digits(17..19))
    else {
        return false;
    };
    let separators = b.get(4) == Some(&b'-')
        && b.get(7) == Some(&b'-')
        && matches!(b.get(10), Some(b'T' | b't'))
        && b.get(13) == Some(&b':')
        && b.get(16) == Some(&b':');
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => 0,
    };
    if !separators || day == 0 || day > days || hour > 23 || minute > 59 || second > 60 {
        return false;
    }
    let mut rest = b.get(19..).unwrap_or_default();
    if let Some(frac) = rest.strip_prefix(b".") {
        let n = frac.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return false;
        }
        rest = frac.get(n..).unwrap_or_default();
    }
    match rest {
        [b'Z' | b'z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => {
            let all = [h1, h2, m1, m2].iter().all(|c| c.is_ascii_digit());
            let hours = u32::from(h1.wrapping_sub(b'0')) * 10 + u32::from(h2.wrapping_sub(b'0'));
            all && hours <= 23 && *m1 <= b'5'
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields() -> SiweFields<'static> {
        SiweFields {
            domain: "api.example.com",
            address: "0x833589fcd6edb6e08f4c7c32d4f71b54bda02913",
            statement: Some("Sign in to use your pass"),
            uri: "https://api.example.com/data",
            version: "1",
            chain_id: "eip155:8453",
            nonce: "0123456789abcdef0123456789abcdef",
            issued_at: "2026-12-07T01:00:00.000Z",
            ..SiweFields::default()
        }
    }

    #[test]
    fn the_message_layout() {
        let text = format_message(&fields()).unwrap();
        assert_eq!(
            text,
            "api.example.com wants you to sign in with your Ethereum account:\n\
             0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913\n\n\
             Sign in to use your pass\n\n\
             URI: https://api.example.com/data\n\
             Version: 1\n\
             Chain ID: 8453\n\
             Nonce: 0123456789abcdef0123456789abcdef\n\
             Issued At: 2026-12-07T01:00:00.000Z"
        );
    }

    #[test]
    fn no_field_can_add_a_line() {
        let bad = [
            SiweFields { domain: "a.com\nURI: x", ..fields() },
            SiweFields { statement: Some("hi\nthere"), ..fields() },
            SiweFields { uri: "https://a.com/\nx", ..fields() },
            SiweFields { nonce: "abcdefgh\n", ..fields() },
            SiweFields { request_id: Some("a\nb"), ..fields() },
            SiweFields { issued_at: "2026-12-07T01:00:00Z\n", ..fields() },
            SiweFields { resources: Some(&["https://a.com/\n- https://b.com"]), ..fields() },
        ];
        for fields in bad {
            assert!(format_message(&fields).is_err(), "{fields:?}");
        }
    }

    #[test]
    fn empty_optional_times_are_absent_but_an_empty_statement_is_not() {
        // `if (this.expirationTime)` / `this.notBefore &&` in the formatter; `statement === undefined`.
        let plain = format_message(&fields()).unwrap();
        let empty_times = SiweFields { expiration_time: Some(""), not_before: Some(""), ..fields() };
        assert_eq!(format_message(&empty_times).unwrap(), plain);
        let empty_statement = SiweFields { statement: Some(""), ..fields() };
        assert!(format_message(&empty_statement)
            .unwrap()
            .contains("0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913\n\n\n\nURI: "));
        let no_statement = SiweFields { statement: None, ..fields() };
        assert!(format_message(&no_statement)
            .unwrap()
            .contains("0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913\n\n\nURI: "));
        // A request id is written even when empty; a stray `%` is no pct-encoding.
        let empty_id = SiweFields { request_id: Some(""), ..fields() };
        assert!(format_message(&empty_id).unwrap().ends_with("\nRequest ID: "));
        assert_eq!(format_message(&SiweFields { request_id: Some("a%zz"), ..fields() }), Err(SiweError::RequestId));
        assert!(format_message(&SiweFields { request_id: Some("a%2F"), ..fields() }).is_ok());
    }

    #[test]
    fn dates_are_rfc3339_with_real_days() {
        for good in ["2026-12-07T01:00:00Z", "2024-02-29T23:59:60.123456+05:30", "2026-01-01t00:00:00z"] {
            assert!(is_date_time(good), "{good}");
        }
        for bad in [
            "2026-02-29T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-12-07 01:00:00Z",
            "2026-12-07T24:00:00Z",
            "2026-12-07T01:00:00",
            "2026-12-07T01:00:00.Z",
            "2026-12-07T01:00:00+5:30",
        ] {
            assert!(!is_date_time(bad), "{bad}");
        }
    }
}

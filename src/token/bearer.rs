//! Finding the token in an `Authorization` value.

/// The token of an `Authorization` value: scheme `Bearer` (case-insensitive), one or
/// more spaces or tabs, then the token (trailing whitespace trimmed). Works on raw
/// bytes, so a non-UTF-8 header cannot trap the VM. `None` for any other shape.
pub fn bearer_token(authorization: &[u8]) -> Option<&[u8]> {
    let value = authorization.trim_ascii();
    let (scheme, rest) = value.split_at_checked(6)?;
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return None;
    }
    if !matches!(rest.first(), Some(b' ' | b'\t')) {
        return None;
    }
    // `value` is trimmed, so `rest` does not end with whitespace.
    let token = rest.trim_ascii_start();
    if token.is_empty() {
        None
    } else {
        Some(token)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::token::testkit::*;
    use crate::token::{verify, PassClaims, Rejection};

    #[test]
    fn bearer_parsing() {
        assert_eq!(bearer_token(b"Bearer abc"), Some(&b"abc"[..]));
        assert_eq!(bearer_token(b"bearer abc"), Some(&b"abc"[..]));
        assert_eq!(bearer_token(b"BEARER abc"), Some(&b"abc"[..]));
        assert_eq!(bearer_token(b"BeArEr    abc"), Some(&b"abc"[..]));
        assert_eq!(bearer_token(b"Bearer\tabc"), Some(&b"abc"[..]));
        assert_eq!(bearer_token(b"Bearer \t abc \t "), Some(&b"abc"[..]));
        assert_eq!(bearer_token(b"  Bearer abc"), Some(&b"abc"[..]));
        assert_eq!(bearer_token(b"Bearer"), None);
        assert_eq!(bearer_token(b"Bearer "), None);
        assert_eq!(bearer_token(b"Bearer   \t "), None);
        assert_eq!(bearer_token(b"Bearerabc"), None);
        assert_eq!(bearer_token(b"Basic abc"), None);
        assert_eq!(bearer_token(b"Bear abc"), None);
        assert_eq!(bearer_token(b""), None);
        assert_eq!(bearer_token(b"Bearer \xff\xfe"), Some(&b"\xff\xfe"[..]));
        assert_eq!(bearer_token(b"B\xc3\xa9arer abc"), None);
        assert_eq!(bearer_token("Béarer abc".as_bytes()), None);
        let header = format!("Bearer {VECTOR}");
        assert_eq!(check_bytes(bearer_token(header.as_bytes()).unwrap()), Ok(claims()));
    }

    fn check_bytes(token: &[u8]) -> Result<PassClaims, Rejection> {
        verify(&ring(vec![hs(None, SECRET)]), &policy(), token, IAT)
    }
}
